//! Opening a database that syncs, and its session, for JavaScript. The
//! session runs on napi-rs's tokio runtime; what it reports to the app
//! (errors) crosses to the JavaScript thread through weak threadsafe
//! functions, which never keep the process alive on their own.

use crate::{haven_error, named, NativeDatabase};
use haven::{
    AfterReset, BeforeReset, ClientResetMode, Config, ConnectionState, Database, RecoveryPolicy, ResetHandler, Schema,
    SyncConfig, SyncError,
};
use napi::bindgen_prelude::Promise;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Result;
use napi_derive::napi;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where and how a database syncs (the JavaScript layer builds it from
/// Realm's `sync` configuration).
#[napi(object)]
pub struct NativeSyncOptions {
    /// `ws://` or `wss://`.
    pub url: String,
    /// The partition synced.
    pub partition: String,
    /// A fixed token; with a provider, the provider's first token.
    pub token: Option<String>,
    /// "manual", "discardUnsyncedChanges", "recoverUnsyncedChanges" or
    /// "recoverOrDiscardUnsyncedChanges".
    pub client_reset_mode: String,
    /// Extra trusted certificates for `wss://` (PEM).
    pub tls_root_certificates: Option<String>,
    /// Whether the first open waits for everything the server has.
    pub wait_for_download: bool,
}

/// A token provider: an async JavaScript function returning a token.
pub type TokenProvider = ThreadsafeFunction<(), Promise<String>, (), napi::Status, false, true>;

/// A JavaScript function that hears sync errors, as JSON.
pub type ErrorListener = ThreadsafeFunction<Json, (), Json, napi::Status, false, true>;

/// A client reset callback in JavaScript, called with a handle on the
/// frozen database before the reset and, for `onAfter`, one on the live
/// database after it. Its promise settles when the app's callback (and
/// the promise that returned) did, with `true`; it rejects if that threw.
pub type ResetCallback = ThreadsafeFunction<ResetCallArgs, Promise<bool>, ResetCallArgs, napi::Status, false, true>;

/// What a reset callback is called with: the numbers under which the
/// databases wait in [`HANDED_OVER`] (class instances do not cross a
/// threadsafe function), taken with `NativeDatabase.handedOver`.
pub type ResetCallArgs = (u32, Option<u32>);

/// Databases handed to JavaScript by a reset callback, until it takes them.
static HANDED_OVER: Mutex<BTreeMap<u32, Database>> = Mutex::new(BTreeMap::new());
static NEXT_HANDED_OVER: AtomicU32 = AtomicU32::new(0);

/// Keeps `db` for JavaScript to take; returns its number.
fn hand_over(db: &Database) -> u32 {
    let number = NEXT_HANDED_OVER.fetch_add(1, Ordering::Relaxed);
    HANDED_OVER.lock().expect("handed-over databases").insert(number, db.clone());
    number
}

/// `onFallback`: called with the backup's path when recovery was not possible.
pub type FallbackCallback = ThreadsafeFunction<String, (), String, napi::Status, false, true>;

/// The JavaScript callbacks of a client reset.
pub struct ResetCallbacks {
    before: Option<Arc<ResetCallback>>,
    after: Option<Arc<ResetCallback>>,
    fallback: Option<Arc<FallbackCallback>>,
}

/// Calls a JavaScript reset callback and waits (this is the session's
/// blocking thread, not the JavaScript one) until it settled.
fn call_and_wait(callback: &ResetCallback, args: ResetCallArgs) -> haven::Result<()> {
    let args_numbers = [Some(args.0), args.1];
    let args_numbers: Vec<u32> = args_numbers.into_iter().flatten().collect();
    let settled = tokio::runtime::Handle::current().block_on(async {
        let promise = callback.call_async(args).await?;
        promise.await
    });
    // The wrapper resolves to `true` once the app's callback is done.
    // Whatever JavaScript did not take (it threw first) is let go.
    HANDED_OVER.lock().expect("handed-over databases").retain(|number, _| !args_numbers.contains(number));
    settled.map(|_| ()).map_err(|e| haven::Error::Storage(format!("the JavaScript callback threw: {}", e.reason)))
}

impl ResetCallbacks {
    fn before(&self) -> Option<BeforeReset> {
        let callback = self.before.clone()?;
        Some(Box::new(move |before: &Database| call_and_wait(&callback, (hand_over(before), None))))
    }

    fn after(&self) -> Option<AfterReset> {
        let callback = self.after.clone()?;
        Some(Box::new(move |before: &Database, after: &Database, _report: &haven::RecoveryReport| {
            call_and_wait(&callback, (hand_over(before), Some(hand_over(after))))
        }))
    }

    fn fallback(&self) -> Option<ResetHandler> {
        let callback = self.fallback.clone()?;
        Some(Box::new(move |info: &haven::ClientResetInfo| {
            callback.call(info.backup_path().display().to_string(), ThreadsafeFunctionCallMode::NonBlocking);
        }))
    }
}

fn client_reset_mode(mode: &str, callbacks: &ResetCallbacks) -> Result<ClientResetMode> {
    let policy = RecoveryPolicy::LatestWins;
    let (before, after) = (callbacks.before(), callbacks.after());
    match mode {
        "manual" => Ok(ClientResetMode::Manual { on_manual: None }),
        "discardUnsyncedChanges" | "discardLocal" => Ok(ClientResetMode::DiscardUnsynced { before, after }),
        "recoverUnsyncedChanges" => Ok(ClientResetMode::RecoverUnsynced { policy, before, after }),
        "recoverOrDiscardUnsyncedChanges" => {
            Ok(ClientResetMode::RecoverOrDiscard { policy, before, after, fallback: callbacks.fallback() })
        }
        other => Err(named(
            "TypeError",
            format!("unknown client reset mode '{other}': use \"manual\", \"discardUnsyncedChanges\", \"recoverUnsyncedChanges\" or \"recoverOrDiscardUnsyncedChanges\""),
        )),
    }
}

/// A sync error as the JavaScript layer turns it into an `Error`.
fn error_json(error: &SyncError) -> Json {
    match error {
        SyncError::ClientReset(info) => serde_json::json!({
            "name": "ClientReset",
            "message": error.to_string(),
            "backupPath": info.backup_path().display().to_string(),
            "originalPath": info.original_path().display().to_string(),
            "reason": format!("{:?}", info.reason()),
        }),
        SyncError::Server { code, .. } => {
            serde_json::json!({"name": "SyncError", "message": error.to_string(), "code": format!("{code:?}")})
        }
        _ => serde_json::json!({"name": "SyncError", "message": error.to_string()}),
    }
}

/// Opens the database at `path` synced as `options` say.
#[napi]
#[allow(clippy::too_many_arguments)] // one per JavaScript callback: napi-rs makes each a threadsafe function
pub async fn open_synced(
    path: String,
    schema_json: String,
    options: NativeSyncOptions,
    token_provider: Option<TokenProvider>,
    on_error: Option<ErrorListener>,
    on_before: Option<ResetCallback>,
    on_after: Option<ResetCallback>,
    on_fallback: Option<FallbackCallback>,
) -> Result<NativeDatabase> {
    let schema = Schema::from_json(&schema_json).map_err(|e| named("SchemaError", e))?;
    let callbacks = ResetCallbacks {
        before: on_before.map(Arc::new),
        after: on_after.map(Arc::new),
        fallback: on_fallback.map(Arc::new),
    };
    let mut sync = SyncConfig::new(&options.url, options.token.unwrap_or_default(), &options.partition)
        .client_reset(client_reset_mode(&options.client_reset_mode, &callbacks)?)
        .wait_for_download(options.wait_for_download);
    if let Some(pem) = options.tls_root_certificates {
        sync = sync.tls_root_certificates(pem);
    }
    if let Some(provider) = token_provider {
        let provider = Arc::new(provider);
        sync = sync.token_provider(move || {
            let provider = provider.clone();
            async move {
                let promise = provider.call_async(()).await.map_err(|e| e.reason.clone())?;
                promise.await.map_err(|e| e.reason.clone())
            }
        });
    }
    if let Some(listener) = on_error {
        sync = sync.on_error(move |error| {
            listener.call(error_json(error), ThreadsafeFunctionCallMode::NonBlocking);
        });
    }
    let db = Database::open_synced(Config::new(&path).schema(schema).sync(sync)).await.map_err(haven_error)?;
    Ok(NativeDatabase::from_database(db))
}

/// Moves a closed database's file aside so that the next open starts
/// again from the server (a manual client reset). Whether a file was moved.
#[napi]
pub fn initiate_client_reset(path: String) -> Result<bool> {
    if !std::path::Path::new(&path).exists() {
        return Ok(false);
    }
    haven::initiate_client_reset(&path).map(|_| true).map_err(haven_error)
}

#[napi]
impl NativeDatabase {
    /// The database a reset callback handed over under `number`.
    #[napi(factory)]
    pub fn handed_over(number: u32) -> Result<NativeDatabase> {
        let db = HANDED_OVER.lock().expect("handed-over databases").remove(&number);
        let db = db.ok_or_else(|| named("InvalidStateError", format!("no database was handed over as {number}")))?;
        Ok(NativeDatabase::from_database(db))
    }

    /// Whether the database syncs.
    #[napi(getter)]
    pub fn is_synced(&self) -> Result<bool> {
        Ok(self.db()?.sync_session().is_some())
    }

    /// "disconnected", "connecting" or "connected".
    #[napi(getter)]
    pub fn connection_state(&self) -> Result<String> {
        let state = self.session()?.connection_state();
        Ok(match state {
            ConnectionState::Disconnected => "disconnected",
            ConnectionState::Connecting => "connecting",
            ConnectionState::Connected => "connected",
        }
        .to_owned())
    }

    /// Stops syncing until `resume`.
    #[napi]
    pub fn pause(&self) -> Result<()> {
        self.session()?.pause();
        Ok(())
    }

    /// Syncs again after `pause`.
    #[napi]
    pub fn resume(&self) -> Result<()> {
        self.session()?.resume();
        Ok(())
    }

    /// Resolves once the server has every local change made so far;
    /// rejects with a `TimeoutError` after `timeout_ms` if given.
    #[napi]
    pub async fn upload_all_local_changes(&self, timeout_ms: Option<u32>) -> Result<()> {
        let session = self.session()?;
        within(timeout_ms, "uploadAllLocalChanges", async move { session.upload_all_local_changes().await }).await
    }

    /// Resolves once this database has everything the server had when
    /// called; rejects with a `TimeoutError` after `timeout_ms` if given.
    #[napi]
    pub async fn download_all_server_changes(&self, timeout_ms: Option<u32>) -> Result<()> {
        let session = self.session()?;
        within(timeout_ms, "downloadAllServerChanges", async move { session.download_all_server_changes().await }).await
    }

    /// Calls `callback` (on the JavaScript thread) whenever the session's
    /// connection state or progress changes, with `{connection, uploaded,
    /// uploadable, downloaded, downloadable}`. Never keeps the process alive.
    #[napi]
    pub fn watch_status(&self, callback: StatusListener) -> Result<NativeStatusWatch> {
        let mut status = self.session()?.watch();
        // On napi-rs's runtime: this method itself runs on the JavaScript thread.
        let task = napi::bindgen_prelude::spawn(async move {
            while status.changed().await.is_ok() {
                let now = status.borrow_and_update().clone();
                let connection = match now.connection {
                    ConnectionState::Disconnected => "disconnected",
                    ConnectionState::Connecting => "connecting",
                    ConnectionState::Connected => "connected",
                };
                let progress = now.progress;
                let json = serde_json::json!({
                    "connection": connection,
                    "uploaded": progress.uploaded,
                    "uploadable": progress.uploadable,
                    "downloaded": progress.downloaded,
                    "downloadable": progress.downloadable,
                });
                callback.call(json, ThreadsafeFunctionCallMode::NonBlocking);
            }
        });
        Ok(NativeStatusWatch { task: Mutex::new(Some(task)) })
    }

    fn session(&self) -> Result<haven::SyncSession> {
        self.db()?.sync_session().ok_or_else(|| named("InvalidStateError", "this realm does not sync"))
    }
}

/// A JavaScript function that hears the session's status, as JSON.
pub type StatusListener = ThreadsafeFunction<Json, (), Json, napi::Status, false, true>;

/// A status subscription, as JavaScript holds it: `remove()` (or being
/// collected) ends it.
#[napi]
pub struct NativeStatusWatch {
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[napi]
impl NativeStatusWatch {
    /// Ends the subscription; later calls do nothing.
    #[napi]
    pub fn remove(&self) {
        if let Some(task) = self.task.lock().expect("status watch").take() {
            task.abort();
        }
    }
}

impl Drop for NativeStatusWatch {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Runs `wait`, failing with a `TimeoutError` after `timeout_ms`.
async fn within(
    timeout_ms: Option<u32>,
    what: &str,
    wait: impl std::future::Future<Output = haven::Result<()>>,
) -> Result<()> {
    match timeout_ms {
        None => wait.await.map_err(haven_error),
        Some(ms) => match tokio::time::timeout(Duration::from_millis(ms.into()), wait).await {
            Ok(done) => done.map_err(haven_error),
            Err(_) => Err(named("TimeoutError", format!("{what} did not finish within {ms} ms"))),
        },
    }
}
