//! A server restored from a backup is noticed by every device whose
//! history it no longer has, however far its version has moved since the
//! restore, and by no other device. Runs on the backend
//! `HAVEN_TEST_BACKEND` names: on PostgreSQL the backup is a `pg_dump`.

use haven::{Config, Database, ResetReason, Schema, SyncConfig, SyncError, UpdateMode};
use haven_server::{Authenticator, Server};
use haven_testkit::{dogs, fold_history, forget_base_salt, synced, ServerData};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SCHEMA: &str = r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string","age":"int?"}}]"#;

/// A server whose data can be backed up and restored, and its devices.
struct Fleet {
    dir: tempfile::TempDir,
    data: ServerData,
    server: Option<Server>,
    addr: SocketAddr,
    /// The client resets each device went through, by name.
    resets: Arc<Mutex<Vec<(String, ResetReason)>>>,
}

impl Fleet {
    async fn new() -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let data = ServerData::new(&dir.path().join("server"));
        let server = Server::start(data.storage(), Authenticator::Dev, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = server.local_addr();
        Fleet { dir, data, server: Some(server), addr, resets: Arc::default() }
    }

    async fn device(&self, name: &str) -> Database {
        let (resets, who) = (self.resets.clone(), name.to_owned());
        let after = Box::new(move |_: &Database, after: &Database, _: &haven::RecoveryReport| {
            // Until the server has the recovered changes, the file says why it was reset.
            let pending = after.pending_client_reset()?.expect("the reset is tracked until acknowledged");
            resets.lock().unwrap().push((who.clone(), pending.reason));
            Ok(())
        });
        let who = name.to_owned();
        let sync = SyncConfig::new(format!("ws://{}", self.addr), "dev", "p")
            .reconnect_delays(Duration::from_millis(20), Duration::from_millis(200))
            .client_reset(haven::ClientResetMode::RecoverUnsynced {
                policy: haven::RecoveryPolicy::LatestWins,
                before: None,
                after: Some(after),
            })
            .on_error(move |e| {
                if let SyncError::ClientReset(info) = e {
                    panic!("{who}: a manual reset in an automatic mode: {info:?}");
                }
            });
        let config = Config::new(self.dir.path().join(format!("{name}.haven")))
            .schema(Schema::from_json(SCHEMA).unwrap())
            .sync(sync);
        Database::open_synced(config).await.unwrap()
    }

    async fn stop(&mut self) {
        self.server.take().expect("running").shutdown().await;
    }

    async fn start(&mut self) {
        let server = Server::start(self.data.storage(), Authenticator::Dev, self.addr).await.unwrap();
        self.server = Some(server);
    }

    /// Stops the server, backs its data up as `name`, starts it again.
    async fn backup(&mut self, name: &str) {
        self.stop().await;
        self.data.backup(name);
        self.start().await;
    }

    /// Stops the server and brings it back from the backup `name`.
    async fn restore(&mut self, name: &str) {
        self.stop().await;
        self.data.restore(name);
        self.start().await;
    }

    fn resets_of(&self, name: &str) -> Vec<ResetReason> {
        self.resets.lock().unwrap().iter().filter(|(who, _)| who == name).map(|(_, r)| *r).collect()
    }

