//! The `haven` binary as a user runs it.

use std::process::Command;

fn haven(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_haven")).args(args).output().unwrap()
}

#[test]
fn demo_writes_queries_and_listens() {
    let out = haven(&["demo"]);
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
fn bench_refuses_an_unknown_workload() {
    let out = haven(&["bench", "local", "--only", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown workload 'nope'"));
}
