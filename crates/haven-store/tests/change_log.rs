//! The change log: what sync will upload.

mod common;

use haven_store::{Config, Database, Error, Instruction, Schema, UpdateMode, Value};
use serde_json::json;

fn open_logged(dir: &std::path::Path) -> Database {
    Database::open(Config::new(dir.join("log.haven")).schema(common::schema()).record_changes()).unwrap()
}

#[test]
fn each_commit_is_one_changeset_of_its_instructions() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_logged(dir.path());
    db.write(|tx| {
        tx.create("Dog", json!({"_id": 1, "name": "Rex", "lastUpdated": 1}), UpdateMode::Never)?;
        tx.set("Dog", 1, "age", 3)
    })
    .unwrap();
    db.write(|tx| {
        tx.increment("Dog", 1, "age", 10)?;
        tx.create("Dog", json!({"_id": 1, "name": "Rex", "lastUpdated": 2}), UpdateMode::Modified)?;
        tx.delete("Dog", 1)
    })
    .unwrap();
    let _ = db.write(|tx| {
        tx.delete("Dog", 1)?;
        Err::<(), _>(Error::Storage("rolled back".into()))
    });
    db.write(|_| Ok(())).unwrap(); // writes nothing: no changeset

    let log = db.pending_changes().unwrap();
    assert_eq!(log.iter().map(|c| c.client_version).collect::<Vec<_>>(), vec![1, 2]);
    assert!(log[0].hlc < log[1].hlc);
    let Instruction::Create { fields, .. } = &log[0].instructions[0] else { panic!("{:?}", log[0]) };
    assert!(
        fields.contains(&("name".to_string(), Value::from("Rex")))
            && fields.contains(&("age".to_string(), Value::Null))
    );
    assert!(
        matches!(&log[0].instructions[1], Instruction::Set { field, value, .. } if field == "age" && *value == Value::Int(3))
    );
    let kinds: Vec<&str> = log[1]
        .instructions
        .iter()
        .map(|i| match i {
            Instruction::Increment { delta, .. } => {
                assert_eq!(*delta, Value::Int(10), "the increment, not the sum");
                "increment"
            }
            Instruction::Set { field, .. } => {
                assert_eq!(field, "lastUpdated", "only the changed field");
                "set"
            }
            Instruction::Delete { .. } => "delete",
            Instruction::Create { .. } => "create",
            other => panic!("no list was written: {other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["increment", "set", "delete"]);
}

#[test]
fn the_log_survives_reopen_and_cannot_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_logged(dir.path());
    db.write(|tx| tx.create("Person", json!({"_id": "ann", "name": "Ann"}), UpdateMode::Never)).unwrap();
    drop(db);
    // Opened without asking for the log, the file still keeps it.
    let db = Database::open(Config::new(dir.path().join("log.haven"))).unwrap();
    db.write(|tx| tx.set("Person", "ann", "name", "Anna")).unwrap();
    let log = db.pending_changes().unwrap();
    assert_eq!(log.iter().map(|c| c.client_version).collect::<Vec<_>>(), vec![1, 2]);
    assert!(log[0].hlc < log[1].hlc);
}

#[test]
fn a_file_without_a_log_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path());
    db.write(|tx| tx.create("Person", json!({"_id": "ann", "name": "Ann"}), UpdateMode::Never)).unwrap();
    assert!(db.pending_changes().unwrap().is_empty());
}

mod replay {
    //! Replaying the change log with the merge rule rebuilds the database:
    //! the log misses nothing and records nothing extra.
    use super::*;
    use haven_core::merge::{apply, ObjectState, Writer};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Create(i64, i64, UpdateMode),
        Set(i64, i64),
        Increment(i64, i64),
        Delete(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let mode = prop_oneof![Just(UpdateMode::Never), Just(UpdateMode::Modified), Just(UpdateMode::All)];
        prop_oneof![
            (0i64..5, 0i64..4, mode).prop_map(|(id, v, m)| Op::Create(id, v, m)),
            (0i64..5, 0i64..4).prop_map(|(id, v)| Op::Set(id, v)),
            (0i64..5, -3i64..3).prop_map(|(id, d)| Op::Increment(id, d)),
            (0i64..5).prop_map(Op::Delete),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
        #[test]
        fn replaying_the_log_rebuilds_the_database(txns in proptest::collection::vec((proptest::collection::vec(op(), 1..5), any::<bool>()), 1..12)) {
            let dir = tempfile::tempdir().unwrap();
            let db = open_logged(dir.path());
            for (ops, abort) in &txns {
                let _ = db.write(|tx| {
                    for op in ops {
                        // Failing operations change nothing; the transaction goes on.
                        let _ = match *op {
                            Op::Create(id, v, mode) => tx.create("Dog", json!({"_id": id, "name": "d", "lastUpdated": v, "age": v}), mode),
                            Op::Set(id, v) => tx.set("Dog", id, "lastUpdated", v),
                            Op::Increment(id, d) => tx.increment("Dog", id, "age", d),
                            Op::Delete(id) => tx.delete("Dog", id).map(|_| ()),
                        };
                    }
                    if *abort { Err(Error::Storage("abort".into())) } else { Ok(()) }
                });
            }
            let mut replayed: BTreeMap<i64, ObjectState> = BTreeMap::new();
            for (n, cs) in db.pending_changes().unwrap().into_iter().enumerate() {
                let writer = Writer { version: n as u64 + 1, base_version: cs.base_version, hlc: cs.hlc, replica: 1 };
                for i in &cs.instructions {
                    let id = i.object().1.as_int().unwrap();
                    let applied = apply(replayed.get(&id), i, &writer);
                    prop_assert!(applied.dropped.is_empty(), "{:?} dropped {:?}", i, applied.dropped);
                    match applied.state {
                        Some(s) => replayed.insert(id, s),
                        None => replayed.remove(&id),
                    };
                }
            }
            let live: BTreeMap<i64, serde_json::Value> = replayed
                .into_iter()
                .filter_map(|(id, s)| match s {
                    ObjectState::Live { fields, .. } => Some((id, serde_json::Value::Object(fields.into_iter().map(|(k, f)| (k, f.value.to_json())).collect()))),
                    ObjectState::Deleted { .. } => None,
                })
                .collect();
            let actual: BTreeMap<i64, serde_json::Value> =
                db.objects("Dog").unwrap().iter().unwrap().map(|o| (o.primary_key().as_int().unwrap(), o.to_json())).collect();
            prop_assert_eq!(live, actual);
        }
    }
}

#[test]
fn a_transaction_too_large_to_upload_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let schema =
        Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string"}}]"#).unwrap();
    let db = Database::open(Config::new(dir.path().join("a.haven")).schema(schema).record_changes()).unwrap();
    let huge = "x".repeat(haven_sync::protocol::MAX_UPLOAD_BYTES);
    let err =
        db.write(|tx| tx.create("Dog", serde_json::json!({"_id": 1, "name": huge}), UpdateMode::Never)).unwrap_err();
    assert!(matches!(err, Error::TooLargeToSync { .. }), "{err}");
    assert!(err.to_string().contains("split it"));
    assert!(db.object_for_primary_key("Dog", 1).unwrap().is_none());
    assert!(db.pending_changes().unwrap().is_empty());
}
