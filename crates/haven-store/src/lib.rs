//! Haven's local database: one redb file holding objects, secondary
//! indexes and metadata; write transactions; queries; change listeners.
//!
//! Apps use it through the `haven` crate, which re-exports this API.

#![warn(missing_docs)]

mod changes;
#[cfg(feature = "sync")]
mod client_reset;
#[cfg(feature = "sync")]
mod client_reset_info;
mod config;
mod database;
mod error;
mod layout;
mod migrations;
mod notifier;
mod object;
#[cfg(feature = "sync")]
pub mod recovery;
mod replica;
mod results;
#[cfg(feature = "sync")]
mod schema_change;
mod snapshot;
#[cfg(feature = "sync")]
mod sync;
mod transaction;
mod transaction_keyed;
mod transaction_list;
mod transaction_query;

#[cfg(feature = "sync")]
pub use client_reset::{
    client_reset_backups, initiate_client_reset, AfterReset, BeforeReset, ClientResetMode, ResetHandler,
};
#[cfg(feature = "sync")]
pub use client_reset_info::ClientResetInfo;
pub use config::{Config, UpdateMode};
pub use database::Database;
pub use error::{Error, Result};
pub use haven_core::merge::{Changeset, ElementId, Hlc, Instruction, ObjectState};
pub use haven_core::recovery::{RecoveryPolicy, RecoveryReport};
pub use haven_core::{
    Collection, ObjectSchema, Property, PropertyType, QueryError, Schema, SchemaError, Value, ValueError,
};
pub use haven_sync::protocol::ResetReason;
pub use notifier::{CollectionChanges, NotificationToken, ObjectChange};
pub use object::Object;
pub use replica::change_log::SyncPosition;
pub use replica::reset_tracker::PendingClientReset;
pub use results::Results;
#[cfg(feature = "sync")]
pub use sync::{Action, ConnectionState, ErrorCode, SyncConfig, SyncError, SyncProgress, SyncSession, SyncStatus};
pub use transaction::WriteTransaction;

/// What the sync client does with what the server sends, without a
/// network: for tests that drive devices straight from a server's
/// storage. Only with the `testing` feature; apps never see it.
#[cfg(feature = "testing")]
pub mod testing {
    use crate::{Database, Result};
    use haven_core::merge::Changeset;
    use haven_sync::protocol::SnapshotObject;

    /// Applies a `Download`: `changesets` as `(server version, changeset)`
    /// in server order, `last_salt` the last version's salt,
    /// `uploaded_through` the acknowledgement, `ident` the file's ident.
    pub fn integrate_download(
        db: &Database,
        changesets: &[(u64, Changeset)],
        last_salt: u64,
        uploaded_through: u64,
        ident: u64,
    ) -> Result<()> {
        db.integrate_download(changesets, last_salt, uploaded_through, ident)
    }

    /// Starts taking in a snapshot (the confirmed state is forgotten).
    pub fn start_bootstrap(db: &Database) -> Result<()> {
        db.start_bootstrap()
    }

    /// Takes in one batch of a snapshot.
    pub fn bootstrap_batch(db: &Database, objects: &[SnapshotObject]) -> Result<()> {
        db.bootstrap_batch(objects)
    }

    /// Ends a bootstrap of the snapshot at `version` (whose salt is `salt`).
    pub fn finish_bootstrap(db: &Database, version: u64, salt: u64, uploaded_through: u64, ident: u64) -> Result<()> {
        db.finish_bootstrap(version, salt, uploaded_through, ident)
    }
}
