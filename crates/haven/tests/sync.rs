//! Devices syncing through a real server over loopback WebSocket.

use haven::{Action, Config, ConnectionState, Database, ErrorCode, Schema, SyncConfig, SyncError, UpdateMode, Value};
use haven_server::{Authenticator, EmbeddedStorage, Server, Storage};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use haven_testkit::synced;

const SCHEMA: &str = r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string","age":"int?"}}]"#;

/// A server on the backend the run tests (`HAVEN_TEST_BACKEND`), and its storage.
async fn server_with_storage(dir: &Path) -> (Server, Arc<dyn Storage>) {
    let storage = haven_testkit::test_storage(&dir.join("server"));
    (Server::start(storage.clone(), Authenticator::Dev, "127.0.0.1:0".parse().unwrap()).await.unwrap(), storage)
}

async fn server(dir: &Path) -> Server {
    server_with_storage(dir).await.0
}

fn config(dir: &Path, name: &str, url: &str) -> Config {
    let sync = SyncConfig::new(url, "dev", "p").reconnect_delays(Duration::from_millis(20), Duration::from_millis(200));
    Config::new(dir.join(format!("{name}.haven"))).schema(Schema::from_json(SCHEMA).unwrap()).sync(sync)
}

fn age(db: &Database, id: i64) -> Option<Value> {
    db.object_for_primary_key("Dog", id).unwrap().and_then(|o| o.get("age"))
}

