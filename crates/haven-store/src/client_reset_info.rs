//! What a client reset needs the app to know. The calls that read the
//! backup or the file are in `client_reset.rs`; this is the data, which
//! [`SyncError`](crate::SyncError) carries.

use haven_sync::protocol::ResetReason;
use std::path::{Path, PathBuf};

/// What a client reset needs the app to know: carried by
/// [`SyncError::ClientReset`](crate::SyncError::ClientReset) and
/// [`SyncError::AutoClientResetFailed`](crate::SyncError::AutoClientResetFailed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientResetInfo {
    pub(crate) original_path: PathBuf,
    pub(crate) backup_path: PathBuf,
    pub(crate) reason: ResetReason,
    pub(crate) acknowledged: Option<u64>,
    pub(crate) failure: Option<String>,
}

impl ClientResetInfo {
    /// The database file that must start again.
    pub fn original_path(&self) -> &Path {
        &self.original_path
    }

    /// Where [`initiate_client_reset`](crate::initiate_client_reset) moves it.
    pub fn backup_path(&self) -> &Path {
        &self.backup_path
    }

    /// Why the server reset this file.
    pub fn reason(&self) -> ResetReason {
        self.reason
    }

    /// Why an automatic attempt failed, for
    /// [`SyncError::AutoClientResetFailed`](crate::SyncError::AutoClientResetFailed).
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }
}
