//! `haven serve` killed (SIGKILL) at random moments while a device writes
//! and syncs through it, then restarted: the server loses nothing it
//! acknowledged (the device drops acknowledged changes from its log, so a
//! lost one would be missing at the end), nothing is half-written, and
//! the device carries on. On the embedded store and on PostgreSQL.
//! Rounds: `HAVEN_CRASH_ROUNDS` (default 8); seed: `HAVEN_CRASH_SEED`.

use haven::{Config, Database, Schema, SyncConfig, Value};
use haven_server::{EmbeddedStorage, Storage};
use haven_testkit::{synced, write_counted};
use std::process::Stdio;
use std::time::Duration;

mod common;

const SCHEMA: &str = r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string","age":"int?"}}]"#;

fn rounds_and_seed() -> (usize, u64) {
    let rounds = std::env::var("HAVEN_CRASH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(8);
    let seed = std::env::var("HAVEN_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed);
    (rounds, seed)
}

/// Kills and restarts the server under a writing device, checks the end
/// state, and returns the kills and the transactions written.
fn run(server_args: &[&str], storage: impl Fn() -> Box<dyn Storage>) -> (usize, i64) {
    let (rounds, mut seed) = rounds_and_seed();
    eprintln!("seed {seed} (HAVEN_CRASH_SEED replays it)");
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = common::serve(&[&["--listen", "127.0.0.1:0"], server_args].concat(), &[], Stdio::null());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sync = SyncConfig::new(format!("ws://{addr}"), "dev", "p")
        .reconnect_delays(Duration::from_millis(5), Duration::from_millis(50));
    let config = Config::new(dir.path().join("device.haven")).schema(Schema::from_json(SCHEMA).unwrap()).sync(sync);
    let db = runtime.block_on(Database::open_synced(config)).unwrap();
    let mut i = 0;
    for _ in 0..rounds {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let writes = 20 + (seed >> 33) % 200;
        for _ in 0..writes {
            i += 1;
            write_counted(&db, i).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        server.kill().unwrap();
        server.wait().unwrap();
        // Offline for a moment, then the server is back on the same port.
        for _ in 0..5 {
            i += 1;
            write_counted(&db, i).unwrap();
        }
        server = common::serve(&[&["--listen", addr.as_str()], server_args].concat(), &[], Stdio::null()).0;
    }
    runtime.block_on(synced(&db));
    assert!(db.pending_changes().unwrap().is_empty());
    assert_eq!(db.object_for_primary_key("Dog", 0).unwrap().unwrap().get("age").unwrap(), Value::Int(i));
    server.kill().unwrap();
    server.wait().unwrap();
    let state = haven_testkit::fold_history(storage().as_ref(), "p");
    assert_eq!(state.len() as i64, i + 1, "every dog 0..={i} on the server");
    assert_eq!(state[&0]["age"], Value::Int(i), "every increment counted once");
    (rounds, i)
}

#[test]
fn a_killed_embedded_server_loses_nothing_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let data_arg = data.to_str().unwrap();
    let (kills, writes) = run(&["--data-dir", data_arg], || Box::new(EmbeddedStorage::open(&data).unwrap()));
    eprintln!("embedded: {kills} server kills survived, {writes} transactions checked; nothing lost");
}

#[test]
fn a_killed_postgres_server_loses_nothing_it_acknowledged() {
    let Some(scratch) = haven_testkit::test_postgres() else { return };
    let url = std::env::var("HAVEN_TEST_POSTGRES_URL").unwrap();
    let schema = scratch.scratch_schema().unwrap().to_owned();
    let (kills, writes) = run(&["--postgres", &url, "--postgres-schema", &schema], || {
        Box::new(haven_server::PostgresStorage::connect_in_schema(&url, Some(&schema)).unwrap())
    });
    eprintln!("PostgreSQL: {kills} server kills survived, {writes} transactions checked; nothing lost");
    drop(scratch);
}
