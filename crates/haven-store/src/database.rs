//! `Database`: opening a file (once per process), reading, and the one
//! commit path every write goes through.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::layout::{self, FORMAT_VERSION, META, META_FORMAT, META_SCHEMA};
use crate::notifier::{initial_keys, Listener, NotificationToken, Notifier, ObjectChange, ObjectListener};
use crate::object::Object;
use crate::replica::change_log;
use crate::results::Results;
use crate::snapshot::Snapshot;
use crate::transaction::WriteTransaction;
use haven_core::{key, Schema, Value};
use redb::{ReadableDatabase, ReadableTable, TableError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

/// An open database. Cheap to clone (clones share one open file);
/// `Send + Sync`. The file closes when the last clone is dropped.
///
/// ```
/// use haven_store::{Config, Database, Schema, UpdateMode};
/// use serde_json::json;
/// # let dir = tempfile::tempdir().unwrap();
/// let schema = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id",
///     "properties":{"_id":"int","name":"string","age":"int?"}}]"#)?;
/// let db = Database::open(Config::new(dir.path().join("app.haven")).schema(schema))?;
/// db.write(|tx| {
///     tx.create("Dog", json!({"_id": 1, "name": "Rex", "age": 3}), UpdateMode::Never)?;
///     tx.increment("Dog", 1, "age", 1)
/// })?;
/// let rex = db.object_for_primary_key("Dog", 1)?.unwrap();
/// assert_eq!(rex.get("age"), Some(4.into()));
/// # Ok::<(), haven_store::Error>(())
/// ```
#[derive(Clone)]
pub struct Database {
    pub(crate) inner: Arc<Inner>,
    read_only: bool,
    /// For a frozen database ([`Database::freeze`]): the commit it shows.
    frozen: Option<Arc<Snapshot>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.inner.path)
            .field("read_only", &self.read_only)
            .field("frozen", &self.frozen.is_some())
            .finish()
    }
}

pub(crate) struct Inner {
    path: PathBuf,
    /// `None` only while dropping: the file closes before the registry
    /// entry goes.
    engine: Option<Engine>,
    pub(crate) schema: Arc<Schema>,
    /// Serialises commits with the listener thread's reads of "what has
    /// been committed so far" (see notifier.rs).
    write_lock: Mutex<()>,
    /// The thread running a write transaction, if any.
    writer: WriterSlot,
    /// How many commits this process made: the listener thread uses it to
    /// tell which commits a new listener's first read already includes, and
    /// reads use it to know when the shared snapshot is stale.
    commit_seq: AtomicU64,
    /// The snapshot of the latest commit, shared by reads until the next
    /// commit: starting a read transaction per read would cost more than
    /// the read.
    latest: Mutex<Option<(u64, Arc<Snapshot>)>>,
    pub(crate) notifier: Notifier,
    /// Whether commits also go to the change log.
    pub(crate) change_log: bool,
    /// Told of each commit that adds to the change log, with its client
    /// version (the sync session, once one starts, uploads it): the commit
    /// path knows nothing of sync.
    pub(crate) on_local_commit: std::sync::OnceLock<LocalCommitObserver>,
    /// The sync session, for a database opened with `open_synced`.
    pub(crate) session: std::sync::OnceLock<Box<dyn AttachedSession>>,
}

/// What hears of a commit to the change log, with its client version.
pub(crate) type LocalCommitObserver = Box<dyn Fn(u64) + Send + Sync>;

/// A session attached to the database (the sync session): the database
/// stops it when its last handle goes, without knowing what it is.
pub(crate) trait AttachedSession: std::any::Any + Send + Sync {
    /// Stops the session.
    fn close(&self);
    /// The session itself, for the module that made it.
    #[cfg(feature = "sync")]
    fn as_any(&self) -> &dyn std::any::Any;
}

enum Engine {
    Writable(redb::Database),
    ReadOnly(redb::ReadOnlyDatabase),
}

