//! Several `haven serve --postgres` processes on one PostgreSQL serve one
//! partition as one system: writes reach devices bound to the other
//! process at once, an operator's reset made through one process reaches
//! a device bound to the other, devices converge, and the data is
//! readable in PostgreSQL; a process killed mid-integration loses nothing
//! and its devices move to another. Needs `HAVEN_TEST_POSTGRES_URL` (required when
//! `CI=true`; skipped, and said so, otherwise).

use haven::{Config, Database, Schema, SyncConfig, UpdateMode};
use haven_server::Storage;
use haven_testkit::{dogs, synced};
use std::process::Stdio;
use std::time::Duration;

mod common;

const SCHEMA: &str = r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string","age":"int?"}}]"#;

fn open(dir: &std::path::Path, name: &str, addr: &str) -> Config {
    let sync = SyncConfig::new(format!("ws://{addr}"), "dev", "p")
        .reconnect_delays(Duration::from_millis(20), Duration::from_millis(200));
    Config::new(dir.join(name)).schema(Schema::from_json(SCHEMA).unwrap()).sync(sync)
}

#[test]
fn two_server_processes_on_one_postgres_serve_one_partition() {
    // The scratch schema (migrated, and dropped at the end) the servers share.
    let Some(scratch) = haven_testkit::test_postgres() else { return };
    let url = std::env::var("HAVEN_TEST_POSTGRES_URL").unwrap();
    let schema = scratch.scratch_schema().unwrap().to_owned();
    let args = ["--listen", "127.0.0.1:0", "--postgres", &url, "--postgres-schema", &schema];
    let (mut one, addr_one) = common::serve(&args, &[("HAVEN_ADMIN_TOKEN", "t0ken")], Stdio::piped());
    let (mut two, addr_two) = common::serve(&args, &[("HAVEN_ADMIN_TOKEN", "t0ken")], Stdio::piped());
    let dir = tempfile::tempdir().unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let a = Database::open_synced(open(dir.path(), "a.haven", &addr_one)).await.unwrap();
        let b = Database::open_synced(open(dir.path(), "b.haven", &addr_two)).await.unwrap();

        // A write through process one reaches B, bound to process two, with
        // no request from B: the servers tell each other.
        let (tx, rx) = std::sync::mpsc::channel();
        let _token = b.objects("Dog").unwrap().add_listener(move |c| {
            let _ = tx.send(c.insertions.clone());
        });
        b.wait_for_listeners();
        a.write(|tx| tx.create("Dog", serde_json::json!({"_id": 1, "name": "Rex", "age": 1}), UpdateMode::Never))
            .unwrap();
        let heard = rx.recv_timeout(Duration::from_secs(20)).expect("B heard A's write");
        assert_eq!(heard, vec![haven::Value::from(1)]);

        // Concurrent offline edits through both processes converge.
        a.sync_session().unwrap().pause();
        b.sync_session().unwrap().pause();
        a.write(|tx| tx.increment("Dog", 1, "age", 10)).unwrap();
        b.write(|tx| tx.increment("Dog", 1, "age", 5)).unwrap();
        b.write(|tx| tx.create("Dog", serde_json::json!({"_id": 2, "name": "Ace"}), UpdateMode::Never)).unwrap();
        a.sync_session().unwrap().resume();
        b.sync_session().unwrap().resume();
        for db in [&a, &b, &a] {
            synced(db).await;
        }
        assert_eq!(dogs(&a), dogs(&b));
        assert_eq!(dogs(&a)[0]["age"], 16, "both increments count, whichever process took them");

        // An operator's reset through process one reaches B on process two.
        let (b_ident, _) = b.sync_position().unwrap().file_ident.unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_haven"))
            .args(["admin", "--server", &format!("http://{addr_one}"), "--admin-token", "t0ken", "reset-client"])
            .arg(b_ident.to_string())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        tokio::time::timeout(Duration::from_secs(30), async {
            while b.sync_position().unwrap().file_ident.map(|(ident, _)| ident) == Some(b_ident) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("B was reset while bound to the other process");
        synced(&b).await;
        assert_eq!(dogs(&a), dogs(&b));
    });

    // What the apps wrote, readable in PostgreSQL.
    let rows = psql(&url, &format!("SELECT doc::text FROM {schema}.haven_objects WHERE type = 'Dog' ORDER BY key"));
    assert_eq!(rows.len(), 2, "{rows:?}");
    let rex: serde_json::Value = serde_json::from_str(&rows[0]).unwrap();
    assert_eq!(rex, serde_json::json!({"_id": 1, "name": "Rex", "age": 16}));
    for server in [&mut one, &mut two] {
        server.kill().unwrap();
        server.wait().unwrap();
    }
    drop(scratch);
}

