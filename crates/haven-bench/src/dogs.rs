//! The Haven half of the local workloads, on the benchmarks' Dog type.
//!
//! `haven bench local` times these against SQLite; the Node.js binding's
//! benchmark (`npm run bench` in `bindings/node`) times the same workloads
//! written in JavaScript against them, on the same files.

use crate::Rng;
use haven::{Config, Database, Schema, UpdateMode, Value};
use std::path::Path;

/// The Dog type, in the schema's JSON form: `lastUpdated` is indexed.
pub const DOG_SCHEMA: &str = r#"[{"name":"Dog","primaryKey":"_id","properties":{
    "_id":"int","name":"string","age":"int?","lastUpdated":{"type":"int","indexed":true}}}]"#;

/// Opens (or creates) a database of Dogs.
pub fn open(path: &Path) -> haven::Result<Database> {
    Database::open(Config::new(path).schema(Schema::from_json(DOG_SCHEMA)?))
}

/// Creates Dogs `from..to` in one transaction: Dog `i` is
/// `{_id: i, name: "dog i", age: i % 20, lastUpdated: i}`.
pub fn insert(db: &Database, from: usize, to: usize) -> haven::Result<()> {
    db.write(|tx| {
        for i in from..to {
            let i = i as i64;
            tx.create_values(
                "Dog",
                [
                    ("_id", Value::Int(i)),
                    ("name", Value::String(format!("dog {i}"))),
                    ("age", Value::Int(i % 20)),
                    ("lastUpdated", Value::Int(i)),
                ],
                UpdateMode::Never,
            )?;
        }
        Ok(())
    })
}

/// Creates Dogs `from..to`, one durable transaction each.
pub fn insert_one_by_one(db: &Database, from: usize, to: usize) -> haven::Result<()> {
    (from..to).try_for_each(|i| insert(db, i, i + 1))
}

/// Reads the name of `lookups` Dogs picked at random (by `seed`) among
/// `0..of`; returns how many were found.
pub fn lookup(db: &Database, lookups: usize, of: usize, seed: u64) -> haven::Result<usize> {
    let mut rng = Rng::new(seed);
    let mut found = 0;
    for _ in 0..lookups {
        let dog = db.object_for_primary_key("Dog", rng.below(of as u64) as i64)?;
        found += usize::from(dog.and_then(|d| d.get("name")).is_some());
    }
    Ok(found)
}

/// Iterates the Dogs with `lastUpdated > threshold` (through the index)
/// and reads each one's name; returns how many there were.
pub fn range_query(db: &Database, threshold: i64) -> haven::Result<usize> {
    let results = db.objects("Dog")?.filtered("lastUpdated > $0", &[Value::Int(threshold)])?;
    Ok(results.iter()?.filter(|d| d.get("name").is_some()).count())
}

/// Iterates the Dogs whose name begins with `prefix` (a scan) and reads
/// each one's name; returns how many there were.
pub fn scan_query(db: &Database, prefix: &str) -> haven::Result<usize> {
    let results = db.objects("Dog")?.filtered("name BEGINSWITH $0", &[prefix.into()])?;
    Ok(results.iter()?.filter(|d| d.get("name").is_some()).count())
}
