//! Client reset as the app sees it (`docs/client-reset.md`): the modes
//! it chooses and the plan each makes of a reset, what a reset that needs
//! the app tells it, and moving a file aside for a manual reset. What the
//! file keeps of a reset under way is `reset_tracker`.

use crate::client_reset_info::ClientResetInfo;
use crate::config::Config;
use crate::database::Database;
use crate::error::{Error, Result};
use crate::replica::reset_tracker::{backup_dir, backup_path_for, file_name, Plan, ResetTracker};
use haven_core::merge::Instruction;
use haven_core::recovery::{RecoveryPolicy, RecoveryReport};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Called with a frozen copy of the database as it was before the reset;
/// an `Err` aborts this reset attempt (rolled back; see [`ClientResetMode`]).
pub type BeforeReset = Box<dyn Fn(&Database) -> Result<()> + Send + Sync>;
/// Called once the reset committed: the frozen database before, the live
/// one after, and what became of the unsynced changes.
pub type AfterReset = Box<dyn Fn(&Database, &Database, &RecoveryReport) -> Result<()> + Send + Sync>;
/// Called with what a reset needs from the app.
pub type ResetHandler = Box<dyn Fn(&ClientResetInfo) + Send + Sync>;

/// What a database does when the server can no longer continue its
/// history (a *client reset*). Give it to
/// [`SyncConfig::client_reset`](crate::SyncConfig::client_reset); the
/// default is `RecoverUnsynced` with [`RecoveryPolicy::LatestWins`].
///
/// The automatic modes work in the background: the fresh state downloads
/// while the app goes on, then one write transaction makes the database
/// the server's state with the recovered changes on top. Handles stay
/// open; listeners hear only of what really changed. If a `before`
/// callback fails, that attempt is rolled back and reported as
/// [`SyncError::AutoClientResetFailed`](crate::SyncError::AutoClientResetFailed);
/// the next attempt falls back (`RecoverUnsynced` → manual,
/// `RecoverOrDiscard` → discard, then manual): a reset never loops.
///
/// ```
/// use haven_store::{ClientResetMode, RecoveryPolicy, SyncConfig};
/// let sync = SyncConfig::new("ws://127.0.0.1:7878", "dev-token", "p").client_reset(ClientResetMode::RecoverUnsynced {
///     policy: RecoveryPolicy::LatestWins,
///     before: None,
///     after: Some(Box::new(|_before, _after, report| {
///         println!("client reset: {report}");
///         Ok(())
///     })),
/// });
/// ```
pub enum ClientResetMode {
    /// Sync stops and the app decides: `on_manual` (or, without it, the
    /// [`SyncConfig::on_error`](crate::SyncConfig::on_error) handler) gets
    /// [`SyncError::ClientReset`](crate::SyncError::ClientReset). The app
    /// closes the database, calls [`initiate_client_reset`], reopens, and
    /// recovers from the backup (see `haven::recovery`).
    Manual {
        /// Called with what the reset needs.
        on_manual: Option<ResetHandler>,
    },
    /// Unsynced changes are thrown away: the database becomes the server's state.
    DiscardUnsynced {
        /// Called before the reset commits.
        before: Option<BeforeReset>,
        /// Called after it committed (the report lists what was discarded).
        after: Option<AfterReset>,
    },
    /// Unsynced changes are replayed onto the server's state by `policy`;
    /// what cannot be is listed in the report. If the server forbids
    /// recovery, or an attempt failed, it falls back to manual.
    RecoverUnsynced {
        /// Whose values win.
        policy: RecoveryPolicy,
        /// Called before the reset commits.
        before: Option<BeforeReset>,
        /// Called after it committed.
        after: Option<AfterReset>,
    },
    /// Like `RecoverUnsynced`, but where that falls back to manual this
    /// discards the unsynced changes and calls `fallback`.
    RecoverOrDiscard {
        /// Whose values win.
        policy: RecoveryPolicy,
        /// Called before the reset commits.
        before: Option<BeforeReset>,
        /// Called after it committed.
        after: Option<AfterReset>,
        /// Called when recovery was not possible and changes were discarded.
        fallback: Option<ResetHandler>,
    },
}

impl Default for ClientResetMode {
    fn default() -> Self {
        ClientResetMode::RecoverUnsynced { policy: RecoveryPolicy::LatestWins, before: None, after: None }
    }
}

