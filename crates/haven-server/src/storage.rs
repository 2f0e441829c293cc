//! What the server needs from its storage, whatever the backend (embedded
//! redb, PostgreSQL): per-partition history in one order, the current
//! state of every object, and the registry of clients.

use haven_core::merge::{Changeset, Overruled};
use haven_sync::protocol::{FileIdent, ResetReason, ServerChangeset, SnapshotObject};

/// A storage failure, or a request the stored data refuses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The client's ident is not in the registry (the server may have
    /// been restored from an older backup).
    #[error("unknown client {0}")]
    UnknownClient(u64),
    /// The ident exists but its salt differs (a restored server issued it again).
    #[error("client {0} does not match the server's record (salt differs)")]
    SaltMismatch(u64),
    /// The client was told to start again (a client reset): nothing more
    /// of this ident is integrated, so what the server said it holds of
    /// it stays true.
    #[error("client {0} was reset: its uploads are no longer taken")]
    ResetPending(u64),
    /// The stored data was written by a newer build; it was not changed.
    #[error("the server's data has format version {found}, but this build reads up to {supported}: run the newer haven serve")]
    FormatTooNew {
        /// The data's format version.
        found: u64,
        /// The newest this build reads.
        supported: u64,
    },
    /// The storage cannot be reached now (PostgreSQL down or refusing
    /// connections): the same call may work later. Clients are told to
    /// come back; the admin API answers 503.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Stored data that cannot be read (a damaged record or file):
    /// retrying will not help; someone must look.
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    /// The file system failed (the embedded store's disk).
    #[error("storage I/O failed: {0}")]
    Io(#[source] std::io::Error),
    /// A call that cannot work as made (a bad URL or schema name).
    #[error("{0}")]
    Misuse(String),
    /// The backend failed otherwise (a statement or transaction refused,
    /// a storage task that stopped).
    #[error("storage: {0}")]
    Backend(String),
}

/// A registered client.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientRecord {
    /// Its ident and salt.
    pub ident: FileIdent,
    /// Its partition.
    pub partition: String,
    /// Its changesets up to this client version are integrated.
    pub uploaded_through: u64,
}

impl ClientRecord {
    /// The record, if it is the one `ident` names (its salt matches: a
    /// restored server may have issued the ident again).
    pub fn matching(self, ident: FileIdent) -> Result<ClientRecord, StorageError> {
        match self.ident.salt == ident.salt {
            true => Ok(self),
            false => Err(StorageError::SaltMismatch(ident.ident)),
        }
    }
}

/// The result of integrating an upload.
#[derive(Debug, Clone, PartialEq)]
pub struct Integration {
    /// The server versions given to the changesets that were new.
    pub versions: Vec<u64>,
    /// The client's changesets up to this version are integrated (the
    /// acknowledgement to send back).
    pub uploaded_through: u64,
    /// Per new changeset, what the merge rule dropped (for logs and metrics).
    pub dropped: Vec<Vec<Overruled>>,
}

/// Whose history an operator ends (`reset-client`, `terminate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetTarget {
    /// One client.
    Client(u64),
    /// Every client of a partition.
    Partition(String),
    /// Every client of every partition (a breaking schema change).
    All,
}

/// Something another server did to a shared storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageHint {
    /// A partition reached `version`.
    Version {
        /// The partition.
        partition: String,
        /// Its latest version, as far as the hint knows.
        version: u64,
    },
    /// A client was marked for a reset.
    Reset {
        /// The client's ident.
        ident: u64,
    },
}

/// What an operator set for a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionSettings {
    /// History up to this version was compacted away (0: none).
    pub trimmed_through: u64,
    /// Whether a client reset may recover the client's unsynced writes.
    pub recovery_allowed: bool,
}

impl Default for PartitionSettings {
    fn default() -> Self {
        PartitionSettings { trimmed_through: 0, recovery_allowed: true }
    }
}

/// How far [`Storage::trim`] drops history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimPoint {
    /// All but the last this many versions.
    KeepLast(u64),
    /// Up to this version (never past the latest).
    Through(u64),
}

impl TrimPoint {
    /// The version history is trimmed through, for a partition at
    /// `latest` already trimmed through `trimmed`.
    pub fn through(self, latest: u64, trimmed: u64) -> u64 {
        let point = match self {
            TrimPoint::KeepLast(keep) => latest.saturating_sub(keep),
            TrimPoint::Through(through) => through.min(latest),
        };
        point.max(trimmed)
    }
}

