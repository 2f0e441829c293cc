//! Devices killed (SIGKILL) at random moments while they write, sync and
//! go through client resets lose nothing that was promised.
//!
//! The test runs itself as a child process: a synced device that commits
//! transactions in a loop (each creates Dog `i` and increments Dog 0's
//! `age`, so Dog 0's age counts the transactions) and uploads every few,
//! reporting each commit and each acknowledged upload. The parent kills
//! it at a seeded random moment, sometimes after an operator reset of its
//! file (so that the kill can land mid-reset), reopens the file and checks:
//! it opens; every commit that returned is there; nothing is half-applied
//! (the counter equals the transactions); the change log is consistent
//! with the sync position. After the last round the device syncs: the
//! server's history holds every write exactly once, whatever was cut.
//! Rounds: `HAVEN_CRASH_ROUNDS` (default 12); seed: `HAVEN_CRASH_SEED`.

use haven::{Config, Database, Schema, SyncConfig, Value};
use haven_server::{Authenticator, Server};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use haven_testkit::synced;

const SCHEMA: &str = r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string","age":"int?"}}]"#;
const CHILD_PATH: &str = "HAVEN_CRASH_SYNC_PATH";
const CHILD_URL: &str = "HAVEN_CRASH_SYNC_URL";

fn config(path: &std::path::Path, url: &str) -> Config {
    let sync = SyncConfig::new(url, "dev", "p")
        .reconnect_delays(Duration::from_millis(5), Duration::from_millis(50))
        .wait_for_download(false);
    Config::new(path).schema(Schema::from_json(SCHEMA).unwrap()).sync(sync)
}

/// The highest Dog created so far (0: none).
fn last_dog(db: &Database) -> i64 {
    let dogs = db.objects("Dog").unwrap().sorted("_id", false).unwrap();
    dogs.iter().unwrap().next().map_or(0, |d| d.primary_key().as_int().unwrap())
}

/// The child: write, upload every fifth, report; until killed.
#[test]
fn crash_sync_child() {
    let (Ok(path), Ok(url)) = (std::env::var(CHILD_PATH), std::env::var(CHILD_URL)) else { return };
    tokio::runtime::Runtime::new().unwrap().block_on(async move {
        let db = Database::open_synced(config(path.as_ref(), &url)).await.unwrap();
        let session = db.sync_session().unwrap();
        let mut i = last_dog(&db) + 1;
        loop {
            haven_testkit::write_counted(&db, i).unwrap();
            println!("committed {i}");
            if i % 5 == 0 && session.upload_all_local_changes().await.is_ok() {
                println!("acknowledged {i}");
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
}

/// What a killed child said it had done.
#[derive(Default)]
struct Reported {
    committed: Option<i64>,
    acknowledged: Option<i64>,
}

fn reported(child: &mut std::process::Child) -> Reported {
    let mut r = Reported::default();
    for line in BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok) {
        if let Some(n) = line.strip_prefix("committed ") {
            r.committed = Some(n.parse().unwrap());
        } else if let Some(n) = line.strip_prefix("acknowledged ") {
            r.acknowledged = Some(n.parse().unwrap());
        }
    }
    r
}

/// The invariants of a file a killed device left.
fn check_file(path: &std::path::Path, round: usize, committed: i64) {
    let db = Database::open(Config::new(path)).unwrap_or_else(|e| panic!("round {round}: the file opens: {e}"));
    let last = last_dog(&db);
    assert!(last >= committed, "round {round}: commit {committed} returned but the file ends at {last}");
    let dogs = db.objects("Dog").unwrap().len().unwrap() as i64;
    assert_eq!(dogs, last + 1, "round {round}: every dog 0..={last}, no gap");
    let counter = db.object_for_primary_key("Dog", 0).unwrap().map(|d| d.get("age").unwrap());
    assert_eq!(counter.unwrap_or(Value::Null), if last == 0 { Value::Null } else { Value::Int(last) }, "round {round}");
    let position = db.sync_position().unwrap();
    assert!(position.acknowledged <= position.last_client_version, "round {round}: {position:?}");
    let pending = db.pending_changes().unwrap();
    let versions: Vec<u64> = pending.iter().map(|cs| cs.client_version).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "round {round}: the log is in order");
    assert!(versions.iter().all(|v| *v > position.acknowledged), "round {round}: acknowledged changes left the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_syncing_devices_lose_nothing() {
    let rounds: usize = std::env::var("HAVEN_CRASH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(12);
    let mut seed: u64 = std::env::var("HAVEN_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed);
    eprintln!("seed {seed} (HAVEN_CRASH_SEED replays it)");
    let dir = tempfile::tempdir().unwrap();
    let storage = haven_testkit::test_storage(&dir.path().join("server"));
    let server = Server::start(storage.clone(), Authenticator::Dev, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let path = dir.path().join("device.haven");
    let (mut committed, mut acknowledged, mut resets) = (0, 0, 0);
    for round in 0..rounds {
        // Every third round starts with an operator reset of the file.
        if round % 3 == 2 {
            let ident = Database::open(Config::new(&path)).unwrap().sync_position().unwrap().file_ident;
            if let Some((ident, _)) = ident {
                server.reset_client(ident).await.unwrap();
                resets += 1;
            }
        }
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_sync_child", "--exact", "--nocapture", "--test-threads", "1"])
            .env(CHILD_PATH, &path)
            .env(CHILD_URL, server.url())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        tokio::time::sleep(Duration::from_millis(100 + (seed >> 33) % 500)).await;
        child.kill().unwrap();
        child.wait().unwrap();
        let r = reported(&mut child);
        committed = committed.max(r.committed.unwrap_or(0));
        acknowledged = acknowledged.max(r.acknowledged.unwrap_or(0));
        check_file(&path, round, committed);
        while Database::is_open(&path) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert!(committed > 0, "the children committed something");
    // Before the device syncs again: what the server acknowledged, it has.
    let before = haven_testkit::fold_history(storage.as_ref(), "p");
    if let Some(missing) = (1..=acknowledged).find(|i| !before.contains_key(i)) {
        panic!("Dog {missing} was acknowledged before a kill but the server lacks it");
    }

    // The device syncs: the server holds every write, once.
    let db = Database::open_synced(config(&path, &server.url())).await.unwrap();
    synced(&db).await;
    let server_state = haven_testkit::fold_history(storage.as_ref(), "p");
    let last = last_dog(&db);
    assert!(last >= committed);
    assert_eq!(server_state.len() as i64, last + 1, "every dog 0..={last} on the server");
    assert_eq!(server_state[&0]["age"], Value::Int(last), "every increment counted once");
    assert!(db.pending_changes().unwrap().is_empty());
    eprintln!(
        "{rounds} kills survived ({resets} after an operator reset); {last} transactions checked, \
         {acknowledged} acknowledged before a kill; nothing lost"
    );
    server.shutdown().await;
}
