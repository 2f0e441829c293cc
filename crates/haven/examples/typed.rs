//! Typed access through serde: write structs, read them back, query them.
//!
//! `cargo run -p haven --example typed`

use haven::{Config, Database, ObjectSchema, PropertyType, Schema, UpdateMode};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Task {
    _id: String,
    title: String,
    done: bool,
    priority: i64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    // The same schema as JSON would be: built in Rust this time.
    let task = ObjectSchema::new("Task")
        .primary_key("_id", PropertyType::String)
        .property("title", PropertyType::String)
        .property("done", PropertyType::Bool)
        .indexed("priority", PropertyType::Int);
    let db = Database::open(Config::new(dir.path().join("tasks.haven")).schema(Schema::new(vec![task])?))?;

    db.write(|tx| {
        for (i, title) in ["write docs", "fix bug", "ship"].iter().enumerate() {
            let t = Task { _id: format!("t{i}"), title: title.to_string(), done: i == 0, priority: i as i64 };
            tx.create_from("Task", &t, UpdateMode::Modified)?;
        }
        Ok(())
    })?;

    let open: Vec<Task> = db
        .objects("Task")?
        .filtered("done == false AND priority >= 1 SORT(priority DESC)", &[])?
        .iter()?
        .map(|o| o.to())
        .collect::<haven::Result<_>>()?;
    assert_eq!(open.len(), 2);
    println!("open tasks, most important first: {open:#?}");
    Ok(())
}
