//! The client reset under way in a file, as the file keeps it: what the
//! server asked for, how attempts went, and where a manual reset moves
//! the file. Persisted in the file's metadata so that a reset survives
//! crashes and never loops. No network and no open database here: the
//! sync session and the open path decide with it, and the reset's commit
//! writes it.

use crate::error::{Error, Result};
use crate::layout::{META, META_RESET};
#[cfg(feature = "sync")]
use haven_core::recovery::RecoveryPolicy;
use haven_sync::protocol::ResetReason;
use serde::{Deserialize, Serialize};
#[cfg(feature = "sync")]
use std::hash::{BuildHasher, Hasher};
#[cfg(feature = "sync")]
use std::path::Path;
use std::path::PathBuf;

/// A client reset the server asked for (or granted), as it said.
#[cfg(feature = "sync")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResetRequest {
    pub reason: ResetReason,
    /// The last of the file's changesets the server integrated, when it knows.
    pub acknowledged: Option<u64>,
    /// Whether the partition lets the reset recover unsynced writes.
    pub recovery_allowed: bool,
}

/// What one reset attempt does.
#[cfg(feature = "sync")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    Manual,
    Discard,
    Recover(RecoveryPolicy),
}

/// A reset under way, kept in the file until the server has acknowledged
/// the recovered changes: a crash resumes it, and a reset right after it
/// committed, before then, counts as a failed attempt (no loops).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ResetTracker {
    pub reason: ResetReason,
    /// The last of this file's changesets the server had integrated, as it said.
    pub acknowledged: Option<u64>,
    pub recovery_allowed: bool,
    pub failed_attempts: u32,
    /// Where a manual reset moves the file.
    pub backup_path: PathBuf,
    /// Once committed: the number of recovered changesets to upload, and
    /// when it committed (ms since the epoch).
    pub committed: Option<(u64, u64)>,
}

/// How soon after a reset committed another one, of a kind that says the
/// server could not continue the new history, means the recovery itself
/// is the trouble (a loop). Later, it is a reset of its own (a device
/// that then stayed offline too long, say).
#[cfg(feature = "sync")]
const LOOP_WINDOW_MILLIS: u64 = 10 * 60 * 1000;

/// A client reset under way in a file, as
/// [`Database::pending_client_reset`](crate::Database::pending_client_reset) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PendingClientReset {
    /// Why the server reset the file.
    pub reason: ResetReason,
    /// Attempts that failed (a callback refused, say).
    pub failed_attempts: u32,
    /// Whether the reset has committed and only waits for the server to
    /// acknowledge the recovered changes.
    pub committed: bool,
    /// Where a manual reset moves the file.
    pub backup_path: PathBuf,
}

impl ResetTracker {
    /// What the app may see of it.
    pub fn pending(&self) -> PendingClientReset {
        PendingClientReset {
            reason: self.reason,
            failed_attempts: self.failed_attempts,
            committed: self.committed.is_some(),
            backup_path: self.backup_path.clone(),
        }
    }

    /// The tracker after the server asked for a reset at `now_millis`;
    /// `current` is the one the file holds, if any.
    #[cfg(feature = "sync")]
    pub fn after_request(
        current: Option<ResetTracker>,
        path: &Path,
        request: ResetRequest,
        now_millis: u64,
    ) -> ResetTracker {
        let ResetRequest { reason, acknowledged, recovery_allowed } = request;
        // An operator's reset is a decision, not a symptom: made again
        // before the last reset's changes got through, it starts afresh.
        let deliberate =
            matches!(reason, ResetReason::OperatorReset | ResetReason::Terminated | ResetReason::SchemaBreaking);
        let soon_after =
            |t: &ResetTracker| t.committed.is_some_and(|(_, at)| now_millis.saturating_sub(at) < LOOP_WINDOW_MILLIS);
        match current {
            // The server could not continue the history the last reset
            // started, right after it committed: that recovery failed.
            Some(t) if soon_after(&t) && !deliberate => ResetTracker {
                reason,
                acknowledged,
                recovery_allowed,
                failed_attempts: t.failed_attempts + 1,
                committed: None,
                backup_path: t.backup_path,
            },
            Some(t) if t.committed.is_some() => ResetTracker {
                reason,
                acknowledged,
                recovery_allowed,
                failed_attempts: 0,
                committed: None,
                backup_path: t.backup_path,
            },
            Some(t) => ResetTracker { recovery_allowed: t.recovery_allowed && recovery_allowed, ..t },
            None => ResetTracker {
                reason,
                acknowledged,
                recovery_allowed,
                failed_attempts: 0,
                backup_path: backup_path_for(path),
                committed: None,
            },
        }
    }
}

