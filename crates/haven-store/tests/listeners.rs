//! Change listeners on collections and objects.

mod common;

use common::open;
use haven_store::{CollectionChanges, Config, Database, ObjectChange, UpdateMode, Value};
use serde_json::json;
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

fn dog(id: i64, age: i64) -> serde_json::Value {
    json!({"_id": id, "name": format!("dog {id}"), "age": age, "lastUpdated": id})
}

/// Everything the listener heard so far (after the listener thread caught up).
fn heard<T>(db: &Database, rx: &Receiver<T>) -> Vec<T> {
    db.wait_for_listeners();
    rx.try_iter().collect()
}

fn collection_listener(db: &Database, query: &str) -> (haven_store::NotificationToken, Receiver<CollectionChanges>) {
    let (tx, rx) = channel();
    let token =
        db.objects("Dog").unwrap().filtered(query, &[]).unwrap().add_listener(move |c| tx.send(c.clone()).unwrap());
    db.wait_for_listeners();
    (token, rx)
}

#[test]
fn insertions_deletions_and_modifications_with_properties() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.write(|tx| tx.create("Dog", dog(1, 1), UpdateMode::Never)).unwrap();
    let (_token, rx) = collection_listener(&db, "age < 5");
    assert!(heard(&db, &rx).is_empty(), "no call before any commit");

    db.write(|tx| {
        tx.create("Dog", dog(2, 2), UpdateMode::Never)?;
        tx.create("Dog", dog(3, 9), UpdateMode::Never)
    })
    .unwrap();
    let events = heard(&db, &rx);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].insertions, vec![Value::Int(2)], "dog 3 is not young: not in the collection");
    assert!(events[0].deletions.is_empty() && events[0].modifications.is_empty());

    db.write(|tx| {
        tx.set("Dog", 1, "name", "Rex")?;
        tx.increment("Dog", 2, "age", 10)
    })
    .unwrap();
    let events = heard(&db, &rx);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].modifications, vec![Value::Int(1)]);
    assert_eq!(events[0].modified_properties, vec![vec!["name".to_string()]]);
    assert_eq!(events[0].deletions, vec![Value::Int(2)], "dog 2 grew out of the collection");

    db.write(|tx| tx.delete("Dog", 1)).unwrap();
    assert_eq!(heard(&db, &rx)[0].deletions, vec![Value::Int(1)]);
}

#[test]
fn no_call_for_commits_that_do_not_touch_the_collection() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let (_token, rx) = collection_listener(&db, "age < 5");
    db.write(|tx| tx.create("Dog", dog(3, 9), UpdateMode::Never)).unwrap();
    db.write(|tx| tx.create("Person", json!({"_id": "ann", "name": "Ann"}), UpdateMode::Never)).unwrap();
    db.write(|tx| tx.create("Dog", dog(3, 9), UpdateMode::Modified)).unwrap(); // writes nothing new
    db.write(|_| Ok(())).unwrap();
    let _ = db.write(|tx| {
        tx.create("Dog", dog(4, 1), UpdateMode::Never)?;
        Err::<(), _>(haven_store::Error::Storage("rolled back".into()))
    });
    assert!(heard(&db, &rx).is_empty(), "rolled-back or irrelevant commits must not call the listener");
}

#[test]
fn update_mode_all_reports_unchanged_values_as_modified() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.write(|tx| tx.create("Dog", dog(1, 1), UpdateMode::Never)).unwrap();
    let (_token, rx) = collection_listener(&db, "TRUEPREDICATE");
    db.write(|tx| tx.create("Dog", dog(1, 1), UpdateMode::Modified)).unwrap();
    assert!(heard(&db, &rx).is_empty());
    db.write(|tx| tx.create("Dog", json!({"_id": 1, "age": 1}), UpdateMode::All)).unwrap();
    let events = heard(&db, &rx);
    assert_eq!(events[0].modified_properties, vec![vec!["age".to_string()]]);
}

#[test]
fn dropping_the_token_unsubscribes() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let (token, rx) = collection_listener(&db, "TRUEPREDICATE");
    drop(token);
    db.write(|tx| tx.create("Dog", dog(1, 1), UpdateMode::Never)).unwrap();
    assert!(heard(&db, &rx).is_empty());
}

