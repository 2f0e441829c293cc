//! `haven::Error`: every error names the thing at fault and, where it can,
//! says what to do next.

#[cfg(feature = "sync")]
use crate::client_reset_info::ClientResetInfo;
use haven_core::{QueryError, SchemaError, ValueError};
#[cfg(feature = "sync")]
use haven_sync::protocol::{Action, ErrorCode};
use std::path::PathBuf;

/// `Result<T, haven::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The schema is invalid, or cannot open this file.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A query that cannot be parsed or does not fit the schema.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A value that does not fit its property.
    #[error(transparent)]
    InvalidValue(#[from] ValueError),
    /// A write transaction of a synced database too large to upload.
    #[error("this write transaction comes to {bytes} bytes, over the {max} a synced database can upload at once; split it into smaller transactions")]
    TooLargeToSync {
        /// Its size in the change log.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// Sync failed or cannot start.
    #[error(transparent)]
    #[cfg(feature = "sync")]
    Sync(#[from] SyncError),
    /// An object type the schema does not have.
    #[error("unknown object type '{0}': it is not in the database's schema")]
    UnknownType(String),
    /// A property the type does not have.
    #[error("{object_type} has no property '{property}'")]
    UnknownProperty {
        /// The object type.
        object_type: String,
        /// The property asked for.
        property: String,
    },
    /// A required property missing from a new object.
    #[error("{object_type}.{property} is required but was not given")]
    MissingProperty {
        /// The object type.
        object_type: String,
        /// The missing property.
        property: String,
    },
    /// `UpdateMode::Never` and the primary key exists.
    #[error("{object_type} with primary key {primary_key} already exists (use UpdateMode::Modified or UpdateMode::All to update it)")]
    DuplicatePrimaryKey {
        /// The object type.
        object_type: String,
        /// The primary key, as text.
        primary_key: String,
    },
    /// No object with that primary key.
    #[error("no {object_type} with primary key {primary_key}")]
    ObjectNotFound {
        /// The object type.
        object_type: String,
        /// The primary key, as text.
        primary_key: String,
    },
    /// A type-level operation (create, query, lookup) on an embedded type.
    #[error(
        "{0} is an embedded type: it has no objects of its own; read and write them through the object that holds each"
    )]
    EmbeddedType(String),
    /// An operation the property does not support (`increment` on a string, say).
    #[error("{object_type}.{property}: {message}")]
    InvalidOperation {
        /// The object type.
        object_type: String,
        /// The property.
        property: String,
        /// What is wrong.
        message: String,
    },
    /// A write on a database opened read-only.
    #[error("{0} is open read-only in this process; to write, open it without `.read_only()` (after closing read-only handles opened first)")]
    ReadOnly(PathBuf),
    /// A value that cannot be converted to or from the app's type (serde).
    #[error("{object_type}: {message}")]
    Conversion {
        /// The object type.
        object_type: String,
        /// What did not fit.
        message: String,
    },
    /// `write` called inside a write transaction of the same database.
    #[error("{0}: write called inside a write transaction of the same database; do the work in the outer transaction")]
    NestedWrite(PathBuf),
    /// The file is not a Haven database, or is damaged. It was not changed.
    #[error("{path} is not a Haven database: {reason}")]
    NotADatabase {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file's process was killed (or crashed) while it had the file
    /// open for writing: it is a Haven database that needs its crash
    /// recovery, which opening it once for writing carries out (committed
    /// transactions are kept). It was not changed.
    #[error("{0} was not closed cleanly (its process was killed or crashed): open it once for writing, which repairs it and keeps every committed transaction, then open it read-only again")]
    NotClosedCleanly(PathBuf),
    /// The file was written by a newer Haven. It was not changed.
    #[error("{path} has file format version {found}, but this version of Haven reads up to {supported}; upgrade Haven to open it")]
    FormatTooNew {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// A client reset needs the database closed.
    #[error("{0} is still open in this process: drop every handle to it (and its Results and Objects) before initiate_client_reset")]
    StillOpen(PathBuf),
    /// Another process has the file open.
    #[error("{0} is open in another process; close it there first")]
    OpenElsewhere(PathBuf),
    /// An error of the storage engine or the file system.
    #[error("storage error: {0}")]
    Storage(String),
}

macro_rules! storage_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self { Error::Storage(e.to_string()) }
        }
    )*};
}
storage_errors!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError,
    std::io::Error
);

/// What went wrong with sync. Reported to
/// [`SyncConfig::on_error`](crate::SyncConfig::on_error) and returned by the session's waits.
#[cfg(feature = "sync")]
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The server refused the session or an upload; `action` is what it
    /// asked of the client (`Fatal`: the session stopped).
    #[error("the server refused ({code:?}): {message}")]
    Server {
        /// The kind of error.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
        /// What the server asked the client to do.
        action: Action,
    },
    /// The server cannot continue this file's history and the app must
    /// act (`ClientResetMode::Manual`, or a fallback to it): close the
    /// database, call [`initiate_client_reset`](crate::initiate_client_reset), reopen. Sync stopped.
    #[error("client reset needed ({:?}): close the database, call initiate_client_reset({}), reopen it and recover from the backup at {}", .0.reason(), .0.original_path().display(), .0.backup_path().display())]
    ClientReset(ClientResetInfo),
    /// An automatic client reset attempt failed (a callback returned an
    /// error, or the recovery could not be stored) and was rolled back;
    /// [`ClientResetInfo::failure`] says why. The next attempt falls back
    /// (see [`ClientResetMode`](crate::ClientResetMode)).
    #[error("automatic client reset of {} failed and was rolled back: {}", .0.original_path().display(), .0.failure().unwrap_or("unknown"))]
    AutoClientResetFailed(ClientResetInfo),
    /// This side failed to store what the server sent, or to read its log;
    /// the session stopped.
    #[error("sync stopped: the local database failed: {0}")]
    Local(String),
    /// A configuration that cannot work.
    #[error("bad sync configuration: {0}")]
    Config(String),
    /// TLS with the server failed: its certificate was refused (expired,
    /// unknown issuer, another host's), or one end does not speak TLS.
    /// The session keeps retrying with its backoff; this is reported once
    /// until a connection succeeds.
    #[error("TLS with {host} failed: {reason}")]
    Tls {
        /// The server's host name.
        host: String,
        /// What failed, e.g. "certificate refused: expired".
        reason: String,
    },
    /// The [token provider](crate::SyncConfig::token_provider) returned
    /// an error; the session tries again after its backoff.
    #[error("cannot get a token: {0}")]
    Token(String),
    /// The database was closed.
    #[error("the sync session ended because the database was closed")]
    Closed,
}

/// `ty`, unless it is an embedded type, whose objects are reached only
/// through the object that holds each.
pub(crate) fn not_embedded(ty: &haven_core::ObjectSchema) -> Result<&haven_core::ObjectSchema> {
    match ty.is_embedded() {
        true => Err(Error::EmbeddedType(ty.name().to_owned())),
        false => Ok(ty),
    }
}
