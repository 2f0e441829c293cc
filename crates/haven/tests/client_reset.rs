//! The client reset scenarios of SCENARIOS.md, end to end: a real server
//! in-process, real WebSocket connections, real database files. Client
//! L gets reset; R is another device on partition "p".

use haven::recovery::DropReason;
use haven::{
    ClientResetInfo, ClientResetMode, Config, Database, RecoveryPolicy, RecoveryReport, Schema, SyncConfig, SyncError,
    UpdateMode, Value,
};
use haven_server::{Authenticator, EmbeddedStorage, Server};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SCHEMA: &str = r#"[{"name":"Dog","primaryKey":"_id","properties":{
    "_id":"int","name":"string","age":"int?","lastUpdated":"int","friend":"Dog?"}}]"#;
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
        Ok(())
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

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.haven"))
    }

    fn config(&self, name: &str, mode: Mode, seen: &Arc<Seen>) -> Config {
        let errors = seen.clone();
        let sync = SyncConfig::new(self.server.url(), "dev", "p")
            .reconnect_delays(Duration::from_millis(20), Duration::from_millis(200))
            .client_reset(reset_mode(mode, seen))
            .on_error(move |e| errors.errors.lock().unwrap().push(e.clone()));
        Config::new(self.path(name)).schema(Schema::from_json(SCHEMA).unwrap()).sync(sync)
    }

    async fn open(&self, name: &str, mode: Mode, seen: &Arc<Seen>) -> Database {
        Database::open_synced(self.config(name, mode, seen)).await.unwrap()
    }

    /// The server's state, as a new device downloads it.
    async fn server_dogs(&self) -> Vec<serde_json::Value> {
        let name = format!("fresh-{}", FRESH.fetch_add(1, Ordering::SeqCst));
        let db = self.open(&name, RECOVER, &Arc::default()).await;
        dogs(&db)
    }

    /// `POST /admin/v1/{path}` with `body`; the response's status.
    async fn admin(&self, path: &str, body: &str) -> u16 {
        let mut stream = tokio::net::TcpStream::connect(self.server.local_addr()).await.unwrap();
        let request = format!(
            "POST /admin/v1/{path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response[9..12].parse().unwrap()
    }

    /// The operator resets `db`'s client.
    async fn reset_client(&self, db: &Database) {
        let (ident, _) = db.sync_position().unwrap().file_ident.expect("bound once");
        assert_eq!(self.admin(&format!("clients/{ident}/reset"), "").await, 200);
    }
}

static FRESH: AtomicUsize = AtomicUsize::new(0);

async fn start_server(data: &Path) -> Server {
    let storage = Arc::new(EmbeddedStorage::open(data).unwrap());
    let listen = "127.0.0.1:0".parse().unwrap();
    Server::start_with_admin(storage, Authenticator::Dev, listen, Some(ADMIN.into())).await.unwrap()
}

/// Waits until `db` has uploaded everything and has what the server has.
async fn synced(db: &Database) {
    let session = db.sync_session().unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        session.upload_all_local_changes().await.unwrap();
        session.download_all_server_changes().await.unwrap();
    })
    .await
    .expect("synced within 60 s");
}

fn dogs(db: &Database) -> Vec<serde_json::Value> {
    db.objects("Dog").unwrap().sorted("_id", true).unwrap().iter().unwrap().map(|o| o.to_json()).collect()
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
async fn s02_recover_latest_wins_keeps_the_later_remote_write() {
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
async fn s03_recover_latest_wins_keeps_the_later_offline_write() {
    let b = baseline(RECOVER).await;
    b.remote(|r| set(r, 1, "age", 6)).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    set(&b.l, 1, "age", 4);
    b.reset_and_resume().await;
    assert_eq!(b.converged().await[0]["age"], 4);
    assert!(b.seen.report().is_complete());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s04_recover_client_wins() {
    let b = baseline(Mode::Recover(RecoveryPolicy::ClientWins)).await;
    set(&b.l, 1, "age", 4);
    b.remote(|r| set(r, 1, "age", 6)).await;
    b.reset_and_resume().await;
    assert_eq!(b.converged().await[0]["age"], 4);
    assert_eq!(b.seen.counts(), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s05_discard_notifies_one_modification() {
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