/// Databases open in this process, by absolute path: redb allows one
/// handle per file per process, and sharing one also shares listeners.
/// How long `open` waits for another thread to finish closing the file.
const CLOSE_WAIT_MS: u32 = 10_000;

static OPEN: LazyLock<Mutex<HashMap<PathBuf, Weak<Inner>>>> = LazyLock::new(Default::default);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic inside a write closure poisons nothing we rely on: the
    // transaction it held was aborted.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Database {
    /// Opens (creating it if needed, unless read-only) the database at
    /// `config.path()`. Opening a path that is already open in this process
    /// returns the same shared database.
    pub fn open(config: Config) -> Result<Database> {
        let path = absolute(&config.path)?;
        // A dead entry means the last handle is still closing the file:
        // wait for it rather than fail on redb's lock.
        for _ in 0..CLOSE_WAIT_MS {
            let entry = lock(&OPEN).get(&path).cloned();
            match entry.map(|w| w.upgrade()) {
                Some(Some(inner)) => return Database::share(inner, &config),
                Some(None) => std::thread::sleep(std::time::Duration::from_millis(1)),
                None => {
                    let mut open = lock(&OPEN);
                    if open.contains_key(&path) {
                        continue;
                    }
                    let inner = Arc::new(Inner::open(path.clone(), &config)?);
                    open.insert(path, Arc::downgrade(&inner));
                    tracing::debug!(path = %inner.path.display(), read_only = config.read_only, "opened database");
                    return Ok(Database { inner, read_only: config.read_only, frozen: None });
                }
            }
        }
        Err(Error::Storage(format!("{} is still closing after {CLOSE_WAIT_MS} ms; try again", path.display())))
    }

    /// Another handle of a file already open in this process.
    fn share(inner: Arc<Inner>, config: &Config) -> Result<Database> {
        if let Some(requested) = &config.schema {
            if inner.schema.evolve(requested)? != *inner.schema {
                let message = format!(
                    "{} is already open in this process with another schema; close every handle, then open it with the new one",
                    inner.path.display()
                );
                return Err(haven_core::SchemaError { object_type: None, property: None, message }.into());
            }
        }
        let read_only = config.read_only || matches!(inner.engine(), Engine::ReadOnly(_));
        Ok(Database { inner, read_only, frozen: None })
    }

    #[cfg(feature = "sync")]
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Database {
        Database { inner, read_only: false, frozen: None }
    }

    /// A read-only view of the database as it is now, which later commits
    /// do not change (a client reset gives its callbacks one of the state
    /// before the reset). Its reads see that commit for as long as it
    /// lives; writes fail with [`Error::ReadOnly`].
    ///
    /// ```
    /// # use haven_store::{Config, Database, Schema, UpdateMode};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let schema = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int"}}]"#)?;
    /// let db = Database::open(Config::new(dir.path().join("app.haven")).schema(schema))?;
    /// let before = db.freeze()?;
    /// db.write(|tx| tx.create("Dog", serde_json::json!({"_id": 1}), UpdateMode::Never).map(|_| ()))?;
    /// assert_eq!((before.objects("Dog")?.len()?, db.objects("Dog")?.len()?), (0, 1));
    /// # Ok::<(), haven_store::Error>(())
    /// ```
    pub fn freeze(&self) -> Result<Database> {
        let snapshot = self.inner.snapshot()?;
        Ok(Database { inner: self.inner.clone(), read_only: true, frozen: Some(snapshot) })
    }

    /// Whether this is a frozen view ([`Database::freeze`]).
    pub fn is_frozen(&self) -> bool {
        self.frozen.is_some()
    }

    /// The client reset under way in this file, if any: one a crash
    /// interrupted (it resumes when the file next syncs), one waiting for
    /// the server to acknowledge the recovered changes, or a manual one
    /// waiting for [`initiate_client_reset`](crate::initiate_client_reset).
    pub fn pending_client_reset(&self) -> Result<Option<crate::PendingClientReset>> {
        Ok(self.reset_tracker()?.map(|t| t.pending()))
    }

    /// The client reset under way in this file, if any.
    pub(crate) fn reset_tracker(&self) -> Result<Option<crate::replica::reset_tracker::ResetTracker>> {
        self.snapshot()?.reset_tracker()
    }

    /// Records, or with `None` ends, the client reset under way.
    #[cfg(feature = "sync")]
    pub(crate) fn set_reset_tracker(
        &self,
        tracker: Option<&crate::replica::reset_tracker::ResetTracker>,
    ) -> Result<()> {
        self.write_as_server(|tx| crate::replica::reset_tracker::write_tracker(tx.raw(), tracker))
    }

    /// Ends a client reset in one commit (see `download::finish_reset`).
    #[cfg(feature = "sync")]
    pub(crate) fn finish_reset(
        &self,
        commit: crate::replica::download::ResetCommit,
    ) -> Result<haven_core::recovery::RecoveryReport> {
        if self.read_only {
            return Err(Error::ReadOnly(self.inner.path.clone()));
        }
        self.inner.commit(Origin::Server, |tx| crate::replica::download::finish_reset(tx, commit))
    }

    /// Records the ident the server gave this file.
    #[cfg(feature = "sync")]
    pub(crate) fn set_file_ident(&self, ident: u64, salt: u64) -> Result<()> {
        self.write_as_server(|tx| change_log::set_file_ident(tx.raw(), ident, salt))
    }

    /// Whether the last handle of the database at `path` in this process
    /// is gone but the file not yet closed (its entry outlives it until
    /// redb has closed the file).
    #[cfg(feature = "sync")]
    pub(crate) fn closing(path: &Path) -> bool {
        absolute(path).is_ok_and(|p| lock(&OPEN).get(&p).is_some_and(|w| w.strong_count() == 0))
    }

    /// Whether the database at `path` is open in this process.
    pub fn is_open(path: impl AsRef<Path>) -> bool {
        absolute(path.as_ref()).is_ok_and(|p| lock(&OPEN).get(&p).is_some_and(|w| w.strong_count() > 0))
    }

    /// Drops this handle. The file closes when every clone (and every
    /// `Results` and `Object` read from it) is gone.
    pub fn close(self) {}

    /// The file's path (absolute).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The schema in effect: the file's, with what the app's schema added.
    pub fn schema(&self) -> &Schema {
        &self.inner.schema
    }

    /// A number that changes with each commit this process makes or
    /// receives on the file (its own writes, other handles', the sync
    /// session's): two reads made at the same version saw the same data, so
    /// a cache of what was read stays valid until it changes. A frozen view
    /// never changes.
    ///
    /// ```
    /// # use haven_store::{Config, Database, Schema, UpdateMode};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let schema = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int"}}]"#)?;
    /// let db = Database::open(Config::new(dir.path().join("app.haven")).schema(schema))?;
    /// let seen = db.version();
    /// db.write(|tx| tx.create("Dog", serde_json::json!({"_id": 1}), UpdateMode::Never))?;
    /// assert_ne!(db.version(), seen);
    /// # Ok::<(), haven_store::Error>(())
    /// ```
    pub fn version(&self) -> u64 {
        match self.frozen {
            Some(_) => 0,
            None => self.inner.commit_seq.load(Ordering::SeqCst),
        }
    }

    /// Whether writes are refused.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Runs `f` in a write transaction and commits durably (one fsync) when
    /// it returns `Ok`. An `Err` or a panic inside `f` rolls back: nothing
    /// is written. Listeners are notified after the commit, on their own
    /// thread.
    pub fn write<R>(&self, f: impl FnOnce(&mut WriteTransaction<'_>) -> Result<R>) -> Result<R> {
        if self.read_only {
            return Err(Error::ReadOnly(self.inner.path.clone()));
        }
        self.inner.commit(Origin::Local, f)
    }

    /// Applies changesets the server sent, in server order, in one commit
    /// (listeners hear of it like of any other): `changesets` are
    /// `(server version, changeset)`, `last_salt` is the salt the server
    /// gave the last one's version, `uploaded_through` acknowledges this
    /// file's changesets up to that client version (all of them must be in
    /// `changesets` or in earlier downloads), and `ident` is this
    /// file's ident on the server. The server-confirmed state is updated
    /// with the merge rule and the pending changes are replayed on top of
    /// it (`docs/sync.md`). Used by the sync client.
    #[cfg(feature = "sync")]
    pub(crate) fn integrate_download(
        &self,
        changesets: &[(u64, haven_core::merge::Changeset)],
        last_salt: u64,
        uploaded_through: u64,
        ident: u64,
    ) -> Result<()> {
        self.write_as_server(|tx| {
            crate::replica::download::integrate(tx, changesets, last_salt, uploaded_through, ident)
        })
    }

    /// Starts taking in the server's state snapshot (a client's first sync,
    /// or a client reset): the confirmed state is forgotten. Then
    /// [`Database::bootstrap_batch`] for each batch, then
    /// [`Database::finish_bootstrap`]. A bootstrap interrupted by a crash
    /// starts again here; the app sees nothing change until the finish.
    #[cfg(feature = "sync")]
    pub(crate) fn start_bootstrap(&self) -> Result<()> {
        self.write_as_server(crate::replica::download::begin_bootstrap)
    }

    /// Takes in one batch of the snapshot, as the server sent it.
    #[cfg(feature = "sync")]
    pub(crate) fn bootstrap_batch(&self, objects: &[haven_sync::protocol::SnapshotObject]) -> Result<()> {
        self.write_as_server(|tx| crate::replica::download::bootstrap_batch(tx, objects))
    }

    /// Ends a bootstrap of the snapshot at server `version` (whose salt is
    /// `salt`), in one commit:
    /// every object becomes the server's state with this file's pending
    /// changes replayed on top (objects the server lacks and no pending
    /// change creates are deleted). `uploaded_through` is the server's
    /// acknowledgement as of the snapshot: those changesets are in it.
    #[cfg(feature = "sync")]
    pub(crate) fn finish_bootstrap(&self, version: u64, salt: u64, uploaded_through: u64, ident: u64) -> Result<()> {
        self.write_as_server(|tx| {
            crate::replica::download::finish_bootstrap(tx, version, salt, uploaded_through, ident)
        })
    }

    #[cfg(feature = "sync")]
    fn write_as_server(&self, f: impl FnOnce(&mut WriteTransaction<'_>) -> Result<()>) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly(self.inner.path.clone()));
        }
        self.inner.commit(Origin::Server, f)
    }

    /// The object of `object_type` with this primary key, if it exists.
    pub fn object_for_primary_key(&self, object_type: &str, primary_key: impl Into<Value>) -> Result<Option<Object>> {
        let snap = self.snapshot()?;
        let (type_index, ty) = self.type_named(object_type)?;
        let pk = crate::transaction::coerce_primary_key(&snap.schema, ty, primary_key.into())?;
        match snap.get(object_type, &key::to_key(pk.as_ref().expect("a key is a scalar")))? {
            Some(rec) => Object::from_record(self, &snap, type_index, rec).map(Some),
            None => Ok(None),
        }
    }

    /// Every object of a type, as a live collection that queries narrow.
    pub fn objects(&self, object_type: &str) -> Result<Results> {
        self.type_named(object_type)?;
        Ok(Results::new(self.clone(), object_type))
    }

    /// Where this file stands with its server: its ident once bound, the
    /// last server version it integrated, the changesets it wrote and
    /// those the server acknowledged (all zero for a file never synced).
    pub fn sync_position(&self) -> Result<crate::SyncPosition> {
        self.snapshot()?.sync_position()
    }

    /// The changesets this file's change log holds (see
    /// [`Config::record_changes`]), oldest first; empty for a file that
    /// keeps none.
    pub fn pending_changes(&self) -> Result<Vec<haven_core::merge::Changeset>> {
        self.snapshot()?.pending_changes(0)
    }

    /// Waits until every listener has been called for every commit made so
    /// far. Useful in tests; apps rarely need it. Inside a write transaction
    /// or a listener it returns at once (waiting there would wait for
    /// itself).
    pub fn wait_for_listeners(&self) {
        self.inner.notifier.flush();
    }

    pub(crate) fn type_named(&self, name: &str) -> Result<(usize, &haven_core::ObjectSchema)> {
        self.inner
            .schema
            .types()
            .iter()
            .enumerate()
            .find(|(_, t)| t.name() == name)
            .ok_or_else(|| Error::UnknownType(name.to_owned()))
            .and_then(|(i, t)| crate::error::not_embedded(t).map(|t| (i, t)))
    }

    pub(crate) fn snapshot(&self) -> Result<Arc<Snapshot>> {
        match &self.frozen {
            Some(snapshot) => Ok(snapshot.clone()),
            None => self.inner.snapshot(),
        }
    }

    pub(crate) fn add_object_listener(
        &self,
        ty: &str,
        pk: Value,
        callback: Box<dyn Fn(&ObjectChange) + Send + Sync>,
    ) -> NotificationToken {
        let key = key::to_key(pk.as_ref().expect("a primary key is a scalar"));
        self.add_listener(Listener::Object(ObjectListener { ty: ty.to_owned(), key, callback }))
    }

    /// Registers a listener. It hears of every commit after this call
    /// returns; added inside a write transaction, of every commit after
    /// that transaction.
    pub(crate) fn add_listener(&self, listener: Listener) -> NotificationToken {
        let inner = &self.inner;
        if inner.writing_on_this_thread() {
            return inner.notifier.register(listener, None); // settled when this transaction ends
        }
        // Under the write lock, no commit falls between the first read and
        // the registration.
        let _guard = lock(&inner.write_lock);
        let seq = inner.commit_seq.load(Ordering::SeqCst);
        let start = inner
            .fresh_snapshot()
            .and_then(|snap| initial_keys(&listener, &snap))
            .inspect_err(|e| tracing::error!(error = %e, "a listener could not read its collection; it starts at the next commit"))
            .ok()
            .map(|keys| (seq, keys));
        inner.notifier.register(listener, start)
    }
}

