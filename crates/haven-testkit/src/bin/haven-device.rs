//! A scripted Rust device, for tests that mix it with devices in other
//! languages (the Node.js binding's) on one `haven serve`.
//!
//! `haven-device URL PARTITION PATH LABEL FROM TO DEVICES`: opens PATH
//! synced to PARTITION as a dev-mode user, creates the Dogs `FROM..TO`
//! one commit each, renames the shared Dog 0 to LABEL, then creates its
//! marker Dog (`1_000_000 + FROM`). Each device writes its marker last, so
//! a device that holds DEVICES markers holds every device's writes. Then
//! it prints every Dog, by `_id`, as one JSON line and exits.

use haven::{Config, Database, Schema, SyncConfig, UpdateMode};
use serde_json::json;
use std::time::{Duration, Instant};

const SCHEMA: &str = r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string","age":"int?"}}]"#;
const MARKERS: i64 = 1_000_000;
const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, partition, path, label, from, to, devices] = args.as_slice() else {
        return Err("usage: haven-device URL PARTITION PATH LABEL FROM TO DEVICES".into());
    };
    let (from, to, devices): (i64, i64, usize) = (from.parse()?, to.parse()?, devices.parse()?);
    let sync =
        SyncConfig::new(url.as_str(), "anonymous", partition.as_str()).on_error(|e| eprintln!("sync error: {e}"));
    let db = Database::open_synced(Config::new(path).schema(Schema::from_json(SCHEMA)?).sync(sync)).await?;
    for id in from..to {
        db.write(|tx| tx.create("Dog", json!({"_id": id, "name": format!("dog {id}")}), UpdateMode::Never))?;
    }
    db.write(|tx| tx.create("Dog", json!({"_id": 0, "name": label}), UpdateMode::Modified))?;
    db.write(|tx| tx.create("Dog", json!({"_id": MARKERS + from, "name": "done"}), UpdateMode::Never))?;
    let session = db.sync_session().ok_or("the database does not sync")?;
    let started = Instant::now();
    session.upload_all_local_changes().await?;
    loop {
        session.download_all_server_changes().await?;
        if db.objects("Dog")?.filtered("_id >= $0", &[MARKERS.into()])?.len()? == devices {
            break;
        }
        if started.elapsed() > PATIENCE {
            return Err(format!("not every device's writes arrived within {PATIENCE:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("{}", db.objects("Dog")?.sorted("_id", true)?.to_json()?);
    Ok(())
}
