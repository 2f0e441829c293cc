//! What the sync session and its connections share: the status the app
//! watches, the controls the app sets, and the way to the database.

use super::config::SyncConfig;
use super::token::SessionToken;
use super::transport::Endpoint;
use super::SyncError;
use crate::client_reset::ClientResetMode;
use crate::database::{Database, Inner};
use std::sync::Weak;
use tokio::sync::{watch, Notify};

/// Whether the session is connected to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Offline: waiting to reconnect, paused, or stopped.
    Disconnected,
    /// Connecting and binding.
    Connecting,
    /// Bound: changes flow both ways.
    Connected,
}

/// How far uploads and downloads have come.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncProgress {
    /// The last local changeset (client version) the server acknowledged.
    pub uploaded: u64,
    /// The last local changeset written (uploads are done when `uploaded`
    /// reaches it).
    pub uploadable: u64,
    /// The last server version integrated here.
    pub downloaded: u64,
    /// The latest server version the server has announced.
    pub downloadable: u64,
}

/// The session's state, as [`SyncSession::watch`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncStatus {
    /// Connected or not.
    pub connection: ConnectionState,
    /// Upload and download progress.
    pub progress: SyncProgress,
    /// Set once the session has stopped for good (a fatal error from the
    /// server, a local failure, or the database closed).
    pub stopped: Option<SyncError>,
    /// The last `Mark` request the server has answered.
    pub(crate) marks_answered: u64,
    /// Client resets committed by this session: a reset renumbers the log.
    pub(crate) resets: u64,
}

/// What the app asks of the background task.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Control {
    pub paused: bool,
    pub closed: bool,
    /// The last `Mark` request made (download waits).
    pub marks_requested: u64,
}

pub(crate) struct SessionState {
    pub config: SyncConfig,
    pub status: watch::Sender<SyncStatus>,
    pub control: watch::Sender<Control>,
    pub local_commits: Notify,
    pub token: SessionToken,
    /// Where it connects, checked when the database opened.
    pub endpoint: Endpoint,
    pub(super) db: Weak<Inner>,
}

impl SessionState {
    /// The database, unless it has been closed.
    pub fn db(&self) -> Option<Database> {
        self.db.upgrade().map(Database::from_inner)
    }

    pub fn set_connection(&self, state: ConnectionState) {
        self.status.send_if_modified(|s| std::mem::replace(&mut s.connection, state) != state);
    }

    pub fn update_progress(&self, f: impl FnOnce(&mut SyncProgress)) {
        self.status.send_if_modified(|s| {
            let before = s.progress;
            f(&mut s.progress);
            before != s.progress
        });
    }

    /// A client reset committed: the log now holds `uploadable`
    /// recovered changesets, numbered from 1, and the file is at `version`.
    pub fn reset_committed(&self, version: u64, uploadable: u64) {
        self.status.send_modify(|s| {
            s.progress = SyncProgress { uploaded: 0, uploadable, downloaded: version, downloadable: version };
            s.resets += 1;
        });
    }

    /// Tells the app: a manual reset goes to `on_manual` if the mode has
    /// one, everything else to `on_error`.
    pub fn report(&self, error: &SyncError) {
        tracing::warn!(partition = %self.config.partition, %error, "sync error");
        if let (SyncError::ClientReset(info), ClientResetMode::Manual { on_manual: Some(handler) }) =
            (error, &*self.config.client_reset)
        {
            return handler(info);
        }
        if let Some(handler) = &self.config.on_error {
            handler(error);
        }
    }
}