    /// Every device, a new device and the merge of the server's whole
    /// history hold the same dogs; returns them.
    async fn converged(&mut self, devices: &[&Database]) -> Vec<serde_json::Value> {
        for db in devices.iter().chain(devices) {
            synced(db).await;
        }
        let fresh = self.device("fresh").await;
        let server = dogs(&fresh);
        for (n, db) in devices.iter().enumerate() {
            assert_eq!(dogs(db), server, "device {n} and the server");
        }
        drop(fresh);
        self.stop().await;
        let storage = self.data.storage();
        let folded: Vec<serde_json::Value> = fold_history(storage.as_ref(), "p")
            .into_values()
            .map(|fields| serde_json::Value::Object(fields.into_iter().map(|(k, v)| (k, v.to_json())).collect()))
            .collect();
        drop(storage);
        let server_without_nulls: Vec<serde_json::Value> = server
            .iter()
            .map(|d| {
                d.as_object()
                    .unwrap()
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .collect();
        assert_eq!(folded, server_without_nulls, "the merge of the server's history");
        self.start().await;
        server
    }
}

fn create(db: &Database, id: i64, name: &str) {
    db.write(|tx| tx.create("Dog", json!({"_id": id, "name": name}), UpdateMode::Never).map(|_| ())).unwrap();
}

fn set_age(db: &Database, id: i64, age: i64) {
    db.write(|tx| tx.set("Dog", id, "age", age)).unwrap();
}

fn ids(dogs: &[serde_json::Value]) -> Vec<i64> {
    dogs.iter().map(|d| d["_id"].as_i64().unwrap()).collect()
}

fn pause(devices: &[&Database]) {
    devices.iter().for_each(|db| db.sync_session().unwrap().pause());
}

fn resume(db: &Database) {
    db.sync_session().unwrap().resume();
}

/// A, B and C hold Dog 1 (A's "Rex"), synced, and the server's data is
/// backed up as "before".
async fn three_devices_and_a_backup() -> (Fleet, [Database; 3]) {
    let mut fleet = Fleet::new().await;
    let (a, b, c) = (fleet.device("a").await, fleet.device("b").await, fleet.device("c").await);
    create(&a, 1, "Rex");
    for db in [&a, &b, &c, &a] {
        synced(db).await;
    }
    fleet.backup("before").await;
    (fleet, [a, b, c])
}

/// A, B and C hold Dog 1 from before the backup, and Dog 2 and A's edit
/// from after it (B and C only downloaded them); then the server comes
/// back from the backup while A has three unsynced writes, which take the
/// restored server's version past what B and C hold.
async fn restored_with_history_b_and_c_downloaded() -> (Fleet, [Database; 3]) {
    let (mut fleet, [a, b, c]) = three_devices_and_a_backup().await;
    create(&a, 2, "Gone");
    set_age(&a, 1, 3);
    for db in [&a, &b, &c] {
        synced(db).await;
    }
    let held = b.sync_position().unwrap().base_version;
    assert_eq!((held, c.sync_position().unwrap().base_version), (3, 3));
    pause(&[&a, &b, &c]);
    create(&a, 10, "A's");
    create(&a, 11, "A's too");
    set_age(&a, 10, 5);
    fleet.restore("before").await;
    (fleet, [a, b, c])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_that_reconnect_after_the_restored_server_caught_up_are_reset() {
    let (mut fleet, [a, b, c]) = restored_with_history_b_and_c_downloaded().await;
    resume(&a);
    synced(&a).await;
    assert_eq!(fleet.resets_of("a"), vec![ResetReason::ServerRestored]);
    let restored_version = a.sync_position().unwrap().base_version;
    assert!(restored_version >= 3, "the restored server is at {restored_version}, past what B and C hold");
    resume(&b);
    resume(&c);
    let dogs = fleet.converged(&[&a, &b, &c]).await;
    assert_eq!(ids(&dogs), vec![1, 10, 11], "Dog 2 is gone with the history it was in; A's writes are back");
    assert_eq!(dogs[0]["age"], serde_json::Value::Null, "A's edit after the backup went with it");
    assert_eq!(dogs[1]["age"], 5);
    assert_eq!(fleet.resets_of("b"), vec![ResetReason::ServerRestored]);
    assert_eq!(fleet.resets_of("c"), vec![ResetReason::ServerRestored]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_that_reconnect_before_the_restored_server_caught_up_are_reset() {
    let (mut fleet, [a, b, c]) = restored_with_history_b_and_c_downloaded().await;
    resume(&b);
    resume(&c);
    synced(&b).await;
    synced(&c).await;
    resume(&a);
    let dogs = fleet.converged(&[&a, &b, &c]).await;
    assert_eq!(ids(&dogs), vec![1, 10, 11]);
    for name in ["a", "b", "c"] {
        assert_eq!(fleet.resets_of(name), vec![ResetReason::ServerRestored], "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_server_at_the_very_version_a_device_holds_is_told_apart_by_its_salt() {
    let mut fleet = Fleet::new().await;
    let (a, b) = (fleet.device("a").await, fleet.device("b").await);
    create(&a, 1, "Rex");
    for db in [&a, &b, &a] {
        synced(db).await;
    }
    fleet.backup("before").await;
    create(&a, 2, "Gone");
    synced(&a).await;
    synced(&b).await;
    let held = b.sync_position().unwrap();
    pause(&[&a, &b]);
    set_age(&b, 1, 9); // B's unsynced write, recovered by its reset
    fleet.restore("before").await;
    // A new device writes one changeset: the restored server reaches the
    // version B holds, with other content.
    let d = fleet.device("d").await;
    create(&d, 20, "D's");
    synced(&d).await;
    assert_eq!(d.sync_position().unwrap().base_version, held.base_version, "the same number");
    assert_ne!(d.sync_position().unwrap().base_salt, held.base_salt, "another version");
    resume(&b);
    synced(&b).await;
    assert_eq!(fleet.resets_of("b"), vec![ResetReason::ServerRestored]);
    resume(&a);
    let dogs = fleet.converged(&[&a, &b, &d]).await;
    assert_eq!(ids(&dogs), vec![1, 20]);
    assert_eq!(dogs[0]["age"], 9, "B's unsynced write recovered");
    assert!(fleet.resets_of("d").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_offline_since_before_the_backup_is_not_reset() {
    let mut fleet = Fleet::new().await;
    let (a, c) = (fleet.device("a").await, fleet.device("c").await);
    create(&a, 1, "Rex");
    for db in [&a, &c, &a] {
        synced(db).await;
    }
    pause(&[&c]);
    set_age(&c, 1, 4); // unsynced, from before the backup's point
    fleet.backup("before").await;
    create(&a, 2, "Gone");
    synced(&a).await;
    pause(&[&a]);
    fleet.restore("before").await;
    resume(&a);
    synced(&a).await;
    create(&a, 3, "After");
    synced(&a).await;
    let ident = c.sync_position().unwrap().file_ident;
    resume(&c);
    let dogs = fleet.converged(&[&a, &c]).await;
    assert_eq!(c.sync_position().unwrap().file_ident, ident, "C was not reset");
    assert!(fleet.resets_of("c").is_empty());
    assert_eq!(fleet.resets_of("a"), vec![ResetReason::ServerRestored]);
    assert_eq!(ids(&dogs), vec![1, 3]);
    assert_eq!(dogs[0]["age"], 4, "C's write synced as any other");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_and_devices_from_before_salts_sync_on_after_the_upgrade() {
    let mut fleet = Fleet::new().await;
    let (a, b) = (fleet.device("a").await, fleet.device("b").await);
    create(&a, 1, "Rex");
    for db in [&a, &b, &a] {
        synced(db).await;
    }
    // Everything as the previous build left it, then upgraded.
    let paths = [a.path().to_owned(), b.path().to_owned()];
    drop((a, b));
    fleet.stop().await;
    fleet.data.forget_version_salts();
    for path in &paths {
        while Database::is_open(path) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        forget_base_salt(path);
    }
    fleet.start().await;
    let (a, b) = (fleet.device("a").await, fleet.device("b").await);
    assert_eq!(b.sync_position().unwrap().base_salt, 0);
    create(&a, 2, "Ace");
    let dogs = fleet.converged(&[&a, &b]).await;
    assert_eq!(ids(&dogs), vec![1, 2]);
    assert!(fleet.resets_of("a").is_empty() && fleet.resets_of("b").is_empty(), "nobody is reset");
    assert_ne!(b.sync_position().unwrap().base_salt, 0, "new versions have salts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_device_gets_its_unsynced_writes_back_from_a_restored_server() {
    let (mut fleet, [a, b, c]) = three_devices_and_a_backup().await;
    b.write(|tx| tx.set("Dog", 1, "name", "Rexy")).unwrap();
    for db in [&a, &b, &c, &a, &b] {
        synced(db).await;
    }
    // Each device writes offline; then the server comes back from the backup.
    pause(&[&a, &b, &c]);
    create(&a, 10, "A's");
    set_age(&b, 1, 7);
    create(&c, 30, "C's");
    fleet.restore("before").await;
    [&a, &b, &c].into_iter().for_each(resume);
    let dogs = fleet.converged(&[&a, &b, &c]).await;
    assert_eq!(ids(&dogs), vec![1, 10, 30]);
    assert_eq!(dogs[0]["age"], 7);
}