/// The reset under way in the file, if any.
pub(crate) fn read_tracker(rtx: &redb::ReadTransaction) -> Result<Option<ResetTracker>> {
    let meta = match rtx.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some(bytes) = meta.get(META_RESET)? else { return Ok(None) };
    postcard::from_bytes(bytes.value())
        .map(Some)
        .map_err(|e| Error::Storage(format!("the client reset tracker is damaged: {e}")))
}

/// Records (or, with `None`, ends) the reset under way.
#[cfg(feature = "sync")]
pub(crate) fn write_tracker(txn: &redb::WriteTransaction, tracker: Option<&ResetTracker>) -> Result<()> {
    let mut meta = txn.open_table(META)?;
    match tracker {
        Some(t) => {
            let bytes = postcard::to_allocvec(t).map_err(|e| Error::Storage(e.to_string()))?;
            meta.insert(META_RESET, bytes.as_slice())?;
        }
        None => {
            meta.remove(META_RESET)?;
        }
    }
    Ok(())
}

/// Where manual resets move the file at `path`: `<dir>/recovered`.
#[cfg(feature = "sync")]
pub(crate) fn backup_dir(path: &Path) -> PathBuf {
    path.parent().unwrap_or(Path::new(".")).join("recovered")
}

#[cfg(feature = "sync")]
pub(crate) fn file_name(path: &Path) -> String {
    path.file_stem().map_or("database".into(), |s| s.to_string_lossy().into_owned())
}

/// A fresh backup path for the file at `path`.
#[cfg(feature = "sync")]
pub(crate) fn backup_path_for(path: &Path) -> PathBuf {
    let name = file_name(path);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let random = std::collections::hash_map::RandomState::new().build_hasher().finish() & 0xff_ffff;
    backup_dir(path).join(format!("{name}-{}-{random:06x}.haven", utc_stamp(now)))
}

/// `yyyymmdd-hhmmss` in UTC for seconds since the Unix epoch.
#[cfg(feature = "sync")]
fn utc_stamp(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(all(test, feature = "sync"))]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
        assert_eq!(utc_stamp(1_795_732_416), "20261126-223336");
    }

    #[test]
    fn a_reset_before_the_last_was_acknowledged_is_a_failure() {
        let path = Path::new("/data/app.haven");
        let now = 1_000_000_000;
        let request = |reason, acknowledged| ResetRequest { reason, acknowledged, recovery_allowed: true };
        let first = ResetTracker::after_request(None, path, request(ResetReason::OperatorReset, Some(3)), now);
        assert_eq!(first.failed_attempts, 0);
        assert!(first.backup_path.starts_with("/data/recovered"));
        let again = ResetTracker::after_request(Some(first.clone()), path, request(ResetReason::Terminated, None), now);
        assert_eq!(again, first, "a request during an attempt changes nothing");
        let committed = ResetTracker { committed: Some((2, now - 1_000)), ..first.clone() };
        let request =
            |reason, at| ResetTracker::after_request(Some(committed.clone()), path, request(reason, Some(1)), at);
        let cycle = request(ResetReason::HistoryTrimmed, now);
        assert_eq!((cycle.failed_attempts, cycle.committed, cycle.reason), (1, None, ResetReason::HistoryTrimmed));
        assert_eq!(cycle.backup_path, first.backup_path);
        let operator = request(ResetReason::Terminated, now);
        assert_eq!((operator.failed_attempts, operator.committed, operator.acknowledged), (0, None, Some(1)));
        let much_later = request(ResetReason::HistoryTrimmed, now + 24 * 3_600_000);
        assert_eq!((much_later.failed_attempts, much_later.committed), (0, None), "a reset of its own");
    }
}
