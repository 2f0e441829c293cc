//! Haven's local database: one redb file holding objects, secondary
//! indexes and metadata; write transactions; queries; change listeners.
//!
//! Apps use it through the `haven` crate, which re-exports this API.

#![warn(missing_docs)]

mod change_log;
mod changes;
mod config;
mod database;
mod download;
mod error;
mod layout;
mod notifier;
mod object;
pub mod recovery;
mod results;
mod schema_change;
mod snapshot;
mod sync;
mod transaction;

pub use change_log::SyncPosition;
pub use config::{Config, UpdateMode};
pub use database::Database;
pub use error::{Error, Result};
pub use haven_core::merge::{Changeset, Hlc, Instruction, ObjectState};
pub use haven_core::recovery::{RecoveryPolicy, RecoveryReport};
pub use haven_core::{ObjectSchema, Property, PropertyType, QueryError, Schema, SchemaError, Value, ValueError};
pub use notifier::{CollectionChanges, NotificationToken, ObjectChange};
pub use object::Object;
pub use results::Results;
pub use sync::{
    client_reset_backups, initiate_client_reset, Action, AfterReset, BeforeReset, ClientResetInfo, ClientResetMode,
    ConnectionState, ErrorCode, PendingClientReset, ResetHandler, ResetReason, SyncConfig, SyncError, SyncProgress,
    SyncSession, SyncStatus,
};
pub use transaction::WriteTransaction;
