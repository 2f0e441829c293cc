//! # Haven
//!
//! An offline-first object database for Rust. Apps read and write a local
//! database file at full speed, with or without a network.
//!
//! - [`Schema`]: object types, from JSON (the Realm form) or a builder.
//! - [`Database`]: open a file, [`Database::write`] in transactions, read
//!   objects by primary key, query with [`Results`].
//! - Listeners: [`Results::add_listener`] and [`Object::add_listener`] are
//!   called after each commit that changes what they watch.
//!
//! ## Query language
//!
//! A subset of the Realm Query Language, used by [`Results::filtered`]:
//!
//! | form | example |
//! |---|---|
//! | comparisons | `age >= 3`, `name != "Rex"`, `owner == nil` |
//! | connectives | `AND`, `OR`, `NOT` (or `&&`, `\|\|`, `!`), parentheses |
//! | strings | `name BEGINSWITH "R"`, `ENDSWITH`, `CONTAINS`, `LIKE "R?x*"`, `[c]` for case-insensitive |
//! | sets and ranges | `age IN {1, 2}`, `age IN $0` (a list), `age BETWEEN {1, 10}` |
//! | links | `owner.name == "Ann"` |
//! | lists and sets | `tags.@count > 1`, `ANY tags == "x"` (also just `tags == "x"`), `ALL tags IN {"a", "b"}`, `NONE`, `ranks.@sum > 10`, `@avg`, `@min`, `@max` |
//! | dictionaries | `prices["apple"] > 2`, `prices.@keys == "apple"`, `prices.@values > 2`, `prices.@count` |
//! | backlinks | `dogs.@count > 1` (a `linkingObjects` property), `@links.Dog.owner.@count == 0` |
//! | subqueries | `SUBQUERY(dogs, $d, $d.age > 5 AND $d.name BEGINSWITH "R").@count > 1` |
//! | arguments | `age > $0` |
//! | suffixes | `SORT(age DESC, name ASC)`, `DISTINCT(name)`, `LIMIT(10)` |
//! | constants | `TRUEPREDICATE`, `FALSEPREDICATE` |
//!
//! Equality, ranges and case-sensitive `BEGINSWITH` on the primary key or
//! an indexed property use the key or the index; [`Results::explain`] says
//! which. Errors are [`Error::Query`] with the column where they start.
//!
//! ```
//! use haven::{Config, Database, Schema, UpdateMode};
//! use serde_json::json;
//! # let dir = tempfile::tempdir().unwrap();
//! let schema = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id",
//!     "properties":{"_id":"int","name":"string","age":"int?"}}]"#)?;
//! let db = Database::open(Config::new(dir.path().join("dogs.haven")).schema(schema))?;
//! db.write(|tx| tx.create("Dog", json!({"_id": 1, "name": "Rex", "age": 3}), UpdateMode::Never))?;
//! let err = db.objects("Dog")?.filtered("age > 'x'", &[]).unwrap_err();
//! assert!(matches!(&err, haven::Error::Query(q) if q.column == 7), "{err}");
//! # Ok::<(), haven::Error>(())
//! ```

#![warn(missing_docs)]

#[cfg(feature = "sync")]
pub use haven_store::recovery;
#[cfg(feature = "sync")]
pub use haven_store::{
    client_reset_backups, initiate_client_reset, Action, AfterReset, BeforeReset, ClientResetInfo, ClientResetMode,
    ConnectionState, ErrorCode, ResetHandler, SyncConfig, SyncError, SyncProgress, SyncSession, SyncStatus,
};
pub use haven_store::{
    Changeset, Collection, CollectionChanges, Config, Database, ElementId, Error, Hlc, Instruction, NotificationToken,
    Object, ObjectChange, ObjectSchema, Property, PropertyType, QueryError, Result, Results, Schema, SchemaError,
    UpdateMode, Value, ValueError, WriteTransaction,
};
pub use haven_store::{PendingClientReset, RecoveryPolicy, RecoveryReport, ResetReason, SyncPosition};

#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
