//! `decimal128` properties: exact decimal numbers, written as text or
//! numbers, read as written, compared and sorted by value.

use haven_store::{Config, Database, Error, Schema, UpdateMode, Value};
use serde_json::json;

fn open(dir: &std::path::Path) -> Database {
    let schema = Schema::from_json(
        r#"[{"name":"Item","primaryKey":"_id","properties":{"_id":"int","price":"decimal128","old":"decimal128?","history":"decimal128[]"}}]"#,
    )
    .unwrap();
    Database::open(Config::new(dir.join("a.haven")).schema(schema)).unwrap()
}

#[test]
fn decimals_are_kept_as_written_and_compared_by_value() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.write(|tx| {
        tx.create("Item", json!({"_id": 1, "price": "12.50", "history": ["12.5", 9]}), UpdateMode::Never)?;
        tx.create("Item", json!({"_id": 2, "price": 3}), UpdateMode::Never)?;
        tx.create("Item", json!({"_id": 3, "price": "1E+3", "old": 0.1}), UpdateMode::Never)
    })
    .unwrap();
    let one = db.object_for_primary_key("Item", 1).unwrap().unwrap().to_json();
    assert_eq!((&one["price"], &one["history"], &one["old"]), (&json!("12.50"), &json!(["12.5", "9"]), &json!(null)));
    assert_eq!(db.object_for_primary_key("Item", 3).unwrap().unwrap().to_json()["old"], json!("0.1"));

    let items = db.objects("Item").unwrap();
    let ids = |query: &str| -> Vec<i64> {
        let r = items.filtered(query, &[]).unwrap();
        r.iter().unwrap().map(|o| o.primary_key().as_int().unwrap()).collect()
    };
    assert_eq!(ids("price == 12.5"), [1], "equal in value");
    assert_eq!(ids("price > '4.99'"), [1, 3]);
    assert_eq!(ids("price < 100 SORT(price DESC)"), [1, 2]);
    assert_eq!(ids("TRUEPREDICATE SORT(price ASC)"), [2, 1, 3]);
    assert_eq!(ids("history == 9"), [1]);
    assert_eq!(ids("history.@max == 12.50"), [1]);
    assert_eq!(items.max("price").unwrap().map(|v| v.to_json()), Some(json!("1E+3")));
    assert_eq!(items.min("price").unwrap().map(|v| v.to_json()), Some(json!("3")));
}

#[test]
fn a_value_that_is_no_decimal_is_refused_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    for bad in [json!("twelve"), json!("1.2.3"), json!("12345678901234567890123456789012345"), json!(true)] {
        let err = db.write(|tx| tx.create("Item", json!({"_id": 1, "price": bad}), UpdateMode::Never)).unwrap_err();
        assert!(matches!(err, Error::InvalidValue(_)) && err.to_string().contains("Item.price"), "{err}");
    }
    let err = db.objects("Item").unwrap().filtered("price > 'x'", &[]).unwrap_err();
    assert!(err.to_string().contains("type mismatch"), "{err}");
    assert!(db.objects("Item").unwrap().is_empty().unwrap());
    assert_eq!(Value::Decimal128("-0.5".parse().unwrap()).to_json(), json!("-0.5"));
}
