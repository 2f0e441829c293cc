//! Two devices syncing through a server started in this process.
//! `cargo run -p haven --example sync`. Against a real server, start
//! `haven serve` and use the URL it prints instead.

use haven::{Config, Database, Schema, SyncConfig, UpdateMode};
use haven_server::{Authenticator, EmbeddedStorage, Server};
use serde_json::json;
use std::sync::Arc;

const SCHEMA: &str =
    r#"[{"name":"Task","primaryKey":"_id","properties":{"_id":"int","title":"string","done":"bool"}}]"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let storage = Arc::new(EmbeddedStorage::open(&dir.path().join("server"))?);
    let server = Server::start(storage, Authenticator::Dev, "127.0.0.1:0".parse()?).await?;

    let open = |name: &str| {
        let sync = SyncConfig::new(server.url(), "dev", "team-tasks").on_error(|e| eprintln!("sync error: {e}"));
        Database::open_synced(Config::new(dir.path().join(name)).schema(Schema::from_json(SCHEMA).unwrap()).sync(sync))
    };
    let alice = open("alice.haven").await?;
    let bob = open("bob.haven").await?;

    alice.write(|tx| tx.create("Task", json!({"_id": 1, "title": "Write docs", "done": false}), UpdateMode::Never))?;
    alice.sync_session().expect("synced").upload_all_local_changes().await?;
    bob.sync_session().expect("synced").download_all_server_changes().await?;
    println!("bob sees: {}", bob.objects("Task")?.to_json()?);

    bob.write(|tx| tx.set("Task", 1, "done", true))?;
    bob.sync_session().expect("synced").upload_all_local_changes().await?;
    alice.sync_session().expect("synced").download_all_server_changes().await?;
    println!("alice sees: {}", alice.objects("Task")?.to_json()?);
    server.shutdown().await;
    Ok(())
}
