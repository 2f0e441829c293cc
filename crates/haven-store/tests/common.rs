//! Shared fixtures for the integration tests.
#![allow(dead_code)]

use haven_store::{Config, Database, Schema};
use std::path::Path;

pub const DOGS: &str = r#"[
  {"name":"Dog","primaryKey":"_id",
   "properties":{"_id":"int","name":"string","age":"int?","lastUpdated":{"type":"int","indexed":true},
                 "score":{"type":"double","optional":true,"indexed":true},
                 "owner":"Person?","friends":"Dog[]","tags":"string[]","ranks":"int[]","nick":{"type":"string","optional":true,"indexed":true}}},
  {"name":"Person","primaryKey":"_id","properties":{"_id":"string","name":"string","born":"date?"}}
]"#;

pub fn schema() -> Schema {
    Schema::from_json(DOGS).unwrap()
}

pub fn open(dir: &Path) -> Database {
    Database::open(Config::new(dir.join("test.haven")).schema(schema())).unwrap()
}
