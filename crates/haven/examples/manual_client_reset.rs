//! Manual client reset, done step by step as app developers know it from
//! Realm's documentation ("track changes by object"): every model keeps a
//! `lastUpdated` field, a second, local-only database remembers when the
//! app last finished syncing, and a manual-mode error handler recovers
//! from the backup. `cargo run -p haven --example manual_client_reset`.
//!
//! Haven does all of this for you with `ClientResetMode::RecoverUnsynced`
//! (see `examples/client_reset.rs`), and `haven::recovery` has this
//! strategy ready-made (`by_object_timestamp`), and a better one
//! (`by_field`). This example shows what they replace.

use haven::{ClientResetInfo, ClientResetMode, Config, Database, Schema, SyncConfig, SyncError, UpdateMode};
use haven_server::{Authenticator, EmbeddedStorage, Server};
use serde_json::json;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DOG: &str = r#"[{"name":"Dog","primaryKey":"_id",
    "properties":{"_id":"int","name":"string","age":"int?","lastUpdated":"int"}}]"#;
/// The local-only database: when each tracked collection last synced.
const LAST_SYNCED: &str =
    r#"[{"name":"LastSynced","primaryKey":"realmTracked","properties":{"realmTracked":"string","timestamp":"int"}}]"#;

#[allow(dead_code)] // included by tests/client_reset.rs, which calls `run`
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    run(dir.path()).await?;
    println!("manual client reset: every unsynced change recovered");
    Ok(())
}

fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The whole story: a device syncs, goes offline, writes, is reset by the
/// server, and recovers by hand. Panics if the outcome is wrong.
pub async fn run(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let storage = Arc::new(EmbeddedStorage::open(&dir.join("server"))?);
    let server = Server::start(storage, Authenticator::Dev, "127.0.0.1:0".parse()?).await?;
    let path = dir.join("dogs.haven");

    // Step 1: a manual-mode error handler. It only passes the reset on:
    // the work happens below, where the database can be closed.
    let resets: Arc<Mutex<Option<ClientResetInfo>>> = Arc::default();
    let (seen, url) = (resets.clone(), server.url());
    let config = move || {
        let seen = seen.clone();
        let sync = SyncConfig::new(url.clone(), "dev", "dogs")
            .client_reset(ClientResetMode::Manual { on_manual: None })
            .on_error(move |e| {
                if let SyncError::ClientReset(info) = e {
                    *seen.lock().unwrap() = Some(info.clone());
                }
            });
        Config::new(&path).schema(Schema::from_json(DOG).unwrap()).sync(sync)
    };

    // Step 2: the local-only database tracking the last sync.
    let tracker = Database::open(Config::new(dir.join("last_synced.haven")).schema(Schema::from_json(LAST_SYNCED)?))?;
    let mut db = Database::open_synced(config()).await?;
    let listener = track_last_sync(&db, &tracker);

    // The app at work: two dogs, synced.
    db.write(|tx| {
        tx.create("Dog", json!({"_id": 1, "name": "Rex", "age": 1, "lastUpdated": now_millis()}), UpdateMode::Never)?;
        tx.create("Dog", json!({"_id": 2, "name": "Ace", "age": 2, "lastUpdated": now_millis()}), UpdateMode::Never)
    })?;
    wait_for_last_sync(&tracker, 0).await;

    // Offline: the device updates Rex, adds Bo and deletes Ace. Every
    // write sets lastUpdated: the manual recovery depends on it.
    let session = db.sync_session().expect("synced");
    session.pause();
    tokio::time::sleep(Duration::from_millis(5)).await;
    db.write(|tx| {
        tx.create("Dog", json!({"_id": 1, "age": 4, "lastUpdated": now_millis()}), UpdateMode::Modified)?;
        tx.create("Dog", json!({"_id": 3, "name": "Bo", "age": 0, "lastUpdated": now_millis()}), UpdateMode::Never)?;
        tx.delete("Dog", 2).map(|_| ())
    })?;

    // Meanwhile the server resets this device (history trimmed, a restore,
    // an operator...). Back online, the error handler hears of it.
    let (ident, _) = db.sync_position()?.file_ident.expect("bound");
    server.reset_client(ident).await?;
    session.resume();
    let info = loop {
        if let Some(info) = resets.lock().unwrap().take() {
            break info;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!("client reset ({:?}); recovering by hand", info.reason());

    // Step 3: close the database (its listener holds a handle: remove it
    // first), move it aside, reopen: everything downloads.
    drop((listener, db, session));
    let backup_path = haven::initiate_client_reset(info.original_path())?;
    db = Database::open_synced(config()).await?;
    let listener = track_last_sync(&db, &tracker);

    // Step 4: copy what changed since the last sync from the backup.
    let last_synced = tracker
        .object_for_primary_key("LastSynced", "Dog")?
        .and_then(|o| o.get("timestamp"))
        .and_then(|v| v.as_int())
        .unwrap_or(0);
    let backup = Database::open(Config::new(&backup_path).read_only())?;
    let changed = backup.objects("Dog")?.filtered("lastUpdated > $0", &[last_synced.into()])?;
    db.write(|tx| {
        for dog in changed.iter()? {
            tx.create("Dog", dog.to_json(), UpdateMode::Modified)?;
        }
        // Step 5: delete what the backup no longer has (unless the server
        // changed it since the last sync).
        for dog in db.objects("Dog")?.iter()? {
            let id = dog.get("_id").expect("a primary key");
            let touched_since = dog.get("lastUpdated").and_then(|v| v.as_int()) > Some(last_synced);
            if backup.object_for_primary_key("Dog", id.clone())?.is_none() && !touched_since {
                tx.delete("Dog", id)?;
            }
        }
        Ok(())
    })?;

    // Step 6: upload, and check on a second device what the server has.
    db.sync_session().expect("synced").upload_all_local_changes().await?;
    let check = dir.join("check.haven");
    let other = Database::open_synced(Config::new(&check).schema(Schema::from_json(DOG)?).sync(SyncConfig::new(
        server.url(),
        "dev",
        "dogs",
    )))
    .await?;
    let names: Vec<_> =
        other.objects("Dog")?.sorted("_id", true)?.iter()?.map(|d| d.to_json()["name"].clone()).collect();
    assert_eq!(names, vec![json!("Rex"), json!("Bo")], "Ace's delete and Bo's create recovered");
    assert_eq!(other.object_for_primary_key("Dog", 1)?.and_then(|d| d.get("age")), Some(4.into()));
    drop(listener);
    server.shutdown().await;
    Ok(())
}

/// The listener of the procedure: after each change to the Dog
/// collection, once the session is connected and has uploaded everything,
/// note the time in the local-only database.
fn track_last_sync(db: &Database, tracker: &Database) -> haven::NotificationToken {
    let (db2, tracker) = (db.clone(), tracker.clone());
    let runtime = tokio::runtime::Handle::current();
    db.objects("Dog").expect("Dog is in the schema").add_listener(move |_| {
        let Some(session) = db2.sync_session() else { return };
        if !session.is_connected() {
            return;
        }
        let tracker = tracker.clone();
        runtime.spawn(async move {
            if session.upload_all_local_changes().await.is_ok() {
                let now = json!({"realmTracked": "Dog", "timestamp": now_millis()});
                let _ = tracker.write(|tx| tx.create("LastSynced", now, UpdateMode::Modified));
            }
        });
    })
}

/// Waits until the tracker holds a sync time later than `after`.
async fn wait_for_last_sync(tracker: &Database, after: i64) {
    loop {
        let at = tracker.object_for_primary_key("LastSynced", "Dog").ok().flatten().and_then(|o| o.get("timestamp"));
        if at.and_then(|v| v.as_int()) > Some(after) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
