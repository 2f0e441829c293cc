//! The query language on any text: an error with a column inside the
//! query, or a bound query the planner plans.
#![no_main]

use haven_core::{query, Schema, Value};
use std::sync::OnceLock;

const SCHEMA: &str = r#"[
  {"name":"Dog","primaryKey":"_id","properties":{
    "_id":"int","name":{"type":"string","indexed":true},"age":"int?","weight":"double?",
    "born":"date?","tags":"string[]","owner":"Person"}},
  {"name":"Person","primaryKey":"_id","properties":{"_id":"string","name":"string","dogs":"Dog[]"}}
]"#;

libfuzzer_sys::fuzz_target!(|text: &str| {
    static PARSED: OnceLock<Schema> = OnceLock::new();
    let schema = PARSED.get_or_init(|| Schema::from_json(SCHEMA).expect("the fuzz schema"));
    let args = [Value::Int(1), Value::from("Rex"), Value::Null];
    match query::bind(schema, "Dog", text, &args) {
        Ok(bound) => {
            query::plan(schema.object_type("Dog").unwrap(), &bound);
        }
        Err(e) => assert!(e.column >= 1 && e.column <= text.chars().count() + 1, "{e:?}"),
    }
});
