//! A process killed in the middle of writing loses nothing that was
//! committed and leaves nothing half-written.
//!
//! The test runs itself as a child process that commits transactions in a
//! loop and reports each one that returned; the parent kills it (SIGKILL)
//! at a random moment, reopens the file and checks the invariants. Rounds:
//! `HAVEN_CRASH_ROUNDS` (default 25).

mod common;

use haven_store::{Config, Database, UpdateMode, Value};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const DOGS_PER_COMMIT: i64 = 40;
const CHILD_ENV: &str = "HAVEN_CRASH_CHILD_PATH";

/// The child: commit transaction `i` = progress `i` plus 40 new dogs with
/// `lastUpdated = i`, and every third one also rewrites older dogs.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let db = Database::open(Config::new(&path).schema(common::schema())).unwrap();
    let mut i = progress(&db).map_or(0, |p| p + 1);
    loop {
        db.write(|tx| {
            tx.create("Person", json!({"_id": "progress", "name": i.to_string()}), UpdateMode::Modified)?;
            for d in 0..DOGS_PER_COMMIT {
                let id = i * DOGS_PER_COMMIT + d;
                tx.create(
                    "Dog",
                    json!({"_id": id, "name": format!("dog {id}"), "lastUpdated": i, "tags": ["a", "b"]}),
                    UpdateMode::Never,
                )?;
            }
            if i % 3 == 0 {
                for id in 0..i * DOGS_PER_COMMIT {
                    tx.increment("Dog", id, "lastUpdated", 0)?;
                    tx.set("Dog", id, "age", i)?;
                }
            }
            Ok(())
        })
        .unwrap();
        println!("committed {i}");
        i += 1;
    }
}

fn progress(db: &Database) -> Option<i64> {
    let p = db.object_for_primary_key("Person", "progress").unwrap()?;
    Some(p.get("name").unwrap().as_str().unwrap().parse().unwrap())
}

#[test]
fn killed_writers_lose_nothing_committed() {
    let rounds: usize = std::env::var("HAVEN_CRASH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(25);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.haven");
    let mut seed = 0x5eed_u64;
    let mut commits = 0;
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--nocapture", "--test-threads", "1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(30 + (seed >> 33) % 250));
        child.kill().unwrap();
        child.wait().unwrap();
        let reported: Vec<i64> = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("committed ").map(|n| n.parse().unwrap()))
            .collect();

        let db = Database::open(Config::new(&path).schema(common::schema())).unwrap();
        let Some(p) = progress(&db) else {
            assert!(reported.is_empty(), "round {round}: commits reported but none found");
            continue;
        };
        if let Some(last) = reported.last() {
            assert!(p >= *last, "round {round}: commit {last} returned but the file only has {p}");
        }
        // Nothing half-applied: exactly the dogs of commits 0..=p, each
        // commit's dogs all there, and the index agrees with the objects.
        let dogs = db.objects("Dog").unwrap();
        assert_eq!(dogs.len().unwrap() as i64, (p + 1) * DOGS_PER_COMMIT, "round {round}");
        for i in [0, p / 2, p] {
            let by_index = dogs.filtered("lastUpdated == $0", &[Value::Int(i)]).unwrap();
            assert!(by_index.explain().unwrap().starts_with("index"));
            assert_eq!(by_index.len().unwrap() as i64, DOGS_PER_COMMIT, "round {round}, commit {i}");
        }
        let last_rewrite = p - p % 3;
        let stale = dogs
            .filtered("_id < $0 AND age != $1", &[Value::Int(last_rewrite * DOGS_PER_COMMIT), Value::Int(last_rewrite)])
            .unwrap();
        assert_eq!(stale.len().unwrap(), 0, "round {round}: rewrite of commit {last_rewrite} half-applied");
        commits = p + 1;
        drop(db);
    }
    eprintln!("{rounds} kills survived; {commits} commits checked");
}
