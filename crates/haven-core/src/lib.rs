//! Haven's pure core: schema, values, record and key encodings, and the
//! query language. Nothing here does I/O, so the local database, the sync
//! client and the server share one implementation of each rule.

#![warn(missing_docs)]

mod decimal;
mod error;
pub mod key;
pub mod merge;
pub mod query;
pub mod record;
pub mod recovery;
mod schema;
mod value;

pub use decimal::{Decimal128, NotADecimal};
pub use error::{QueryError, SchemaError, ValueError};
pub use schema::{value_from_json, Collection, ObjectSchema, Property, PropertyType, Schema};
pub use value::{canonical_set, sort_order, Value, ValueRef};