/// Gathers a snapshot's objects into batches of about a byte budget
/// (their encoded states): a batch is handed on before an object would
/// take it over the budget, so it stays near it whatever one object
/// weighs. The same for every backend.
pub(crate) struct SnapshotBatches {
    budget: usize,
    pending: Vec<SnapshotObject>,
    bytes: usize,
}

impl SnapshotBatches {
    pub fn new(budget: usize) -> SnapshotBatches {
        SnapshotBatches { budget, pending: Vec::new(), bytes: 0 }
    }

    /// Adds one object, handing on what is full.
    pub fn push(
        &mut self,
        object: SnapshotObject,
        visit: &mut dyn FnMut(Vec<SnapshotObject>) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let size = object.state.len() + object.key.len() + object.object_type.len();
        if self.bytes + size > self.budget && !self.pending.is_empty() {
            self.hand_on(visit)?;
        }
        self.bytes += size;
        self.pending.push(object);
        if self.bytes >= self.budget {
            self.hand_on(visit)?;
        }
        Ok(())
    }

    /// Hands on what is left.
    pub fn finish(
        mut self,
        visit: &mut dyn FnMut(Vec<SnapshotObject>) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        match self.pending.is_empty() {
            true => Ok(()),
            false => self.hand_on(visit),
        }
    }

    fn hand_on(
        &mut self,
        visit: &mut dyn FnMut(Vec<SnapshotObject>) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        self.bytes = 0;
        visit(std::mem::take(&mut self.pending))
    }
}

/// Where a snapshot stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotEnd {
    /// The version the snapshot is of (0: an empty partition).
    pub version: u64,
    /// Its salt (0 for version 0, or a version stored before salts).
    pub salt: u64,
    /// The client's changesets up to this client version are in it.
    pub uploaded_through: u64,
}

/// One changeset of a partition's history, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChangeset {
    /// Its server version.
    pub version: u64,
    /// The random salt drawn for that version when it was integrated (0
    /// for a version stored before salts): a server restored from a
    /// backup gives the same version number another salt.
    pub salt: u64,
    /// The changeset, encoded with postcard (as a `Download` carries it).
    pub changeset: Vec<u8>,
}

/// A new random salt (never 0, which means "none").
pub(crate) fn new_salt() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish().max(1)
}

/// The server's storage. Every method is atomic; `integrate` is also
/// ordered: one partition's changesets get consecutive versions, and a
/// reader never sees a version before the ones below it.
pub trait Storage: Send + Sync {
    /// Registers a new client of `partition` and returns its ident.
    fn register_client(&self, partition: &str) -> Result<FileIdent, StorageError>;

    /// The client's record, checking ident and salt.
    fn client(&self, ident: FileIdent) -> Result<ClientRecord, StorageError>;

    /// Integrates `changesets` (in `client_version` order) from `client`
    /// (refused with `ResetPending` once the client is marked for a reset):
    /// those already integrated are skipped (uploads are idempotent); each
    /// new one is applied to the current state with the merge rule and
    /// appended to the history as the partition's next version, with a
    /// random salt of its own.
    ///
    /// `seen` is the last server version the client was sent: a
    /// changeset's `base_version` is bounded by it (and by the versions
    /// before its own), since a client that claimed more would win
    /// conflicts it never saw. `u64::MAX` bounds it by the versions only.
    fn integrate(
        &self,
        client: FileIdent,
        changesets: &[Changeset],
        seen: u64,
        now_millis: u64,
    ) -> Result<Integration, StorageError>;

    /// The server's schema (the JSON of `Schema::to_json`), if it has one.
    fn schema(&self) -> Result<Option<String>, StorageError>;

    /// Replaces the server's schema. The caller checks that the change is
    /// additive.
    fn set_schema(&self, json: &str) -> Result<(), StorageError>;

    /// Marks clients so that their next bind is answered with a client
    /// reset for `reason`; returns the idents marked (an unknown client:
    /// `UnknownClient`).
    fn mark_reset(&self, target: &ResetTarget, reason: ResetReason) -> Result<Vec<u64>, StorageError>;

