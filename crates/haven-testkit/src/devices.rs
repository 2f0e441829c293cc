//! Devices in tests: waiting for sync, reading, counted writes.

use haven::{Config, Database, Schema, SyncConfig, UpdateMode};
use haven_server::{Authenticator, Server, Storage};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A device `name` (its file in `dir`) of schema `schema` (JSON) that
/// syncs partition `p` with the dev-mode server at `url`, reconnecting
/// quickly.
fn device_config(dir: &Path, name: &str, url: &str, schema: &str) -> Config {
    let sync = SyncConfig::new(url, "dev", "p").reconnect_delays(Duration::from_millis(20), Duration::from_millis(200));
    Config::new(dir.join(format!("{name}.haven"))).schema(Schema::from_json(schema).expect("a valid schema")).sync(sync)
}

/// Waits until `db` has uploaded everything and has what the server has
/// (at most 60 s, else panics).
pub async fn synced(db: &Database) {
    let session = db.sync_session().expect("a synced database");
    tokio::time::timeout(Duration::from_secs(60), async {
        session.upload_all_local_changes().await.expect("uploaded");
        session.download_all_server_changes().await.expect("downloaded");
    })
    .await
    .expect("synced within 60 s");
}

/// Every Dog, as JSON, by primary key.
pub fn dogs(db: &Database) -> Vec<serde_json::Value> {
    objects_of(db, "Dog")
}

/// Every object of `object_type`, as JSON, by primary key (`_id`).
pub fn objects_of(db: &Database, object_type: &str) -> Vec<serde_json::Value> {
    let sorted = db.objects(object_type).and_then(|all| all.sorted("_id", true)).expect("the type exists");
    sorted.iter().expect("readable").map(|o| o.to_json()).collect()
}

/// Transaction `i` (from 1) of the crash harnesses: creates Dog `i` and
/// increments Dog 0's `age`, so that Dog 0's age counts the transactions
/// (a transaction half-applied, lost or applied twice shows).
pub fn write_counted(db: &Database, i: i64) -> haven::Result<()> {
    db.write(|tx| {
        if i == 1 {
            tx.create("Dog", serde_json::json!({"_id": 0, "name": "counter", "age": 0}), UpdateMode::Never)?;
        }
        tx.increment("Dog", 0, "age", 1)?;
        tx.create("Dog", serde_json::json!({"_id": i, "name": format!("dog {i}")}), UpdateMode::Never)
    })
}

/// Makes the closed database file at `path` what a build from before
/// version salts left: its base version without a salt.
pub fn forget_base_salt(path: &Path) {
    let db = redb::Database::create(path).expect("a database file");
    let txn = db.begin_write().unwrap();
    let meta: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("haven/meta");
    assert!(txn.open_table(meta).unwrap().remove("sync/base_salt").unwrap().is_some(), "the file had a salt");
    txn.commit().unwrap();
}

/// A dev-mode server on the backend the suite runs on, and the synced
/// devices of one schema that a test opens on it by name (each its own
/// file beside the server's data).
pub struct TestPartition {
    /// The server's storage: its history, to compare devices against.
    pub storage: Arc<dyn Storage>,
    /// The running server.
    pub server: Server,
    dir: PathBuf,
    schema: &'static str,
}

impl TestPartition {
    /// Starts the server, with its data in `dir/server`.
    pub async fn start(dir: &Path, schema: &'static str) -> TestPartition {
        let storage = crate::test_storage(&dir.join("server"));
        let server = Server::start(storage.clone(), Authenticator::Dev, "127.0.0.1:0".parse().expect("an address"))
            .await
            .expect("the server starts");
        TestPartition { storage, server, dir: dir.to_owned(), schema }
    }

    /// Opens device `name`, syncing with the server.
    pub async fn device(&self, name: &str) -> Database {
        let config = device_config(&self.dir, name, &self.server.url(), self.schema);
        Database::open_synced(config).await.expect("the device opens")
    }
}
