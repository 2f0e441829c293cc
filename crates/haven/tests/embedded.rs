//! Embedded objects: an `Address` inside a `Person`, with no primary key,
//! stored in its parent, written whole or field by field, merged field by
//! field, and queried by path.

use haven::{Config, Database, Error, PropertyType, Schema, UpdateMode, Value};
use haven_testkit::{synced, TestPartition};
use serde_json::json;
use std::path::Path;

const SCHEMA: &str = r#"[
  {"name":"Person","primaryKey":"_id","properties":{"_id":"string","name":"string?","address":"Address","homes":"Address[]"}},
  {"name":"Address","embedded":true,"properties":{"city":"string","street":"string?","zip":"int?"}}
]"#;

fn local(dir: &Path) -> Database {
    Database::open(Config::new(dir.join("local.haven")).schema(Schema::from_json(SCHEMA).unwrap())).unwrap()
}

fn address(db: &Database, id: &str) -> serde_json::Value {
    db.object_for_primary_key("Person", id).unwrap().expect("the person").to_json()["address"].clone()
}

#[test]
fn an_embedded_type_is_a_property_type_without_objects_of_its_own() {
    let schema = Schema::from_json(SCHEMA).unwrap();
    let person = schema.object_type("Person").unwrap();
    let prop = person.property_named("address").unwrap();
    assert_eq!((&prop.ty, prop.optional), (&PropertyType::Embedded("Address".into()), true));
    assert!(schema.object_type("Address").unwrap().is_embedded());
    assert_eq!(Schema::from_json(&schema.to_json()).unwrap(), schema, "the JSON form round-trips");

    let refused = |text: &str, fragment: &str| {
        let err = Schema::from_json(text).unwrap_err().to_string();
        assert!(err.contains(fragment), "{err} (wanted {fragment:?})");
    };
    refused(
        &SCHEMA.replace(r#""embedded":true"#, r#""embedded":true,"primaryKey":"city""#),
        "an embedded type has no primary key",
    );
    refused(
        &SCHEMA.replace(r#""address":"Address""#, r#""address":"Address<>""#),
        "a set of embedded objects is not allowed",
    );
    refused(
        &SCHEMA.replace(r#""address":"Address""#, r#""address":"Address{}""#),
        "a dictionary of embedded objects is not supported yet",
    );
    refused(&SCHEMA.replace(r#""zip":"int?""#, r#""zip":"int[]""#), "not yet collections or embedded objects");

    let dir = tempfile::tempdir().unwrap();
    let db = local(dir.path());
    assert!(matches!(db.objects("Address"), Err(Error::EmbeddedType(_))));
    let err = db.write(|tx| tx.create("Address", json!({"city": "Oslo"}), UpdateMode::Never)).unwrap_err();
    assert!(err.to_string().contains("Address is an embedded type"), "{err}");
}

#[test]
fn an_embedded_object_is_written_whole_or_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let db = local(dir.path());
    db.write(|tx| {
        tx.create("Person", json!({"_id": "ann", "address": {"city": "Oslo", "zip": 150}}), UpdateMode::Never)?;
        tx.create("Person", json!({"_id": "bob"}), UpdateMode::Never)
    })
    .unwrap();
    assert_eq!(address(&db, "ann"), json!({"city": "Oslo", "street": null, "zip": 150}), "defaults filled");
    assert_eq!(address(&db, "bob"), json!(null));
    db.write(|tx| {
        tx.set_path("Person", "ann", "address.street", "Main 1")?;
        tx.set("Person", "bob", "address", Value::Dictionary([("city".to_owned(), Value::from("Bergen"))].into()))
    })
    .unwrap();
    assert_eq!(address(&db, "ann"), json!({"city": "Oslo", "street": "Main 1", "zip": 150}));
    assert_eq!(address(&db, "bob")["city"], json!("Bergen"));
    db.write(|tx| tx.set("Person", "ann", "address", Value::Null)).unwrap();
    assert_eq!(address(&db, "ann"), json!(null), "deleted with its parent's property");

    let version = db.version();
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (json!({"city": 5}), "Person.address: at field \"city\": expected string, got int"),
        (json!({"street": "x"}), "field \"city\" ('string') is required"),
        (json!({"city": "x", "planet": "Earth"}), "Address has no property 'planet'"),
        (json!("Oslo"), "expected an embedded Address"),
    ];
    for (value, fragment) in cases {
        let err =
            db.write(|tx| tx.create("Person", json!({"_id": "cy", "address": value}), UpdateMode::Never)).unwrap_err();
        assert!(err.to_string().contains(fragment), "{err} (wanted {fragment:?})");
    }
    let err = db.write(|tx| tx.set_path("Person", "ann", "address.city", "Oslo")).unwrap_err();
    assert!(err.to_string().contains("holds no embedded object: set it whole first"), "{err}");
    let err = db.write(|tx| tx.set_path("Person", "bob", "address.zip", "ten")).unwrap_err();
    assert!(err.to_string().contains("Person.address: at field \"zip\": expected int, got string"), "{err}");
    let err = db.write(|tx| tx.set_path("Person", "bob", "name.first", "x")).unwrap_err();
    assert!(err.to_string().contains("not an embedded object"), "{err}");
    assert_eq!(db.version(), version, "nothing was written");
}

#[test]
fn queries_read_fields_of_embedded_objects() {
    let dir = tempfile::tempdir().unwrap();
    let db = local(dir.path());
    db.write(|tx| {
        tx.create("Person", json!({"_id": "ann", "address": {"city": "Oslo", "zip": 150}}), UpdateMode::Never)?;
        tx.create("Person", json!({"_id": "bob", "address": {"city": "Bergen"}}), UpdateMode::Never)?;
        tx.create("Person", json!({"_id": "cy"}), UpdateMode::Never)
    })
    .unwrap();
    let ids = |query: &str| -> Vec<Value> {
        db.objects("Person").unwrap().filtered(query, &[]).unwrap().iter().unwrap().map(|o| o.primary_key()).collect()
    };
    let names = |v: &[&str]| v.iter().map(|s| Value::from(*s)).collect::<Vec<_>>();
    assert_eq!(ids("address.city == 'Oslo'"), names(&["ann"]));
    assert_eq!(ids("address.zip > 100"), names(&["ann"]));
    assert_eq!(ids("address.zip == nil"), names(&["bob", "cy"]));
    assert_eq!(ids("address == nil"), names(&["cy"]));
    assert_eq!(ids("address != nil SORT(address.city ASC)"), names(&["bob", "ann"]));
    let err = db.objects("Person").unwrap().filtered("address.zip == 'x'", &[]).unwrap_err();
    assert!(err.to_string().contains("type mismatch"), "{err}");
    let err = db.objects("Person").unwrap().filtered("address.planet == 'x'", &[]).unwrap_err();
    assert!(err.to_string().contains("'Address' has no property 'planet'"), "{err}");
}

#[test]
fn a_list_of_embedded_objects_holds_whole_objects_by_element() {
    let dir = tempfile::tempdir().unwrap();
    let db = local(dir.path());
    let home = |fields: &[(&str, &str)]| {
        Value::Dictionary(fields.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect())
    };
    db.write(|tx| {
        tx.create(
            "Person",
            json!({"_id": "ann", "homes": [{"city": "Oslo"}, {"city": "Bergen", "zip": 5000}]}),
            UpdateMode::Never,
        )?;
        tx.create("Person", json!({"_id": "bob", "homes": [{"city": "Oslo"}]}), UpdateMode::Never)?;
        tx.list_push("Person", "bob", "homes", home(&[("city", "Tromsø")]))?;
        tx.list_set("Person", "ann", "homes", 0, home(&[("city", "Oslo"), ("street", "Main 1")]))
    })
    .unwrap();
    let homes = |id: &str| db.object_for_primary_key("Person", id).unwrap().unwrap().to_json()["homes"].clone();
    assert_eq!(homes("ann")[0], json!({"city": "Oslo", "street": "Main 1", "zip": null}));
    assert_eq!(homes("bob")[1], json!({"city": "Tromsø", "street": null, "zip": null}));
    let ids = |query: &str| -> Vec<Value> {
        db.objects("Person").unwrap().filtered(query, &[]).unwrap().iter().unwrap().map(|o| o.primary_key()).collect()
    };
    assert_eq!(ids("homes.city == 'Bergen'"), [Value::from("ann")]);
    assert_eq!(ids("ALL homes.zip == nil"), [Value::from("bob")]);
    assert_eq!(ids("homes.@count == 2"), [Value::from("ann"), Value::from("bob")]);
    let err = db.write(|tx| tx.list_push("Person", "ann", "homes", home(&[]))).unwrap_err();
    assert!(err.to_string().contains("Person.homes: at index 2: field \"city\" ('string') is required"), "{err}");
    let err = db.write(|tx| tx.list_push("Person", "ann", "homes", Value::Null)).unwrap_err();
    assert!(err.to_string().contains("null is not allowed: the elements of 'Address[]' are objects"), "{err}");
}

#[test]
fn a_field_of_an_embedded_object_in_a_list_is_set_by_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let db = local(dir.path());
    let homes = |db: &Database| db.object_for_primary_key("Person", "ann").unwrap().unwrap().to_json()["homes"].clone();
    db.write(|tx| {
        tx.create("Person", json!({"_id": "ann", "homes": [{"city": "Oslo"}, {"city": "Rome"}]}), UpdateMode::Never)?;
        tx.set_path("Person", "ann", "homes.1.zip", 100)?;
        tx.set_path("Person", "ann", "homes.0.city", "Bergen")
    })
    .unwrap();
    let expected =
        json!([{"city": "Bergen", "street": null, "zip": null}, {"city": "Rome", "street": null, "zip": 100}]);
    assert_eq!(homes(&db), expected);
    let refused =
        |path: &str, value: Value| db.write(|tx| tx.set_path("Person", "ann", path, value)).unwrap_err().to_string();
    let err = refused("homes.2.city", "Paris".into());
    assert!(
        err.contains("Person.homes") && err.contains("index 2 is out of range: the list has 2 element(s)"),
        "{err}"
    );
    let err = refused("homes.0.planet", "Mars".into());
    assert!(err.contains("Person.homes: at index 0, field \"planet\": Address has no such property"), "{err}");
    let err = refused("homes.0.zip", "many".into());
    assert!(err.contains("Person.homes: at index 0, field \"zip\""), "{err}");
    for path in ["homes.city", "homes.-1.city", "homes.+1.city", "homes.1"] {
        let err = refused(path, "Paris".into());
        assert!(err.contains(&format!("\"{path}\" names no element")) && err.contains("homes.0.{field}"), "{err}");
    }
    let err = refused("address.0.city", "Paris".into());
    assert!(err.contains("Person.address: at field \"0.city\": Address has no such property"), "{err}");
    let err = refused("name.0.city", "Paris".into());
    assert!(err.contains("'string?' is not an embedded object"), "{err}");
    assert_eq!(homes(&db), expected, "nothing refused was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_of_one_embedded_object_merge_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let partition = TestPartition::start(dir.path(), SCHEMA).await;
    let (a, b) = (partition.device("a").await, partition.device("b").await);
    a.write(|tx| tx.create("Person", json!({"_id": "ann", "address": {"city": "Oslo"}}), UpdateMode::Never)).unwrap();
    synced(&a).await;
    synced(&b).await;
    a.sync_session().unwrap().pause();
    b.sync_session().unwrap().pause();
    a.write(|tx| {
        tx.set_path("Person", "ann", "address.street", "Main 1")?;
        tx.list_push("Person", "ann", "homes", Value::Dictionary([("city".to_owned(), Value::from("Oslo"))].into()))
    })
    .unwrap();
    b.write(|tx| {
        tx.set_path("Person", "ann", "address.zip", 150)?;
        tx.list_push("Person", "ann", "homes", Value::Dictionary([("city".to_owned(), Value::from("Bergen"))].into()))
    })
    .unwrap();
    for db in [&a, &b] {
        db.sync_session().unwrap().resume();
        synced(db).await;
    }
    synced(&a).await;
    let expected = json!({"city": "Oslo", "street": "Main 1", "zip": 150});
    assert_eq!(address(&a, "ann"), expected);
    assert_eq!(address(&b, "ann"), expected);
    let homes = |db: &Database| db.object_for_primary_key("Person", "ann").unwrap().unwrap().to_json()["homes"].clone();
    assert_eq!(homes(&a).as_array().map(Vec::len), Some(2), "both devices' pushes kept: {}", homes(&a));
    assert_eq!(homes(&a), homes(&b));
    let c = partition.device("c").await;
    synced(&c).await;
    assert_eq!(address(&c, "ann"), expected, "as the server holds it");
    partition.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_element_written_whole_merges_field_by_field_with_a_later_edit_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let partition = TestPartition::start(dir.path(), SCHEMA).await;
    let (a, b) = (partition.device("a").await, partition.device("b").await);
    let ann = json!({"_id": "ann", "homes": [{"city": "Oslo", "street": "Main 1"}]});
    a.write(|tx| tx.create("Person", ann, UpdateMode::Never)).unwrap();
    synced(&a).await;
    synced(&b).await;
    a.sync_session().unwrap().pause();
    b.sync_session().unwrap().pause();
    // A moves: a new home, written whole. B, later, sets the zip it knows.
    let bergen = Value::Dictionary([("city".to_owned(), Value::from("Bergen"))].into());
    a.write(|tx| tx.list_set("Person", "ann", "homes", 0, bergen)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    b.write(|tx| tx.set_path("Person", "ann", "homes.0.zip", 5003)).unwrap();
    for db in [&b, &a] {
        db.sync_session().unwrap().resume();
        synced(db).await;
    }
    synced(&b).await;
    let homes = |db: &Database| db.object_for_primary_key("Person", "ann").unwrap().unwrap().to_json()["homes"].clone();
    let expected = json!([{"city": "Bergen", "street": null, "zip": 5003}]);
    assert_eq!(homes(&a), expected, "the whole write's fields, and the later edit of one");
    assert_eq!(homes(&b), expected);
    partition.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_of_an_embedded_object_in_a_list_merge_field_by_field_and_follow_moves() {
    let dir = tempfile::tempdir().unwrap();
    let partition = TestPartition::start(dir.path(), SCHEMA).await;
    let (a, b) = (partition.device("a").await, partition.device("b").await);
    let ann = json!({"_id": "ann", "homes": [{"city": "Oslo"}, {"city": "Rome"}]});
    a.write(|tx| tx.create("Person", ann, UpdateMode::Never)).unwrap();
    synced(&a).await;
    synced(&b).await;
    a.sync_session().unwrap().pause();
    b.sync_session().unwrap().pause();
    // A edits Oslo's street; B moves Oslo to the end and sets its zip.
    a.write(|tx| tx.set_path("Person", "ann", "homes.0.street", "Main 1")).unwrap();
    b.write(|tx| {
        tx.list_move("Person", "ann", "homes", 0, 1)?;
        tx.set_path("Person", "ann", "homes.1.zip", 150)
    })
    .unwrap();
    for db in [&a, &b] {
        db.sync_session().unwrap().resume();
        synced(db).await;
    }
    synced(&a).await;
    let homes = |db: &Database| db.object_for_primary_key("Person", "ann").unwrap().unwrap().to_json()["homes"].clone();
    let expected =
        json!([{"city": "Rome", "street": null, "zip": null}, {"city": "Oslo", "street": "Main 1", "zip": 150}]);
    assert_eq!(homes(&a), expected);
    assert_eq!(homes(&b), expected);
    let c = partition.device("c").await;
    synced(&c).await;
    assert_eq!(homes(&c), expected, "as the server holds it");
    partition.server.shutdown().await;
}
