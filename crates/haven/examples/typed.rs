//! Typed access through serde: write structs, read them back, query them,
//! with a set, a dictionary and an embedded object among the fields.
//!
//! `cargo run -p haven --example typed`

use haven::{Config, Database, ObjectSchema, PropertyType, Schema, UpdateMode, Value};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Task {
    _id: String,
    title: String,
    done: bool,
    priority: i64,
    /// A set: each label at most once.
    labels: BTreeSet<String>,
    /// A dictionary: estimates by who made them.
    estimates: BTreeMap<String, i64>,
    /// An embedded object: part of the task, with no identity of its own.
    assignee: Option<Assignee>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Assignee {
    name: String,
    email: Option<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    // The same schema as JSON would be: built in Rust this time.
    let task = ObjectSchema::new("Task")
        .primary_key("_id", PropertyType::String)
        .property("title", PropertyType::String)
        .property("done", PropertyType::Bool)
        .indexed("priority", PropertyType::Int)
        .set("labels", PropertyType::String)
        .dictionary("estimates", PropertyType::Int)
        .optional("assignee", PropertyType::Link("Assignee".into()));
    let assignee = ObjectSchema::new("Assignee")
        .embedded()
        .property("name", PropertyType::String)
        .optional("email", PropertyType::String);
    let db = Database::open(Config::new(dir.path().join("tasks.haven")).schema(Schema::new(vec![task, assignee])?))?;

    db.write(|tx| {
        for (i, title) in ["write docs", "fix bug", "ship"].iter().enumerate() {
            let t = Task {
                _id: format!("t{i}"),
                title: title.to_string(),
                done: i == 0,
                priority: i as i64,
                labels: BTreeSet::from(["work".to_owned()]),
                estimates: BTreeMap::new(),
                assignee: None,
            };
            tx.create_from("Task", &t, UpdateMode::Modified)?;
        }
        // One entry, one element, one field at a time: each merges on its
        // own with what other devices change concurrently.
        tx.set_add("Task", "t1", "labels", "urgent")?;
        tx.dict_put("Task", "t1", "estimates", "ann", 3)?;
        tx.set("Task", "t1", "assignee", Value::Dictionary(BTreeMap::from([("name".to_owned(), "Ann".into())])))?;
        tx.set_path("Task", "t1", "assignee.email", "ann@example.com")
    })?;

    let open: Vec<Task> = db
        .objects("Task")?
        .filtered("done == false AND priority >= 1 SORT(priority DESC)", &[])?
        .iter()?
        .map(|o| o.to())
        .collect::<haven::Result<_>>()?;
    assert_eq!(open.len(), 2);
    println!("open tasks, most important first: {open:#?}");

    let urgent =
        db.objects("Task")?.filtered("labels == 'urgent' AND estimates['ann'] > 1 AND assignee.name == 'Ann'", &[])?;
    let fix: Task = urgent.iter()?.next().expect("t1 matches").to()?;
    assert_eq!(fix.assignee.and_then(|a| a.email).as_deref(), Some("ann@example.com"));
    println!("urgent, estimated by Ann: {}", fix.title);
    Ok(())
}
