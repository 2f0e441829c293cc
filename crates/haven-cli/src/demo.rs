//! `haven demo`: a server and two devices in one process. Both edit the
//! same dogs offline, reconnect, and converge by the merge rule; then a
//! client reset in each mode (`demo_reset.rs`).

use haven::{Config, Database, Schema, SyncConfig, UpdateMode};
use haven_server::{Authenticator, EmbeddedStorage, Server};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub(crate) const SCHEMA: &str =
    r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string","age":"int"}}]"#;

pub(crate) type DemoResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

pub fn run(path: Option<PathBuf>) -> DemoResult {
    let tmp = tempfile::tempdir()?;
    let dir = path.unwrap_or_else(|| tmp.path().to_path_buf());
    tokio::runtime::Runtime::new()?.block_on(demo(&dir))
}

async fn demo(dir: &Path) -> DemoResult {
    let storage = Arc::new(EmbeddedStorage::open(&dir.join("server"))?);
    let server = Server::start(storage, Authenticator::Dev, "127.0.0.1:0".parse()?).await?;
    println!("server: haven listening on {} (dev mode)", server.url());
    let phone = open(dir, "phone", &server.url()).await?;
    let laptop = open(dir, "laptop", &server.url()).await?;
    println!("phone and laptop opened, both syncing partition \"demo\"");

    let (tx, rx) = std::sync::mpsc::channel();
    let _token = laptop.objects("Dog")?.add_listener(move |changes| {
        let _ = tx.send(format!(
            "laptop listener: {} inserted, {} modified, {} deleted",
            changes.insertions.len(),
            changes.modifications.len(),
            changes.deletions.len()
        ));
    });
    phone.write(|tx| {
        tx.create("Dog", json!({"_id": 1, "name": "Rex", "age": 3}), UpdateMode::Never)?;
        tx.create("Dog", json!({"_id": 2, "name": "Ace", "age": 5}), UpdateMode::Never)?;
        tx.create("Dog", json!({"_id": 3, "name": "Bo", "age": 1}), UpdateMode::Never)
    })?;
    println!("phone created Rex (3), Ace (5) and Bo (1)");
    sync(&[&phone, &laptop]).await?;
    print_events(&laptop, &rx);
    show("laptop", &laptop)?;

    for db in [&phone, &laptop] {
        db.sync_session().ok_or("not synced")?.pause();
    }
    println!("\nboth go offline and edit the same dogs:");
    phone.write(|tx| {
        tx.set("Dog", 1, "name", "Rexy")?;
        tx.increment("Dog", 1, "age", 1)?;
        tx.set("Dog", 2, "age", 6)?;
        tx.set("Dog", 3, "age", 2)
    })?;
    println!("  phone:  renames Rex to Rexy, Rex's age +1, Ace's age = 6, Bo's age = 2");
    tokio::time::sleep(Duration::from_millis(10)).await;
    laptop.write(|tx| {
        tx.increment("Dog", 1, "age", 2)?;
        tx.set("Dog", 2, "age", 7)?;
        tx.delete("Dog", 3).map(drop)
    })?;
    println!("  laptop: Rex's age +2, Ace's age = 7 (a moment later), deletes Bo");
    print_events(&laptop, &rx);
    show("phone (offline)", &phone)?;
    show("laptop (offline)", &laptop)?;

    println!("\nboth reconnect");
    for db in [&phone, &laptop] {
        db.sync_session().ok_or("not synced")?.resume();
    }
    sync(&[&phone, &laptop, &phone]).await?;
    print_events(&laptop, &rx);
    show("phone", &phone)?;
    show("laptop", &laptop)?;
    println!("  Rex: the phone's name and both increments (3 + 1 + 2 = 6): fields merge one by one, increments add up");
    println!("  Ace: 7, the later of two concurrent writes");
    println!("  Bo:  gone, a delete wins over a concurrent edit");
    let converged = dogs(&phone)? == dogs(&laptop)?;
    println!("converged: {}", if converged { "yes, both hold the same data" } else { "NO" });
    let resets = crate::demo_reset::run(dir, &server).await;
    server.shutdown().await;
    resets?;
    if converged {
        Ok(())
    } else {
        Err("the devices did not converge".into())
    }
}

async fn open(dir: &Path, name: &str, url: &str) -> DemoResult<Database> {
    let sync = SyncConfig::new(url, "any token in dev mode", "demo")
        .reconnect_delays(Duration::from_millis(50), Duration::from_secs(1));
    let config = Config::new(dir.join(format!("{name}.haven"))).schema(Schema::from_json(SCHEMA)?).sync(sync);
    Ok(Database::open_synced(config).await?)
}

/// Uploads, then downloads, on each device in turn.
pub(crate) async fn sync(devices: &[&Database]) -> DemoResult {
    for db in devices {
        let session = db.sync_session().ok_or("not synced")?;
        let done = async {
            session.upload_all_local_changes().await?;
            session.download_all_server_changes().await
        };
        tokio::time::timeout(Duration::from_secs(30), done).await.map_err(|_| "sync took over 30 s")??;
    }
    Ok(())
}

pub(crate) fn dogs(db: &Database) -> DemoResult<Vec<serde_json::Value>> {
    Ok(db.objects("Dog")?.sorted("_id", true)?.iter()?.map(|o| o.to_json()).collect())
}

pub(crate) fn show(device: &str, db: &Database) -> DemoResult {
    let list: Vec<String> =
        dogs(db)?.iter().map(|d| format!("{} ({})", d["name"].as_str().unwrap_or("?"), d["age"])).collect();
    println!("  {device:<16} sees: {}", list.join(", "));
    Ok(())
}

fn print_events(db: &Database, rx: &std::sync::mpsc::Receiver<String>) {
    db.wait_for_listeners();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
        println!("  {line}");
    }
}
