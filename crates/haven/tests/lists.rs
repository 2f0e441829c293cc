//! List properties edited element by element: by index on the device,
//! by element identity in sync, so that devices editing one list offline
//! all keep what they added.

use haven::{Config, Database, Error, Instruction, Schema, UpdateMode, Value};
use haven_testkit::{fold_history, synced, TestPartition};
use serde_json::json;
use std::path::Path;

const SCHEMA: &str = r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string?","tags":"string[]","ranks":"int[]"}}]"#;

fn local(dir: &Path) -> Database {
    Database::open(Config::new(dir.join("local.haven")).schema(Schema::from_json(SCHEMA).unwrap())).unwrap()
}

fn tags(db: &Database, id: i64) -> serde_json::Value {
    db.object_for_primary_key("Dog", id).unwrap().expect("the dog").to_json()["tags"].clone()
}

#[test]
fn list_operations_edit_by_index() {
    let dir = tempfile::tempdir().unwrap();
    let db = local(dir.path());
    db.write(|tx| tx.create("Dog", json!({"_id": 1, "tags": ["a", "b"]}), UpdateMode::Never)).unwrap();
    db.write(|tx| {
        tx.list_push("Dog", 1, "tags", "c")?; // a b c
        tx.list_insert("Dog", 1, "tags", 0, "first")?; // first a b c
        tx.list_set("Dog", 1, "tags", 2, "B")?; // first a B c
        tx.list_move("Dog", 1, "tags", 0, 3)?; // a B c first
        tx.list_move("Dog", 1, "tags", 2, 0)?; // c a B first
        assert_eq!(tx.list_remove("Dog", 1, "tags", 1)?, Value::from("a")); // c B first
        Ok(())
    })
    .unwrap();
    assert_eq!(tags(&db, 1), json!(["c", "B", "first"]));
    db.write(|tx| tx.list_clear("Dog", 1, "tags")).unwrap();
    assert_eq!(tags(&db, 1), json!([]));
}

type ListOperation = dyn Fn(&mut haven::WriteTransaction<'_>) -> haven::Result<()>;

#[test]
fn a_bad_list_operation_names_type_property_and_position_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = local(dir.path());
    db.write(|tx| tx.create("Dog", json!({"_id": 1, "tags": ["a"]}), UpdateMode::Never)).unwrap();
    let version = db.version();
    let cases: Vec<(Box<ListOperation>, &str)> = vec![
        (Box::new(|tx| tx.list_insert("Dog", 1, "tags", 3, "x")), "index 3 is out of range: the list has 2"),
        (Box::new(|tx| tx.list_set("Dog", 1, "tags", 2, "x")), "index 2 is out of range"),
        (Box::new(|tx| tx.list_remove("Dog", 1, "tags", 5).map(drop)), "index 5 is out of range"),
        (Box::new(|tx| tx.list_move("Dog", 1, "tags", 0, 2)), "index 2 is out of range"),
        (Box::new(|tx| tx.list_push("Dog", 1, "tags", 5)), "Dog.tags: at index 2: expected string, got int"),
        (Box::new(|tx| tx.list_push("Dog", 1, "tags", Value::Null)), "null is not allowed"),
        (
            Box::new(|tx| tx.create("Dog", json!({"_id": 3, "tags": ["ok", 1]}), UpdateMode::Never)),
            "Dog.tags: at index 1: expected string, got int",
        ),
        (Box::new(|tx| tx.list_push("Dog", 1, "name", "x")), "not a list"),
        (Box::new(|tx| tx.list_push("Dog", 1, "color", "x")), "color"),
        (Box::new(|tx| tx.list_push("Dog", 2, "tags", "x")), "2"),
    ];
    for (op, fragment) in cases {
        // The list has 2 elements when `op` runs.
        let err = db
            .write(|tx| {
                tx.list_push("Dog", 1, "tags", "written first")?;
                op(tx)
            })
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("Dog") && text.contains(fragment), "{text} (wanted {fragment:?})");
        assert!(!matches!(err, Error::Storage(_)), "{err:?}");
    }
    assert_eq!(db.version(), version, "nothing was committed");
    assert_eq!(tags(&db, 1), json!(["a"]));
}

