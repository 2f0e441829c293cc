//! Backlinks (`linkingObjects`): computed from the links that point at an
//! object, never stored, readable and usable in queries.

use haven_store::{Config, Database, Error, Schema, UpdateMode, Value};
use serde_json::json;

const SCHEMA: &str = r#"[
  {"name":"Person","primaryKey":"_id","properties":{"_id":"string",
   "dogs":{"type":"linkingObjects","objectType":"Dog","property":"owner"},
   "walked":{"type":"linkingObjects","objectType":"Dog","property":"walkers"}}},
  {"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string","owner":"Person?","walkers":"Person<>"}}
]"#;

fn open(dir: &std::path::Path) -> Database {
    let db = Database::open(Config::new(dir.join("a.haven")).schema(Schema::from_json(SCHEMA).unwrap())).unwrap();
    db.write(|tx| {
        for p in ["ann", "bob", "cy"] {
            tx.create("Person", json!({"_id": p}), UpdateMode::Never)?;
        }
        tx.create(
            "Dog",
            json!({"_id": 1, "name": "Rex", "owner": "ann", "walkers": ["bob", "cy"]}),
            UpdateMode::Never,
        )?;
        tx.create("Dog", json!({"_id": 2, "name": "Ace", "owner": "ann", "walkers": ["bob"]}), UpdateMode::Never)?;
        tx.create("Dog", json!({"_id": 3, "name": "Max", "owner": "bob"}), UpdateMode::Never)
    })
    .unwrap();
    db
}

fn ids(results: &haven_store::Results) -> Vec<Value> {
    results.iter().unwrap().map(|o| o.primary_key()).collect()
}

