//! What every session, the admin API and the server's background tasks
//! share: storage, auth, the server's schema, each partition's latest
//! version, the live sessions, metrics and settings.

use crate::auth::Authenticator;
use crate::metrics::Metrics;
use crate::storage::{Storage, StorageError};
use haven_core::Schema;
use haven_sync::protocol::{FileIdent, ResetReason};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// What every session shares.
pub(crate) struct Shared {
    pub storage: Arc<dyn Storage>,
    pub auth: Authenticator,
    /// The server's schema: the union of what clients bound with.
    pub schema: tokio::sync::Mutex<Option<Arc<Schema>>>,
    /// Per partition with a connected client: its latest version.
    pub partitions: Mutex<HashMap<String, watch::Sender<u64>>>,
    pub metrics: Metrics,
    pub shutdown: watch::Receiver<bool>,
    /// Bound sessions, by a number of their own: who is connected, and how
    /// to tell one that an operator reset its client.
    pub live: Mutex<HashMap<u64, LiveSession>>,
    pub next_live: AtomicU64,
    /// The bearer token of the admin API (`None`: the API is off).
    pub admin_token: Option<String>,
    /// `--max-offline-time`.
    pub max_offline: Option<Duration>,
    /// [`ServerOptions::client_silence`](crate::ServerOptions::client_silence).
    pub client_silence: Duration,
    /// When this server started (ms since the epoch): time it was down
    /// does not count as devices being out of touch.
    pub started_millis: u64,
    /// Users signed out by an operator, and when (seconds since the
    /// epoch): their tokens issued until then are refused, and their
    /// sessions watch this to close at once.
    pub revocations: watch::Sender<HashMap<String, u64>>,
}

/// A bound session, as the admin API sees it.
pub(crate) struct LiveSession {
    pub ident: FileIdent,
    pub user: String,
    pub partition: String,
    pub kick: watch::Sender<Option<ResetReason>>,
}

impl Shared {
    /// Runs a storage call on the blocking pool (storage may wait for disk,
    /// the network or another writer), holding the shared state so that a
    /// shutdown waits for it. The one bridge from async code to storage.
    pub async fn storage<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&dyn Storage) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let shared = self.clone();
        match tokio::task::spawn_blocking(move || f(shared.storage.as_ref())).await {
            Ok(result) => result,
            Err(e) => Err(StorageError::Backend(format!("a storage task failed: {e}"))),
        }
    }

    /// The latest-version channel of a partition, made on first use, and
    /// a subscription to it (taken under the map's lock, so that
    /// `release_partition` cannot drop the channel in between).
    pub fn partition(&self, name: &str) -> (watch::Sender<u64>, watch::Receiver<u64>) {
        let mut partitions = self.partitions.lock().expect("partition map");
        let sender = partitions.entry(name.to_owned()).or_insert_with(|| watch::Sender::new(0)).clone();
        let receiver = sender.subscribe();
        (sender, receiver)
    }

    /// Records a bound session; returns its number and the channel an
    /// operator's reset arrives on.
    pub fn register_live(
        &self,
        ident: FileIdent,
        user: &str,
        partition: &str,
    ) -> (u64, watch::Receiver<Option<ResetReason>>) {
        let id = self.next_live.fetch_add(1, Relaxed);
        let (kick, kicked) = watch::channel(None);
        let session = LiveSession { ident, user: user.to_owned(), partition: partition.to_owned(), kick };
        self.live.lock().expect("live sessions").insert(id, session);
        (id, kicked)
    }

    /// Signs `user` out now; returns how many of their sessions close.
    pub fn revoke(&self, user: &str) -> usize {
        let now = crate::session::now_millis() / 1000;
        // Counted first: once told, the sessions leave the map on their own.
        let closing = self.live.lock().expect("live sessions").values().filter(|s| s.user == user).count();
        self.revocations.send_modify(|revoked| {
            revoked.insert(user.to_owned(), now);
        });
        tracing::info!(%user, sessions = closing, "user signed out by an operator");
        closing
    }

    /// Whether `identity`'s token was issued before its user was signed out.
    pub fn is_revoked(&self, identity: &crate::Identity) -> bool {
        let revoked = self.revocations.borrow().get(&identity.user).copied();
        revoked.is_some_and(|at| identity.issued_at.is_none_or(|issued| issued <= at))
    }

    /// Tells the live sessions of these clients that they were reset.
    pub fn kick(&self, idents: &[u64], reason: ResetReason) {
        let live = self.live.lock().expect("live sessions");
        for session in live.values().filter(|s| idents.contains(&s.ident.ident)) {
            session.kick.send_replace(Some(reason));
        }
    }

    /// A partition has `version`: its sessions send what their clients lack.
    pub fn announce(&self, partition: &str, version: u64) {
        if let Some(latest) = self.partitions.lock().expect("partition map").get(partition) {
            latest.send_if_modified(|latest| {
                let newer = version > *latest;
                *latest = (*latest).max(version);
                newer
            });
        }
    }

    /// Forgets a partition once no session watches it.
    pub fn release_partition(&self, name: &str) {
        let mut partitions = self.partitions.lock().expect("partition map");
        if partitions.get(name).is_some_and(|tx| tx.receiver_count() == 0) {
            partitions.remove(name);
        }
    }
}
