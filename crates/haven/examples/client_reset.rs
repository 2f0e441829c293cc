//! The recovery of `examples/manual_client_reset.rs`, done by Haven: with
//! `ClientResetMode::RecoverUnsynced` (the default) a reset recovers every
//! unsynced change in the background and reports what it did. No
//! `lastUpdated` field, no second database, no handler to write.
//! `cargo run -p haven --example client_reset`.

use haven::{ClientResetMode, Config, Database, RecoveryPolicy, Schema, SyncConfig, UpdateMode};
use haven_server::{Authenticator, EmbeddedStorage, Server};
use serde_json::json;
use std::sync::Arc;

const DOG: &str = r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string","age":"int?"}}]"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let storage = Arc::new(EmbeddedStorage::open(&dir.path().join("server"))?);
    let server = Server::start(storage, Authenticator::Dev, "127.0.0.1:0".parse()?).await?;
    let open = |name: &str| {
        let sync = SyncConfig::new(server.url(), "dev", "dogs").client_reset(ClientResetMode::RecoverUnsynced {
            policy: RecoveryPolicy::LatestWins,
            before: None,
            after: Some(Box::new(|_before, _after, report| {
                println!("client reset: {report}");
                Ok(())
            })),
        });
        Database::open_synced(Config::new(dir.path().join(name)).schema(Schema::from_json(DOG).unwrap()).sync(sync))
    };
    let db = open("dogs.haven").await?;
    db.write(|tx| {
        tx.create("Dog", json!({"_id": 1, "name": "Rex", "age": 1}), UpdateMode::Never)?;
        tx.create("Dog", json!({"_id": 2, "name": "Ace", "age": 2}), UpdateMode::Never)
    })?;
    let session = db.sync_session().expect("synced");
    session.upload_all_local_changes().await?;

    // Offline: update Rex, add Bo, delete Ace. Then the server resets the device.
    session.pause();
    db.write(|tx| {
        tx.set("Dog", 1, "age", 4)?;
        tx.create("Dog", json!({"_id": 3, "name": "Bo", "age": 0}), UpdateMode::Never)?;
        tx.delete("Dog", 2).map(|_| ())
    })?;
    let (ident, _) = db.sync_position()?.file_ident.expect("bound");
    server.reset_client(ident).await?;

    // Back online: the reset and its recovery happen in the background.
    session.resume();
    session.upload_all_local_changes().await?;
    session.download_all_server_changes().await?;

    let other = open("check.haven").await?;
    let dogs = other.objects("Dog")?.sorted("_id", true)?.to_json()?;
    println!("the server has: {dogs}");
    assert_eq!(dogs, json!([{"_id": 1, "name": "Rex", "age": 4}, {"_id": 3, "name": "Bo", "age": 0}]));
    server.shutdown().await;
    Ok(())
}