impl std::fmt::Debug for ClientResetMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientResetMode::Manual { .. } => f.write_str("Manual"),
            ClientResetMode::DiscardUnsynced { .. } => f.write_str("DiscardUnsynced"),
            ClientResetMode::RecoverUnsynced { policy, .. } => write!(f, "RecoverUnsynced({policy:?})"),
            ClientResetMode::RecoverOrDiscard { policy, .. } => write!(f, "RecoverOrDiscard({policy:?})"),
        }
    }
}

impl ClientResetMode {
    /// What this attempt does, given how earlier attempts went.
    pub(crate) fn plan(&self, tracker: &ResetTracker) -> Plan {
        let recoverable = tracker.recovery_allowed && tracker.failed_attempts == 0;
        match self {
            ClientResetMode::Manual { .. } => Plan::Manual,
            ClientResetMode::DiscardUnsynced { .. } if tracker.failed_attempts == 0 => Plan::Discard,
            ClientResetMode::DiscardUnsynced { .. } => Plan::Manual,
            ClientResetMode::RecoverUnsynced { policy, .. } if recoverable => Plan::Recover(*policy),
            ClientResetMode::RecoverUnsynced { .. } => Plan::Manual,
            ClientResetMode::RecoverOrDiscard { policy, .. } if recoverable => Plan::Recover(*policy),
            // Discarding is tried once; if even that fails, the app decides.
            ClientResetMode::RecoverOrDiscard { .. } if tracker.failed_attempts <= 1 => Plan::Discard,
            ClientResetMode::RecoverOrDiscard { .. } => Plan::Manual,
        }
    }

    pub(crate) fn before(&self) -> Option<&BeforeReset> {
        match self {
            ClientResetMode::Manual { .. } => None,
            ClientResetMode::DiscardUnsynced { before, .. }
            | ClientResetMode::RecoverUnsynced { before, .. }
            | ClientResetMode::RecoverOrDiscard { before, .. } => before.as_ref(),
        }
    }

    pub(crate) fn after(&self) -> Option<&AfterReset> {
        match self {
            ClientResetMode::Manual { .. } => None,
            ClientResetMode::DiscardUnsynced { after, .. }
            | ClientResetMode::RecoverUnsynced { after, .. }
            | ClientResetMode::RecoverOrDiscard { after, .. } => after.as_ref(),
        }
    }

    /// Whether a reset can reach the app: `Manual` needs a handler.
    pub(crate) fn has_manual_handler(&self, on_error: bool) -> bool {
        !matches!(self, ClientResetMode::Manual { on_manual: None }) || on_error
    }
}

impl ClientResetInfo {
    /// The info an app gets about the reset `tracker` records for the
    /// file at `path`.
    pub(crate) fn of(tracker: &ResetTracker, path: &Path) -> ClientResetInfo {
        ClientResetInfo {
            original_path: path.to_owned(),
            backup_path: tracker.backup_path.clone(),
            reason: tracker.reason,
            acknowledged: tracker.acknowledged,
            failure: None,
        }
    }

    pub(crate) fn failed(self, why: impl Into<String>) -> ClientResetInfo {
        ClientResetInfo { failure: Some(why.into()), ..self }
    }

    /// A read-only configuration of the backup (once
    /// [`initiate_client_reset`] has moved the file there).
    pub fn backup_config(&self) -> Config {
        Config::new(&self.backup_path).read_only()
    }

    /// What the file holds that the server never acknowledged: every
    /// create, field update, increment and delete, oldest first. Read
    /// from the backup once the file has moved there, else from the file.
    pub fn unsynced_changes(&self) -> Result<Vec<Instruction>> {
        let path = if self.backup_path.exists() { &self.backup_path } else { &self.original_path };
        let db = Database::open(Config::new(path).read_only())?;
        unsynced(&db, self.acknowledged)
    }
}

/// The changes of `db`'s log the server had not integrated as of the reset.
pub(crate) fn unsynced(db: &Database, acknowledged: Option<u64>) -> Result<Vec<Instruction>> {
    let after = acknowledged.unwrap_or(0);
    let pending = db.pending_changes()?;
    Ok(pending.into_iter().filter(|cs| cs.client_version > after).flat_map(|cs| cs.instructions).collect())
}

