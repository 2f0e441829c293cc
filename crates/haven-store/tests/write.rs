//! Writes: create in every update mode, set, increment, delete, typed
//! access, and bad input that must change nothing.

mod common;

use common::open;
use haven_store::{Error, UpdateMode, Value};
use serde_json::json;

fn rex() -> serde_json::Value {
    json!({"_id": 1, "name": "Rex", "age": 3, "lastUpdated": 10})
}

#[test]
fn create_fills_defaults_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.write(|tx| tx.create("Dog", rex(), UpdateMode::Never)).unwrap();
    let dog = db.object_for_primary_key("Dog", 1).unwrap().unwrap();
    assert_eq!(
        dog.to_json(),
        json!({"_id": 1, "name": "Rex", "age": 3, "lastUpdated": 10, "score": null,
        "owner": null, "friends": [], "tags": [], "ranks": [], "nick": null})
    );
    assert_eq!(dog.primary_key(), Value::Int(1));
    assert_eq!(dog.get("nope"), None);
    assert!(db.object_for_primary_key("Dog", 2).unwrap().is_none());
}

#[test]
fn update_modes() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.write(|tx| tx.create("Dog", rex(), UpdateMode::Never)).unwrap();
    let err = db
        .write(|tx| tx.create("Dog", json!({"_id": 1, "name": "Other", "lastUpdated": 1}), UpdateMode::Never))
        .unwrap_err();
    assert!(
        matches!(&err, Error::DuplicatePrimaryKey { object_type, primary_key } if object_type == "Dog" && primary_key == "1"),
        "{err}"
    );
    assert_eq!(
        db.object_for_primary_key("Dog", 1).unwrap().unwrap().get("name"),
        Some("Rex".into()),
        "the failed create changed nothing"
    );

    db.write(|tx| tx.create("Dog", json!({"_id": 1, "age": 4}), UpdateMode::Modified)).unwrap();
    let dog = db.object_for_primary_key("Dog", 1).unwrap().unwrap();
    assert_eq!(
        (dog.get("name"), dog.get("age")),
        (Some("Rex".into()), Some(4.into())),
        "unmentioned properties keep their value"
    );

    db.write(|tx| tx.create("Dog", json!({"_id": 2, "name": "Ace", "lastUpdated": 11}), UpdateMode::All)).unwrap();
    assert_eq!(db.objects("Dog").unwrap().len().unwrap(), 2);
}

#[test]
fn set_increment_delete() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.write(|tx| {
        tx.create("Dog", rex(), UpdateMode::Never)?;
        tx.create("Dog", json!({"_id": 2, "name": "Ace", "lastUpdated": 11, "score": 1.5}), UpdateMode::Never)?;
        tx.set("Dog", 1, "name", "Rexy")?;
        tx.increment("Dog", 1, "age", 10)?;
        tx.increment("Dog", 2, "score", 1)?;
        tx.set("Dog", 1, "tags", vec!["a", "b"])
    })
    .unwrap();
    let rex = db.object_for_primary_key("Dog", 1).unwrap().unwrap();
    assert_eq!(rex.get("name"), Some("Rexy".into()));
    assert_eq!(rex.get("age"), Some(13.into()));
    assert_eq!(rex.get("tags"), Some(Value::List(vec!["a".into(), "b".into()])));
    assert_eq!(db.object_for_primary_key("Dog", 2).unwrap().unwrap().get("score"), Some(Value::Double(2.5)));

    assert!(db.write(|tx| tx.delete("Dog", 2)).unwrap());
    assert!(!db.write(|tx| tx.delete("Dog", 2)).unwrap());
    assert_eq!(db.write(|tx| tx.delete_all("Dog")).unwrap(), 1);
    assert!(db.objects("Dog").unwrap().is_empty().unwrap());
}

#[test]
fn typed_access_through_serde() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Dog {
        _id: i64,
        name: String,
        age: Option<i64>,
        #[serde(rename = "lastUpdated")]
        last_updated: i64,
    }
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let dog = Dog { _id: 7, name: "Typed".into(), age: None, last_updated: 3 };
    db.write(|tx| tx.create_from("Dog", &dog, UpdateMode::Modified)).unwrap();
    let back: Dog = db.object_for_primary_key("Dog", 7).unwrap().unwrap().to().unwrap();
    assert_eq!(back, dog);
}

