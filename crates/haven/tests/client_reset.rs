//! Client reset, scenario by scenario (the table in
//! `docs/client-reset.md`), end to end: a real server in-process, real
//! WebSocket connections, real database files. Client L gets reset; R is
//! another device on partition "p".

use haven::recovery::DropReason;
use haven::{
    ClientResetInfo, ClientResetMode, Config, Database, RecoveryPolicy, RecoveryReport, Schema, SyncConfig, SyncError,
    UpdateMode, Value,
};
use haven_server::{Authenticator, Server, ServerOptions};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use haven_testkit::{dogs, synced};

const SCHEMA: &str = r#"[{"name":"Dog","primaryKey":"_id","properties":{
    "_id":"int","name":"string","age":"int?","lastUpdated":"int","friend":"Dog?","tags":"int[]",
    "colors":"string<>","scores":"int{}","address":"Address"}},
    {"name":"Address","embedded":true,"properties":{"city":"string","street":"string?"}}]"#;
const ADMIN: &str = "admin-secret";

/// The server and the files of one scenario.
struct Harness {
    dir: tempfile::TempDir,
    server: Server,
}

/// What the reset callbacks saw.
#[derive(Default)]
struct Seen {
    before: AtomicUsize,
    after: AtomicUsize,
    fallback: AtomicUsize,
    /// How many more times the `before` callback fails.
    failing_befores: AtomicUsize,
    report: Mutex<Option<RecoveryReport>>,
    errors: Mutex<Vec<SyncError>>,
}

impl Seen {
    fn counts(&self) -> (usize, usize) {
        (self.before.load(Ordering::SeqCst), self.after.load(Ordering::SeqCst))
    }

    fn report(&self) -> RecoveryReport {
        self.report.lock().unwrap().clone().expect("the after callback ran")
    }

    fn errors(&self) -> Vec<SyncError> {
        self.errors.lock().unwrap().clone()
    }

    /// Waits for the `on_error` handler to get a `ClientReset`.
    async fn manual_reset(&self) -> ClientResetInfo {
        tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let found = self.errors().into_iter().find_map(|e| match e {
                    SyncError::ClientReset(info) => Some(info),
                    _ => None,
                });
                match found {
                    Some(info) => return info,
                    None => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        })
        .await
        .expect("a manual client reset within 60 s")
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Manual,
    Discard,
    Recover(RecoveryPolicy),
    RecoverOrDiscard,
}

const RECOVER: Mode = Mode::Recover(RecoveryPolicy::LatestWins);

fn reset_mode(mode: Mode, seen: &Arc<Seen>) -> ClientResetMode {
    let (b, a) = (seen.clone(), seen.clone());
    let before = Some(Box::new(move |_: &Database| {
        b.before.fetch_add(1, Ordering::SeqCst);
        match b.failing_befores.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) {
            Ok(_) => Err(haven::Error::Storage("the app's before callback refused".into())),
            Err(_) => Ok(()),
        }
    }) as haven::BeforeReset);
    let after = Some(Box::new(move |before: &Database, after: &Database, report: &RecoveryReport| {
        assert!(before.is_frozen() && !after.is_frozen());
        a.after.fetch_add(1, Ordering::SeqCst);
        *a.report.lock().unwrap() = Some(report.clone());
        Ok(())
    }) as haven::AfterReset);
    match mode {
        Mode::Manual => ClientResetMode::Manual { on_manual: None },
        Mode::Discard => ClientResetMode::DiscardUnsynced { before, after },
        Mode::Recover(policy) => ClientResetMode::RecoverUnsynced { policy, before, after },
        Mode::RecoverOrDiscard => {
            let f = seen.clone();
            let fallback = Some(Box::new(move |_: &ClientResetInfo| {
                f.fallback.fetch_add(1, Ordering::SeqCst);
            }) as haven::ResetHandler);
            ClientResetMode::RecoverOrDiscard { policy: RecoveryPolicy::LatestWins, before, after, fallback }
        }
    }
}

impl Harness {
    async fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let server = start_server(&dir.path().join("server")).await;
        Harness { dir, server }
    }

    async fn with_max_offline(max_offline: Duration) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let storage = haven_testkit::test_storage(&dir.path().join("server"));
        let options = ServerOptions {
            admin_token: Some(ADMIN.into()),
            max_offline: Some(max_offline),
            ..ServerOptions::default()
        };
        let server = Server::start_with_options(storage, Authenticator::Dev, "127.0.0.1:0".parse().unwrap(), options);
        Harness { server: server.await.unwrap(), dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.haven"))
    }

    fn config(&self, name: &str, mode: Mode, seen: &Arc<Seen>) -> Config {
        self.config_with(name, mode, seen, SCHEMA)
    }

    fn config_with(&self, name: &str, mode: Mode, seen: &Arc<Seen>, schema: &str) -> Config {
        self.config_at(&self.server.url(), name, mode, seen, schema)
    }

    fn config_at(&self, url: &str, name: &str, mode: Mode, seen: &Arc<Seen>, schema: &str) -> Config {
        let errors = seen.clone();
        let sync = SyncConfig::new(url, "dev", "p")
            .reconnect_delays(Duration::from_millis(20), Duration::from_millis(200))
            .client_reset(reset_mode(mode, seen))
            .on_error(move |e| errors.errors.lock().unwrap().push(e.clone()));
        Config::new(self.path(name)).schema(Schema::from_json(schema).unwrap()).sync(sync)
    }

    async fn open(&self, name: &str, mode: Mode, seen: &Arc<Seen>) -> Database {
        Database::open_synced(self.config(name, mode, seen)).await.unwrap()
    }

    /// The server's state, as a new device downloads it.
    async fn server_dogs(&self) -> Vec<serde_json::Value> {
        self.server_dogs_with(SCHEMA).await
    }

    /// The same, for an app with `schema`.
    async fn server_dogs_with(&self, schema: &str) -> Vec<serde_json::Value> {
        let name = format!("fresh-{}", FRESH.fetch_add(1, Ordering::SeqCst));
        let db = Database::open_synced(self.config_with(&name, RECOVER, &Arc::default(), schema)).await.unwrap();
        dogs(&db)
    }

    /// `POST /admin/v1/{path}` with `body`; the response's status.
    async fn admin(&self, path: &str, body: &str) -> u16 {
        self.request("POST", path, body).await
    }

    async fn request(&self, method: &str, path: &str, body: &str) -> u16 {
        let mut stream = tokio::net::TcpStream::connect(self.server.local_addr()).await.unwrap();
        let request = format!(
            "{method} /admin/v1/{path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response[9..12].parse().unwrap()
    }

    /// `PUT /admin/v1/schema`; the response's status.
    async fn put_schema(&self, json: &str) -> u16 {
        self.request("PUT", "schema", json).await
    }

    /// The operator resets `db`'s client.
    async fn reset_client(&self, db: &Database) {
        let (ident, _) = db.sync_position().unwrap().file_ident.expect("bound once");
        assert_eq!(self.admin(&format!("clients/{ident}/reset"), "").await, 200);
    }
}

static FRESH: AtomicUsize = AtomicUsize::new(0);

async fn start_server(data: &Path) -> Server {
    let storage = haven_testkit::test_storage(data);
    let listen = "127.0.0.1:0".parse().unwrap();
    Server::start_with_admin(storage, Authenticator::Dev, listen, Some(ADMIN.into())).await.unwrap()
}

