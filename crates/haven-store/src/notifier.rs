//! Change listeners, run on one listener thread per database.
//!
//! A new listener makes its first read when it is added, under the write
//! lock, together with the number of commits it includes: so it hears of
//! exactly the commits after `add_listener` returned. (Added inside a write
//! transaction, it reads when that transaction ends.) After each commit the
//! writer hands the listener thread the commit's changes and a snapshot
//! taken right after it, still under the write lock, so the snapshot is
//! exactly that commit. The thread re-runs each affected collection's
//! query on that snapshot and reports the difference from the previous
//! run; object listeners look their object up in the changes.

use crate::changes::{Change, CommitChanges};
use crate::snapshot::run_query;
use crate::snapshot::Snapshot;
use haven_core::query::BoundQuery;
use haven_core::{key, Schema, Value};
use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::{JoinHandle, ThreadId};

/// What changed in a watched collection in one commit, by primary key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CollectionChanges {
    /// Objects that entered the collection.
    pub insertions: Vec<Value>,
    /// Objects that left it (deleted, or no longer matching).
    pub deletions: Vec<Value>,
    /// Objects that stayed in it and were written.
    pub modifications: Vec<Value>,
    /// For each modification (same order), the properties written.
    pub modified_properties: Vec<Vec<String>>,
}

impl CollectionChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.insertions.is_empty() && self.deletions.is_empty() && self.modifications.is_empty()
    }
}

/// What happened to a watched object in one commit.
#[derive(Debug, Clone, PartialEq)]
pub enum ObjectChange {
    /// These properties were written.
    Modified {
        /// Their names.
        properties: Vec<String>,
    },
    /// The object was deleted.
    Deleted,
}

/// Keeps a listener subscribed; dropping it unsubscribes.
///
/// Once `drop` returns, the callback is not running and will not run
/// again. (Dropped inside a callback or a write transaction, where waiting
/// could wait for itself, it will not run again but may still be running.)
#[must_use = "dropping the token unsubscribes the listener at once"]
pub struct NotificationToken {
    id: u64,
    entry: Arc<Entry>,
    shared: Weak<Registry>,
}

impl Drop for NotificationToken {
    fn drop(&mut self) {
        self.entry.active.store(false, Ordering::SeqCst);
        let Some(shared) = self.shared.upgrade() else {
            return; // the database closed: its listener thread has ended
        };
        shared.lock_map().remove(&self.id);
        if !shared.on_listener_thread() && !in_any_write() {
            // A call in progress holds the state lock: wait for it to end.
            drop(self.entry.state.lock());
        }
    }
}

/// What the notifier shares with its tokens and its thread.
#[derive(Default)]
struct Registry {
    /// The listeners, by id.
    map: Mutex<HashMap<u64, Arc<Entry>>>,
    /// The listener thread, once started.
    thread: OnceLock<ThreadId>,
}

impl Registry {
    fn lock_map(&self) -> MutexGuard<'_, HashMap<u64, Arc<Entry>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waiting for a callback here would wait for itself.
    fn on_listener_thread(&self) -> bool {
        self.thread.get() == Some(&std::thread::current().id())
    }
}

pub(crate) enum Listener {
    Collection(Box<CollectionListener>),
    Object(ObjectListener),
}

pub(crate) struct CollectionListener {
    pub ty: String,
    pub query: BoundQuery,
    pub callback: Box<dyn Fn(&CollectionChanges) + Send + Sync>,
}

pub(crate) struct ObjectListener {
    pub ty: String,
    pub key: Vec<u8>,
    pub callback: Box<dyn Fn(&ObjectChange) + Send + Sync>,
}

struct Entry {
    listener: Listener,
    /// Cleared when the token is dropped; checked under `state`'s lock
    /// right before each call.
    active: AtomicBool,
    /// Set while `state` awaits its first read. Read without `state`'s
    /// lock, which a running callback holds: the writer must never wait
    /// for a callback (the callback may be waiting to write).
    pending: AtomicBool,
    /// Commits up to this number are already reflected in the keys (a
    /// collection's primary keys as of that commit); `None` until the
    /// first read (see `pending`).
    state: Mutex<Option<(u64, Vec<Vec<u8>>)>>,
}

enum Message {
    Commit(u64, Arc<Snapshot>, Arc<CommitChanges>),
    Flush(Sender<()>),
}

#[derive(Default)]
pub(crate) struct Notifier {
    shared: Arc<Registry>,
    next_id: AtomicU64,
    thread: Mutex<Option<ListenerThread>>,
}