#[test]
fn links_and_nested_objects() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.write(|tx| {
        tx.create(
            "Dog",
            json!({"_id": 1, "name": "Rex", "lastUpdated": 1, "owner": {"_id": "ann", "name": "Ann", "born": 0}}),
            UpdateMode::Modified,
        )?;
        tx.create(
            "Dog",
            json!({"_id": 2, "name": "Ace", "lastUpdated": 2, "owner": "ann", "friends": [1]}),
            UpdateMode::Never,
        )
    })
    .unwrap();
    let ace = db.object_for_primary_key("Dog", 2).unwrap().unwrap();
    assert_eq!(ace.linked("owner").unwrap().unwrap().get("name"), Some("Ann".into()));
    assert_eq!(ace.linked_list("friends").unwrap()[0].get("name"), Some("Rex".into()));
    assert_eq!(db.object_for_primary_key("Person", "ann").unwrap().unwrap().get("born"), Some(Value::Date(0)));

    // A link whose target is gone reads as null; a link list drops it.
    db.write(|tx| {
        tx.delete("Person", "ann")?;
        tx.delete("Dog", 1)
    })
    .unwrap();
    let ace = db.object_for_primary_key("Dog", 2).unwrap().unwrap();
    assert_eq!(ace.get("owner"), Some(Value::Null));
    assert_eq!(ace.get("friends"), Some(Value::List(vec![])));
    assert!(ace.linked("owner").unwrap().is_none());
}

/// Each bad write fails with an error naming the type and property, and
/// the transaction writes nothing.
#[test]
fn bad_input_names_the_fault_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.write(|tx| tx.create("Dog", rex(), UpdateMode::Never)).unwrap();
    let cases: Vec<(serde_json::Value, &str, &str)> = vec![
        (json!({"_id": 5, "name": 3, "lastUpdated": 1}), "Dog", "name"), // wrong type
        (json!({"_id": 5, "lastUpdated": 1}), "Dog", "name"),            // missing required
        (json!({"_id": 5, "name": "x", "lastUpdated": 1, "color": "red"}), "Dog", "color"), // unknown property
        (json!({"_id": 5, "name": null, "lastUpdated": 1}), "Dog", "name"), // null for required
        (json!({"_id": 5, "name": "x", "lastUpdated": 1, "tags": "x"}), "Dog", "tags"), // not a list
        (json!({"name": "x", "lastUpdated": 1}), "Dog", "_id"),          // no primary key
        (json!({"_id": "five", "name": "x", "lastUpdated": 1}), "Dog", "_id"), // wrong key type
    ];
    for (value, ty, prop) in cases {
        let err = db
            .write(|tx| {
                tx.create("Dog", json!({"_id": 99, "name": "first", "lastUpdated": 1}), UpdateMode::Never)?;
                tx.create("Dog", value.clone(), UpdateMode::Never)
            })
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains(ty) && text.contains(prop), "{value}: {text}");
        assert!(db.object_for_primary_key("Dog", 99).unwrap().is_none(), "{value}: the transaction wrote something");
    }
    let err = db.write(|tx| tx.create("Cat", json!({"_id": 1}), UpdateMode::Never)).unwrap_err();
    assert!(matches!(&err, Error::UnknownType(t) if t == "Cat"), "{err}");
    let err = db.write(|tx| tx.set("Dog", 1, "name", 5)).unwrap_err();
    assert!(err.to_string().contains("Dog.name"), "{err}");
    let err = db.write(|tx| tx.increment("Dog", 1, "name", 1)).unwrap_err();
    assert!(err.to_string().contains("Dog.name"), "{err}");
    let err = db.write(|tx| tx.set("Dog", 42, "name", "x")).unwrap_err();
    assert!(matches!(err, Error::ObjectNotFound { .. }), "{err}");
    let err = db.write(|tx| tx.set("Dog", 1, "_id", 2)).unwrap_err();
    assert!(err.to_string().contains("Dog._id"), "{err}");
    assert_eq!(db.object_for_primary_key("Dog", 1).unwrap().unwrap().to_json()["name"], "Rex");
}

#[test]
fn a_failed_operation_leaves_the_transaction_usable() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.write(|tx| {
        tx.create("Dog", rex(), UpdateMode::Never)?;
        assert!(tx.create("Dog", rex(), UpdateMode::Never).is_err());
        assert!(tx.create("Dog", json!({"_id": 2, "name": 1, "lastUpdated": 1}), UpdateMode::Never).is_err());
        tx.create("Dog", json!({"_id": 2, "name": "Ace", "lastUpdated": 1}), UpdateMode::Never)
    })
    .unwrap();
    assert_eq!(db.object_for_primary_key("Dog", 1).unwrap().unwrap().get("name"), Some("Rex".into()));
    // The index entries of the object the duplicate create tried to replace are intact.
    assert_eq!(db.objects("Dog").unwrap().filtered("lastUpdated == 10", &[]).unwrap().len().unwrap(), 1);
}

