//! The sync client: a background session per synced database that
//! uploads the change log and applies what the server sends through the
//! same commit path as local writes (so listeners hear of it). The
//! protocol is `haven_sync::protocol`; the design is `docs/sync.md`.

mod config;
mod connection;
mod liveness;
mod open;
mod session;

pub use config::SyncConfig;
pub(crate) use connection::request_reset;
pub use haven_sync::protocol::{Action, ErrorCode};
pub use session::{ConnectionState, SyncProgress, SyncSession, SyncStatus};

use crate::client_reset::ClientResetInfo;

/// What went wrong with sync. Reported to
/// [`SyncConfig::on_error`] and returned by the session's waits.
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
    /// The database was closed.
    #[error("the sync session ended because the database was closed")]
    Closed,
}
