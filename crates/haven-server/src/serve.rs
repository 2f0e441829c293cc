//! `haven serve`: the HTTP server (axum) that upgrades `/sync` to a
//! WebSocket session per client, and serves `/health` and `/metrics`.

use crate::auth::Authenticator;
use crate::listener::{Accepting, ServerCertificate, TlsFiles};
use crate::metrics::Metrics;
use crate::session;
pub(crate) use crate::shared::Shared;
use crate::storage::{ResetTarget, Storage, StorageError, StorageHint};
use axum::extract::{State, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::Listener;
use axum::Router;
use haven_core::Schema;
use haven_sync::protocol::ResetReason;
use haven_sync::protocol::MAX_FRAME_BYTES;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How long a shutdown waits for sessions to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The WebSocket buffers of one connection. Small, so that idle
/// connections stay cheap; they grow for large frames.
const SOCKET_BUFFER_BYTES: usize = 4 << 10;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Development mode (any token accepted) was asked for on an address
    /// other machines can reach.
    #[error("dev mode accepts any token, so it listens on loopback only; give --jwt-secret to listen on {0}")]
    DevModeNotLoopback(SocketAddr),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The stored schema cannot be read.
    #[error("the server's stored schema is damaged: {0}")]
    Schema(String),
    /// A TLS certificate or key file cannot be used.
    #[error("cannot serve TLS with {}: {reason}", path.display())]
    Tls {
        /// The file at fault.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// How a [`Server`] runs, beyond its storage, auth and address.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Turns the admin API (`/admin/v1`) on for clients that send
    /// `Authorization: Bearer <admin_token>`.
    pub admin_token: Option<String>,
    /// A client out of touch for longer is reset (`HistoryTrimmed`) when
    /// it comes back, and history only such clients would need is trimmed
    /// (`haven serve --max-offline-time`). `None`: history is kept until
    /// an operator compacts it.
    pub max_offline: Option<Duration>,
    /// A bound client that sends no frame for this long is disconnected
    /// (clients ping every 10 s; a silent one is behind a half-open
    /// connection). `None`: [`DEFAULT_CLIENT_SILENCE`].
    pub client_silence: Option<Duration>,
    /// Serves `wss://` and HTTPS with this certificate (`haven serve
    /// --tls-cert --tls-key`). `None`: plain `ws://` and HTTP.
    pub tls: Option<TlsFiles>,
}

/// How long a bound client may stay silent by default: six of its pings.
pub const DEFAULT_CLIENT_SILENCE: Duration = Duration::from_secs(60);

/// A running sync server.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use haven_server::{Authenticator, EmbeddedStorage, Server};
/// use std::sync::Arc;
/// let storage = Arc::new(EmbeddedStorage::open("haven-data".as_ref())?);
/// let server = Server::start(storage, Authenticator::Dev, "127.0.0.1:0".parse()?).await?;
/// println!("haven listening on {}", server.url());
/// server.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Server {
    addr: SocketAddr,
    certificate: Option<Arc<ServerCertificate>>,
    shutdown: watch::Sender<bool>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `listen` and starts serving on the current tokio runtime.
    /// [`Authenticator::Dev`] is refused unless `listen` is a loopback
    /// address.
    pub async fn start(
        storage: Arc<dyn Storage>,
        auth: Authenticator,
        listen: SocketAddr,
    ) -> Result<Server, ServeError> {
        Server::start_with_admin(storage, auth, listen, None).await
    }

    /// [`Server::start`], with the admin API (`/admin/v1`) on for clients
    /// that send `Authorization: Bearer <admin_token>`.
    pub async fn start_with_admin(
        storage: Arc<dyn Storage>,
        auth: Authenticator,
        listen: SocketAddr,
        admin_token: Option<String>,
    ) -> Result<Server, ServeError> {
        Server::start_with_options(storage, auth, listen, ServerOptions { admin_token, ..ServerOptions::default() })
            .await
    }

    /// [`Server::start`] with [`ServerOptions`].
    pub async fn start_with_options(
        storage: Arc<dyn Storage>,
        auth: Authenticator,
        listen: SocketAddr,
        options: ServerOptions,
    ) -> Result<Server, ServeError> {
        let ServerOptions { admin_token, max_offline, client_silence, tls } = options;
        Server::check_listen(&auth, listen)?;
        let certificate = tls.map(ServerCertificate::load).transpose()?.map(Arc::new);
        let schema = match storage.schema()? {
            Some(json) => Some(Arc::new(Schema::from_json(&json).map_err(|e| ServeError::Schema(e.to_string()))?)),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| ServeError::Listen { addr: listen, source })?;
        let listener = Accepting::new(listener, certificate.clone())
            .map_err(|source| ServeError::Listen { addr: listen, source })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Listen { addr: listen, source })?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            storage,
            auth,
            schema: tokio::sync::Mutex::new(schema),
            partitions: Mutex::default(),
            metrics: Metrics::default(),
            shutdown: shutdown_rx.clone(),
            live: Mutex::default(),
            next_live: AtomicU64::new(0),
            admin_token: admin_token.filter(|t| !t.is_empty()),
            max_offline,
            client_silence: client_silence.unwrap_or(DEFAULT_CLIENT_SILENCE),
            started_millis: session::now_millis(),
            revocations: watch::Sender::default(),
        });
        if let Some(keys) = shared.auth.key_set() {
            tokio::spawn(refresh_keys(keys.clone(), shutdown_rx.clone()));
        }
        if let Some(hints) = shared.storage.hints() {
            tokio::spawn(follow_other_servers(shared.clone(), hints, shutdown_rx.clone()));
        }
        if let Some(max_offline) = max_offline {
            tokio::spawn(trim_offline_history(shared.clone(), max_offline, shutdown_rx.clone()));
        }
        let app = Router::new()
            .route("/sync", get(upgrade))
            .route("/health", get(|| async { "ok\n" }))
            .route("/metrics", get(metrics))
            .nest("/admin/v1", crate::admin::routes())
            .with_state(shared.clone());
        let mut stop = shutdown_rx;
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "the server stopped");
            }
        });
        tracing::info!(%addr, tls = certificate.is_some(), "haven listening");
        Ok(Server { addr, certificate, shutdown, shared, task })
    }

    /// Whether [`Server::start`] would accept `auth` on `listen`: dev mode
    /// (any token) is for loopback addresses only. Lets a caller check
    /// before it creates any storage.
    pub fn check_listen(auth: &Authenticator, listen: SocketAddr) -> Result<(), ServeError> {
        if matches!(auth, Authenticator::Dev) && !listen.ip().is_loopback() {
            return Err(ServeError::DevModeNotLoopback(listen));
        }
        Ok(())
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL clients sync with: `wss://ADDR` with TLS, else `ws://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.certificate.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}", self.addr)
    }

    /// Reads the TLS certificate and key files again (`haven serve` does
    /// on SIGHUP): new connections get the new certificate, connected
    /// sessions go on. On an error the current certificate stays.
    /// Without TLS, does nothing.
    pub fn reload_tls(&self) -> Result<(), ServeError> {
        match &self.certificate {
            Some(certificate) => certificate.reload(),
            None => Ok(()),
        }
    }

    /// Signs a user out: closes their sessions now and refuses their
    /// tokens issued (`iat`) up to now, as
    /// `POST /admin/v1/users/{sub}/revoke` does. Returns how many sessions
    /// were closed. Revocations last until the server restarts.
    pub fn revoke_user(&self, user: &str) -> usize {
        self.shared.revoke(user)
    }

    /// Makes one client start again from the server's state (a client
    /// reset, `OperatorReset`), as `POST /admin/v1/clients/{ident}/reset`
    /// does; a connected client is told at once. Returns the idents reset.
    pub async fn reset_client(&self, ident: u64) -> Result<Vec<u64>, StorageError> {
        crate::admin::reset_clients(&self.shared, ResetTarget::Client(ident), ResetReason::OperatorReset).await
    }

    /// Makes every client of `partition` start again from the server's
    /// state (`Terminated`), as `POST /admin/v1/partitions/{p}/terminate`
    /// does. Returns the idents reset.
    pub async fn terminate(&self, partition: &str) -> Result<Vec<u64>, StorageError> {
        let target = ResetTarget::Partition(partition.to_owned());
        crate::admin::reset_clients(&self.shared, target, ResetReason::Terminated).await
    }

    /// Allows or forbids recovery of unsynced writes in `partition`'s
    /// client resets, as `POST /admin/v1/partitions/{p}/recovery` does.
    pub async fn set_recovery_allowed(&self, partition: &str, allowed: bool) -> Result<(), StorageError> {
        let partition = partition.to_owned();
        self.shared.storage(move |s| s.set_recovery_allowed(&partition, allowed)).await
    }

    /// Stops accepting, tells every session to reconnect later and waits
    /// (a few seconds at most) for them to close and to let go of the
    /// storage, so that it can be opened again at once. Everything the
    /// server acknowledged is already durable in its storage.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        // Sessions and their storage calls each hold the shared state.
        let busy = |shared: &Arc<Shared>| shared.metrics.connections.load(Relaxed) > 0 || Arc::strong_count(shared) > 1;
        while busy(&self.shared) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::info!("haven stopped");
    }
}

/// How often a server sharing its storage checks the versions of the
/// partitions it serves, in case a notification was missed.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// With a storage several servers share: versions the others integrate
/// reach this server's sessions at once through the storage's hints, and
/// within [`POLL_INTERVAL`] if a hint is lost (the sessions re-read by
/// version either way); a reset an operator made through another server
/// kicks the client's session here too (a lost hint: at its next bind).
async fn follow_other_servers(
    shared: Arc<Shared>,
    mut hints: tokio::sync::broadcast::Receiver<StorageHint>,
    mut stop: watch::Receiver<bool>,
) {
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    loop {
        tokio::select! {
            hint = hints.recv() => match hint {
                Ok(StorageHint::Version { partition, version }) => shared.announce(&partition, version),
                Ok(StorageHint::Reset { ident }) => kick(&shared, ident).await,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => poll.reset_immediately(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = poll.tick() => {
                let served: Vec<String> = shared.partitions.lock().expect("partition map").keys().cloned().collect();
                let versions = shared
                    .storage(move |s| served.into_iter().map(|p| s.version(&p).map(|v| (p, v))).collect::<Result<Vec<_>, _>>())
                    .await;
                match versions {
                    Ok(versions) => versions.into_iter().for_each(|(p, v)| shared.announce(&p, v)),
                    Err(e) => tracing::warn!(error = %e, "cannot poll partition versions"),
                }
            }
            () = session::stopping(&mut stop) => return,
        }
    }
}

/// Kicks the live sessions of a client another server marked for a reset.
async fn kick(shared: &Arc<Shared>, ident: u64) {
    let live = shared.live.lock().expect("live sessions").values().any(|s| s.ident.ident == ident);
    if !live {
        return;
    }
    match shared.storage(move |s| s.pending_reset(ident)).await {
        Ok(Some(reason)) => shared.kick(&[ident], reason),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, ident, "cannot read a client's reset"),
    }
}

/// `--max-offline-time`: now and then, each partition's history is
/// trimmed to what the clients in touch within `max_offline` still need
/// (a client away longer is reset at its next bind anyway).
async fn trim_offline_history(shared: Arc<Shared>, max_offline: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick =
        tokio::time::interval((max_offline / 24).clamp(Duration::from_millis(100), Duration::from_secs(600)));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = session::stopping(&mut stop) => return,
        }
        let since = session::now_millis().saturating_sub(max_offline.as_millis() as u64);
        if since < shared.started_millis {
            continue; // every device gets a whole window after a restart
        }
        let trimmed = shared
            .storage(move |s| {
                let mut trimmed = Vec::new();
                for (partition, latest) in s.partitions()? {
                    let needed = s.oldest_needed(&partition, since)?.unwrap_or(latest);
                    if needed > s.partition_settings(&partition)?.trimmed_through {
                        trimmed.push((partition.clone(), s.trim_history(&partition, needed)?));
                    }
                }
                Ok(trimmed)
            })
            .await;
        match trimmed {
            Ok(trimmed) => {
                for (partition, through) in trimmed {
                    tracing::info!(%partition, through, "history trimmed past the max offline time");
                }
            }
            Err(e) => tracing::error!(error = %e, "trimming history failed"),
        }
    }
}

/// With a key set: reads it again every
/// [`JWKS_REFRESH`](crate::JWKS_REFRESH), so that a key the provider
/// retires stops being accepted.
async fn refresh_keys(keys: Arc<crate::jwks::KeySet>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(crate::jwks::JWKS_REFRESH);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => keys.refresh().await,
            () = session::stopping(&mut stop) => return,
        }
    }
}

async fn upgrade(State(shared): State<Arc<Shared>>, ws: WebSocketUpgrade) -> impl IntoResponse {
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(0)
        .on_upgrade(move |socket| session::run(socket, shared))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let partitions = shared.partitions.lock().expect("partition map").len();
    ([("content-type", "text/plain; version=0.0.4")], shared.metrics.render(partitions))
}
