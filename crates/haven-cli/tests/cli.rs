//! The `haven` binary as a user runs it.

use std::process::Command;

mod common;

fn haven(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_haven")).args(args).output().unwrap()
}

#[test]
fn demo_converges_two_devices_through_a_server() {
    let out = haven(&["demo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for expected in [
        "server: haven listening on ws://127.0.0.1:",
        "phone (offline)  sees: Rexy (4), Ace (6), Bo (2)",
        "laptop (offline) sees: Rex (5), Ace (7)",
        "phone            sees: Rexy (6), Ace (7)",
        "laptop           sees: Rexy (6), Ace (7)",
        "converged: yes",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn demo_walks_through_a_client_reset_in_each_mode() {
    let out = haven(&["demo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let reset = &text[text.find("== client reset").expect("the reset part")..];
    let sections: Vec<&str> = reset.split("\n-- ").skip(1).collect();
    let expected = [
        (
            "Manual",
            "recovery::by_field from the backup: 2 change(s) recovered, 1 dropped; Set Dog[1].age: OlderThanServer",
            "Rex (6), Bo (0)",
        ),
        ("DiscardUnsynced", "0 change(s) recovered, 3 dropped", "Rex (6), Ace (5)"),
        (
            "RecoverUnsynced (LatestWins)",
            "2 change(s) recovered, 1 dropped; Set Dog[1].age: OlderThanServer",
            "Rex (6), Bo (0)",
        ),
        ("RecoverUnsynced (ClientWins)", "3 change(s) recovered, 0 dropped", "Rex (4), Bo (0)"),
        ("RecoverOrDiscard", "fallback: recovery was not possible", "Rex (6), Ace (5)"),
    ];
    assert_eq!(sections.len(), expected.len(), "{reset}");
    for (section, (title, report, dogs)) in sections.iter().zip(expected) {
        assert!(section.starts_with(title), "{section}");
        assert!(section.contains(report), "{title}: missing {report:?} in:\n{section}");
        assert!(section.contains(&format!("laptop           sees: {dogs}")), "{title}: {section}");
        assert!(section.contains("converged: yes"), "{section}");
    }
}

/// Starts `haven serve` on `listen` (with `admin_token`, if any);
/// returns the child, with its stderr piped, and its address.
fn serve(listen: &str, data_dir: &std::path::Path, admin_token: Option<&str>) -> (std::process::Child, String) {
    let data_dir = data_dir.to_str().unwrap();
    let env: Vec<_> = admin_token.map(|token| ("HAVEN_ADMIN_TOKEN", token)).into_iter().collect();
    common::serve(&["--listen", listen, "--data-dir", data_dir], &env, std::process::Stdio::piped())
}

#[test]
fn serve_prints_its_address_and_serves_health() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve("127.0.0.1:0", dir.path(), None);
    let mut http = std::net::TcpStream::connect(&addr).unwrap();
    http.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    http.read_to_string(&mut response).unwrap();
    assert!(response.ends_with("ok\n"), "{response}");
    // SIGTERM: a graceful stop.
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(child.wait().unwrap().success());
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(stderr.contains("dev mode"), "{stderr}");
}

#[test]
fn serve_refuses_dev_mode_off_loopback() {
    let out = haven(&["serve", "--listen", "0.0.0.0:0", "--data-dir", "/nonexistent-haven-test"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("give --jwt-secret"));
    assert!(!std::path::Path::new("/nonexistent-haven-test").exists(), "nothing was created");
}

#[test]
fn demo_local_writes_queries_and_listens() {
    let out = haven(&["demo", "--local"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for expected in [
        "wrote 3 dogs and 2 people in one transaction",
        "listener: young dogs changed: inserted [3, 1]",
        "deleted [3]",
        "plan: index Dog.lastUpdated (1 range)",
        "plan: primary key Dog._id (1 range)",
        "query error at column 7",
        "\"name\":\"Ann\"",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn bench_prints_one_json_object_per_workload() {
    let out = haven(&[
        "bench",
        "local",
        "--quick",
        "--json",
        "--repeats",
        "1",
        "--only",
        "single_commits",
        "--only",
        "pk_lookup",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        rows.iter().map(|r| r["workload"].as_str().unwrap()).collect::<Vec<_>>(),
        ["single_commits", "pk_lookup"]
    );
    for r in &rows {
        let (h, s, ratio) =
            (r["haven_ms"].as_f64().unwrap(), r["sqlite_ms"].as_f64().unwrap(), r["ratio"].as_f64().unwrap());
        assert!(h > 0.0 && s > 0.0 && (ratio - h / s).abs() < 1e-9, "{r}");
    }
}

#[test]
fn bench_reset_compares_a_reset_with_a_plain_download() {
    let out = haven(&["bench", "reset", "--quick", "--json", "--repeats", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.iter().map(|r| r["workload"].as_str().unwrap()).collect::<Vec<_>>(), ["initial_download", "reset"]);
    let (download, reset) = (&rows[0], &rows[1]);
    assert_eq!(reset["sqlite_ms"], download["haven_ms"], "the reset's baseline is the plain download");
    let ratio = reset["haven_ms"].as_f64().unwrap() / download["haven_ms"].as_f64().unwrap();
    assert!((reset["ratio"].as_f64().unwrap() - ratio).abs() < 1e-9, "{reset}");
    assert!(reset["haven_peak_mib"].as_f64().unwrap() > 0.0, "{reset}");
    assert!(reset["note"].as_str().unwrap().contains("2000 unsynced changes recovered"), "{reset}");
}

#[test]
fn bench_refuses_an_unknown_workload() {
    let out = haven(&["bench", "local", "--only", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown workload 'nope'"));
}

#[test]
fn a_server_killed_with_sigkill_keeps_what_it_acknowledged() {
    use haven::{Config, Database, Schema, SyncConfig, UpdateMode};
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let schema = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int"}}]"#).unwrap();
    let config = |name: &str, addr: &str| {
        let sync = SyncConfig::new(format!("ws://{addr}"), "dev", "p")
            .reconnect_delays(Duration::from_millis(10), Duration::from_millis(100));
        Config::new(dir.path().join(name)).schema(schema.clone()).sync(sync)
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (mut server, addr) = serve("127.0.0.1:0", &dir.path().join("data"), None);
        let writer = Database::open_synced(config("writer.haven", &addr)).await.unwrap();
        // One changeset per dog, written while the server is killed.
        for id in 0..200 {
            writer.write(|tx| tx.create("Dog", serde_json::json!({"_id": id}), UpdateMode::Never)).unwrap();
            if id == 120 {
                server.kill().unwrap(); // SIGKILL
                server.wait().unwrap();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let session = writer.sync_session().unwrap();
        session.pause();
        let acknowledged = session.progress().uploaded;
        assert!(acknowledged > 0, "some writes were acknowledged before the kill");

        let (mut server, _) = serve(&addr, &dir.path().join("data"), None);
        let reader = Database::open_synced(config("reader.haven", &addr)).await.unwrap();
        for id in 0..acknowledged as i64 {
            assert!(reader.object_for_primary_key("Dog", id).unwrap().is_some(), "acknowledged dog {id} survived");
        }
        // The writer uploads the rest once it reconnects.
        session.resume();
        tokio::time::timeout(Duration::from_secs(60), session.upload_all_local_changes()).await.unwrap().unwrap();
        let reader_session = reader.sync_session().unwrap();
        reader_session.download_all_server_changes().await.unwrap();
        assert_eq!(reader.objects("Dog").unwrap().len().unwrap(), 200);
        server.kill().unwrap();
        server.wait().unwrap();
    });
}

#[test]
fn bench_sync_reports_latencies_and_memory_per_connection() {
    let out = haven(&[
        "bench",
        "sync",
        "--quick",
        "--json",
        "--repeats",
        "1",
        "--only",
        "fan_out",
        "--only",
        "idle_connections",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows[0]["workload"], "fan_out");
    assert!(rows[0]["p50_ms"].as_f64().unwrap() <= rows[0]["p99_ms"].as_f64().unwrap());
    assert_eq!(rows[1]["workload"], "idle_connections");
    assert!(rows[1]["kib_per_connection"].as_f64().is_some());
    assert!(rows.iter().all(|r| r["ratio"].as_f64().unwrap() > 0.0));
}

#[test]
fn admin_operates_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve("127.0.0.1:0", dir.path(), Some("t0ken"));
    let server = format!("http://{addr}");
    let admin = |token: &str, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_haven"))
            .args(["admin", "--server", &server, "--admin-token", token])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stdout, _) = admin("t0ken", &["partitions"]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout).unwrap(), serde_json::json!({"partitions": []}));
    let (ok, stdout, _) = admin("t0ken", &["recovery", "my partition", "--allowed", "false"]);
    assert!(ok, "{stdout}");
    assert!(stdout.contains("\"recovery_allowed\": false") && stdout.contains("my partition"), "{stdout}");
    let (ok, _, stderr) = admin("t0ken", &["reset-client", "999"]);
    assert!(!ok && stderr.contains("404") && stderr.contains("no client 999"), "{stderr}");
    let schema = dir.path().join("schema.json");
    let dog =
        |age: &str| format!(r#"[{{"name":"Dog","primaryKey":"_id","properties":{{"_id":"int","age":"{age}"}}}}]"#);
    std::fs::write(&schema, dog("int?")).unwrap();
    let (ok, stdout, stderr) = admin("t0ken", &["schema", schema.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("\"breaking\": []"), "{stdout}");
    std::fs::write(&schema, dog("string?")).unwrap();
    let (ok, stdout, _) = admin("t0ken", &["schema", schema.to_str().unwrap()]);
    assert!(ok && stdout.contains("Dog.age: int? becomes string?"), "{stdout}");
    std::fs::write(&schema, "[{").unwrap();
    let (ok, _, stderr) = admin("t0ken", &["schema", schema.to_str().unwrap()]);
    assert!(!ok && stderr.contains("400"), "{stderr}");
    let (ok, _, stderr) = admin("wrong", &["partitions"]);
    assert!(!ok && stderr.contains("401") && stderr.contains("wrong admin token"), "{stderr}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn inspect_shows_schema_counts_and_sync_state() {
    let dir = tempfile::tempdir().unwrap();
    let out = haven(&["demo", "--path", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let phone = dir.path().join("phone.haven");
    let before = std::fs::read(&phone).unwrap();
    let out = haven(&["inspect", phone.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Dog (2 objects; primary key _id): _id int, name string, age int"), "{text}");
    assert!(text.contains("0 pending"), "{text}");
    let out = haven(&["inspect", "--json", phone.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["types"][0]["objects"], 2);
    assert_eq!(report["sync"]["pending_changesets"], 0);
    assert!(report["sync"]["file_ident"].as_u64().is_some());
    assert!(std::fs::read(&phone).unwrap() == before, "inspecting changes nothing");
    // The demo's manual reset left a backup beside phone-0.haven, with the
    // changes the server never had and the reset it was moved aside for.
    let out = haven(&["inspect", dir.path().join("phone-0.haven").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    let backup = text.split("backup from an earlier client reset: ").nth(1).expect("a backup").trim();
    let out = haven(&["inspect", "--json", backup]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["sync"]["pending_changes"],
        serde_json::json!({"create": 1, "set": 1, "increment": 0, "delete": 1})
    );
    assert_eq!(report["client_reset"]["reason"], "OperatorReset");
    let text = String::from_utf8_lossy(&haven(&["inspect", backup]).stdout).into_owned();
    assert!(text.contains("unsynced changes: 1 create, 1 set, 0 increment, 1 delete"), "{text}");
    assert!(text.contains("client reset (OperatorReset): not finished"), "{text}");
    let out = haven(&["inspect", dir.path().join("nope.haven").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn inspect_shows_a_file_whose_process_was_killed_without_writing_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.haven");
    let killed = dir.path().join("killed.haven");
    {
        let schema = haven::Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int"}}]"#);
        let db = haven::Database::open(haven::Config::new(&path).schema(schema.unwrap())).unwrap();
        db.write(|tx| tx.create("Dog", serde_json::json!({"_id": 1}), haven::UpdateMode::Never).map(|_| ())).unwrap();
        // Copied while open for writing: what a killed process leaves.
        std::fs::copy(&path, &killed).unwrap();
    }
    let before = std::fs::read(&killed).unwrap();
    let out = haven(&["inspect", killed.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("not closed cleanly") && text.contains("repaired temporary copy"), "{text}");
    assert!(text.contains("Dog (1 objects"), "{text}");
    let out = haven(&["inspect", "--json", killed.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&report["closed_cleanly"], &report["types"][0]["objects"]),
        (&serde_json::json!(false), &serde_json::json!(1))
    );
    assert!(std::fs::read(&killed).unwrap() == before, "inspecting changes nothing");
    let out = haven(&["inspect", "--json", path.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["closed_cleanly"], true);
}

#[test]
fn bench_soak_reports_and_finds_every_write_on_the_server() {
    let out = haven(&["bench", "soak", "--clients", "20", "--duration", "3s", "--interval", "100ms", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let writes = report["writes"].as_u64().unwrap();
    assert!(writes >= 20, "{report}");
    assert_eq!(report["on_server"].as_u64(), Some(writes), "{report}");
    assert_eq!(report["lost"], 0);
    assert!(report["ack_p99_ms"].as_f64().unwrap() >= report["ack_p50_ms"].as_f64().unwrap());
    assert!(report["server_rss_mib"].as_array().unwrap().len() >= 2, "{report}");
    let bad = haven(&["bench", "soak", "--duration", "0s"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("more than 0"), "{}", String::from_utf8_lossy(&bad.stderr));
}