impl Inner {
    fn open(path: PathBuf, config: &Config) -> Result<Inner> {
        let exists = std::fs::metadata(&path).map(|m| m.len() > 0).unwrap_or(false);
        let mut change_log = false;
        let (engine, schema) = if config.read_only {
            if !exists {
                return Err(not_a_database(&path, "the file does not exist or is empty"));
            }
            let db = redb::Builder::new().open_read_only(&path).map_err(|e| open_error(&path, e))?;
            let stored = read_meta(&path, &db.begin_read()?)?
                .ok_or_else(|| not_a_database(&path, "it has no Haven metadata"))?;
            let schema = match &config.schema {
                Some(requested) if stored.evolve(requested)? != stored => {
                    return Err(haven_core::SchemaError {
                        object_type: None,
                        property: None,
                        message: "the file lacks types or properties of the requested schema and cannot be changed: it is opened read-only".into(),
                    }
                    .into())
                }
                _ => stored,
            };
            (Engine::ReadOnly(db), schema)
        } else {
            if exists {
                preflight(&path, config.schema.as_ref())?;
            } else if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::Storage(format!("cannot create the folder {} for {}: {e}", dir.display(), path.display()))
                })?;
            }
            let mut builder = redb::Builder::new();
            if let Some(bytes) = config.cache_size {
                builder.set_cache_size(bytes);
            }
            let db = builder.create(&path).map_err(|e| open_error(&path, e))?;
            let schema = initialize(&path, &db, config.schema.as_ref())?;
            change_log = change_log::is_kept(&db.begin_read()?)?;
            if config.record_changes && !change_log {
                change_log::keep(&db)?;
                change_log = true;
            }
            (Engine::Writable(db), schema)
        };
        Ok(Inner {
            change_log,
            path,
            engine: Some(engine),
            schema: Arc::new(schema),
            write_lock: Mutex::new(()),
            writer: WriterSlot::default(),
            commit_seq: AtomicU64::new(0),
            latest: Mutex::new(None),
            notifier: Notifier::default(),
            on_local_commit: std::sync::OnceLock::new(),
            session: std::sync::OnceLock::new(),
        })
    }

    fn engine(&self) -> &Engine {
        self.engine.as_ref().expect("the engine closes only when dropped")
    }

    /// A snapshot at least as new as the last commit that returned.
    pub(crate) fn snapshot(&self) -> Result<Arc<Snapshot>> {
        // Read the count before the snapshot: a snapshot is never labelled
        // with a commit it does not include.
        let seq = self.commit_seq.load(Ordering::SeqCst);
        let mut latest = lock(&self.latest);
        if let Some((s, snap)) = latest.as_ref() {
            if *s == seq {
                return Ok(snap.clone());
            }
        }
        let snap = Arc::new(self.fresh_snapshot()?);
        *latest = Some((seq, snap.clone()));
        Ok(snap)
    }

    fn fresh_snapshot(&self) -> Result<Snapshot> {
        let rtx = match self.engine() {
            Engine::Writable(db) => db.begin_read()?,
            Engine::ReadOnly(db) => db.begin_read()?,
        };
        Ok(Snapshot::new(rtx, self.schema.clone()))
    }

    /// The commit path: every change to the database — app writes now, and
    /// downloads applied by the sync client later — goes through here, so
    /// listeners see them all.
    pub(crate) fn commit<R>(
        &self,
        origin: Origin,
        f: impl FnOnce(&mut WriteTransaction<'_>) -> Result<R>,
    ) -> Result<R> {
        let Engine::Writable(db) = self.engine() else {
            return Err(Error::ReadOnly(self.path.clone()));
        };
        if self.writing_on_this_thread() {
            return Err(Error::NestedWrite(self.path.clone()));
        }
        let _guard = lock(&self.write_lock);
        let _writer = self.writer.mark();
        // Dropped first, still under the lock, however this ends (error or panic included).
        let _settle = SettlePending(self);
        let txn = db.begin_write()?;
        // Without listeners there is nobody to tell: a listener registered
        // meanwhile on another thread makes its first read after this
        // commit (under the write lock); one registered inside this
        // transaction starts from its outcome.
        let track = self.notifier.has_listeners();
        let (result, changes) = {
            let log = match self.change_log && origin == Origin::Local {
                true => Some(change_log::next_client_version(&txn)?),
                false => None,
            };
            let mut tx = WriteTransaction::new(&txn, &self.schema, track, log);
            let result = f(&mut tx);
            (result, tx.finish())
        };
        let (changes, log, hlc) = changes;
        let outcome = match result {
            Ok(value) => {
                let logged = if log.is_empty() { None } else { Some(change_log::append(&txn, log, hlc)?) };
                txn.commit()?;
                let seq = self.commit_seq.fetch_add(1, Ordering::SeqCst) + 1;
                // After counting the commit: a reader woken now must not get
                // the cached snapshot from before it.
                if let (Some(client_version), Some(observer)) = (logged, self.on_local_commit.get()) {
                    observer(client_version);
                }
                if !changes.is_empty() {
                    // The commit stands whatever happens here: report it as done.
                    match self.fresh_snapshot() {
                        Ok(snap) => self.notifier.committed(seq, Arc::new(snap), changes),
                        Err(e) => {
                            tracing::error!(error = %e, "committed, but listeners cannot read this commit; they will see its insertions and deletions with the next one")
                        }
                    }
                }
                Ok(value)
            }
            Err(e) => {
                txn.abort()?;
                Err(e)
            }
        };
        outcome
    }

    /// Whether this thread is inside a `write` of this database (a second
    /// one would wait for itself forever).
    pub(crate) fn writing_on_this_thread(&self) -> bool {
        self.writer.is_current()
    }
}