#[test]
fn the_change_log_names_list_elements_by_identity() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(dir.path().join("log.haven")).schema(Schema::from_json(SCHEMA).unwrap()).record_changes();
    let db = Database::open(config).unwrap();
    db.write(|tx| tx.create("Dog", json!({"_id": 1, "tags": ["a", "b"]}), UpdateMode::Never)).unwrap();
    db.write(|tx| {
        tx.list_insert("Dog", 1, "tags", 1, "x")?;
        tx.list_remove("Dog", 1, "tags", 0).map(drop)
    })
    .unwrap();
    let log = db.pending_changes().unwrap();
    let [Instruction::Create { fields, .. }, Instruction::ListAssign { elements, .. }] = &log[0].instructions[..]
    else {
        panic!("a create, then the list with its ids: {:?}", log[0].instructions)
    };
    assert!(!fields.iter().any(|(name, _)| name == "tags"), "the list is not in the create");
    let (a, _) = &elements[0];
    let [Instruction::ListInsert { after, id, .. }, Instruction::ListRemove { id: removed, .. }] =
        &log[1].instructions[..]
    else {
        panic!("{:?}", log[1].instructions)
    };
    assert_eq!(*after, Some(*a), "inserted after the element at index 0");
    assert_eq!(removed, a, "removed by identity, not by index");
    assert_eq!(id.hlc, log[1].hlc, "a new element carries its transaction's clock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_list_edits_from_two_devices_merge_element_by_element() {
    let dir = tempfile::tempdir().unwrap();
    let partition = TestPartition::start(dir.path(), SCHEMA).await;
    let (a, b) = (partition.device("a").await, partition.device("b").await);
    a.write(|tx| tx.create("Dog", json!({"_id": 1, "tags": ["a", "b", "c"]}), UpdateMode::Never)).unwrap();
    synced(&a).await;
    synced(&b).await;

    // Both offline: each adds to the same list, and changes it otherwise.
    a.sync_session().unwrap().pause();
    b.sync_session().unwrap().pause();
    a.write(|tx| {
        tx.list_push("Dog", 1, "tags", "x1")?;
        tx.list_push("Dog", 1, "tags", "x2")?;
        tx.list_remove("Dog", 1, "tags", 1).map(drop)
    })
    .unwrap();
    b.write(|tx| {
        tx.list_push("Dog", 1, "tags", "y1")?;
        tx.list_insert("Dog", 1, "tags", 0, "first")?;
        tx.list_set("Dog", 1, "tags", 3, "C")
    })
    .unwrap();
    a.sync_session().unwrap().resume();
    synced(&a).await;
    b.sync_session().unwrap().resume();
    synced(&b).await;
    synced(&a).await;

    // A's edits reached the server first; B's insertions after "c" go
    // right after it, before A's run.
    let expected = json!(["first", "a", "C", "y1", "x1", "x2"]);
    assert_eq!(tags(&a, 1), expected);
    assert_eq!(tags(&b, 1), expected);
    let folded = fold_history(partition.storage.as_ref(), "p");
    let from_history: Vec<serde_json::Value> =
        folded[&1]["tags"].as_list().unwrap().iter().map(Value::to_json).collect();
    assert_eq!(json!(from_history), expected, "the merge of the server's history");

    // A device that starts now gets the list, and edits it by element.
    let c = partition.device("c").await;
    synced(&c).await;
    assert_eq!(tags(&c, 1), expected);
    c.write(|tx| tx.list_move("Dog", 1, "tags", 0, 5)).unwrap();
    synced(&c).await;
    synced(&a).await;
    assert_eq!(tags(&a, 1), json!(["a", "C", "y1", "x1", "x2", "first"]));
    partition.server.shutdown().await;
}