#[test]
fn rollback_on_error_and_on_panic() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let err = db
        .write(|tx| {
            tx.create("Dog", rex(), UpdateMode::Never)?;
            Err::<(), _>(Error::Storage("the app changed its mind".into()))
        })
        .unwrap_err();
    assert!(err.to_string().contains("changed its mind"));
    assert!(db.object_for_primary_key("Dog", 1).unwrap().is_none());

    let db2 = db.clone();
    let panicked = std::thread::spawn(move || {
        db2.write(|tx| {
            tx.create("Dog", rex(), UpdateMode::Never)?;
            panic!("boom");
            #[allow(unreachable_code)]
            Ok(())
        })
    })
    .join();
    assert!(panicked.is_err());
    assert!(db.object_for_primary_key("Dog", 1).unwrap().is_none());
    // The database still works after the panic.
    db.write(|tx| tx.create("Dog", rex(), UpdateMode::Never)).unwrap();
    assert!(db.object_for_primary_key("Dog", 1).unwrap().is_some());
}

#[test]
fn a_write_inside_a_write_is_an_error_not_a_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let inner = db.clone();
    let err = db
        .write(|tx| {
            tx.create("Dog", rex(), UpdateMode::Never)?;
            inner.wait_for_listeners(); // returns at once here
            inner.write(|tx| tx.delete("Dog", 1))
        })
        .unwrap_err();
    assert!(matches!(err, Error::NestedWrite(_)), "{err}");
    assert!(db.object_for_primary_key("Dog", 1).unwrap().is_none());
    db.write(|tx| tx.create("Dog", rex(), UpdateMode::Never)).unwrap();
}

#[test]
fn a_failed_create_writes_none_of_its_inline_links() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.write(|tx| tx.create("Dog", rex(), UpdateMode::Never)).unwrap();
    db.write(|tx| {
        // The parent is a duplicate: the owner given inline must not be written either.
        let dup = json!({"_id": 1, "name": "Rex", "lastUpdated": 1, "owner": {"_id": "zed", "name": "Zed"}});
        assert!(matches!(tx.create("Dog", dup, UpdateMode::Never), Err(Error::DuplicatePrimaryKey { .. })));
        // The parent lacks a required property.
        let incomplete = json!({"_id": 2, "lastUpdated": 1, "owner": {"_id": "amy", "name": "Amy"}});
        assert!(matches!(tx.create("Dog", incomplete, UpdateMode::Never), Err(Error::MissingProperty { .. })));
        // The inline object itself is incomplete.
        let bad_owner = json!({"_id": 3, "name": "Ace", "lastUpdated": 1, "owner": {"_id": "kim"}});
        assert!(matches!(tx.create("Dog", bad_owner, UpdateMode::Never), Err(Error::MissingProperty { .. })));
        Ok(())
    })
    .unwrap();
    assert_eq!(db.objects("Person").unwrap().len().unwrap(), 0);
    assert_eq!(db.objects("Dog").unwrap().len().unwrap(), 1);
}

#[test]
fn create_values_refuses_a_property_given_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let err = db
        .write(|tx| {
            tx.create_values(
                "Dog",
                [("_id", 1.into()), ("name", "Rex".into()), ("lastUpdated", 1.into()), ("_id", 2.into())],
                UpdateMode::Never,
            )
        })
        .unwrap_err();
    assert!(err.to_string().contains("Dog._id") && err.to_string().contains("twice"), "{err}");
    db.write(|tx| {
        tx.create_values(
            "Dog",
            [("_id", 1.into()), ("name", "Rex".into()), ("lastUpdated", 1.into())],
            UpdateMode::Never,
        )
    })
    .unwrap();
    let err = db.write(|tx| tx.increment("Dog", 1, "_id", 1)).unwrap_err();
    assert!(err.to_string().contains("primary key cannot change"), "{err}");
}

#[test]
fn nan_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let err = db
        .write(|tx| {
            tx.create_values(
                "Dog",
                [
                    ("_id", 1.into()),
                    ("name", "Rex".into()),
                    ("lastUpdated", 1.into()),
                    ("score", Value::Double(f64::NAN)),
                ],
                UpdateMode::Never,
            )
        })
        .unwrap_err();
    assert!(err.to_string().contains("Dog.score") && err.to_string().contains("NaN"), "{err}");
}
