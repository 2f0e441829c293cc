//! `haven demo --local`: the local database, step by step.

use haven::{Config, Database, Schema, UpdateMode};
use serde_json::json;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

const SCHEMA: &str = r#"[
  {"name":"Dog","primaryKey":"_id",
   "properties":{"_id":"int","name":"string","age":"int?","lastUpdated":{"type":"int","indexed":true},
                 "owner":"Person?","tags":"string[]"}},
  {"name":"Person","primaryKey":"_id","properties":{"_id":"string","name":"string"}}
]"#;

pub fn run(path: Option<PathBuf>) -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let path = path.unwrap_or_else(|| tmp.path().join("demo.haven"));
    let db = Database::open(Config::new(&path).schema(Schema::from_json(SCHEMA)?))?;
    println!("opened {}", db.path().display());

    let young = db.objects("Dog")?.filtered("age < $0 SORT(name ASC)", &[5.into()])?;
    let (tx, rx) = mpsc::channel();
    let _token = young.add_listener(move |changes| {
        let list = |pks: &[haven::Value]| pks.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let _ = tx.send(format!(
            "listener: young dogs changed: inserted [{}], deleted [{}], modified [{}] (properties {:?})",
            list(&changes.insertions),
            list(&changes.deletions),
            list(&changes.modifications),
            changes.modified_properties,
        ));
    });
    db.wait_for_listeners();

    db.write(|tx| {
        tx.create("Person", json!({"_id": "ann", "name": "Ann"}), UpdateMode::Never)?;
        tx.create(
            "Dog",
            json!({"_id": 1, "name": "Rex", "age": 3, "lastUpdated": 10, "owner": "ann", "tags": ["good"]}),
            UpdateMode::Never,
        )?;
        tx.create("Dog", json!({"_id": 2, "name": "Ace", "age": 7, "lastUpdated": 11}), UpdateMode::Never)?;
        tx.create(
            "Dog",
            json!({"_id": 3, "name": "Bo", "age": 1, "lastUpdated": 12, "owner": {"_id": "bob", "name": "Bob"}}),
            UpdateMode::Never,
        )?;
        Ok(())
    })?;
    println!("wrote 3 dogs and 2 people in one transaction");
    print_events(&db, &rx);

    db.write(|tx| {
        tx.set("Dog", 1, "name", "Rexy")?;
        tx.increment("Dog", 3, "age", 5)?;
        tx.create("Dog", json!({"_id": 2, "age": 2}), UpdateMode::Modified)
    })?;
    println!("renamed dog 1, made dog 3 five years older, upserted dog 2 with age 2");
    print_events(&db, &rx);

    let failed = db.write(|tx| {
        tx.delete("Dog", 1)?;
        tx.create("Dog", json!({"_id": 4, "name": "Max", "age": "old", "lastUpdated": 13}), UpdateMode::Never)
    });
    println!(
        "a transaction that deletes dog 1 then writes a bad value fails and writes nothing:\n  {}",
        failed.unwrap_err()
    );

    for (query, args) in [
        ("lastUpdated > $0", vec![10.into()]),
        ("owner.name == $0", vec!["Ann".into()]),
        ("name BEGINSWITH[c] $0 OR age IN {2, 6}", vec!["r".into()]),
        ("_id == 3", vec![]),
    ] {
        let results = db.objects("Dog")?.filtered(query, &args)?;
        println!("query {query:?} with {args:?}\n  plan: {}\n  result: {}", results.explain()?, results.to_json()?);
    }
    match db.objects("Dog")?.filtered("age > 'x'", &[]) {
        Err(e) => println!("a query with a type mismatch is refused:\n  {}", e.to_string().replace('\n', "\n  ")),
        Ok(_) => return Err("the mistyped query was accepted".into()),
    }
    let rex = db.object_for_primary_key("Dog", 1)?.ok_or("dog 1 is missing")?;
    println!(
        "dog 1: {}\nits owner, through the link: {}",
        rex.to_json(),
        rex.linked("owner")?.map(|o| o.to_json().to_string()).unwrap_or_default()
    );
    Ok(())
}

fn print_events(db: &Database, rx: &mpsc::Receiver<String>) {
    db.wait_for_listeners();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
        println!("  {line}");
    }
}