    /// The reset a client must go through before it syncs again, if any.
    fn pending_reset(&self, ident: u64) -> Result<Option<ResetReason>, StorageError>;

    /// Every partition with its latest version.
    fn partitions(&self) -> Result<Vec<(String, u64)>, StorageError>;

    /// A partition's settings (the defaults for one never set).
    fn partition_settings(&self, partition: &str) -> Result<PartitionSettings, StorageError>;

    /// Drops the partition's history up to the point `to` names, read
    /// against its latest version in the same transaction (an integration
    /// meanwhile cannot move it), and never back past an earlier trim;
    /// returns the version history now starts after. The current state
    /// stays whole: new clients start from it; a client behind the point
    /// can only start again from it (`HistoryTrimmed`).
    fn trim(&self, partition: &str, to: TrimPoint) -> Result<u64, StorageError>;

    /// Drops the partition's history but its last `keep_versions` versions.
    fn compact(&self, partition: &str, keep_versions: u64) -> Result<u64, StorageError> {
        self.trim(partition, TrimPoint::KeepLast(keep_versions))
    }

    /// Drops the partition's history up to version `through` (never past
    /// its latest version).
    fn trim_history(&self, partition: &str, through: u64) -> Result<u64, StorageError> {
        self.trim(partition, TrimPoint::Through(through))
    }

    /// Allows or forbids recovery of unsynced writes in the partition's
    /// client resets.
    fn set_recovery_allowed(&self, partition: &str, allowed: bool) -> Result<(), StorageError>;

    /// Notes that a client of `partition` was in touch at `now_millis`,
    /// having been sent the partition's history up to `server_version`
    /// (for `--max-offline-time`).
    fn client_seen(
        &self,
        partition: &str,
        ident: u64,
        server_version: u64,
        now_millis: u64,
    ) -> Result<(), StorageError>;

    /// When a client of `partition` was last in touch (milliseconds since
    /// the Unix epoch), if noted.
    fn last_seen(&self, partition: &str, ident: u64) -> Result<Option<u64>, StorageError>;

    /// The oldest server version that a client of `partition` in touch
    /// since `since_millis` may still need history after; `None` if no
    /// such client.
    fn oldest_needed(&self, partition: &str, since_millis: u64) -> Result<Option<u64>, StorageError>;

    /// The partition's latest version (0: empty).
    fn version(&self, partition: &str) -> Result<u64, StorageError>;

    /// Up to `limit` changesets of the partition's history after version
    /// `after`, as stored (the changesets as a `Download` carries them).
    fn history_encoded(&self, partition: &str, after: u64, limit: usize) -> Result<Vec<StoredChangeset>, StorageError>;

    /// Like [`Storage::history_encoded`], decoded.
    fn history(&self, partition: &str, after: u64, limit: usize) -> Result<Vec<ServerChangeset>, StorageError> {
        self.history_encoded(partition, after, limit)?
            .into_iter()
            .map(|stored| {
                let server_version = stored.version;
                let changeset = postcard::from_bytes(&stored.changeset)
                    .map_err(|e| StorageError::Corrupt(format!("history at version {server_version}: {e}")))?;
                Ok(ServerChangeset { server_version, changeset })
            })
            .collect()
    }

    /// The salt of one of the partition's versions: `None` when it has no
    /// such version, or trimmed it away (the salt of the version history
    /// was trimmed through is kept: a client there continues), `Some(0)`
    /// for a version stored before salts.
    fn version_salt(&self, partition: &str, version: u64) -> Result<Option<u64>, StorageError>;

    /// What other servers sharing this storage did, as hints: new
    /// versions (the server re-reads by version) and client resets (the
    /// server kicks those clients' sessions). `None` for a storage only
    /// this process writes.
    fn hints(&self) -> Option<tokio::sync::broadcast::Receiver<StorageHint>> {
        None
    }

    /// The partition's current objects in batches of about `batch_bytes`
    /// (encoded states), all from one consistent version, which is
    /// returned with `client`'s acknowledgement as of that version (0 for
    /// an ident it does not know).
    fn snapshot(
        &self,
        partition: &str,
        client: u64,
        batch_bytes: usize,
        visit: &mut dyn FnMut(Vec<SnapshotObject>) -> Result<(), StorageError>,
    ) -> Result<SnapshotEnd, StorageError>;
}
