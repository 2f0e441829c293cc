//! The Haven half of the list workloads, on an `Owner` type whose `walks`
//! list grows element by element.

use haven::{Config, Database, Schema, UpdateMode, Value};
use std::path::Path;

/// The Owner type: a list of ints.
pub const OWNER_SCHEMA: &str = r#"[{"name":"Owner","primaryKey":"_id","properties":{"_id":"int","walks":"int[]"}}]"#;

/// The schema of [`OWNER_SCHEMA`].
pub fn schema() -> haven::Result<Schema> {
    Ok(Schema::from_json(OWNER_SCHEMA)?)
}

/// Opens (or creates) a database of Owners.
pub fn open(path: &Path) -> haven::Result<Database> {
    Database::open(Config::new(path).schema(schema()?))
}

/// Creates Owners `0..owners` with empty lists, in one transaction.
pub fn create_owners(db: &Database, owners: usize) -> haven::Result<()> {
    db.write(|tx| {
        (0..owners as i64).try_for_each(|i| tx.create_values("Owner", [("_id", Value::Int(i))], UpdateMode::Never))
    })
}

/// Appends values `from..to` in one transaction, value `i` to Owner
/// `i % owners`.
pub fn append(db: &Database, owners: usize, from: usize, to: usize) -> haven::Result<()> {
    db.write(|tx| (from..to).try_for_each(|i| tx.list_push("Owner", (i % owners) as i64, "walks", i as i64)))
}

/// The values of every Owner's list, in Owner order.
pub fn values(db: &Database) -> haven::Result<Vec<Vec<i64>>> {
    let owners = db.objects("Owner")?.sorted("_id", true)?;
    let list = |o: haven::Object| -> Vec<i64> {
        o.get("walks")
            .and_then(|w| w.as_list().map(|l| l.iter().filter_map(Value::as_int).collect()))
            .unwrap_or_default()
    };
    Ok(owners.iter()?.map(list).collect())
}
