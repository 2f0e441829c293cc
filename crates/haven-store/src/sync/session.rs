//! The session handle apps hold ([`SyncSession`]) and the background task
//! that connects, and reconnects with backoff, until the database closes.

use super::config::SyncConfig;
use super::connection::{Connection, Ended};
use super::state::{ConnectionState, Control, SessionState, SyncProgress, SyncStatus};
use super::token::SessionToken;
use super::transport::Endpoint;
use super::SyncError;
use crate::database::Database;
use crate::replica::reset_tracker::ResetTracker;
use haven_sync::protocol::reconnect_delay;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// The sync session of a database opened with
/// [`Database::open_synced`]. Cheap to clone; `Send + Sync`.
///
/// ```no_run
/// # async fn run(db: haven_store::Database) -> haven_store::Result<()> {
/// let session = db.sync_session().expect("opened with open_synced");
/// session.upload_all_local_changes().await?;
/// session.download_all_server_changes().await?;
/// println!("connected: {}", session.is_connected());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SyncSession {
    shared: Arc<SessionState>,
}

impl std::fmt::Debug for SyncSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncSession").field("config", &self.shared.config).finish_non_exhaustive()
    }
}

impl SyncSession {
    /// Starts the background task (on the current tokio runtime).
    pub(crate) fn start(db: &Database, config: SyncConfig, endpoint: Endpoint) -> SyncSession {
        let position = db.snapshot().and_then(|s| s.sync_position()).unwrap_or_default();
        let status = SyncStatus {
            connection: ConnectionState::Disconnected,
            progress: SyncProgress {
                uploaded: position.acknowledged,
                uploadable: position.last_client_version,
                downloaded: position.base_version,
                downloadable: position.base_version,
            },
            stopped: None,
            marks_answered: 0,
            resets: 0,
        };
        let shared = Arc::new(SessionState {
            token: SessionToken::new(&config),
            endpoint,
            config,
            status: watch::Sender::new(status),
            control: watch::Sender::new(Control::default()),
            local_commits: Notify::new(),
            db: Arc::downgrade(&db.inner),
        });
        let observer = Arc::downgrade(&shared);
        let _ = db.inner.on_local_commit.set(Box::new(move |client_version| {
            if let Some(shared) = observer.upgrade() {
                shared.update_progress(|p| p.uploadable = p.uploadable.max(client_version));
                shared.local_commits.notify_one();
            }
        }));
        tokio::spawn(run(shared.clone()));
        SyncSession { shared }
    }

    /// Whether the session is bound to the server now.
    pub fn is_connected(&self) -> bool {
        self.connection_state() == ConnectionState::Connected
    }

    /// Connected, connecting or disconnected.
    pub fn connection_state(&self) -> ConnectionState {
        self.shared.status.borrow().connection
    }

    /// Upload and download progress.
    pub fn progress(&self) -> SyncProgress {
        self.shared.status.borrow().progress
    }

    /// A receiver that sees every change of connection state and progress:
    /// `rx.changed().await`, then `rx.borrow()`.
    pub fn watch(&self) -> watch::Receiver<SyncStatus> {
        self.shared.status.subscribe()
    }

    /// Disconnects and stays offline until [`SyncSession::resume`]. Local
    /// writes go on; they upload after the resume.
    pub fn pause(&self) {
        self.shared.control.send_modify(|c| c.paused = true);
    }

    /// Reconnects at once after a [`SyncSession::pause`] (or during a
    /// backoff wait).
    pub fn resume(&self) {
        self.shared.control.send_modify(|c| c.paused = false);
    }

    /// Waits until the server has acknowledged every local write committed
    /// before the call. While offline it keeps waiting; wrap it in
    /// `tokio::time::timeout` to bound that. Fails if the session stops.
    pub async fn upload_all_local_changes(&self) -> crate::Result<()> {
        let db = self.shared.db().ok_or(SyncError::Closed)?;
        // Read before the target: a reset committing in between then
        // counts as one, and the wait does not look for a renumbered target.
        let resets = self.shared.status.borrow().resets;
        let target = db.snapshot()?.sync_position()?.last_client_version;
        self.shared.local_commits.notify_one();
        // A client reset renumbers the log: after one, wait for all of it.
        self.wait(|s| match s.resets == resets {
            true => s.progress.uploaded >= target,
            false => s.progress.uploaded >= s.progress.uploadable,
        })
        .await
    }