/// Moves the database file at `path` aside for a manual client reset, to
/// `<dir>/recovered/<name>-<UTC yyyymmdd-hhmmss>-<random>.haven` (the
/// [`ClientResetInfo::backup_path`] of the reset, unless a file is there
/// already: a backup is never overwritten), and returns where. Opening
/// `path` again then starts from the server's state.
///
/// Fails, changing nothing, while the database is open (close every
/// handle first) or if there is no file at `path`. Handles that background
/// work still holds for a moment after the app closed the last of its own
/// (a listener's delivery, the sync session's last step) are waited for,
/// up to a second.
///
/// ```no_run
/// # fn run(info: &haven_store::ClientResetInfo) -> haven_store::Result<()> {
/// let backup = haven_store::initiate_client_reset(info.original_path())?;
/// let old = haven_store::Database::open(haven_store::Config::new(&backup).read_only())?;
/// # Ok(()) }
/// ```
pub fn initiate_client_reset(path: impl AsRef<Path>) -> Result<PathBuf> {
    let path = path.as_ref();
    wait_until_closed(path, CLOSING_GRACE)?;
    if !path.is_file() {
        return Err(Error::Storage(format!("{}: no database file to reset", path.display())));
    }
    // Opened (and closed again) to read the planned backup path; this also
    // fails if another process has the file open.
    let planned = {
        let db = Database::open(Config::new(path))?;
        db.reset_tracker()?.map(|t| t.backup_path)
    };
    let mut backup = planned.unwrap_or_else(|| backup_path_for(path));
    while backup.exists() {
        backup = backup_path_for(path);
    }
    let dir = backup.parent().expect("a backup path has a directory");
    std::fs::create_dir_all(dir).map_err(|e| Error::Storage(format!("cannot create {}: {e}", dir.display())))?;
    wait_until_closed(path, OWN_HANDLE_CLOSE)?;
    std::fs::rename(path, &backup)
        .map_err(|e| Error::Storage(format!("cannot move {} to {}: {e}", path.display(), backup.display())))?;
    tracing::info!(from = %path.display(), to = %backup.display(), "client reset: database moved aside");
    Ok(backup)
}

/// How long [`initiate_client_reset`] gives background work to let go of
/// a database the app has closed, before it reports the file still open.
const CLOSING_GRACE: Duration = Duration::from_secs(1);

/// How long the handle [`initiate_client_reset`] opens itself may take to
/// leave the registry after it is dropped (milliseconds in practice:
/// nothing else has the file open by then).
const OWN_HANDLE_CLOSE: Duration = Duration::from_secs(10);

/// Waits up to `limit` until no handle in this process has the database
/// at `path` open.
fn wait_until_closed(path: &Path, limit: Duration) -> Result<()> {
    let start = std::time::Instant::now();
    while Database::is_open(path) {
        if start.elapsed() >= limit {
            return Err(Error::StillOpen(path.to_owned()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// The backups [`initiate_client_reset`] made of the database at `path`
/// (in `<dir>/recovered/`), oldest first.
pub fn client_reset_backups(path: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let path = path.as_ref();
    let dir = backup_dir(path);
    let prefix = format!("{}-", file_name(path));
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::Storage(format!("cannot list {}: {e}", dir.display()))),
    };
    let mut backups: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "haven"))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix)))
        .collect();
    backups.sort(); // the UTC stamp in the name orders them
    Ok(backups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use haven_sync::protocol::ResetReason;

    fn tracker(failed_attempts: u32, recovery_allowed: bool) -> ResetTracker {
        ResetTracker {
            reason: ResetReason::OperatorReset,
            acknowledged: None,
            recovery_allowed,
            failed_attempts,
            backup_path: PathBuf::from("b"),
            committed: None,
        }
    }

    #[test]
    fn failed_attempts_fall_back_and_never_loop() {
        let recover = ClientResetMode::default();
        let or_discard = ClientResetMode::RecoverOrDiscard {
            policy: RecoveryPolicy::ClientWins,
            before: None,
            after: None,
            fallback: None,
        };
        let discard = ClientResetMode::DiscardUnsynced { before: None, after: None };
        assert_eq!(recover.plan(&tracker(0, true)), Plan::Recover(RecoveryPolicy::LatestWins));
        assert_eq!(recover.plan(&tracker(1, true)), Plan::Manual);
        assert_eq!(recover.plan(&tracker(0, false)), Plan::Manual);
        assert_eq!(or_discard.plan(&tracker(0, true)), Plan::Recover(RecoveryPolicy::ClientWins));
        assert_eq!(or_discard.plan(&tracker(0, false)), Plan::Discard);
        assert_eq!(or_discard.plan(&tracker(1, true)), Plan::Discard);
        assert_eq!(or_discard.plan(&tracker(2, true)), Plan::Manual);
        assert_eq!(discard.plan(&tracker(0, false)), Plan::Discard);
        assert_eq!(discard.plan(&tracker(1, true)), Plan::Manual);
    }
}