/// Where a commit's changes come from: the app (recorded in the change
/// log of a file that keeps one) or the server (never recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Local,
    #[cfg(feature = "sync")]
    Server,
}

/// Gives listeners added inside a write transaction their first read
/// when the transaction ends, whichever way it ends.
struct SettlePending<'a>(&'a Inner);

impl Drop for SettlePending<'_> {
    fn drop(&mut self) {
        let inner = self.0;
        inner.notifier.settle_pending(|| Ok((inner.commit_seq.load(Ordering::SeqCst), inner.fresh_snapshot()?)));
    }
}

/// Which thread runs the current write transaction, if any.
#[derive(Default)]
struct WriterSlot(Mutex<Option<std::thread::ThreadId>>);

impl WriterSlot {
    fn is_current(&self) -> bool {
        *lock(&self.0) == Some(std::thread::current().id())
    }

    /// Marks this thread as the writer until the mark is dropped (also on panic).
    fn mark(&self) -> WriterMark<'_> {
        *lock(&self.0) = Some(std::thread::current().id());
        WriterMark { slot: self, _open: crate::notifier::WriteOnThread::begin() }
    }
}

struct WriterMark<'a> {
    slot: &'a WriterSlot,
    /// Keeps listeners from being waited for on this thread meanwhile.
    _open: crate::notifier::WriteOnThread,
}

