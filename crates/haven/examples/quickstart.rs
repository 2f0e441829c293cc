//! The README tour as a program: open, write, read, query, listen.
//!
//! `cargo run -p haven --example quickstart`

use haven::{Config, Database, Schema, UpdateMode, Value};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let schema = Schema::from_json(
        r#"[
      {"name":"Dog","primaryKey":"_id",
       "properties":{"_id":"int","name":"string","age":"int?","lastUpdated":{"type":"int","indexed":true},
                     "owner":"Person?","tags":"string[]"}},
      {"name":"Person","primaryKey":"_id","properties":{"_id":"string","name":"string"}}
    ]"#,
    )?;
    let db = Database::open(Config::new(dir.path().join("app.haven")).schema(schema))?;

    let young = db.objects("Dog")?.filtered("age < $0", &[5.into()])?;
    let _token = young.add_listener(|changes| {
        println!("young dogs: +{:?} -{:?} ~{:?}", changes.insertions, changes.deletions, changes.modifications)
    });

    db.write(|tx| {
        tx.create(
            "Dog",
            json!({"_id": 1, "name": "Rex", "age": 3, "lastUpdated": 10, "owner": {"_id": "ann", "name": "Ann"}}),
            UpdateMode::Never,
        )?;
        tx.create("Dog", json!({"_id": 2, "name": "Ace", "age": 7, "lastUpdated": 11}), UpdateMode::Never)?;
        tx.increment("Dog", 1, "age", 1)
    })?;
    db.wait_for_listeners();

    // Lists change element by element: in a synced database, two devices
    // that add to one list offline both keep their elements.
    db.write(|tx| {
        tx.list_push("Dog", 1, "tags", "good")?;
        tx.list_push("Dog", 1, "tags", "calm")?;
        tx.list_insert("Dog", 1, "tags", 0, "first")?;
        tx.list_move("Dog", 1, "tags", 0, 2)
    })?;

    let rex = db.object_for_primary_key("Dog", 1)?.ok_or("Rex is missing")?;
    assert_eq!(rex.get("age"), Some(Value::Int(4)));
    assert_eq!(rex.get("tags"), Some(Value::from(vec!["good", "calm", "first"])));
    println!("Rex: {} (owner {})", rex.to_json(), rex.linked("owner")?.ok_or("no owner")?.to_json());

    let recent = db.objects("Dog")?.filtered("lastUpdated > $0 SORT(lastUpdated DESC)", &[5.into()])?;
    println!("{} dogs updated after 5, via {}", recent.len()?, recent.explain()?);
    for dog in recent.iter()? {
        println!("  {}", dog.to_json());
    }
    Ok(())
}