#[test]
fn a_backlink_is_in_the_schema_but_not_in_the_records() {
    let schema = Schema::from_json(SCHEMA).unwrap();
    let person = schema.object_type("Person").unwrap();
    assert_eq!(person.properties().len(), 1, "only _id is stored");
    let dogs = person.backlink_named("dogs").unwrap();
    assert_eq!((dogs.object_type.as_str(), dogs.property.as_str()), ("Dog", "owner"));
    assert_eq!(Schema::from_json(&schema.to_json()).unwrap(), schema, "the JSON form round-trips");

    let bad = |dogs: &str| {
        Schema::from_json(&SCHEMA.replace(r#"{"type":"linkingObjects","objectType":"Dog","property":"owner"}"#, dogs))
            .unwrap_err()
            .to_string()
    };
    assert!(bad(r#"{"type":"linkingObjects","objectType":"Cat","property":"owner"}"#)
        .contains("Person.dogs: linkingObjects of unknown type 'Cat'"));
    assert!(bad(r#"{"type":"linkingObjects","objectType":"Dog","property":"name"}"#)
        .contains("Dog.name to be a link, list or set of Person, but it is 'string'"));
    assert!(
        bad(r#"{"type":"linkingObjects","objectType":"Dog","property":"age"}"#).contains("unknown property Dog.age")
    );
    assert!(
        bad(r#"{"type":"linkingObjects","objectType":"Dog"}"#).contains("needs an \"objectType\" and a \"property\"")
    );
}

#[test]
fn linking_objects_reads_the_objects_that_link_here_live() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let ann = db.object_for_primary_key("Person", "ann").unwrap().unwrap();
    let anns_dogs = ann.linking_objects("dogs").unwrap();
    assert_eq!(ids(&anns_dogs), [Value::from(1), Value::from(2)]);
    let bob = db.object_for_primary_key("Person", "bob").unwrap().unwrap();
    assert_eq!(
        ids(&bob.linking_objects("walked").unwrap()),
        [Value::from(1), Value::from(2)],
        "through a set of links"
    );
    db.write(|tx| tx.set("Dog", 2, "owner", "bob")).unwrap();
    assert_eq!(ids(&anns_dogs), [Value::from(1)], "live, as Results are");
    assert!(!ann.to_json().as_object().unwrap().contains_key("dogs"), "computed, not stored");
    let err = ann.linking_objects("_id").unwrap_err();
    assert!(err.to_string().contains("not a linkingObjects property"), "{err}");
}

#[test]
fn queries_go_back_along_links() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let people = |query: &str| ids(&db.objects("Person").unwrap().filtered(query, &[]).unwrap());
    let names = |v: &[&str]| v.iter().map(|s| Value::from(*s)).collect::<Vec<_>>();
    assert_eq!(people("dogs.@count == 2"), names(&["ann"]));
    assert_eq!(people("dogs.@count == 0"), names(&["cy"]));
    assert_eq!(people("dogs.name == 'Max'"), names(&["bob"]));
    assert_eq!(people("walked.@count > 0"), names(&["bob", "cy"]));
    assert_eq!(people("@links.Dog.owner.@count > 0"), names(&["ann", "bob"]));
    assert_eq!(people("@links.Dog.walkers.name == 'Ace'"), names(&["bob"]));
    assert_eq!(people("ALL dogs.name BEGINSWITH 'R' AND dogs.@count > 0"), Vec::<Value>::new());
    assert_eq!(people("dogs.@count > 0 SORT(dogs.@count DESC)"), names(&["ann", "bob"]));
    // Through a link and back: the people whose dogs' owners are ann.
    let dogs = ids(&db.objects("Dog").unwrap().filtered("owner.dogs.@count == 2", &[]).unwrap());
    assert_eq!(dogs, [Value::from(1), Value::from(2)]);

    let err = |query: &str| db.objects("Person").unwrap().filtered(query, &[]).unwrap_err().to_string();
    assert!(
        err("dogs == 1").contains("compare through it (dogs.name) or count it (dogs.@count)"),
        "{}",
        err("dogs == 1")
    );
    assert!(
        err("@links.Dog.name.@count > 0").contains("Dog.name is 'string', not a link"),
        "{}",
        err("@links.Dog.name.@count > 0")
    );
    assert!(err("@links.Cat.owner.@count > 0").contains("unknown type 'Cat'"));
    assert!(err("@links.Dog > 0").contains("@links needs .Type.property"), "{}", err("@links.Dog > 0"));
}

#[test]
fn a_query_in_a_write_sees_the_links_written_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.write(|tx| {
        tx.create("Dog", json!({"_id": 4, "name": "Bo", "owner": "cy"}), UpdateMode::Never)?;
        let found = tx.query("Person", "dogs.@count == 1", &[])?;
        assert_eq!(found.iter().map(|p| p["_id"].clone()).collect::<Vec<_>>(), [json!("bob"), json!("cy")]);
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_backlink_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let version = db.version();
    for write in [
        Box::new(|tx: &mut haven_store::WriteTransaction<'_>| tx.set("Person", "ann", "dogs", Value::List(vec![])))
            as Box<dyn Fn(&mut haven_store::WriteTransaction<'_>) -> haven_store::Result<()>>,
        Box::new(|tx| tx.create("Person", json!({"_id": "dee", "dogs": [1]}), UpdateMode::Never)),
    ] {
        let err = db.write(|tx| write(tx)).unwrap_err();
        assert!(matches!(err, Error::InvalidOperation { .. }), "{err:?}");
        assert!(
            err.to_string().contains("Person.dogs") && err.to_string().contains("set the link on the Dog instead"),
            "{err}"
        );
    }
    assert_eq!(db.version(), version, "nothing was written");
}

#[test]
fn backlinks_come_and_go_with_the_apps_schema() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let without = SCHEMA.replace(r#""dogs":{"type":"linkingObjects","objectType":"Dog","property":"owner"},"#, "");
    let db =
        Database::open(Config::new(dir.path().join("a.haven")).schema(Schema::from_json(&without).unwrap())).unwrap();
    assert!(db.schema().object_type("Person").unwrap().backlink_named("dogs").is_none(), "removed: nothing to migrate");
    drop(db);
    let db =
        Database::open(Config::new(dir.path().join("a.haven")).schema(Schema::from_json(SCHEMA).unwrap())).unwrap();
    let ann = db.object_for_primary_key("Person", "ann").unwrap().unwrap();
    assert_eq!(ann.linking_objects("dogs").unwrap().len().unwrap(), 2, "added back: computed from the links");
}
