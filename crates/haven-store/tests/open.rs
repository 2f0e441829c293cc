//! Opening files: sharing one handle per path, read-only opens, schema
//! changes on open, and files that must be refused untouched.

mod common;

use common::{open, schema, DOGS};
use haven_store::{Config, Database, Error, Schema, UpdateMode};
use serde_json::json;
use std::path::Path;

fn add_rex(db: &Database) {
    db.write(|tx| tx.create("Dog", json!({"_id": 1, "name": "Rex", "lastUpdated": 1}), UpdateMode::Never)).unwrap();
}

#[test]
fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    add_rex(&open(dir.path()));
    assert!(!Database::is_open(dir.path().join("test.haven")));
    let db = Database::open(Config::new(dir.path().join("test.haven"))).unwrap();
    assert_eq!(db.schema(), &schema(), "without a schema, the file's own is used");
    assert!(db.object_for_primary_key("Dog", 1).unwrap().is_some());
}

#[test]
fn the_same_path_twice_is_one_shared_database() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path());
    let b = Database::open(Config::new(dir.path().join("./test.haven")).schema(schema())).unwrap();
    add_rex(&a);
    assert!(b.object_for_primary_key("Dog", 1).unwrap().is_some());
    assert!(Database::is_open(dir.path().join("test.haven")));
    drop(a);
    drop(b);
    assert!(!Database::is_open(dir.path().join("test.haven")));
}

#[test]
fn read_only_never_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.haven");
    add_rex(&open(dir.path()));
    let before = std::fs::read(&path).unwrap();
    let ro = Database::open(Config::new(&path).read_only()).unwrap();
    assert!(ro.is_read_only());
    assert!(ro.object_for_primary_key("Dog", 1).unwrap().is_some());
    let err = ro.write(|tx| tx.delete("Dog", 1)).unwrap_err();
    assert!(matches!(err, Error::ReadOnly(_)), "{err}");
    assert!(err.to_string().contains("read-only"));
    drop(ro);
    assert!(std::fs::read(&path).unwrap() == before, "the file was changed");

    let err = Database::open(Config::new(dir.path().join("missing.haven")).read_only()).unwrap_err();
    assert!(matches!(err, Error::NotADatabase { .. }), "{err}");
    assert!(!dir.path().join("missing.haven").exists());
}

#[test]
fn read_only_handle_of_an_open_database_shares_it_but_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let rw = open(dir.path());
    let ro = Database::open(Config::new(dir.path().join("test.haven")).read_only()).unwrap();
    add_rex(&rw);
    assert!(ro.object_for_primary_key("Dog", 1).unwrap().is_some());
    assert!(ro.write(|tx| tx.delete("Dog", 1)).is_err());
}

#[test]
fn additive_schema_changes_just_work() {
    let dir = tempfile::tempdir().unwrap();
    let v1 =
        Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string"}}]"#).unwrap();
    let path = dir.path().join("evolve.haven");
    let db = Database::open(Config::new(&path).schema(v1)).unwrap();
    db.write(|tx| tx.create("Dog", json!({"_id": 1, "name": "Rex"}), UpdateMode::Never)).unwrap();
    drop(db);

    let v2 = Schema::from_json(
        r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":{"type":"string","indexed":true},"age":"int?","tags":"string[]"}},
            {"name":"Cat","primaryKey":"_id","properties":{"_id":"int"}}]"#,
    )
    .unwrap();
    let db = Database::open(Config::new(&path).schema(v2)).unwrap();
    let rex = db.object_for_primary_key("Dog", 1).unwrap().unwrap();
    assert_eq!(rex.to_json(), json!({"_id": 1, "name": "Rex", "age": null, "tags": []}));
    let by_name = db.objects("Dog").unwrap().filtered("name == 'Rex'", &[]).unwrap();
    assert!(by_name.explain().unwrap().starts_with("index Dog.name"), "the new index is used");
    assert_eq!(by_name.len().unwrap(), 1, "the new index was built from the existing objects");
    db.write(|tx| tx.create("Cat", json!({"_id": 1}), UpdateMode::Never)).unwrap();
}

