//! `mixed` properties: one value of any kind, read back as written,
//! queried with Realm's rules (numbers compare across int and double,
//! other kinds only with their own kind).

use haven_store::{Config, Database, Error, Schema, UpdateMode, Value};
use serde_json::json;

const SCHEMA: &str =
    r#"[{"name":"Note","primaryKey":"_id","properties":{"_id":"int","value":"mixed","history":"mixed[]"}}]"#;

fn open(dir: &std::path::Path) -> Database {
    Database::open(Config::new(dir.join("mixed.haven")).schema(Schema::from_json(SCHEMA).unwrap())).unwrap()
}

fn ids(db: &Database, query: &str, args: &[Value]) -> Vec<i64> {
    let found = db.objects("Note").unwrap().filtered(query, args).unwrap_or_else(|e| panic!("{query}: {e}"));
    found.iter().unwrap().map(|o| o.primary_key().as_int().unwrap()).collect()
}

#[test]
fn a_mixed_property_holds_any_one_value_and_queries_by_realms_rules() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let values = [json!(5), json!(5.0), json!("five"), json!(true), json!(null), json!(2.5), json!("fifty")];
    db.write(|tx| {
        for (id, value) in values.iter().enumerate() {
            tx.create("Note", json!({"_id": id, "value": value}), UpdateMode::Never)?;
        }
        tx.create_values("Note", [("_id", Value::Int(7)), ("value", Value::Date(1_000))], UpdateMode::Never)?;
        tx.set("Note", 3, "history", Value::List(vec![1.into(), "one".into(), Value::Null]))
    })
    .unwrap();
    for (id, value) in values.iter().enumerate() {
        let note = db.object_for_primary_key("Note", id as i64).unwrap().unwrap();
        assert_eq!(&note.to_json()["value"], value, "Note {id} reads back as written");
    }
    assert_eq!(db.object_for_primary_key("Note", 7).unwrap().unwrap().get("value"), Some(Value::Date(1_000)));
    assert_eq!(db.object_for_primary_key("Note", 3).unwrap().unwrap().to_json()["history"], json!([1, "one", null]));

    assert_eq!(ids(&db, "value == 5", &[]), [0, 1], "an int and a double of the same number are equal");
    assert_eq!(ids(&db, "value > 2", &[]), [0, 1, 5], "ordering compares numbers only");
    assert_eq!(ids(&db, "value == $0", &["five".into()]), [2]);
    assert_eq!(ids(&db, "value BEGINSWITH 'fi'", &[]), [2, 6], "string operators match strings only");
    assert_eq!(ids(&db, "value == true", &[]), [3]);
    assert_eq!(ids(&db, "value == nil", &[]), [4]);
    assert_eq!(ids(&db, "value != 5", &[]), [2, 3, 4, 5, 6, 7]);
    assert_eq!(ids(&db, "ANY history == 'one'", &[]), [3]);
}

#[test]
fn a_mixed_property_refuses_what_it_cannot_hold() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let err = db.write(|tx| tx.create("Note", json!({"_id": 1, "value": [1, 2]}), UpdateMode::Never)).unwrap_err();
    assert!(matches!(err, Error::InvalidValue(_)) && err.to_string().contains("Note.value"), "{err}");
    assert!(err.to_string().contains("a list inside mixed is not supported yet"), "{err}");
    let err = db.write(|tx| tx.create("Note", json!({"_id": 1, "value": {"a": 1}}), UpdateMode::Never)).unwrap_err();
    assert!(err.to_string().contains("Note.value"), "{err}");
    assert!(db.objects("Note").unwrap().is_empty().unwrap(), "nothing was written");
    let indexed =
        r#"[{"name":"Note","primaryKey":"_id","properties":{"_id":"int","value":{"type":"mixed","indexed":true}}}]"#;
    let err = Schema::from_json(indexed).unwrap_err();
    assert!(err.to_string().contains("Note.value") && err.to_string().contains("cannot be indexed yet"), "{err}");
    let keyed = r#"[{"name":"Note","primaryKey":"_id","properties":{"_id":"mixed"}}]"#;
    assert!(Schema::from_json(keyed).unwrap_err().to_string().contains("primary key"));
}