impl Drop for WriterMark<'_> {
    fn drop(&mut self) {
        *lock(&self.slot.0) = None;
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(session) = self.session.get() {
            session.close();
        }
        self.notifier.shut_down();
        // Release the shared read snapshot, close the file, and only then
        // let an `open` waiting for this path go ahead.
        *lock(&self.latest) = None;
        drop(self.engine.take());
        let mut open = lock(&OPEN);
        if open.get(&self.path).is_some_and(|w| w.strong_count() == 0) {
            open.remove(&self.path);
        }
        tracing::debug!(path = %self.path.display(), "closed database");
    }
}

pub(crate) fn absolute(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path)?;
    // Resolve links in the directory so that two spellings of one file
    // share one handle; the file itself may not exist yet.
    match (abs.parent().and_then(|d| d.canonicalize().ok()), abs.file_name()) {
        (Some(dir), Some(name)) => Ok(dir.join(name)),
        _ => Ok(abs),
    }
}

fn not_a_database(path: &Path, reason: impl Into<String>) -> Error {
    Error::NotADatabase { path: path.to_path_buf(), reason: reason.into() }
}

pub(crate) fn open_error(path: &Path, e: redb::DatabaseError) -> Error {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::OpenElsewhere(path.to_path_buf()),
        redb::DatabaseError::RepairAborted => Error::NotClosedCleanly(path.to_path_buf()),
        redb::DatabaseError::UpgradeRequired(v) => {
            not_a_database(path, format!("it uses storage format {v}, which this Haven cannot read"))
        }
        other => not_a_database(path, format!("damaged or not a database file ({other})")),
    }
}