    /// Waits until everything the server had when the call was made has
    /// been integrated here. Fails if the session stops.
    pub async fn download_all_server_changes(&self) -> crate::Result<()> {
        let mut request = 0;
        self.shared.control.send_modify(|c| {
            c.marks_requested += 1;
            request = c.marks_requested;
        });
        self.wait(|s| s.marks_answered >= request).await
    }

    async fn wait(&self, done: impl Fn(&SyncStatus) -> bool) -> crate::Result<()> {
        let mut rx = self.shared.status.subscribe();
        let status = rx.wait_for(|s| done(s) || s.stopped.is_some()).await.map_err(|_| SyncError::Closed)?;
        match &status.stopped {
            Some(error) if !done(&status) => Err(error.clone().into()),
            _ => Ok(()),
        }
    }
}

impl crate::database::AttachedSession for SyncSession {
    /// Ends the session (the database is closing).
    fn close(&self) {
        self.shared.control.send_modify(|c| c.closed = true);
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The background task: connect, exchange until the connection ends,
/// wait, again.
async fn run(shared: Arc<SessionState>) {
    let mut control = shared.control.subscribe();
    let mut attempt = 0u32;
    shared.endpoint.warn_if_plain_over_network();
    // A refusal that retrying meets again (a certificate, the token
    // provider) is reported once, not at every attempt.
    let mut last_refusal: Option<SyncError> = None;
    loop {
        if control.wait_for(|c| !c.paused || c.closed).await.map_or(true, |c| c.closed) {
            break;
        }
        let ended = Connection::run(&shared, &mut attempt).await;
        if attempt == 0 {
            last_refusal = None; // it connected: a refusal from now on is news
        }
        shared.set_connection(ConnectionState::Disconnected);
        let wait = match ended {
            Ended::Closed => break,
            Ended::Fatal(error) => {
                shared.report(&error);
                shared.status.send_modify(|s| s.stopped = Some(error));
                return;
            }
            Ended::Paused => continue,
            Ended::Reset(request) => {
                let Some(db) = shared.db() else { break };
                let noted = tokio::task::spawn_blocking(move || {
                    let now = crate::replica::change_log::wall_millis();
                    let tracker = ResetTracker::after_request(db.reset_tracker()?, db.path(), request, now);
                    db.set_reset_tracker(Some(&tracker))
                })
                .await;
                if let Err(error) = noted.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
                    let error = SyncError::Local(format!("cannot record the client reset: {error}"));
                    shared.report(&error);
                    shared.status.send_modify(|s| s.stopped = Some(error));
                    return;
                }
                continue; // the next connection makes the reset attempt
            }
            Ended::Lost(why) => {
                tracing::info!(partition = %shared.config.partition, %why, "sync connection lost; reconnecting");
                backoff(&shared.config, attempt)
            }
            Ended::RetryAfter(after) => after.max(backoff(&shared.config, attempt)),
            Ended::Refused(error) => {
                if last_refusal.as_ref() != Some(&error) {
                    shared.report(&error);
                }
                last_refusal = Some(error);
                backoff(&shared.config, attempt)
            }
            Ended::Reauthenticate => Duration::ZERO,
        };
        attempt = attempt.saturating_add(1);
        // A pause, a resume or a close cuts the wait short.
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = control.changed() => {}
        }
    }
    shared.status.send_modify(|s| s.stopped = Some(SyncError::Closed));
}

/// The wait before reconnect `attempt`: the protocol's schedule (1 s
/// doubling to 5 min, with jitter), scaled to the configured first delay.
fn backoff(config: &SyncConfig, attempt: u32) -> Duration {
    let jitter = std::collections::hash_map::RandomState::new().build_hasher().finish() as f64 / u64::MAX as f64;
    reconnect_delay(attempt, jitter).mul_f64(config.first_retry.as_secs_f64()).min(config.max_retry)
}