fn dogs(db: &Database) -> Vec<serde_json::Value> {
    db.objects("Dog").unwrap().iter().unwrap().map(|o| o.to_json()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_converge_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let a = Database::open_synced(config(dir.path(), "a", &server.url())).await.unwrap();
    let b = Database::open_synced(config(dir.path(), "b", &server.url())).await.unwrap();
    assert!(a.sync_session().unwrap().is_connected());

    a.write(|tx| tx.create("Dog", json!({"_id": 1, "name": "Rex", "age": 1}), UpdateMode::Never)).unwrap();
    synced(&a).await;
    synced(&b).await;
    assert_eq!(age(&b, 1), Some(1.into()));

    // Both offline: A sets the age, B later sets it too and renames.
    a.sync_session().unwrap().pause();
    b.sync_session().unwrap().pause();
    a.write(|tx| tx.set("Dog", 1, "age", 4)).unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    b.write(|tx| tx.set("Dog", 1, "age", 6)).unwrap();
    b.write(|tx| tx.set("Dog", 1, "name", "Max")).unwrap();
    a.sync_session().unwrap().resume();
    b.sync_session().unwrap().resume();
    for db in [&a, &b, &a] {
        synced(db).await;
    }
    assert_eq!(age(&a, 1), Some(6.into()), "the later write wins");
    assert_eq!(dogs(&a), dogs(&b));
    assert_eq!(dogs(&a)[0]["name"], "Max");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_hear_downloads_and_a_new_device_bootstraps() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let a = Database::open_synced(config(dir.path(), "a", &server.url())).await.unwrap();
    a.write(|tx| {
        for id in 0..500 {
            tx.create("Dog", json!({"_id": id, "name": format!("dog {id}")}), UpdateMode::Never)?;
        }
        Ok(())
    })
    .unwrap();
    synced(&a).await;

    // A new device starts from the server's snapshot.
    let b = Database::open_synced(config(dir.path(), "b", &server.url())).await.unwrap();
    assert_eq!(b.objects("Dog").unwrap().len().unwrap(), 500);

    let (tx, rx) = std::sync::mpsc::channel();
    let _token = b.objects("Dog").unwrap().add_listener(move |changes| {
        let _ = tx.send(changes.modifications.clone());
    });
    a.write(|tx| tx.set("Dog", 7, "age", 3)).unwrap();
    synced(&a).await;
    let modified = rx.recv_timeout(Duration::from_secs(30)).expect("B's listener heard A's write");
    assert_eq!(modified, vec![Value::from(7)]);
    assert_eq!(age(&b, 7), Some(3.into()));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_keeps_everything_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (first, storage) = server_with_storage(dir.path()).await;
    let addr = first.local_addr();
    let a = Database::open_synced(config(dir.path(), "a", &first.url())).await.unwrap();
    a.write(|tx| tx.create("Dog", json!({"_id": 1, "name": "Rex"}), UpdateMode::Never)).unwrap();
    synced(&a).await;
    first.shutdown().await;

    // Offline while the server is down: the session keeps trying.
    let session = a.sync_session().unwrap();
    let mut status = session.watch();
    tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.connection != ConnectionState::Connected))
        .await
        .unwrap()
        .unwrap();
    a.write(|tx| tx.create("Dog", json!({"_id": 2, "name": "Ace"}), UpdateMode::Never)).unwrap();

    // The embedded store is opened again from its file; PostgreSQL's
    // tables are the same tables.
    let storage = match haven_testkit::testing_postgres() {
        true => storage,
        false => {
            drop(storage);
            Arc::new(EmbeddedStorage::open(&dir.path().join("server")).unwrap())
        }
    };
    let second = Server::start(storage, Authenticator::Dev, addr).await.unwrap();
    synced(&a).await;
    let b = Database::open_synced(config(dir.path(), "b", &second.url())).await.unwrap();
    assert_eq!(dogs(&b), dogs(&a));
    assert_eq!(b.objects("Dog").unwrap().len().unwrap(), 2);
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_fails_open_synced_and_reaches_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let storage = haven_testkit::test_storage(&dir.path().join("server"));
    let server = Server::start(storage, Authenticator::jwt(b"secret"), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let sync = SyncConfig::new(server.url(), "forged", "p").on_error(move |e| {
        let _ = tx.send(e.clone());
    });
    let config = Config::new(dir.path().join("a.haven")).schema(Schema::from_json(SCHEMA).unwrap()).sync(sync);
    let err = Database::open_synced(config).await.unwrap_err();
    match err {
        haven::Error::Sync(SyncError::Server { code: ErrorCode::BadToken, action: Action::Fatal, .. }) => {}
        other => panic!("{other}"),
    }
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        SyncError::Server { code: ErrorCode::BadToken, .. }
    ));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sync_configurations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Schema::from_json(SCHEMA).unwrap();
    let https =
        Config::new(dir.path().join("a.haven")).schema(schema.clone()).sync(SyncConfig::new("http://x", "t", "p"));
    assert!(Database::open_synced(https).await.unwrap_err().to_string().contains("ws://"));
    let unsynced = Config::new(dir.path().join("b.haven")).schema(schema);
    assert!(Database::open_synced(unsynced).await.unwrap_err().to_string().contains("SyncConfig"));
    assert!(!dir.path().join("a.haven").exists() && !dir.path().join("b.haven").exists(), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_progress() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let a = Database::open_synced(config(dir.path(), "a", &server.url())).await.unwrap();
    let session = a.sync_session().unwrap();
    let mut status = session.watch();
    session.pause();
    status.wait_for(|s| s.connection == ConnectionState::Disconnected).await.unwrap();
    a.write(|tx| tx.create("Dog", json!({"_id": 1, "name": "Rex"}), UpdateMode::Never)).unwrap();
    a.write(|tx| tx.set("Dog", 1, "age", 2)).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let paused = session.progress();
    assert_eq!((paused.uploaded, paused.uploadable), (0, 2), "two local changesets wait while paused");
    assert_eq!(a.pending_changes().unwrap().len(), 2);
    session.resume();
    synced(&a).await;
    let p = session.progress();
    assert_eq!((p.uploaded, p.uploadable), (2, 2));
    assert_eq!((p.downloaded, p.downloadable), (2, 2), "its own two changesets came back as versions 1 and 2");
    assert!(session.is_connected());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_ends_when_the_database_closes() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let a = Database::open_synced(config(dir.path(), "a", &server.url())).await.unwrap();
    let session = a.sync_session().unwrap();
    let path = a.path().to_path_buf();
    drop(a);
    let mut status = session.watch();
    tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.stopped.is_some())).await.unwrap().unwrap();
    assert!(!Database::is_open(&path));
    assert!(matches!(session.download_all_server_changes().await, Err(haven::Error::Sync(SyncError::Closed))));
    server.shutdown().await;
}

/// More own changesets than one Download carries, through the server:
/// each counts once, here and on a new device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_offline_increments_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let a = Database::open_synced(config(dir.path(), "a", &server.url())).await.unwrap();
    a.sync_session().unwrap().pause();
    a.write(|tx| tx.create("Dog", json!({"_id": 1, "name": "Rex", "age": 0}), UpdateMode::Never)).unwrap();
    for _ in 0..600 {
        a.write(|tx| tx.increment("Dog", 1, "age", 1)).unwrap();
    }
    a.sync_session().unwrap().resume();
    synced(&a).await;
    assert_eq!(age(&a, 1), Some(600.into()));
    let b = Database::open_synced(config(dir.path(), "b", &server.url())).await.unwrap();
    assert_eq!(age(&b, 1), Some(600.into()));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_open_without_sync_is_not_synced_behind_its_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let config = config(dir.path(), "a", &server.url());
    let local =
        Database::open(Config::new(dir.path().join("a.haven")).schema(Schema::from_json(SCHEMA).unwrap())).unwrap();
    let err = Database::open_synced(config).await.unwrap_err();
    assert!(err.to_string().contains("already open in this process without sync"), "{err}");
    drop(local);
    server.shutdown().await;
}