#[test]
fn object_listener() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.write(|tx| {
        tx.create("Dog", dog(1, 1), UpdateMode::Never)?;
        tx.create("Dog", dog(2, 1), UpdateMode::Never)
    })
    .unwrap();
    let (tx, rx) = channel();
    let _token =
        db.object_for_primary_key("Dog", 1).unwrap().unwrap().add_listener(move |c| tx.send(c.clone()).unwrap());
    db.wait_for_listeners();
    db.write(|tx| tx.set("Dog", 2, "age", 5)).unwrap();
    db.write(|tx| {
        tx.set("Dog", 1, "age", 5)?;
        tx.set("Dog", 1, "tags", vec!["x"])
    })
    .unwrap();
    db.write(|tx| tx.delete("Dog", 1)).unwrap();
    let events = heard(&db, &rx);
    assert_eq!(
        events,
        vec![ObjectChange::Modified { properties: vec!["age".into(), "tags".into()] }, ObjectChange::Deleted]
    );
}

/// Listeners hang on the one commit path, not on a handle: a commit made
/// through another handle of the same file (as the sync client will apply
/// downloads) reaches a listener registered on a read-only handle.
#[test]
fn commits_from_any_handle_reach_every_listener() {
    let dir = tempfile::tempdir().unwrap();
    let writer = open(dir.path());
    let reader = Database::open(Config::new(dir.path().join("test.haven")).read_only()).unwrap();
    let (tx, rx) = channel();
    let _token = reader.objects("Dog").unwrap().add_listener(move |c| tx.send(c.clone()).unwrap());
    reader.wait_for_listeners();
    let other_writer = Database::open(Config::new(dir.path().join("test.haven"))).unwrap();
    other_writer.write(|tx| tx.create("Dog", dog(1, 1), UpdateMode::Never)).unwrap();
    writer.write(|tx| tx.create("Dog", dog(2, 1), UpdateMode::Never)).unwrap();
    let events = heard(&reader, &rx);
    assert_eq!(
        events.iter().map(|e| e.insertions.clone()).collect::<Vec<_>>(),
        vec![vec![Value::Int(1)], vec![Value::Int(2)]]
    );
}

/// Listeners run on their own thread, after the commit: a listener that
/// reads the database sees the committed state, never a half-done write.
#[test]
fn listeners_run_off_the_writer_thread_and_see_committed_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let (tx, rx) = channel();
    let reader = db.clone();
    let writer_thread = std::thread::current().id();
    let _token = db.objects("Dog").unwrap().add_listener(move |c| {
        let count = reader.objects("Dog").unwrap().len().unwrap();
        tx.send((std::thread::current().id() != writer_thread, c.insertions.len(), count)).unwrap();
    });
    db.wait_for_listeners();
    db.write(|tx| {
        for i in 0..50 {
            tx.create("Dog", dog(i, 1), UpdateMode::Never)?;
        }
        Ok(())
    })
    .unwrap();
    let (other_thread, inserted, count) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(other_thread);
    assert_eq!((inserted, count), (50, 50));
}

#[test]
fn a_panicking_listener_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let _bad = db.objects("Dog").unwrap().add_listener(|_| panic!("listener bug"));
    let (_token, rx) = collection_listener(&db, "TRUEPREDICATE");
    db.write(|tx| tx.create("Dog", dog(1, 1), UpdateMode::Never)).unwrap();
    db.write(|tx| tx.create("Dog", dog(2, 1), UpdateMode::Never)).unwrap();
    assert_eq!(heard(&db, &rx).len(), 2);
}

#[test]
fn link_queries_hear_changes_of_linked_objects() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.write(|tx| {
        tx.create("Person", json!({"_id": "ann", "name": "Ann"}), UpdateMode::Never)?;
        tx.create("Dog", json!({"_id": 1, "name": "Rex", "lastUpdated": 1, "owner": "ann"}), UpdateMode::Never)
    })
    .unwrap();
    let (_token, rx) = collection_listener(&db, "owner.name == 'Ann'");
    db.write(|tx| tx.set("Person", "ann", "name", "Anna")).unwrap();
    assert_eq!(heard(&db, &rx)[0].deletions, vec![Value::Int(1)]);
}

#[test]
fn a_listener_may_write_and_wait() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let inner = db.clone();
    let _token = db.objects("Person").unwrap().add_listener(move |c| {
        inner.wait_for_listeners(); // returns at once on the listener thread
        for pk in &c.insertions {
            let id = pk.as_str().unwrap().len() as i64;
            inner.write(|tx| tx.create("Dog", dog(id, 1), UpdateMode::Modified)).unwrap();
        }
    });
    db.wait_for_listeners();
    db.write(|tx| tx.create("Person", json!({"_id": "ann", "name": "Ann"}), UpdateMode::Never)).unwrap();
    db.wait_for_listeners();
    db.wait_for_listeners();
    assert!(db.object_for_primary_key("Dog", 3).unwrap().is_some());
}