fn field(db: &Database, id: i64, name: &str) -> Option<Value> {
    db.object_for_primary_key("Dog", id).unwrap().and_then(|o| o.get(name))
}

fn create(db: &Database, dog: serde_json::Value) {
    db.write(|tx| tx.create("Dog", dog, UpdateMode::Never).map(|_| ())).unwrap();
}

fn set(db: &Database, id: i64, name: &str, value: impl Into<Value>) {
    db.write(|tx| tx.set("Dog", id, name, value.into())).unwrap();
}

/// The scenarios' starting point: L created Dog 1 and synced; R has it
/// too; L is offline.
struct Baseline {
    h: Harness,
    l: Database,
    r: Database,
    seen: Arc<Seen>,
}

async fn baseline(mode: Mode) -> Baseline {
    let h = Harness::new().await;
    let seen = Arc::new(Seen::default());
    let l = h.open("l", mode, &seen).await;
    create(&l, json!({"_id": 1, "name": "Rex", "age": 1, "lastUpdated": 0}));
    synced(&l).await;
    let r = h.open("r", RECOVER, &Arc::default()).await;
    synced(&r).await;
    l.sync_session().unwrap().pause();
    Baseline { h, l, r, seen }
}

impl Baseline {
    /// R's remote change, uploaded (a few milliseconds after whatever L did).
    async fn remote(&self, change: impl FnOnce(&Database)) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        change(&self.r);
        synced(&self.r).await;
    }

    /// The operator resets L; L comes back online and finishes the reset.
    async fn reset_and_resume(&self) {
        self.h.reset_client(&self.l).await;
        self.l.sync_session().unwrap().resume();
        synced(&self.l).await;
        synced(&self.r).await;
    }

    /// L, R and the server hold the same dogs; returns them.
    async fn converged(&self) -> Vec<serde_json::Value> {
        let server = self.h.server_dogs().await;
        assert_eq!(dogs(&self.l), server, "L and the server");
        assert_eq!(dogs(&self.r), server, "R and the server");
        server
    }
}