/// Checks an existing file without changing it, before opening it for
/// writing (redb marks a file it opens for writing): a file that is not a
/// Haven database, is truncated, comes from a newer Haven, or whose schema
/// the requested one would break is refused untouched.
fn preflight(path: &Path, requested: Option<&Schema>) -> Result<()> {
    match redb::Builder::new().open_read_only(path) {
        Ok(db) => match read_meta(path, &db.begin_read()?)? {
            None if has_tables(&db.begin_read()?)? => {
                Err(not_a_database(path, "it is a redb file without Haven metadata"))
            }
            Some(stored) => {
                if let Some(requested) = requested {
                    stored.evolve(requested)?;
                }
                Ok(())
            }
            None => Ok(()),
        },
        // Not closed cleanly (a crash): opening for writing recovers it.
        Err(redb::DatabaseError::RepairAborted) => Ok(()),
        Err(e) => Err(open_error(path, e)),
    }
}

fn has_tables(rtx: &redb::ReadTransaction) -> Result<bool> {
    Ok(rtx.list_tables()?.next().is_some())
}

/// Reads the format version and schema; `None` when the file has no Haven
/// metadata.
pub(crate) fn read_meta(path: &Path, rtx: &redb::ReadTransaction) -> Result<Option<Schema>> {
    Ok(read_versioned_meta(path, rtx)?.map(|(_, schema)| schema))
}