/// The running listener thread: its inbox, handle and id.
type ListenerThread = (Sender<Message>, JoinHandle<()>, ThreadId);

impl Notifier {
    pub fn has_listeners(&self) -> bool {
        !self.shared.lock_map().is_empty()
    }

    /// Adds a listener whose first read is `start` (commits included, and
    /// what it watches); `None`: settled by [`Notifier::settle_pending`].
    pub fn register(&self, listener: Listener, start: Option<(u64, Vec<Vec<u8>>)>) -> NotificationToken {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            listener,
            active: AtomicBool::new(true),
            pending: AtomicBool::new(start.is_none()),
            state: Mutex::new(start),
        });
        self.shared.lock_map().insert(id, entry.clone());
        self.ensure_thread();
        NotificationToken { id, entry, shared: Arc::downgrade(&self.shared) }
    }

    /// Gives listeners that are still without a first read one, from
    /// `read` (called once, and only if there are such listeners).
    pub fn settle_pending(&self, read: impl FnOnce() -> crate::Result<(u64, Snapshot)>) {
        let pending: Vec<Arc<Entry>> =
            self.shared.lock_map().values().filter(|e| e.pending.load(Ordering::SeqCst)).cloned().collect();
        if pending.is_empty() {
            return;
        }
        let result = read().and_then(|(seq, snap)| {
            for entry in &pending {
                let keys = initial_keys(&entry.listener, &snap)?;
                *entry.state.lock().unwrap_or_else(|e| e.into_inner()) = Some((seq, keys));
                entry.pending.store(false, Ordering::SeqCst);
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::error!(error = %e, "new listeners could not read their collection; they start at the next commit");
        }
    }

    pub fn committed(&self, seq: u64, snap: Arc<Snapshot>, changes: CommitChanges) {
        self.ensure_thread();
        self.send_if_running(Message::Commit(seq, snap, Arc::new(changes)));
    }

    /// Waits until the listener thread has handled every message sent so far.
    pub fn flush(&self) {
        if self.shared.on_listener_thread() || in_any_write() {
            return; // waiting here could wait for itself
        }
        let (tx, rx) = channel();
        if self.send_if_running(Message::Flush(tx)) {
            let _ = rx.recv();
        }
    }

    pub fn shut_down(&self) {
        let Some((sender, handle, id)) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        drop(sender);
        // The last handle may be dropped inside a listener: then the thread
        // ends by itself once this callback returns.
        if std::thread::current().id() != id {
            let _ = handle.join();
        }
    }

    fn send_if_running(&self, m: Message) -> bool {
        let guard = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().is_some_and(|(tx, _, _)| tx.send(m).is_ok())
    }

    fn ensure_thread(&self) {
        let mut guard = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        guard.get_or_insert_with(|| {
            let (tx, rx) = channel();
            let shared = self.shared.clone();
            let handle = std::thread::Builder::new()
                .name("haven-listeners".into())
                .spawn(move || run(rx, &shared))
                .expect("spawning the listener thread");
            let id = handle.thread().id();
            let _ = self.shared.thread.set(id);
            (tx, handle, id)
        });
    }
}

fn run(rx: Receiver<Message>, shared: &Registry) {
    while let Ok(message) = rx.recv() {
        match message {
            Message::Commit(seq, snap, changes) => {
                let entries: Vec<Arc<Entry>> = shared.lock_map().values().cloned().collect();
                for entry in entries {
                    // A bug in one listener's query must not silence the others.
                    match catch_unwind(AssertUnwindSafe(|| deliver(&entry, seq, &snap, &changes))) {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::error!(error = %e, "a listener could not read the commit"),
                        Err(_) => tracing::error!("a listener failed on a commit; it stays subscribed"),
                    }
                }
            }
            Message::Flush(ack) => {
                let _ = ack.send(());
            }
        }
    }
}

/// What a listener watches, as of `snap`: a collection's primary keys.
pub(crate) fn initial_keys(listener: &Listener, snap: &Snapshot) -> crate::Result<Vec<Vec<u8>>> {
    match listener {
        Listener::Collection(c) => run_query(snap, &c.ty, &c.query, |k, _| Ok(k.to_vec())),
        Listener::Object(_) => Ok(Vec::new()),
    }
}

fn deliver(entry: &Entry, seq: u64, snap: &Snapshot, changes: &CommitChanges) -> crate::Result<()> {
    let mut state = entry.state.lock().unwrap_or_else(|e| e.into_inner());
    let Some((seen, keys)) = state.as_mut() else {
        return Ok(());
    };
    if *seen >= seq {
        return Ok(());
    }
    *seen = seq;
    match &entry.listener {
        Listener::Object(o) => {
            let Some((_, change)) = changes.types.get(&o.ty).and_then(|m| m.get(&o.key)) else {
                return Ok(());
            };
            let event = match change {
                Change::Deleted => ObjectChange::Deleted,
                other => ObjectChange::Modified { properties: property_names(&snap.schema, &o.ty, other) },
            };
            call(entry, || (o.callback)(&event));
        }
        Listener::Collection(c) => {
            if !watched_types(c).iter().any(|t| changes.types.get(*t).is_some_and(|m| !m.is_empty())) {
                return Ok(());
            }
            let new_keys = run_query(snap, &c.ty, &c.query, |k, _| Ok(k.to_vec()))?;
            let event = diff(&snap.schema, &c.ty, keys, &new_keys, changes);
            *keys = new_keys;
            if !event.is_empty() {
                call(entry, || (c.callback)(&event));
            }
        }
    }
    Ok(())
}

fn call(entry: &Entry, f: impl FnOnce()) {
    if !entry.active.load(Ordering::SeqCst) {
        return;
    }
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        tracing::error!("a listener panicked; it stays subscribed");
    }
}