fn drop_reasons(report: &RecoveryReport) -> Vec<(i64, Option<String>, DropReason)> {
    report.dropped().iter().map(|d| (d.pk.as_int().unwrap(), d.field.clone(), d.reason)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_latest_wins_keeps_the_later_remote_write() {
    let b = baseline(RECOVER).await;
    set(&b.l, 1, "age", 4);
    b.remote(|r| set(r, 1, "age", 6)).await;
    b.reset_and_resume().await;
    assert_eq!(field(&b.l, 1, "age"), Some(6.into()));
    b.converged().await;
    assert_eq!(drop_reasons(&b.seen.report()), vec![(1, Some("age".into()), DropReason::OlderThanServer)]);
    assert_eq!(b.seen.counts(), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_latest_wins_keeps_the_later_offline_write() {
    let b = baseline(RECOVER).await;
    b.remote(|r| set(r, 1, "age", 6)).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    set(&b.l, 1, "age", 4);
    b.reset_and_resume().await;
    assert_eq!(b.converged().await[0]["age"], 4);
    assert!(b.seen.report().is_complete());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_client_wins_keeps_the_offline_write() {
    let b = baseline(Mode::Recover(RecoveryPolicy::ClientWins)).await;
    set(&b.l, 1, "age", 4);
    b.remote(|r| set(r, 1, "age", 6)).await;
    b.reset_and_resume().await;
    assert_eq!(b.converged().await[0]["age"], 4);
    assert_eq!(b.seen.counts(), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_notifies_one_modification() {
    let b = baseline(Mode::Discard).await;
    set(&b.l, 1, "age", 4);
    b.remote(|r| set(r, 1, "age", 6)).await;
    let changes = Arc::new(Mutex::new(Vec::new()));
    let heard = changes.clone();
    let _token = b.l.objects("Dog").unwrap().add_listener(move |c| heard.lock().unwrap().push(c.clone()));
    b.l.wait_for_listeners();
    changes.lock().unwrap().clear();
    b.reset_and_resume().await;
    b.l.wait_for_listeners();
    assert_eq!(b.converged().await[0]["age"], 6);
    let changes = changes.lock().unwrap().clone();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].modifications, vec![Value::from(1)]);
    assert!(changes[0].insertions.is_empty() && changes[0].deletions.is_empty());
    assert_eq!(b.seen.counts(), (1, 1));
    assert_eq!(drop_reasons(&b.seen.report()), vec![(1, None, DropReason::Discarded)]);
}

/// An unsynced change the reset recovers leaves the object as the app saw
/// it: the object's listener hears nothing of it (it is written once,
/// not as the server's state and then again with the change on top).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_change_is_not_heard_as_a_change() {
    let b = baseline(RECOVER).await;
    set(&b.l, 1, "age", 4);
    b.remote(|r| create(r, json!({"_id": 2, "name": "Ace", "lastUpdated": 1}))).await;
    let changes = Arc::new(Mutex::new(Vec::new()));
    let heard = changes.clone();
    let dog = b.l.object_for_primary_key("Dog", 1).unwrap().unwrap();
    let _token = dog.add_listener(move |c| heard.lock().unwrap().push(c.clone()));
    b.l.wait_for_listeners();
    changes.lock().unwrap().clear();
    b.reset_and_resume().await;
    b.l.wait_for_listeners();
    let dogs = b.converged().await;
    assert_eq!((dogs.len(), &dogs[0]["age"]), (2, &json!(4)), "Ace arrived, the age was recovered");
    assert_eq!(changes.lock().unwrap().clone(), Vec::<haven::ObjectChange>::new());
}

/// R's hundred objects of 128 KB: a download that takes a while.
fn add_100_big_dogs(r: &Database) {
    r.write(|tx| {
        for id in 1000..1100 {
            let name = "x".repeat(128 << 10);
            tx.create("Dog", json!({"_id": id, "name": name, "lastUpdated": id}), UpdateMode::Never)?;
        }
        Ok(())
    })
    .unwrap()
}

/// A listener on `objects("Dog")` that keeps what it hears from now on.
fn listen(db: &Database) -> (Arc<Mutex<Vec<haven::CollectionChanges>>>, haven::NotificationToken) {
    let changes = Arc::new(Mutex::new(Vec::new()));
    let heard = changes.clone();
    let token = db.objects("Dog").unwrap().add_listener(move |c| heard.lock().unwrap().push(c.clone()));
    db.wait_for_listeners();
    changes.lock().unwrap().clear();
    (changes, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_moves_the_file_aside_and_reopens_fresh() {
    let b = baseline(Mode::Manual).await;
    set(&b.l, 1, "age", 4);
    b.remote(|r| set(r, 1, "age", 6)).await;
    b.h.reset_client(&b.l).await;
    b.l.sync_session().unwrap().resume();
    let info = b.seen.manual_reset().await;
    assert_eq!(info.original_path(), b.l.path());
    assert_eq!(info.reason(), haven::ResetReason::OperatorReset);
    assert!(info.original_path().exists() && !info.backup_path().exists());
    assert!(matches!(haven::initiate_client_reset(info.original_path()), Err(haven::Error::StillOpen(_))));
    let Baseline { h, l, r: _r, seen } = b;
    // A handle that background work lets go of a moment after the app
    // closed its own does not make the reset fail.
    let background = l.clone();
    drop(l);
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        drop(background);
    });
    let backup = haven::initiate_client_reset(info.original_path()).unwrap();
    release.join().unwrap();
    assert_eq!(backup, info.backup_path());
    assert!(!info.original_path().exists() && backup.exists());
    assert!(backup.starts_with(h.dir.path().join("recovered")));
    let unsynced = info.unsynced_changes().unwrap();
    assert_eq!(unsynced.len(), 1, "{unsynced:?}");
    let l = h.open("l", Mode::Manual, &seen).await;
    assert_eq!(field(&l, 1, "age"), Some(6.into()));
    let old = Database::open(info.backup_config()).unwrap();
    assert!(old.is_read_only());
    assert_eq!(field(&old, 1, "age"), Some(4.into()));
    assert_eq!(seen.counts(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_create_is_recovered_or_discarded() {
    let b = baseline(RECOVER).await;
    create(&b.l, json!({"_id": 2, "name": "Ace", "lastUpdated": 1}));
    b.reset_and_resume().await;
    let dogs = b.converged().await;
    assert_eq!(dogs.len(), 2);
    assert_eq!(dogs[1]["name"], "Ace");

    let b = baseline(Mode::Discard).await;
    create(&b.l, json!({"_id": 2, "name": "Ace", "lastUpdated": 1}));
    let (changes, _token) = listen(&b.l);
    b.reset_and_resume().await;
    b.l.wait_for_listeners();
    assert_eq!(b.converged().await.len(), 1);
    let heard = changes.lock().unwrap().clone();
    assert_eq!(heard.len(), 1);
    assert_eq!(heard[0].deletions, vec![Value::from(2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_delete_wins_or_is_discarded() {
    let b = baseline(RECOVER).await;
    b.l.write(|tx| tx.delete("Dog", 1).map(|_| ())).unwrap();
    b.remote(|r| set(r, 1, "age", 6)).await;
    b.reset_and_resume().await;
    assert!(b.converged().await.is_empty(), "delete wins");

    let b = baseline(Mode::Discard).await;
    b.l.write(|tx| tx.delete("Dog", 1).map(|_| ())).unwrap();
    b.remote(|r| set(r, 1, "age", 6)).await;
    let (changes, _token) = listen(&b.l);
    b.reset_and_resume().await;
    b.l.wait_for_listeners();
    assert_eq!(b.converged().await[0]["age"], 6);
    let heard = changes.lock().unwrap().clone();
    assert_eq!(heard.len(), 1);
    assert_eq!(heard[0].insertions, vec![Value::from(1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_of_an_object_deleted_on_the_server_is_dropped() {
    let b = baseline(RECOVER).await;
    set(&b.l, 1, "age", 4);
    b.remote(|r| r.write(|tx| tx.delete("Dog", 1).map(|_| ())).unwrap()).await;
    b.reset_and_resume().await;
    assert!(b.converged().await.is_empty());
    assert_eq!(drop_reasons(&b.seen.report()), vec![(1, None, DropReason::DeletedOnServer)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_add_up_or_are_discarded() {
    for (mode, age) in [(RECOVER, 16), (Mode::Discard, 6)] {
        let b = baseline(mode).await;
        b.l.write(|tx| tx.increment("Dog", 1, "age", 10)).unwrap();
        b.remote(|r| r.write(|tx| tx.increment("Dog", 1, "age", 5)).unwrap()).await;
        b.reset_and_resume().await;
        assert_eq!(b.converged().await[0]["age"], age, "{mode:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_creates_of_one_key_merge_by_the_later_write() {
    for mode in [RECOVER, Mode::Discard] {
        let b = baseline(mode).await;
        create(&b.l, json!({"_id": 3, "name": "L's", "age": 1, "lastUpdated": 1}));
        b.remote(|r| create(r, json!({"_id": 3, "name": "R's", "age": 2, "lastUpdated": 2}))).await;
        b.reset_and_resume().await;
        let dogs = b.converged().await;
        assert_eq!(dogs.len(), 2);
        assert_eq!(
            dogs[1],
            json!({"_id": 3, "name": "R's", "age": 2, "lastUpdated": 2, "friend": null, "tags": [], "colors": [], "scores": {}, "address": null}),
            "{mode:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_to_an_object_deleted_on_the_server_is_dropped() {
    let b = baseline(RECOVER).await;
    b.l.sync_session().unwrap().resume();
    b.remote(|r| create(r, json!({"_id": 2, "name": "Ace", "lastUpdated": 1}))).await;
    synced(&b.l).await;
    b.l.sync_session().unwrap().pause();
    set(&b.l, 1, "friend", 2);
    b.remote(|r| r.write(|tx| tx.delete("Dog", 2).map(|_| ())).unwrap()).await;
    b.reset_and_resume().await;
    let dogs = b.converged().await;
    assert_eq!(dogs.len(), 1);
    assert_eq!(dogs[0]["friend"], serde_json::Value::Null);
    assert_eq!(drop_reasons(&b.seen.report()), vec![(1, Some("friend".into()), DropReason::LinkTargetDeleted)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_without_recovery_falls_back() {
    // RecoverUnsynced: the app decides; nothing is lost meanwhile.
    let b = baseline(RECOVER).await;
    set(&b.l, 1, "age", 4);
    b.remote(|r| set(r, 1, "age", 6)).await;
    assert_eq!(b.h.admin("partitions/p/recovery", r#"{"allowed": false}"#).await, 200);
    b.h.reset_client(&b.l).await;
    b.l.sync_session().unwrap().resume();
    let info = b.seen.manual_reset().await;
    assert_eq!(field(&b.l, 1, "age"), Some(4.into()), "the unsynced write is still here");
    assert_eq!(info.unsynced_changes().unwrap().len(), 1);
    assert_eq!(b.seen.counts(), (0, 0));

    // RecoverOrDiscard: discarded, and the fallback hears of it.
    let b = baseline(Mode::RecoverOrDiscard).await;
    set(&b.l, 1, "age", 4);
    b.remote(|r| set(r, 1, "age", 6)).await;
    assert_eq!(b.h.admin("partitions/p/recovery", r#"{"allowed": false}"#).await, 200);
    b.reset_and_resume().await;
    assert_eq!(b.converged().await[0]["age"], 6);
    assert_eq!(b.seen.fallback.load(Ordering::SeqCst), 1);
    assert_eq!(drop_reasons(&b.seen.report()), vec![(1, None, DropReason::Discarded)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_rolls_back_and_the_next_falls_back_never_looping() {
    let b = baseline(RECOVER).await;
    b.seen.failing_befores.store(1, Ordering::SeqCst);
    set(&b.l, 1, "age", 4);
    b.remote(|r| set(r, 1, "age", 6)).await;
    b.h.reset_client(&b.l).await;
    b.l.sync_session().unwrap().resume();
    let info = b.seen.manual_reset().await;
    let errors = b.seen.errors();
    assert!(matches!(&errors[0], SyncError::AutoClientResetFailed(i) if i.failure().unwrap().contains("before")));
    assert!(matches!(&errors[1], SyncError::ClientReset(_)), "{errors:?}");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(b.seen.counts(), (1, 0));
    assert_eq!(field(&b.l, 1, "age"), Some(4.into()), "rolled back: the unsynced write is still here");
    assert_eq!(info.unsynced_changes().unwrap().len(), 1);

    let b = baseline(Mode::RecoverOrDiscard).await;
    b.seen.failing_befores.store(1, Ordering::SeqCst);
    set(&b.l, 1, "age", 4);
    b.remote(|r| set(r, 1, "age", 6)).await;
    b.reset_and_resume().await;
    assert_eq!(b.converged().await[0]["age"], 6);
    assert_eq!(b.seen.counts(), (2, 1));
    assert!(matches!(&b.seen.errors()[..], [SyncError::AutoClientResetFailed(_)]));
    assert_eq!(b.seen.fallback.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_resets_only_clients_that_need_trimmed_history() {
    let b = baseline(RECOVER).await;
    set(&b.l, 1, "name", "Rexy");
    b.remote(|r| set(r, 1, "age", 6)).await;
    let r_ident = b.r.sync_position().unwrap().file_ident;
    assert_eq!(b.h.admin("partitions/p/compact", r#"{"keep_versions": 0}"#).await, 200);
    // R binds again after the compaction, up to date: it goes on.
    b.r.sync_session().unwrap().pause();
    b.r.sync_session().unwrap().resume();
    b.l.sync_session().unwrap().resume();
    synced(&b.l).await;
    synced(&b.r).await;
    let dogs = b.converged().await;
    assert_eq!((&dogs[0]["name"], &dogs[0]["age"]), (&json!("Rexy"), &json!(6)));
    assert_eq!(b.seen.counts(), (1, 1), "L was reset");
    assert_eq!(b.r.sync_position().unwrap().file_ident, r_ident, "R, up to date, was not");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_resets_every_client_and_keeps_their_unsynced_writes() {
    let b = baseline(RECOVER).await;
    set(&b.l, 1, "name", "Rexy");
    let r_ident = b.r.sync_position().unwrap().file_ident;
    b.r.sync_session().unwrap().pause();
    set(&b.r, 1, "age", 6);
    assert_eq!(b.h.admin("partitions/p/terminate", "").await, 200);
    b.l.sync_session().unwrap().resume();
    b.r.sync_session().unwrap().resume();
    for db in [&b.l, &b.r, &b.l] {
        synced(db).await;
    }
    let dogs = b.converged().await;
    assert_eq!((&dogs[0]["name"], &dogs[0]["age"]), (&json!("Rexy"), &json!(6)));
    assert_ne!(b.r.sync_position().unwrap().file_ident, r_ident, "R was reset too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_increment_the_server_integrated_before_the_reset_counts_once() {
    let b = baseline(RECOVER).await;
    b.l.write(|tx| tx.increment("Dog", 1, "age", 10)).unwrap();
    // A copy of L as it was before the server acknowledged the increment.
    let Baseline { h, l, r, seen } = b;
    let copy = h.path("l-copy");
    std::fs::copy(l.path(), &copy).unwrap();
    l.sync_session().unwrap().resume();
    synced(&l).await;
    drop(l);
    // Back to that copy: the acknowledgement is lost; then the reset.
    std::fs::rename(&copy, h.path("l")).unwrap();
    let l = Database::open(Config::new(h.path("l"))).unwrap();
    h.reset_client(&l).await;
    drop(l);
    let l = h.open("l", RECOVER, &seen).await;
    synced(&l).await;
    synced(&r).await;
    assert_eq!(field(&l, 1, "age"), Some(11.into()));
    assert_eq!(h.server_dogs().await[0]["age"], 11);
    assert_eq!(seen.counts(), (1, 1));
    assert!(seen.report().recovered().is_empty(), "{:?}", seen.report());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_resets_in_a_row_both_complete() {
    for mode in [RECOVER, Mode::Discard] {
        let b = baseline(mode).await;
        set(&b.l, 1, "age", 4);
        b.reset_and_resume().await;
        b.l.sync_session().unwrap().pause();
        set(&b.l, 1, "name", "Rexy");
        b.reset_and_resume().await;
        assert_eq!(b.seen.counts(), (2, 2), "{mode:?}");
        let dogs = b.converged().await;
        let expected = if mode == RECOVER { json!(["Rexy", 4]) } else { json!(["Rex", 1]) };
        assert_eq!(json!([dogs[0]["name"], dogs[0]["age"]]), expected, "{mode:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_without_a_handler_cannot_open() {
    let h = Harness::new().await;
    let sync = SyncConfig::new(h.server.url(), "dev", "p").client_reset(ClientResetMode::Manual { on_manual: None });
    let config = Config::new(h.path("l")).schema(Schema::from_json(SCHEMA).unwrap()).sync(sync);
    let err = Database::open_synced(config).await.unwrap_err();
    assert!(err.to_string().contains("on_manual"), "{err}");
    assert!(!h.path("l").exists(), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_paused_midway_starts_again_and_applies_nothing_twice() {
    let b = baseline(RECOVER).await;
    create(&b.l, json!({"_id": 200, "name": "L's", "lastUpdated": 1}));
    b.remote(add_100_big_dogs).await;
    b.h.reset_client(&b.l).await;
    let session = b.l.sync_session().unwrap();
    let mut status = session.watch();
    session.resume();
    // The reset attempt's connection is the first to bind: pause it while
    // the state downloads.
    status.wait_for(|s| s.connection == haven::ConnectionState::Connected).await.unwrap();
    session.pause();
    let finished_before_the_pause = b.seen.counts().1;
    session.resume();
    synced(&b.l).await;
    synced(&b.r).await;
    let dogs = b.converged().await;
    assert_eq!(dogs.len(), 102);
    assert_eq!(
        b.seen.counts().1,
        1,
        "one reset committed (paused before finishing: {})",
        finished_before_the_pause == 0
    );
    assert_eq!(b.seen.report().recovered().len(), 1, "{:?}", b.seen.report());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_left_in_the_staging_area_is_cleared() {
    use haven_core::merge::{Field, Hlc, ObjectState, Stamp};
    let b = baseline(RECOVER).await;
    set(&b.l, 1, "age", 4);
    // What a crashed download leaves: part of a snapshot, here an object
    // the server never had.
    let stamp = Stamp { version: 1, hlc: Hlc::default(), replica: 1 };
    let fields = [("_id", Value::from(99)), ("name", "junk".into()), ("lastUpdated", 0.into())]
        .into_iter()
        .map(|(n, value)| (n.to_owned(), Field { value, stamp }))
        .collect();
    let state = ObjectState::Live { fields, lists: Default::default(), keyed: Default::default(), deleted_at: None };
    let junk = haven_sync::protocol::SnapshotObject {
        object_type: "Dog".into(),
        key: haven_core::key::to_key(Value::from(99).as_ref().unwrap()),
        state: haven_sync::protocol::SnapshotObject::encode_state(&99.into(), &state).unwrap(),
    };
    haven_store::testing::start_bootstrap(&b.l).unwrap();
    haven_store::testing::bootstrap_batch(&b.l, &[junk]).unwrap();
    b.reset_and_resume().await;
    let dogs = b.converged().await;
    assert_eq!(dogs.len(), 1, "{dogs:?}");
    assert_eq!(dogs[0]["age"], 4);
}

/// A manual reset carried out as the docs say: L is closed, moved aside,
/// reopened from the server's state; returns (live, backup).
async fn manual_reset(b: Baseline) -> (Database, Database, Baseline) {
    b.h.reset_client(&b.l).await;
    b.l.sync_session().unwrap().resume();
    let info = b.seen.manual_reset().await;
    let Baseline { h, l, r, seen } = b;
    drop(l);
    haven::initiate_client_reset(info.original_path()).unwrap();
    let live = h.open("l", Mode::Manual, &seen).await;
    let backup = Database::open(info.backup_config()).unwrap();
    let b = Baseline { h, l: live.clone(), r, seen };
    (live, backup, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_object_timestamp_overwrites_the_servers_other_fields_by_field_does_not() {
    for by_field in [false, true] {
        let b = baseline(Mode::Manual).await;
        let last_synced = 0; // L's Dog 1 has lastUpdated 0: written before the last sync
        b.l.write(|tx| {
            tx.set("Dog", 1, "age", 4)?;
            tx.set("Dog", 1, "lastUpdated", 5)
        })
        .unwrap();
        b.remote(|r| set(r, 1, "name", "Max")).await;
        let (live, backup, b) = manual_reset(b).await;
        let report = match by_field {
            false => haven::recovery::by_object_timestamp(&backup, &live, "Dog", "lastUpdated", last_synced),
            true => haven::recovery::by_field(&backup, &live),
        }
        .unwrap();
        assert!(report.is_complete(), "{report}");
        synced(&live).await;
        synced(&b.r).await;
        let dogs = b.converged().await;
        let name = if by_field { "Max" } else { "Rex" };
        assert_eq!((&dogs[0]["name"], &dogs[0]["age"]), (&json!(name), &json!(4)), "by field: {by_field}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_change_log_replays_everything_overwrite_server_copies_the_backup() {
    let offline = |l: &Database| {
        l.write(|tx| {
            tx.create("Dog", json!({"_id": 2, "name": "Ace", "age": 1, "lastUpdated": 1}), UpdateMode::Never)?;
            tx.create("Dog", json!({"_id": 3, "name": "Bo", "lastUpdated": 1}), UpdateMode::Never)?;
            tx.set("Dog", 1, "name", "Rexy")?;
            tx.increment("Dog", 1, "age", 10)?;
            tx.delete("Dog", 3).map(|_| ())
        })
        .unwrap()
    };
    // From the change log: R's increment and L's both count; L's rename wins.
    let b = baseline(Mode::Manual).await;
    offline(&b.l);
    b.remote(|r| r.write(|tx| tx.increment("Dog", 1, "age", 5)).unwrap()).await;
    let (live, backup, b) = manual_reset(b).await;
    let report = haven::recovery::from_change_log(&backup, &live).unwrap();
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.recovered().len(), 5);
    synced(&live).await;
    synced(&b.r).await;
    let server = b.converged().await;
    assert_eq!(server.iter().map(|d| d["_id"].as_i64().unwrap()).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!((&server[0]["name"], &server[0]["age"]), (&json!("Rexy"), &json!(16)));

    // Overwrite: the server ends up with exactly the backup's objects (R's
    // Dog 4 stays: deletes are not recovered).
    let b = baseline(Mode::Manual).await;
    offline(&b.l);
    b.remote(|r| {
        r.write(|tx| tx.increment("Dog", 1, "age", 5)).unwrap();
        create(r, json!({"_id": 4, "name": "R's", "lastUpdated": 2}));
    })
    .await;
    let (live, backup, b) = manual_reset(b).await;
    haven::recovery::overwrite_server(&backup, &live).unwrap();
    synced(&live).await;
    synced(&b.r).await;
    let mut expected = dogs(&backup);
    expected.push(
        json!({"_id": 4, "name": "R's", "age": null, "lastUpdated": 2, "friend": null, "tags": [], "colors": [], "scores": {}, "address": null}),
    );
    assert_eq!(b.converged().await, expected);
}

/// Runs as a child process of `a_reset_killed_while_downloading_completes_on_reopen` (else does nothing): opens L, resumes
/// its reset, says when the fresh state starts downloading, and waits to
/// be killed.
#[test]
fn child_process_resuming_a_reset() {
    let Ok(path) = std::env::var("HAVEN_RESET_CHILD_PATH") else { return };
    let url = std::env::var("HAVEN_RESET_CHILD_URL").unwrap();
    let discard = std::env::var("HAVEN_RESET_CHILD_MODE").unwrap() == "discard";
    tokio::runtime::Runtime::new().unwrap().block_on(async move {
        let mode = match discard {
            true => ClientResetMode::DiscardUnsynced { before: None, after: None },
            false => ClientResetMode::default(),
        };
        let sync = SyncConfig::new(url, "dev", "p").wait_for_download(false).client_reset(mode);
        let config = Config::new(&path).schema(Schema::from_json(SCHEMA).unwrap()).sync(sync);
        let db = Database::open_synced(config).await.unwrap();
        let mut status = db.sync_session().unwrap().watch();
        status.wait_for(|s| s.connection == haven::ConnectionState::Connected).await.unwrap();
        println!("downloading");
        std::future::pending::<()>().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_killed_while_downloading_completes_on_reopen() {
    for mode in [Mode::Discard, RECOVER] {
        let b = baseline(mode).await;
        set(&b.l, 1, "age", 4);
        create(&b.l, json!({"_id": 2, "name": "Ace", "lastUpdated": 1}));
        b.remote(add_100_big_dogs).await;
        b.h.reset_client(&b.l).await;
        let Baseline { h, l, r, seen } = b;
        drop(l);
        while Database::is_open(h.path("l")) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A child process resumes the reset and is killed mid-download.
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_process_resuming_a_reset", "--nocapture", "--test-threads=1"])
            .env("HAVEN_RESET_CHILD_PATH", h.path("l"))
            .env("HAVEN_RESET_CHILD_URL", h.server.url())
            .env("HAVEN_RESET_CHILD_MODE", if mode == Mode::Discard { "discard" } else { "recover" })
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("downloading") {
            line.clear();
            assert_ne!(std::io::BufRead::read_line(&mut out, &mut line).unwrap(), 0, "the child ended");
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // (Opened for writing: a killed process leaves the file to repair.)
        let pending = Database::open(Config::new(h.path("l"))).unwrap().pending_client_reset().unwrap();
        let pending = pending.expect("the reset was under way");
        assert!(!pending.committed, "killed before the reset committed");
        // Reopened: the reset completes as if nothing had happened.
        while Database::is_open(h.path("l")) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let l = h.open("l", mode, &seen).await;
        synced(&l).await;
        synced(&r).await;
        let b = Baseline { h, l, r, seen };
        let dogs = b.converged().await;
        match mode {
            Mode::Discard => assert_eq!((dogs.len(), &dogs[0]["age"]), (101, &json!(1))),
            _ => {
                assert_eq!((dogs.len(), &dogs[0]["age"], &dogs[1]["name"]), (102, &json!(4), &json!("Ace")));
                assert!(b.seen.report().is_complete());
            }
        }
        assert!(b.l.pending_client_reset().unwrap().is_none(), "the reset is over");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaking_schema_change_resets_and_drops_what_no_longer_fits() {
    let b = baseline(RECOVER).await;
    b.l.write(|tx| {
        tx.set("Dog", 1, "age", 4)?;
        tx.set("Dog", 1, "name", "Rexy")
    })
    .unwrap();
    // Additive: nobody resets.
    let additive = SCHEMA.replace(r#""friend":"Dog?""#, r#""friend":"Dog?","color":"string?""#);
    let r_ident = b.r.sync_position().unwrap().file_ident;
    assert_eq!(b.h.put_schema(&additive).await, 200);
    synced(&b.r).await;
    assert_eq!(b.r.sync_position().unwrap().file_ident, r_ident, "an additive change resets nobody");
    // Breaking: age becomes a string.
    let breaking = additive.replace(r#""age":"int?""#, r#""age":"string?""#);
    assert_eq!(b.h.put_schema(&breaking).await, 200);
    b.reset_and_resume().await;
    assert_eq!(field(&b.l, 1, "name"), Some("Rexy".into()), "the compatible change is recovered");
    assert_eq!(drop_reasons(&b.seen.report()), vec![(1, Some("age".into()), DropReason::SchemaIncompatible)]);
    assert_eq!(b.seen.counts(), (1, 1), "one reset, for the breaking change only");
    // The server has it; an app with the new schema sees it (the old int
    // age no longer fits: it shows as null), and one with the old schema
    // is refused until it is updated.
    let updated = Database::open_synced(b.h.config_with("new-app", RECOVER, &Arc::default(), &breaking)).await.unwrap();
    let seen_there = dogs(&updated);
    assert_eq!((&seen_there[0]["name"], &seen_there[0]["age"]), (&json!("Rexy"), &serde_json::Value::Null));
    let old_app = Database::open_synced(b.h.config("old-app", RECOVER, &Arc::default())).await.unwrap_err();
    assert!(old_app.to_string().contains("Dog.age"), "{old_app}");
    // L's app, updated, opens its own file: it starts again under the new schema.
    let Baseline { h, l, r, seen } = b;
    let path = l.path().to_owned();
    drop((l, r, updated));
    closed(&path).await;
    let l = Database::open_synced(h.config_with("l", RECOVER, &seen, &breaking)).await.unwrap();
    synced(&l).await;
    assert_eq!(dogs(&l), h.server_dogs_with(&breaking).await);
    assert_eq!(seen.counts(), (2, 2), "a second reset, into the new schema");
    assert!(seen.report().dropped().is_empty(), "nothing left to drop: {}", seen.report());
}

/// Realm's documented *track changes by object* procedure, written as
/// Realm's docs do, is `examples/manual_client_reset.rs`: run here.
#[path = "../examples/manual_client_reset.rs"]
mod manual_client_reset;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realms_track_changes_by_object_procedure_recovers_creates_updates_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    manual_client_reset::run(dir.path()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_offline_longer_than_the_max_offline_time_is_reset_and_recovers() {
    let h = Harness::with_max_offline(Duration::from_secs(1)).await;
    let seen = Arc::new(Seen::default());
    let l = h.open("l", RECOVER, &seen).await;
    create(&l, json!({"_id": 1, "name": "Rex", "age": 1, "lastUpdated": 0}));
    synced(&l).await;
    let r = h.open("r", RECOVER, &Arc::default()).await;
    let (l_ident, r_ident) = (l.sync_position().unwrap().file_ident, r.sync_position().unwrap().file_ident);
    l.sync_session().unwrap().pause();
    set(&l, 1, "name", "Rexy");
    // R stays connected (in touch) while L is away for longer than 1 s.
    for age in 2..=4 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        set(&r, 1, "age", age);
        synced(&r).await;
    }
    l.sync_session().unwrap().resume();
    synced(&l).await;
    synced(&r).await;
    let b = Baseline { h, l, r, seen };
    let dogs = b.converged().await;
    assert_eq!((&dogs[0]["name"], &dogs[0]["age"]), (&json!("Rexy"), &json!(4)));
    assert_eq!(b.seen.counts(), (1, 1), "L was reset");
    assert_ne!(b.l.sync_position().unwrap().file_ident, l_ident);
    assert_eq!(b.r.sync_position().unwrap().file_ident, r_ident, "R, in touch all along, was not");
}

/// The schema after the operator's breaking change: `age` becomes a string.
fn age_as_string() -> String {
    SCHEMA.replace(r#""age":"int?""#, r#""age":"string?""#)
}

/// Waits until every handle of the file at `path` is gone.
async fn closed(path: &Path) {
    for _ in 0..1_000 {
        if !Database::is_open(path) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} is still open", path.display());
}

/// L, offline, edits Dog 1's `name` and `age`; meanwhile the operator
/// makes `age` a string, and L's app is closed to be updated.
async fn offline_edits_then_a_breaking_change(mode: Mode) -> (Harness, Arc<Seen>) {
    let Baseline { h, l, r, seen } = baseline(mode).await;
    l.write(|tx| {
        tx.set("Dog", 1, "age", 4)?;
        tx.set("Dog", 1, "name", "Rexy")
    })
    .unwrap();
    assert_eq!(h.put_schema(&age_as_string()).await, 200);
    let path = l.path().to_owned();
    drop((l, r));
    closed(&path).await;
    (h, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_updated_app_opens_its_file_after_a_breaking_change_and_recovers_what_fits() {
    let new_schema = age_as_string();
    for mode in [RECOVER, Mode::Recover(RecoveryPolicy::ClientWins), Mode::RecoverOrDiscard, Mode::Discard] {
        let (h, seen) = offline_edits_then_a_breaking_change(mode).await;
        let l = Database::open_synced(h.config_with("l", mode, &seen, &new_schema)).await.unwrap();
        synced(&l).await;
        assert_eq!(seen.counts(), (1, 1), "{mode:?}: one reset");
        let server = h.server_dogs_with(&new_schema).await;
        assert_eq!(dogs(&l), server, "{mode:?}: the device equals the server");
        assert_eq!(server[0]["age"], serde_json::Value::Null, "the old int age no longer fits");
        let report = seen.report();
        if mode == Mode::Discard {
            assert_eq!(server[0]["name"], "Rex", "discarded");
            assert!(report.dropped().iter().all(|d| d.reason == DropReason::Discarded), "{report}");
        } else {
            assert_eq!(server[0]["name"], "Rexy", "{mode:?}: the name recovered");
            assert_eq!(drop_reasons(&report), vec![(1, Some("age".into()), DropReason::SchemaIncompatible)]);
        }
        // The old app is refused, saying to update, and changes nothing.
        let path = l.path().to_owned();
        drop(l);
        closed(&path).await;
        let old_app = Database::open_synced(h.config("l", mode, &Arc::default())).await.unwrap_err();
        assert!(old_app.to_string().contains("must be updated"), "{old_app}");
        assert!(old_app.to_string().contains("Dog.age"), "{old_app}");
        let again = Database::open_synced(h.config_with("l", mode, &seen, &new_schema)).await.unwrap();
        assert_eq!(dogs(&again), server);
        assert_eq!(seen.counts(), (1, 1), "{mode:?}: no second reset");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_updated_app_in_manual_mode_is_told_and_recovers_by_hand_after_a_breaking_change() {
    let new_schema = age_as_string();
    let (h, seen) = offline_edits_then_a_breaking_change(Mode::Manual).await;
    let err = Database::open_synced(h.config_with("l", Mode::Manual, &seen, &new_schema)).await.unwrap_err();
    assert!(matches!(err, haven::Error::Sync(SyncError::ClientReset(_))), "{err}");
    let info = seen.manual_reset().await;
    assert_eq!(info.reason(), haven::ResetReason::SchemaBreaking);
    closed(info.original_path()).await;
    let backup = haven::initiate_client_reset(info.original_path()).unwrap();
    assert_eq!(backup, info.backup_path());
    let live = Database::open_synced(h.config_with("l", Mode::Manual, &seen, &new_schema)).await.unwrap();
    let old = Database::open(info.backup_config()).unwrap();
    let report = haven::recovery::by_field(&old, &live).unwrap();
    synced(&live).await;
    assert_eq!(field(&live, 1, "name"), Some("Rexy".into()));
    assert_eq!(drop_reasons(&report), vec![(1, Some("age".into()), DropReason::SchemaIncompatible)]);
    assert_eq!(dogs(&live), h.server_dogs_with(&new_schema).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_after_a_breaking_change_cut_short_resumes_on_the_next_open() {
    let new_schema = age_as_string();
    let (h, seen) = offline_edits_then_a_breaking_change(RECOVER).await;
    // The server grants the reset; every later connection is cut at once.
    let proxy = haven_testkit::Proxy::start(h.server.local_addr()).await;
    proxy.set(|f| (f.cut_schedule, f.cut_after) = ([i64::MAX].into(), Some(0)));
    let config = h.config_at(&proxy.url(), "l", RECOVER, &seen, &new_schema);
    let sync = SyncConfig::new(proxy.url(), "dev", "p").wait_for_download(false);
    let l = Database::open_synced(config.sync(sync)).await.unwrap();
    assert_eq!(l.schema().object_type("Dog").unwrap().property_named("age").unwrap().type_string(), "string?");
    let pending = l.pending_client_reset().unwrap().expect("a reset under way");
    assert_eq!((pending.reason, pending.committed), (haven::ResetReason::SchemaBreaking, false));
    assert_eq!(field(&l, 1, "name"), Some("Rexy".into()), "the app's writes show until the reset");
    let path = l.path().to_owned();
    drop(l);
    closed(&path).await;
    // Opened again with the server in reach, it finishes.
    let l = Database::open_synced(h.config_with("l", RECOVER, &seen, &new_schema)).await.unwrap();
    synced(&l).await;
    assert_eq!(seen.counts(), (1, 1));
    assert_eq!(drop_reasons(&seen.report()), vec![(1, Some("age".into()), DropReason::SchemaIncompatible)]);
    assert_eq!(dogs(&l), h.server_dogs_with(&new_schema).await);
    assert_eq!(field(&l, 1, "name"), Some("Rexy".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaking_schema_the_server_does_not_have_or_a_local_file_is_still_refused() {
    let b = baseline(RECOVER).await;
    let path = b.l.path().to_owned();
    let Baseline { h, l, r, .. } = b;
    drop((l, r));
    closed(&path).await;
    // The server still has `age` as an int.
    let err = Database::open_synced(h.config_with("l", RECOVER, &Arc::default(), &age_as_string())).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("Dog.age") && message.contains("does not accept this schema"), "{message}");
    assert_eq!(field(&Database::open(h.config("l", RECOVER, &Arc::default())).unwrap(), 1, "age"), Some(1.into()));
    // A local file cannot start again from anywhere.
    let local = h.path("local");
    let schema = Schema::from_json(SCHEMA).unwrap();
    drop(Database::open(Config::new(&local).schema(schema)).unwrap());
    closed(&local).await;
    let config = Config::new(&local).schema(Schema::from_json(&age_as_string()).unwrap());
    let err = Database::open(config.clone()).unwrap_err().to_string();
    assert!(err.contains("Dog.age") && err.contains("breaking change"), "{err}");
    let sync = SyncConfig::new(h.server.url(), "dev", "p");
    let err = Database::open_synced(config.sync(sync)).await.unwrap_err().to_string();
    assert!(err.contains("Dog.age") && err.contains("does not sync"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_updated_app_with_a_new_required_property_fills_it_and_recovers_the_rest() {
    let b = baseline(RECOVER).await;
    set(&b.l, 1, "name", "Rexy");
    let with_color = SCHEMA.replace(r#""friend":"Dog?""#, r#""friend":"Dog?","color":"string""#);
    assert_eq!(b.h.put_schema(&with_color).await, 200);
    let Baseline { h, l, r, seen } = b;
    let path = l.path().to_owned();
    drop((l, r));
    closed(&path).await;
    let l = Database::open_synced(h.config_with("l", RECOVER, &seen, &with_color)).await.unwrap();
    synced(&l).await;
    let server = h.server_dogs_with(&with_color).await;
    assert_eq!(dogs(&l), server);
    assert_eq!((&server[0]["name"], &server[0]["color"]), (&json!("Rexy"), &json!("")), "filled with the zero value");
    assert!(seen.report().dropped().is_empty(), "{}", seen.report());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_whose_process_was_killed_still_starts_again_under_a_breaking_schema() {
    let b = baseline(RECOVER).await;
    b.l.write(|tx| {
        tx.set("Dog", 1, "age", 4)?;
        tx.set("Dog", 1, "name", "Rexy")
    })
    .unwrap();
    assert_eq!(b.h.put_schema(&age_as_string()).await, 200);
    // What a kill leaves: the file as it is while open for writing.
    let Baseline { h, l, r, seen } = b;
    let path = l.path().to_owned();
    let killed = h.path("killed");
    std::fs::copy(&path, &killed).unwrap();
    drop((l, r));
    closed(&path).await;
    std::fs::rename(&killed, &path).unwrap();
    let err = Database::open(Config::new(&path).read_only()).unwrap_err();
    assert!(matches!(err, haven::Error::NotClosedCleanly(_)), "{err}");
    let l = Database::open_synced(h.config_with("l", RECOVER, &seen, &age_as_string())).await.unwrap();
    synced(&l).await;
    assert_eq!(field(&l, 1, "name"), Some("Rexy".into()));
    assert_eq!(drop_reasons(&seen.report()), vec![(1, Some("age".into()), DropReason::SchemaIncompatible)]);
    assert_eq!(dogs(&l), h.server_dogs_with(&age_as_string()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_property_from_a_synced_app_is_still_refused_locally() {
    let b = baseline(RECOVER).await;
    let Baseline { h, l, r, seen } = b;
    let path = l.path().to_owned();
    drop((l, r));
    closed(&path).await;
    let without_age = SCHEMA.replace(r#""age":"int?","#, "");
    let err = Database::open_synced(h.config_with("l", RECOVER, &seen, &without_age)).await.unwrap_err();
    assert!(err.to_string().contains("Dog.age") && err.to_string().contains("keep it in the schema"), "{err}");
    assert_eq!(seen.counts(), (0, 0), "no reset");
}

/// The baseline with Dog 1's `tags` [1, 2, 3], written element by element
/// and synced everywhere before L goes offline.
async fn list_baseline(mode: Mode) -> Baseline {
    let b = baseline(mode).await;
    b.l.sync_session().unwrap().resume();
    b.l.write(|tx| (1..=3).try_for_each(|n| tx.list_push("Dog", 1, "tags", n))).unwrap();
    synced(&b.l).await;
    synced(&b.r).await;
    b.l.sync_session().unwrap().pause();
    b
}

fn tags(dogs: &[serde_json::Value]) -> serde_json::Value {
    dogs[0]["tags"].clone()
}

fn push(db: &Database, values: &[i64]) {
    db.write(|tx| values.iter().try_for_each(|v| tx.list_push("Dog", 1, "tags", *v))).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovering_an_offline_list_removal_keeps_the_servers_concurrent_insertions() {
    let b = list_baseline(RECOVER).await;
    b.l.write(|tx| tx.list_remove("Dog", 1, "tags", 1).map(drop)).unwrap();
    b.remote(|r| push(r, &[4, 5])).await;
    b.reset_and_resume().await;
    assert_eq!(tags(&b.converged().await), json!([1, 3, 4, 5]), "Realm recovers [1, 3] here");
    assert!(b.seen.report().is_complete(), "{}", b.seen.report());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovering_an_offline_move_and_append_keeps_the_servers_concurrent_append() {
    let b = list_baseline(RECOVER).await;
    b.l.write(|tx| {
        tx.list_move("Dog", 1, "tags", 0, 1)?;
        tx.list_push("Dog", 1, "tags", 5)
    })
    .unwrap();
    b.remote(|r| push(r, &[4])).await;
    b.reset_and_resume().await;
    assert_eq!(tags(&b.converged().await), json!([2, 1, 3, 5, 4]), "Realm recovers [2, 1, 3, 5] here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_change_to_a_list_element_the_server_removed_is_reported() {
    let b = list_baseline(RECOVER).await;
    b.l.write(|tx| tx.list_set("Dog", 1, "tags", 1, 20)).unwrap();
    b.remote(|r| r.write(|tx| tx.list_remove("Dog", 1, "tags", 1).map(drop)).unwrap()).await;
    b.reset_and_resume().await;
    assert_eq!(tags(&b.converged().await), json!([1, 3]));
    assert_eq!(drop_reasons(&b.seen.report()), vec![(1, Some("tags".into()), DropReason::ElementRemoved)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_recovery_by_field_replays_list_edits_by_element() {
    let b = list_baseline(Mode::Manual).await;
    b.l.write(|tx| {
        tx.list_insert("Dog", 1, "tags", 1, 9)?;
        tx.list_remove("Dog", 1, "tags", 0).map(drop)
    })
    .unwrap();
    b.remote(|r| push(r, &[4])).await;
    let (live, backup, b) = manual_reset(b).await;
    let report = haven::recovery::by_field(&backup, &live).unwrap();
    assert!(report.is_complete(), "{report}");
    synced(&live).await;
    synced(&b.r).await;
    assert_eq!(tags(&b.converged().await), json!([9, 2, 3, 4]));
}

/// The baseline with Dog 1's `colors` {brown} and `scores` {agility: 5},
/// written entry by entry and synced everywhere before L goes offline.
async fn entries_baseline(mode: Mode) -> Baseline {
    let b = baseline(mode).await;
    b.l.sync_session().unwrap().resume();
    b.l.write(|tx| {
        tx.set_add("Dog", 1, "colors", "brown")?;
        tx.dict_put("Dog", 1, "scores", "agility", 5)
    })
    .unwrap();
    synced(&b.l).await;
    synced(&b.r).await;
    b.l.sync_session().unwrap().pause();
    b
}

fn colors_and_scores(dogs: &[serde_json::Value]) -> (serde_json::Value, serde_json::Value) {
    (dogs[0]["colors"].clone(), dogs[0]["scores"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovering_offline_set_and_dictionary_edits_keeps_the_servers_concurrent_entries() {
    let b = entries_baseline(RECOVER).await;
    b.l.write(|tx| {
        tx.set_add("Dog", 1, "colors", "white")?;
        tx.set_remove("Dog", 1, "colors", "brown")?;
        tx.dict_put("Dog", 1, "scores", "speed", 3)
    })
    .unwrap();
    b.remote(|r| {
        r.write(|tx| {
            tx.set_add("Dog", 1, "colors", "black")?;
            tx.dict_put("Dog", 1, "scores", "agility", 9)
        })
        .unwrap()
    })
    .await;
    b.reset_and_resume().await;
    let expected = (json!(["black", "white"]), json!({"agility": 9, "speed": 3}));
    assert_eq!(colors_and_scores(&b.converged().await), expected);
    assert!(b.seen.report().is_complete(), "{}", b.seen.report());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_dictionary_put_that_a_later_server_removal_beat_is_reported() {
    let b = entries_baseline(RECOVER).await;
    b.l.write(|tx| tx.dict_put("Dog", 1, "scores", "agility", 6)).unwrap();
    b.remote(|r| r.write(|tx| tx.dict_remove("Dog", 1, "scores", "agility").map(drop)).unwrap()).await;
    b.reset_and_resume().await;
    assert_eq!(colors_and_scores(&b.converged().await), (json!(["brown"]), json!({})));
    assert_eq!(drop_reasons(&b.seen.report()), vec![(1, Some("scores".into()), DropReason::OlderThanServer)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_removal_the_server_made_too_is_not_reported_as_lost() {
    let b = entries_baseline(RECOVER).await;
    b.l.write(|tx| tx.set_remove("Dog", 1, "colors", "brown").map(drop)).unwrap();
    b.remote(|r| r.write(|tx| tx.set_remove("Dog", 1, "colors", "brown").map(drop)).unwrap()).await;
    b.reset_and_resume().await;
    assert_eq!(colors_and_scores(&b.converged().await).0, json!([]));
    assert!(b.seen.report().is_complete(), "{}", b.seen.report());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_recovery_by_field_replays_set_and_dictionary_edits_by_entry() {
    let b = entries_baseline(Mode::Manual).await;
    b.l.write(|tx| {
        tx.set_add("Dog", 1, "colors", "white")?;
        tx.dict_put("Dog", 1, "scores", "speed", 3)
    })
    .unwrap();
    b.remote(|r| r.write(|tx| tx.set_add("Dog", 1, "colors", "black").map(drop)).unwrap()).await;
    let (live, backup, b) = manual_reset(b).await;
    let report = haven::recovery::by_field(&backup, &live).unwrap();
    assert!(report.is_complete(), "{report}");
    synced(&live).await;
    synced(&b.r).await;
    let expected = (json!(["black", "brown", "white"]), json!({"agility": 5, "speed": 3}));
    assert_eq!(colors_and_scores(&b.converged().await), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovering_an_offline_edit_of_an_embedded_field_keeps_the_servers_edit_of_another() {
    for mode in [RECOVER, Mode::Manual] {
        let b = baseline(mode).await;
        b.l.sync_session().unwrap().resume();
        b.l.write(|tx| tx.set("Dog", 1, "address", Value::Dictionary([("city".to_owned(), "Oslo".into())].into())))
            .unwrap();
        synced(&b.l).await;
        synced(&b.r).await;
        b.l.sync_session().unwrap().pause();
        b.l.write(|tx| tx.set_path("Dog", 1, "address.street", "Main 1")).unwrap();
        b.remote(|r| r.write(|tx| tx.set_path("Dog", 1, "address.city", "Bergen")).unwrap()).await;
        let b = match mode {
            Mode::Manual => {
                let (live, backup, b) = manual_reset(b).await;
                let report = haven::recovery::by_field(&backup, &live).unwrap();
                assert!(report.is_complete(), "{report}");
                synced(&live).await;
                synced(&b.r).await;
                b
            }
            _ => {
                b.reset_and_resume().await;
                assert!(b.seen.report().is_complete(), "{}", b.seen.report());
                b
            }
        };
        assert_eq!(b.converged().await[0]["address"], json!({"city": "Bergen", "street": "Main 1"}), "{mode:?}");
    }
}