/// [`read_meta`], with the file's format version.
fn read_versioned_meta(path: &Path, rtx: &redb::ReadTransaction) -> Result<Option<(u32, Schema)>> {
    let meta = match rtx.open_table(META) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let format = meta
        .get(META_FORMAT)?
        .and_then(|v| <[u8; 4]>::try_from(v.value()).ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| not_a_database(path, "its format version is missing"))?;
    if format > FORMAT_VERSION {
        return Err(Error::FormatTooNew { path: path.to_path_buf(), found: format, supported: FORMAT_VERSION });
    }
    let schema = meta.get(META_SCHEMA)?.ok_or_else(|| not_a_database(path, "its schema is missing"))?;
    let text = std::str::from_utf8(schema.value()).map_err(|_| not_a_database(path, "its schema is not text"))?;
    Ok(Some((format, Schema::from_json(text)?)))
}

/// Writes the metadata of a new file, or applies an additive schema change
/// to an existing one (new indexes are built in the same transaction), and
/// migrates a file of an earlier format, all in one commit: a kill leaves
/// the file as it was.
fn initialize(path: &Path, db: &redb::Database, requested: Option<&Schema>) -> Result<Schema> {
    let stored = read_versioned_meta(path, &db.begin_read()?)?;
    if stored.is_none() && has_tables(&db.begin_read()?)? {
        return Err(not_a_database(path, "it is a redb file without Haven metadata"));
    }
    let (format, stored) = match stored {
        Some((format, schema)) => (format, Some(schema)),
        None => (FORMAT_VERSION, None),
    };
    let base = stored.clone().unwrap_or_default();
    let schema = match requested {
        Some(r) => base.evolve(r)?,
        None => base,
    };
    if stored.as_ref() == Some(&schema) && format == FORMAT_VERSION {
        return Ok(schema);
    }
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        meta.insert(META_FORMAT, FORMAT_VERSION.to_le_bytes().as_slice())?;
        meta.insert(META_SCHEMA, schema.to_json().as_bytes())?;
    }
    if let Some(old) = &stored {
        rebuild_changed_indexes(&txn, old, &schema)?;
    }
    crate::migrations::run(&txn, &schema, format)?;
    txn.commit()?;
    tracing::info!(path = %path.display(), from = format, to = FORMAT_VERSION, "file metadata written");
    Ok(schema)
}

fn rebuild_changed_indexes(txn: &redb::WriteTransaction, old: &Schema, new: &Schema) -> Result<()> {
    for ty in new.types() {
        let Some(before) = old.object_type(ty.name()) else {
            continue;
        };
        for (i, p) in ty.properties().iter().enumerate() {
            let was = before.property_named(&p.name).is_some_and(|q| q.indexed);
            let name = layout::index_table(ty.name(), &p.name);
            if was && !p.indexed {
                txn.delete_table(layout::index_def(&name))?;
            } else if p.indexed && !was {
                let objects_name = layout::objects_table(ty.name());
                let objects = txn.open_table(layout::objects_def(&objects_name))?;
                let mut index = txn.open_table(layout::index_def(&name))?;
                for row in objects.iter()? {
                    let (k, v) = row?;
                    let value =
                        haven_core::record::field(v.value(), i).ok().flatten().unwrap_or(haven_core::ValueRef::Null);
                    let mut entry = key::to_key(value);
                    entry.extend_from_slice(k.value());
                    index.insert(entry.as_slice(), ())?;
                }
            }
        }
    }
    Ok(())
}
