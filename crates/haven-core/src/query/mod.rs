//! The query language (a Realm Query Language subset): a lexer and parser
//! with spans, a binder that checks a query against the schema, a planner
//! that uses primary keys and indexes, and an evaluator for the rest.
//!
//! ```
//! use haven_core::{query, Schema, Value};
//! let schema = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id",
//!   "properties":{"_id":"int","name":"string","age":{"type":"int","indexed":true}}}]"#).unwrap();
//! let q = query::bind(&schema, "Dog", "age > $0 AND name BEGINSWITH[c] 'r'", &[Value::Int(3)]).unwrap();
//! let plan = query::plan(schema.object_type("Dog").unwrap(), &q);
//! assert_eq!(plan.description, "index Dog.age (1 range), then filter on name");
//! let err = query::bind(&schema, "Dog", "age > 'x'", &[]).unwrap_err();
//! assert_eq!(err.column, 7);
//! ```

mod bind;
mod eval;
mod lexer;
mod parser;
mod plan;

pub use bind::{BoundPath, BoundQuery, Comparison, Filter, Hop, Side};
pub use eval::{path_values, LinkResolver};
pub use parser::{Aggregate, Entries, Op, Quantifier};
pub use plan::{plan, Access, KeyRange, Plan};

use crate::error::QueryError;
use crate::schema::Schema;
use crate::value::Value;

/// Parses `text` and checks it against type `object_type` of `schema`,
/// with `args` for `$0`, `$1`, ...
pub fn bind(schema: &Schema, object_type: &str, text: &str, args: &[Value]) -> Result<BoundQuery, QueryError> {
    let error = |message: String, offset: usize| QueryError {
        column: text[..offset.min(text.len())].chars().count() + 1,
        message,
        query: text.to_owned(),
    };
    let root =
        schema.object_type(object_type).ok_or_else(|| error(format!("unknown object type '{object_type}'"), 0))?;
    let parsed = parser::parse(text).map_err(|(m, at)| error(m, at))?;
    bind::Binder { schema, root, args, variable: None }.bind(&parsed).map_err(|(m, span)| error(m, span.start))
}

/// A sort key on a single property, as `Results::sorted` makes.
pub fn sort_key(schema: &Schema, object_type: &str, path: &str) -> Result<(BoundPath, bool), QueryError> {
    let q = bind(schema, object_type, &format!("TRUEPREDICATE SORT({path})"), &[]).map_err(|mut e| {
        e.column = e.column.saturating_sub("TRUEPREDICATE SORT(".len()).max(1);
        e.query = path.to_owned();
        e
    })?;
    Ok(q.sort.into_iter().next().expect("one sort key"))
}