/// A server process killed (SIGKILL) in the middle of integrating a large
/// upload (held inside its transaction by a lock the test takes): what it
/// acknowledged before is kept, nothing of the interrupted upload is left
/// half-written, and the device, behind a failover proxy, moves to the
/// other process and finishes its upload there, counted once.
#[test]
fn a_server_killed_mid_integration_loses_nothing_and_its_devices_move_on() {
    let Some(scratch) = haven_testkit::test_postgres() else { return };
    let url = std::env::var("HAVEN_TEST_POSTGRES_URL").unwrap();
    let schema = scratch.scratch_schema().unwrap().to_owned();
    let args = ["--listen", "127.0.0.1:0", "--postgres", &url, "--postgres-schema", &schema];
    let (mut one, addr_one) = common::serve(&args, &[], Stdio::piped());
    let (mut two, addr_two) = common::serve(&args, &[], Stdio::piped());
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let balancer = haven_testkit::Proxy::failover(vec![addr_one.parse().unwrap(), addr_two.parse().unwrap()]).await;
        let a = Database::open_synced(open(dir.path(), "a.haven", &balancer.addr().to_string())).await.unwrap();
        let b = Database::open_synced(open(dir.path(), "b.haven", &addr_two)).await.unwrap();
        a.write(|tx| tx.create("Dog", serde_json::json!({"_id": 0, "name": "Rex", "age": 1}), UpdateMode::Never))
            .unwrap();
        synced(&a).await;
        let acknowledged = scratch.version("p").unwrap();

        // Offline: an increment and many new objects in one changeset,
        // integrated in one
        // transaction by process one (the first the balancer reaches).
        a.sync_session().unwrap().pause();
        a.write(|tx| {
            tx.increment("Dog", 0, "age", 7)?;
            for id in 1..=BIG {
                tx.create("Dog", serde_json::json!({"_id": id, "name": format!("dog {id}")}), UpdateMode::Never)?;
            }
            Ok(())
        })
        .unwrap();
        // The test holds a lock that lets the integration read and lock the
        // objects but not write them: process one is killed while it waits,
        // inside its transaction, before anything could commit.
        let locker = connect(&url).await;
        locker.batch_execute(&format!("BEGIN; LOCK TABLE {schema}.haven_objects IN SHARE MODE")).await.unwrap();
        a.sync_session().unwrap().resume();
        let watcher = connect(&url).await;
        let waiting = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'haven-server pid {}' \
             AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO haven_objects%'",
            one.id()
        );
        tokio::time::timeout(Duration::from_secs(60), async {
            while watcher.query_one(&waiting, &[]).await.unwrap().get::<_, i64>(0) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("process one is integrating the upload");
        balancer.set(|f| f.refuse = true);
        one.kill().unwrap();
        one.wait().unwrap();
        balancer.cut_all();
        locker.batch_execute("ROLLBACK").await.unwrap();
        // PostgreSQL rolls the killed transaction back once it sees the
        // connection gone; the partition's lock is free when it has.
        let free = format!("SELECT version::text FROM {schema}.haven_partitions WHERE partition = 'p' FOR UPDATE");
        assert_eq!(query(&url, &free).await, vec![acknowledged.to_string()], "no version of the upload was left");
        assert_eq!(scratch.history("p", 0, usize::MAX).unwrap().len() as u64, acknowledged);
        let rows = format!("SELECT count(*)::text FROM {schema}.haven_objects");
        assert_eq!(query(&url, &rows).await, vec!["1"], "none of the upload's objects was left");

        // The device moves to process two and finishes there.
        balancer.set(|f| f.refuse = false);
        synced(&a).await;
        synced(&b).await;
        assert!(a.pending_changes().unwrap().is_empty());
        assert_eq!(dogs(&a).len() as i64, BIG + 1);
        assert_eq!(dogs(&a), dogs(&b));
        assert_eq!(dogs(&a)[0]["age"], 8, "the increment counted once");
        let folded = haven_testkit::fold_history(&scratch, "p");
        assert_eq!(folded.len() as i64, BIG + 1, "the server's history holds every write once");
        let versions: Vec<u64> =
            scratch.history("p", 0, usize::MAX).unwrap().iter().map(|h| h.server_version).collect();
        assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>(), "no gap in the versions");
    });
    two.kill().unwrap();
    two.wait().unwrap();
    drop(scratch);
}

/// Objects the killed-server test uploads in one changeset (integrated in
/// one transaction).
const BIG: i64 = 5_000;

/// A PostgreSQL connection of the test's own.
async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// One column of a query's rows.
async fn query(url: &str, sql: &str) -> Vec<String> {
    connect(url).await.query(sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
}

/// [`query`], from outside a runtime.
fn psql(url: &str, sql: &str) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(query(url, sql))
}

#[test]
fn bench_sync_runs_on_postgres_with_a_cross_process_fan_out() {
    // Only to know whether to run: the bench makes its own scratch schema.
    let Some(scratch) = haven_testkit::test_postgres() else { return };
    drop(scratch);
    let url = std::env::var("HAVEN_TEST_POSTGRES_URL").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_haven"))
        .args(["bench", "sync", "--quick", "--json", "--repeats", "1", "--postgres", &url])
        .args(["--only", "fan_out", "--only", "cross_process_fan_out"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        rows.iter().map(|r| r["workload"].as_str().unwrap()).collect::<Vec<_>>(),
        ["fan_out", "cross_process_fan_out"]
    );
    assert!(rows[1]["p99_ms"].as_f64().unwrap() > 0.0, "{}", rows[1]);
}