#[test]
fn dropping_the_token_waits_for_a_running_callback() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (started_tx, started) = channel();
    let done = finished.clone();
    let token = db.objects("Dog").unwrap().add_listener(move |_| {
        started_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    db.wait_for_listeners();
    db.write(|tx| tx.create("Dog", dog(1, 1), UpdateMode::Never)).unwrap();
    started.recv_timeout(Duration::from_secs(10)).unwrap();
    drop(token);
    assert!(finished.load(std::sync::atomic::Ordering::SeqCst), "drop returned while the callback was still running");
    db.write(|tx| tx.create("Dog", dog(2, 1), UpdateMode::Never)).unwrap();
    db.wait_for_listeners();
    assert!(started.try_recv().is_err(), "called after its token was dropped");
}

#[test]
fn a_commit_right_after_add_listener_is_heard() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    for i in 0..20 {
        let (tx, rx) = channel();
        let token = db.objects("Dog").unwrap().add_listener(move |c| tx.send(c.insertions.clone()).unwrap());
        db.write(|tx| tx.create("Dog", dog(i, 1), UpdateMode::Never)).unwrap();
        assert_eq!(heard(&db, &rx), vec![vec![Value::Int(i)]], "round {i}");
        drop(token);
    }
}

#[test]
fn a_listener_added_inside_a_write_hears_the_commits_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let (tx, rx) = channel();
    let token = db
        .write(|t| {
            t.create("Dog", dog(1, 1), UpdateMode::Never)?;
            let token = db.objects("Dog").unwrap().add_listener(move |c| tx.send(c.insertions.clone()).unwrap());
            Ok(token)
        })
        .unwrap();
    db.write(|t| t.create("Dog", dog(2, 1), UpdateMode::Never)).unwrap();
    assert_eq!(heard(&db, &rx), vec![vec![Value::Int(2)]]);
    drop(token);
}

/// A token dropped inside a write transaction while its callback waits to
/// write: neither waits for the other.
#[test]
fn dropping_a_token_inside_a_write_does_not_deadlock_with_its_callback() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let (started_tx, started) = channel();
    let writer = db.clone();
    let token = db.objects("Person").unwrap().add_listener(move |_| {
        started_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        writer.write(|tx| tx.create("Dog", dog(9, 1), UpdateMode::Modified)).unwrap();
    });
    db.write(|tx| tx.create("Person", json!({"_id": "ann", "name": "Ann"}), UpdateMode::Never)).unwrap();
    started.recv_timeout(Duration::from_secs(10)).unwrap();
    db.write(|_| {
        drop(token);
        Ok(())
    })
    .unwrap();
    db.wait_for_listeners();
    assert!(db.object_for_primary_key("Dog", 9).unwrap().is_some());
}

/// Commits racing with `add_listener` on another thread: every commit
/// after `add_listener` returned is heard, none before it was read.
#[test]
fn add_listener_racing_with_commits_misses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.write(|tx| tx.create("Dog", dog(1, 0), UpdateMode::Never)).unwrap();
    let age =
        |db: &Database| db.object_for_primary_key("Dog", 1).unwrap().unwrap().get("age").unwrap().as_int().unwrap();
    for _ in 0..10 {
        let writer = db.clone();
        let commits = std::thread::spawn(move || {
            for _ in 0..30 {
                writer.write(|tx| tx.increment("Dog", 1, "age", 1)).unwrap();
            }
        });
        let before = age(&db);
        let (tx, rx) = channel();
        let token =
            db.object_for_primary_key("Dog", 1).unwrap().unwrap().add_listener(move |c| tx.send(c.clone()).unwrap());
        let after = age(&db);
        commits.join().unwrap();
        let heard = heard(&db, &rx).len() as i64;
        let last = age(&db);
        assert!(heard >= last - after && heard <= last - before, "heard {heard}, ages {before}/{after}/{last}");
        drop(token);
    }
}

#[test]
fn a_listener_added_in_a_failed_write_hears_the_next_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let (tx, rx) = channel();
    let mut kept = None;
    let _ = db.write(|_| {
        kept = Some(db.objects("Dog").unwrap().add_listener(move |c| tx.send(c.insertions.clone()).unwrap()));
        Err::<(), _>(haven_store::Error::Storage("rolled back".into()))
    });
    db.write(|t| t.create("Dog", dog(1, 1), UpdateMode::Never)).unwrap();
    assert_eq!(heard(&db, &rx), vec![vec![Value::Int(1)]]);
    drop(kept);
}