/// The types whose changes can change a collection: its own and those its
/// query reaches through links.
fn watched_types(c: &CollectionListener) -> Vec<&str> {
    use haven_core::query::{BoundPath, Filter, Hop, Side};
    fn hops<'a>(p: &'a BoundPath, out: &mut Vec<&'a str>) {
        out.extend(p.hops.iter().map(Hop::target));
        if let Some(subquery) = &p.subquery {
            walk(subquery, out);
        }
    }
    fn walk<'a>(f: &'a Filter, out: &mut Vec<&'a str>) {
        match f {
            Filter::And(v) | Filter::Or(v) => v.iter().for_each(|f| walk(f, out)),
            Filter::Not(f) => walk(f, out),
            Filter::Compare(c) => {
                hops(&c.lhs, out);
                if let Side::Path(p) = &c.rhs {
                    hops(p, out);
                }
            }
            Filter::Const(_) => {}
        }
    }
    let mut types = vec![c.ty.as_str()];
    walk(&c.query.filter, &mut types);
    c.query.sort.iter().for_each(|(p, _)| hops(p, &mut types));
    c.query.distinct.iter().for_each(|p| hops(p, &mut types));
    types
}

fn diff(schema: &Schema, ty: &str, old: &[Vec<u8>], new: &[Vec<u8>], changes: &CommitChanges) -> CollectionChanges {
    let old_set: HashSet<&[u8]> = old.iter().map(Vec::as_slice).collect();
    let new_set: HashSet<&[u8]> = new.iter().map(Vec::as_slice).collect();
    let pk = |k: &[u8]| key::decode(k).unwrap_or(Value::Null);
    let mut out = CollectionChanges {
        insertions: new.iter().filter(|k| !old_set.contains(k.as_slice())).map(|k| pk(k)).collect(),
        deletions: old.iter().filter(|k| !new_set.contains(k.as_slice())).map(|k| pk(k)).collect(),
        ..Default::default()
    };
    let written = changes.types.get(ty);
    for k in new.iter().filter(|k| old_set.contains(k.as_slice())) {
        if let Some((_, change)) = written.and_then(|m| m.get(k)) {
            out.modifications.push(pk(k));
            out.modified_properties.push(property_names(schema, ty, change));
        }
    }
    out
}

fn property_names(schema: &Schema, ty: &str, change: &Change) -> Vec<String> {
    let props = schema.object_type(ty).map(|t| t.properties()).unwrap_or_default();
    match change {
        Change::Modified(set) => set.iter().filter_map(|i| props.get(*i)).map(|p| p.name.clone()).collect(),
        _ => props.iter().map(|p| p.name.clone()).collect(),
    }
}

thread_local! {
    /// Write transactions open on this thread, on any database.
    static WRITES_OPEN: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Marks a write transaction open on this thread, on any database, until dropped.
pub(crate) struct WriteOnThread(());

impl WriteOnThread {
    pub(crate) fn begin() -> WriteOnThread {
        WRITES_OPEN.set(WRITES_OPEN.get() + 1);
        WriteOnThread(())
    }
}

impl Drop for WriteOnThread {
    fn drop(&mut self) {
        WRITES_OPEN.set(WRITES_OPEN.get() - 1);
    }
}

/// Whether this thread is inside a write transaction of any database: it
/// must not wait for a listener, which may be waiting to write.
fn in_any_write() -> bool {
    WRITES_OPEN.get() > 0
}
