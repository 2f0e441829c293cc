//! `SUBQUERY(collection, $x, predicate).@count` and `DISTINCT(…)`.

use haven_store::{Config, Database, Schema, UpdateMode, Value};
use serde_json::json;

fn schema(indexed: bool) -> Schema {
    let age = if indexed { r#"{"type":"int","indexed":true}"# } else { r#""int""# };
    Schema::from_json(&format!(
        r#"[{{"name":"Person","primaryKey":"_id","properties":{{"_id":"string","city":"string","dogs":"Dog[]","pals":"Person<>",
             "owned":{{"type":"linkingObjects","objectType":"Dog","property":"owner"}}}}}},
           {{"name":"Dog","primaryKey":"_id","properties":{{"_id":"int","name":"string","age":{age},"owner":"Person?"}}}}]"#
    ))
    .unwrap()
}

fn open(dir: &std::path::Path, indexed: bool) -> Database {
    let db = Database::open(Config::new(dir.join("a.haven")).schema(schema(indexed))).unwrap();
    db.write(|tx| {
        let dogs = [
            (1, "Rex", 7, "ann"),
            (2, "Ace", 2, "ann"),
            (3, "Max", 9, "ann"),
            (4, "Rex", 3, "bob"),
            (5, "Bo", 8, "cy"),
        ];
        for (id, name, age, owner) in dogs {
            tx.create("Dog", json!({"_id": id, "name": name, "age": age, "owner": owner}), UpdateMode::Never).ok();
        }
        tx.create(
            "Person",
            json!({"_id": "ann", "city": "Oslo", "dogs": [1, 2, 3], "pals": ["bob"]}),
            UpdateMode::Never,
        )?;
        tx.create(
            "Person",
            json!({"_id": "bob", "city": "Oslo", "dogs": [4], "pals": ["ann", "cy"]}),
            UpdateMode::Never,
        )?;
        tx.create("Person", json!({"_id": "cy", "city": "Bergen", "dogs": [5]}), UpdateMode::Never)
    })
    .unwrap();
    db
}

fn ids(db: &Database, ty: &str, query: &str) -> Vec<Value> {
    db.objects(ty).unwrap().filtered(query, &[]).unwrap().iter().unwrap().map(|o| o.primary_key()).collect()
}

fn names(v: &[&str]) -> Vec<Value> {
    v.iter().map(|s| Value::from(*s)).collect()
}

#[test]
fn a_subquery_counts_the_objects_of_a_collection_that_match() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), false);
    assert_eq!(ids(&db, "Person", "SUBQUERY(dogs, $d, $d.age > 5).@count > 1"), names(&["ann"]));
    assert_eq!(ids(&db, "Person", "SUBQUERY(dogs, $d, $d.age > 5 AND $d.name == 'Bo').@count == 1"), names(&["cy"]));
    assert_eq!(ids(&db, "Person", "SUBQUERY(dogs, $d, $d.age > 100).@size == 0"), names(&["ann", "bob", "cy"]));
    // Over a set of links, a backlink, and nested.
    assert_eq!(ids(&db, "Person", "SUBQUERY(pals, $p, $p.city == 'Bergen').@count > 0"), names(&["bob"]));
    assert_eq!(ids(&db, "Person", "SUBQUERY(owned, $d, $d.name == 'Rex').@count == 2"), Vec::<Value>::new());
    assert_eq!(ids(&db, "Person", "SUBQUERY(owned, $d, $d.name == 'Rex').@count == 1"), names(&["ann", "bob"]));
    let nested = "SUBQUERY(pals, $p, SUBQUERY($p.dogs, $d, $d.age > 8).@count > 0).@count > 0";
    assert_eq!(ids(&db, "Person", nested), names(&["bob"]), "bob's pal ann has Max, 9");

    let err = |query: &str| db.objects("Person").unwrap().filtered(query, &[]).unwrap_err().to_string();
    assert!(err("SUBQUERY(dogs, $d, age > 5).@count > 1").contains("a path starts with its variable: $d.property"));
    assert!(err("SUBQUERY(dogs, $d, $e.age > 5).@count > 1").contains("starts with its variable"));
    assert!(err("SUBQUERY(city, $d, $d.age > 5).@count > 1").contains("SUBQUERY goes over links, but 'city' is string"));
    assert!(err("SUBQUERY(dogs, $d, $d.age > 5) > 1").contains("SUBQUERY(…).@count"));
    assert!(err("SUBQUERY(dogs, d, d.age > 5).@count > 1").contains("needs a variable such as $x"));
    assert!(err("$d.age > 5").contains("$d is used outside a SUBQUERY"));
}

#[test]
fn distinct_keeps_the_first_object_of_each_value_in_the_querys_order() {
    for indexed in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), indexed);
        let dogs = |query: &str| ids(&db, "Dog", query);
        assert_eq!(dogs("TRUEPREDICATE DISTINCT(name)"), [1, 2, 3, 5].map(Value::from), "indexed: {indexed}");
        assert_eq!(dogs("age > 2 DISTINCT(name)"), [1, 3, 5].map(Value::from), "indexed: {indexed}");
        assert_eq!(dogs("age > 2 SORT(age ASC) DISTINCT(name)"), [4, 5, 3].map(Value::from), "the first after sorting");
        assert_eq!(dogs("age > 0 DISTINCT(owner.city) SORT(_id DESC)"), [5, 4].map(Value::from));
        assert_eq!(dogs("age > 0 DISTINCT(name, owner) LIMIT(3)"), [1, 2, 3].map(Value::from));
        let results = db.objects("Dog").unwrap().filtered("TRUEPREDICATE DISTINCT(name)", &[]).unwrap();
        assert_eq!(results.len().unwrap(), 4);
        assert_eq!(results.get(3).unwrap().map(|d| d.primary_key()), Some(Value::from(5)));
    }
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), false);
    let err = db.objects("Person").unwrap().filtered("TRUEPREDICATE DISTINCT(dogs)", &[]).unwrap_err();
    assert!(err.to_string().contains("cannot be DISTINCT by 'dogs': it has many values"), "{err}");
}