#[test]
fn breaking_schema_changes_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.haven");
    add_rex(&open(dir.path()));
    let before = std::fs::read(&path).unwrap();
    for (changed, prop) in [
        (DOGS.replace(r#""age":"int?""#, r#""age":"string?""#), "age"),
        (DOGS.replace(r#""age":"int?","#, ""), "age"),
        (DOGS.replace(r#""name":"string","#, r#""name":"string","color":"string","#), "color"),
    ] {
        let err = Database::open(Config::new(&path).schema(Schema::from_json(&changed).unwrap())).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Schema(_)) && text.contains(&format!("Dog.{prop}")), "{text}");
        assert!(std::fs::read(&path).unwrap() == before, "the file was changed");
    }
}

fn assert_refused_untouched(path: &Path, expect: impl Fn(&Error) -> bool) {
    let before = std::fs::read(path).unwrap();
    let err = Database::open(Config::new(path).schema(schema())).unwrap_err();
    assert!(expect(&err), "unexpected error: {err}");
    assert!(err.to_string().contains(&path.display().to_string()), "the error names the file: {err}");
    assert!(std::fs::read(path).unwrap() == before, "the file was changed");
}

#[test]
fn a_file_that_is_not_a_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "these are my notes, not a database".repeat(300)).unwrap();
    assert_refused_untouched(&path, |e| matches!(e, Error::NotADatabase { .. }));
}

#[test]
fn a_redb_file_of_another_app_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.redb");
    let other = redb::Database::create(&path).unwrap();
    let txn = other.begin_write().unwrap();
    txn.open_table(redb::TableDefinition::<u64, u64>::new("theirs")).unwrap().insert(1, 2).unwrap();
    txn.commit().unwrap();
    drop(other);
    assert_refused_untouched(&path, |e| matches!(e, Error::NotADatabase { reason, .. } if reason.contains("Haven")));
}

#[test]
fn a_truncated_file_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.write(|tx| {
        for i in 0..2000 {
            tx.create("Dog", json!({"_id": i, "name": format!("dog {i}"), "lastUpdated": i}), UpdateMode::Never)?;
        }
        Ok(())
    })
    .unwrap();
    drop(db);
    let path = dir.path().join("test.haven");
    let bytes = std::fs::read(&path).unwrap();
    for cut in [100, bytes.len() / 2] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        assert_refused_untouched(&path, |e| matches!(e, Error::NotADatabase { .. }));
    }
}

#[test]
fn a_newer_format_version_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    add_rex(&open(dir.path()));
    let path = dir.path().join("test.haven");
    {
        // Play a future Haven that wrote format version 6.
        let raw = redb::Database::open(&path).unwrap();
        let txn = raw.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("haven/meta"))
            .unwrap()
            .insert("format", 6u32.to_le_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    assert_refused_untouched(&path, |e| matches!(e, Error::FormatTooNew { found: 6, supported: 5, .. }));
    let err = Database::open(Config::new(&path).read_only()).unwrap_err();
    assert!(matches!(err, Error::FormatTooNew { .. }), "{err}");
}

/// Closing the last handle on one thread while another opens the file
/// must never fail with "open elsewhere": the opener waits for the close.
#[test]
fn reopening_while_another_thread_closes() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..40 {
        let db = open(dir.path());
        add_listener_thread(&db);
        let closer = std::thread::spawn(move || drop(db));
        let again = Database::open(Config::new(dir.path().join("test.haven"))).unwrap();
        closer.join().unwrap();
        drop(again);
    }
}

fn add_listener_thread(db: &Database) {
    // A listener thread makes closing slower: it is joined on close.
    std::mem::forget(db.objects("Dog").unwrap().add_listener(|_| {}));
}

/// A copy of the file taken while it is open for writing: what a killed
/// process leaves (every commit durable, the file not closed cleanly).
fn as_if_killed(dir: &Path) -> std::path::PathBuf {
    let db = open(dir);
    add_rex(&db);
    let killed = dir.join("killed.haven");
    std::fs::copy(db.path(), &killed).unwrap();
    killed
}

#[test]
fn a_file_whose_process_was_killed_is_named_as_such_read_only_and_repaired_by_a_writable_open() {
    let dir = tempfile::tempdir().unwrap();
    let killed = as_if_killed(dir.path());
    let before = std::fs::read(&killed).unwrap();
    let err = Database::open(Config::new(&killed).read_only()).unwrap_err();
    assert!(matches!(&err, Error::NotClosedCleanly(p) if p == &killed), "{err}");
    assert!(err.to_string().contains("not closed cleanly") && err.to_string().contains("open it once for writing"));
    assert!(std::fs::read(&killed).unwrap() == before, "refused untouched");
    let repaired = Database::open(Config::new(&killed)).unwrap();
    assert!(repaired.object_for_primary_key("Dog", 1).unwrap().is_some(), "the commit is kept");
    drop(repaired);
    let ro = Database::open(Config::new(&killed).read_only()).unwrap();
    assert!(ro.object_for_primary_key("Dog", 1).unwrap().is_some());
}

#[test]
fn a_path_whose_folder_cannot_be_created_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let path = file.join("app.haven");
    let error = haven_store::Database::open(haven_store::Config::new(&path)).unwrap_err().to_string();
    assert!(error.contains("cannot create the folder") && error.contains("app.haven"), "{error}");
}
