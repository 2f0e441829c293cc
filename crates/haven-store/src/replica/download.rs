//! Applying what the server sent: the server-confirmed state moves
//! forward with the merge rule, acknowledged changesets leave the change
//! log, and every object the download touched is *settled*: it shows its
//! confirmed state with the remaining pending changes replayed on top,
//! and its confirmed state is kept where [`confirmed`] says (`docs/sync.md`).

use crate::error::{Error, Result};
use crate::layout::{BOOTSTRAP, CONFIRMED, META, META_BOOTSTRAP_IN_PLACE, PENDING};
use crate::replica::change_log;
use crate::replica::confirmed::{self, Suffix};
use crate::replica::reset_tracker::{write_tracker, Plan, ResetTracker};
use crate::transaction::WriteTransaction;
use haven_core::merge::{apply, Changeset, HlcClock, Instruction, ObjectState, Writer};
use haven_core::recovery::{Recovery, RecoveryReport};
use haven_core::{key, record, Value};
use haven_sync::protocol::{ResetReason, SnapshotObject};
use redb::{ReadableTable, ReadableTableMetadata};
use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

type Overlay<'t> = redb::Table<'t, (&'static str, &'static [u8]), &'static [u8]>;

/// An object a download changes, as the download leaves it.
struct Touched {
    pk: Value,
    state: Option<ObjectState>,
    /// Its record says no local change is pending on it once this
    /// download's acknowledgement is applied (otherwise the change log
    /// must tell).
    settled: bool,
}

/// Applies a download: `changesets` in server order, `last_salt` the salt
/// of the last one's version, `uploaded_through` the acknowledgement.
pub(crate) fn integrate(
    tx: &mut WriteTransaction<'_>,
    changesets: &[(u64, Changeset)],
    last_salt: u64,
    uploaded_through: u64,
    ident: u64,
) -> Result<()> {
    let raw = tx.raw();
    // The server integrates a file's changesets in client-version order:
    // one of ours in the history acknowledges every earlier one, whatever
    // `uploaded_through` says (the batch that carries it may come later).
    // Replaying it again on top would apply it twice.
    let uploaded_through = changesets
        .iter()
        .filter(|(_, cs)| cs.replica == ident)
        .map(|(_, cs)| cs.client_version)
        .fold(uploaded_through, u64::max);
    let mut pending = raw.open_table(PENDING)?;
    drop_acknowledged(&mut pending, uploaded_through)?;
    let mut overlay = raw.open_table(CONFIRMED)?;
    // Read only if an object's record cannot tell that nothing remains
    // pending on it (this file's own changesets coming back need not read it).
    let remaining: OnceCell<Vec<Changeset>> = OnceCell::new();
    let last_version = changesets.iter().map(|(version, _)| *version).max().unwrap_or(0);
    let nothing_pending = Replay::new(&[], last_version, ident)?;
    let replay_remaining: OnceCell<Replay<'_>> = OnceCell::new();
    // Settled changeset by changeset: memory holds one changeset's objects.
    for (version, cs) in changesets {
        let writer = Writer { version: *version, base_version: cs.base_version, hlc: cs.hlc, replica: cs.replica };
        // By `type \0 key`: objects are then written in key order.
        let mut touched: BTreeMap<Vec<u8>, Touched> = BTreeMap::new();
        for instruction in &cs.instructions {
            let (ty, pk) = instruction.object();
            let pk_key = key_of(pk)?;
            let object = match touched.entry(object_id(ty, &pk_key)) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let (state, settled) = current(tx, &overlay, ty, &pk_key, uploaded_through)?;
                    e.insert(Touched { pk: pk.clone(), state, settled })
                }
            };
            object.state = apply(object.state.as_ref(), instruction, &writer).state;
        }
        if remaining.get().is_none() && !touched.values().all(|t| t.settled) {
            let _ = remaining.set(pending_changesets(&pending)?);
        }
        let replay = match remaining.get() {
            None => &nothing_pending,
            Some(log) => match replay_remaining.get() {
                Some(replay) => replay,
                None => {
                    let _ = replay_remaining.set(Replay::new(log, last_version, ident)?);
                    replay_remaining.get().expect("just set")
                }
            },
        };
        for (id, object) in touched {
            let (ty, pk_key) = split_id(&id)?;
            let target = Settle { ty, pk: &object.pk, pk_key };
            settle(tx, &mut overlay, target, object.state, replay, Rebuild::InPlace)?;
        }
    }
    if last_version > 0 {
        change_log::set_base(raw, last_version, last_salt)?;
    }
    Ok(())
}

/// An object's confirmed state now, and whether its record says no local
/// change remains pending on it once changes up to client version
/// `acknowledged` leave the log.
fn current(
    tx: &mut WriteTransaction<'_>,
    overlay: &Overlay<'_>,
    ty: &str,
    pk_key: &[u8],
    acknowledged: u64,
) -> Result<(Option<ObjectState>, bool)> {
    let mut settled = false;
    if let Some(object_type) = tx.schema().object_type(ty) {
        if let Some(bytes) = tx.record(object_type, pk_key)? {
            let rest = record::after(&bytes).map_err(|e| Error::Storage(format!("{ty}: {e}")))?;
            match Suffix::read(rest)? {
                Suffix::Confirmed(_) => return Ok((confirmed::state_in_record(object_type, &bytes)?, true)),
                Suffix::Pending(client_version) => settled = client_version <= acknowledged,
                Suffix::None => {}
            }
        }
    }
    Ok((confirmed::in_overlay(overlay, ty, pk_key)?, settled))
}

/// Starts a bootstrap, forgetting what one a crash interrupted received.
/// Into a file that holds no objects (a new file), batches go straight
/// into the objects tables as they arrive; otherwise they are staged, and
/// nothing the app reads changes until [`finish_bootstrap`] (staging a
/// new file's whole state would also leave the file that much larger).
pub(crate) fn begin_bootstrap(tx: &mut WriteTransaction<'_>) -> Result<()> {
    let raw = tx.raw();
    if take_in_place(raw)? {
        // It held nothing before: what is there came from that bootstrap.
        for ty in tx.schema().types() {
            raw.delete_table(crate::layout::objects_def(&crate::layout::objects_table(ty.name())))?;
            for p in ty.properties().iter().filter(|p| p.indexed) {
                raw.delete_table(crate::layout::index_def(&crate::layout::index_table(ty.name(), &p.name)))?;
            }
        }
        raw.delete_table(CONFIRMED)?;
    }
    raw.delete_table(BOOTSTRAP)?;
    let mut empty = raw.open_table(CONFIRMED)?.is_empty()?;
    for ty in tx.schema().types() {
        let name = crate::layout::objects_table(ty.name());
        empty &= raw.open_table(crate::layout::objects_def(&name))?.is_empty()?;
    }
    if empty {
        raw.open_table(META)?.insert(META_BOOTSTRAP_IN_PLACE, [1u8].as_slice())?;
    }
    Ok(())
}

/// Whether the bootstrap under way writes in place; ends that mode.
fn take_in_place(raw: &redb::WriteTransaction) -> Result<bool> {
    Ok(raw.open_table(META)?.remove(META_BOOTSTRAP_IN_PLACE)?.is_some())
}

/// Takes in one batch of the server's state snapshot: settled at once in
/// a file that held no objects (as the server's state alone: the end of
/// the bootstrap settles what is pending), staged as the server sent it
/// otherwise.
pub(crate) fn bootstrap_batch(tx: &mut WriteTransaction<'_>, objects: &[SnapshotObject]) -> Result<()> {
    if tx.raw().open_table(META)?.get(META_BOOTSTRAP_IN_PLACE)?.is_some() {
        let mut overlay = tx.raw().open_table(CONFIRMED)?;
        let nothing_pending = Replay::new(&[], 0, 0)?;
        for o in objects {
            let (pk, state) = confirmed::decode_entry(&o.state)?;
            let object = Settle { ty: &o.object_type, pk: &pk, pk_key: &o.key };
            settle(tx, &mut overlay, object, Some(state), &nothing_pending, Rebuild::InPlace)?;
        }
        return Ok(());
    }
    let mut staged = tx.raw().open_table(BOOTSTRAP)?;
    let next = staged.last()?.map_or(0, |(k, _)| k.value() + 1);
    let bytes = postcard::to_allocvec(objects).map_err(|e| Error::Storage(format!("cannot stage a bootstrap: {e}")))?;
    staged.insert(next, bytes.as_slice())?;
    Ok(())
}

/// Ends a bootstrap of the snapshot at `version` (whose salt is `salt`):
/// the pending changes up to `uploaded_through` are in the snapshot
/// already and leave the log, then every object, on the server or only
/// here, is settled.
pub(crate) fn finish_bootstrap(
    tx: &mut WriteTransaction<'_>,
    version: u64,
    salt: u64,
    uploaded_through: u64,
    ident: u64,
) -> Result<()> {
    drop_acknowledged(&mut tx.raw().open_table(PENDING)?, uploaded_through)?;
    let pending = pending_changesets(&tx.raw().open_table(PENDING)?)?;
    let replay = Replay::new(&pending, version, ident)?;
    if take_in_place(tx.raw())? {
        settle_pending(tx, &replay)?;
    } else {
        let only_here = apply_snapshot(tx, &replay)?;
        let mut overlay = tx.raw().open_table(CONFIRMED)?;
        for id in only_here {
            settle_id(tx, &mut overlay, &id, None, &replay, Rebuild::InPlace)?;
        }
    }
    change_log::set_base(tx.raw(), version, salt)
}

/// Settles every object the pending changes touch.
fn settle_pending(tx: &mut WriteTransaction<'_>, replay: &Replay<'_>) -> Result<()> {
    let mut overlay = tx.raw().open_table(CONFIRMED)?;
    let ids: BTreeSet<&Vec<u8>> = replay.by_object.keys().collect();
    for id in ids {
        let (ty, pk_key) = split_id(id)?;
        let (state, _) = current(tx, &overlay, ty, pk_key, 0)?;
        settle_id(tx, &mut overlay, id, state, replay, Rebuild::InPlace)?;
    }
    Ok(())
}

/// Settles every object of the staged snapshot (the overlay is forgotten
/// first: the snapshot is the whole confirmed state). Returns the objects
/// the file has that the snapshot lacks, as `type \0 key`.
fn apply_snapshot(tx: &mut WriteTransaction<'_>, replay: &Replay<'_>) -> Result<HashSet<Vec<u8>>> {
    let mut only_here = HashSet::new();
    for ty in tx.schema().types() {
        only_here.extend(tx.keys(ty)?.into_iter().map(|k| object_id(ty.name(), &k)));
    }
    let raw = tx.raw();
    raw.delete_table(CONFIRMED)?;
    let mut overlay = raw.open_table(CONFIRMED)?;
    let staged = raw.open_table(BOOTSTRAP)?;
    for batch in staged.iter()? {
        let objects: Vec<SnapshotObject> = postcard::from_bytes(batch?.1.value())
            .map_err(|e| Error::Storage(format!("a staged bootstrap batch is damaged: {e}")))?;
        for o in objects {
            only_here.remove(&object_id(&o.object_type, &o.key));
            let (pk, state) = confirmed::decode_entry(&o.state)?;
            let object = Settle { ty: &o.object_type, pk: &pk, pk_key: &o.key };
            settle(tx, &mut overlay, object, Some(state), replay, Rebuild::InPlace)?;
        }
    }
    drop(staged);
    raw.delete_table(BOOTSTRAP)?;
    Ok(only_here)
}

/// What a rebuild starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rebuild {
    /// The objects tables hold the app's objects (a download, a bootstrap,
    /// a reset's commit): an object the schema cannot hold is an error
    /// (the server sent what this schema does not allow).
    InPlace,
    /// The objects tables were just emptied for a new schema: objects come
    /// from the overlay and the change log alone, and one that cannot be
    /// completed under the new schema is left out (the client reset that
    /// follows fills it from the server).
    NewSchema,
}

/// Before the objects tables are emptied for a new schema: moves every
/// confirmed state a record holds (read with the `old` schema) to the
/// overlay, so that [`settle_all`] finds every confirmed state there.
pub(crate) fn unfold_records(txn: &redb::WriteTransaction, old: &haven_core::Schema) -> Result<()> {
    let mut overlay = txn.open_table(CONFIRMED)?;
    for ty in old.types() {
        let name = crate::layout::objects_table(ty.name());
        let table = txn.open_table(crate::layout::objects_def(&name))?;
        for row in table.iter()? {
            let (k, v) = row?;
            if let Some(state) = confirmed::state_in_record(ty, v.value())? {
                let pk = decode_key(ty.name(), k.value())?;
                confirmed::set_overlay(&mut overlay, ty.name(), &pk, k.value(), Some(&state))?;
            }
        }
    }
    Ok(())
}

/// Settles every object the overlay or the change log knows of, as later
/// than server `version`: after a new schema emptied the objects tables
/// (see [`unfold_records`]), or to move a format-1 file's confirmed states
/// into its records.
pub(crate) fn settle_all(tx: &mut WriteTransaction<'_>, version: u64, ident: u64, from: Rebuild) -> Result<()> {
    let raw = tx.raw();
    let pending = pending_changesets(&raw.open_table(PENDING)?)?;
    let replay = Replay::new(&pending, version, ident)?;
    let mut overlay = raw.open_table(CONFIRMED)?;
    let mut ids: BTreeSet<Vec<u8>> = replay.by_object.keys().cloned().collect();
    for row in overlay.iter()? {
        let (k, _) = row?;
        let (ty, pk_key) = k.value();
        ids.insert(object_id(ty, pk_key));
    }
    for id in ids {
        let (ty, pk_key) = split_id(&id)?;
        let state = confirmed::in_overlay(&overlay, ty, pk_key)?;
        settle_id(tx, &mut overlay, &id, state, &replay, from)?;
    }
    Ok(())
}

/// How a client reset ends.
pub(crate) struct ResetCommit {
    /// Discard or recover (never manual here).
    pub plan: Plan,
    /// The snapshot's server version, and its salt.
    pub version: u64,
    pub salt: u64,
    /// The file's new `(ident, salt)`.
    pub ident: (u64, u64),
    /// The reset, as the file tracks it.
    pub tracker: ResetTracker,
    /// The server's schema: recovered changes must fit it too (after a
    /// breaking change, this app's schema is older than the server's).
    pub server_schema: Option<haven_core::Schema>,
}

/// Ends a client reset in one commit, once the server's snapshot is
/// staged: every object becomes the server's state, the unsynced
/// changesets become the recovered ones (or none), the file takes its new
/// ident, and the objects the recovered changes touch, or that only this
/// file had, are settled with those changes on top. Returns what became
/// of each unsynced change.
pub(crate) fn finish_reset(tx: &mut WriteTransaction<'_>, commit: ResetCommit) -> Result<RecoveryReport> {
    let raw = tx.raw();
    let acknowledged = commit.tracker.acknowledged.unwrap_or(0);
    let unsynced: Vec<Changeset> = pending_changesets(&raw.open_table(PENDING)?)?
        .into_iter()
        .filter(|cs| cs.client_version > acknowledged)
        .collect();
    let clock = change_log::clock(raw)?;
    let only_here = match take_in_place(raw)? {
        true => HashSet::new(),
        false => apply_snapshot(tx, &Replay::new(&[], commit.version, commit.ident.0)?)?,
    };
    let server_state =
        |tx: &mut WriteTransaction<'_>, overlay: &Overlay<'_>, id: &[u8]| -> Result<Option<ObjectState>> {
            let (ty, pk_key) = split_id(id)?;
            match only_here.contains(id) {
                true => Ok(None),
                false => Ok(current(tx, overlay, ty, pk_key, 0)?.0),
            }
        };
    let mut overlay = raw.open_table(CONFIRMED)?;
    let (recovered, report, clock) = match commit.plan {
        Plan::Recover(policy) => {
            let mut states = HashMap::new();
            for (ty, pk) in unsynced.iter().flat_map(|cs| &cs.instructions).map(Instruction::object) {
                let id = object_id(ty, &key_of(pk)?);
                if let std::collections::hash_map::Entry::Vacant(e) = states.entry(id) {
                    let state = server_state(tx, &overlay, e.key())?;
                    e.insert(state);
                }
            }
            let recovery = Recovery {
                schema: commit.server_schema.as_ref().unwrap_or(tx.schema()),
                policy,
                server_version: commit.version,
                history_continues: history_continues(commit.tracker.reason),
                replica: commit.ident.0,
                clock: HlcClock::starting_after(clock),
                now_millis: change_log::wall_millis(),
            };
            let out = recovery.run(&unsynced, |ty, pk| {
                key_of(pk).ok().and_then(|k| states.get(&object_id(ty, &k)).cloned().flatten())
            });
            (out.changesets, out.report, out.clock.last())
        }
        Plan::Discard => (Vec::new(), RecoveryReport::discarded(&unsynced), clock),
        Plan::Manual => unreachable!("a manual reset is the app's: nothing is committed for it"),
    };
    change_log::replace(raw, &recovered, clock)?;
    change_log::set_file_ident(raw, commit.ident.0, commit.ident.1)?;
    let committed = Some((recovered.len() as u64, change_log::wall_millis()));
    let tracker = ResetTracker { committed, ..commit.tracker };
    write_tracker(raw, Some(&tracker))?;
    let replay = Replay::new(&recovered, commit.version, commit.ident.0)?;
    let ids: BTreeSet<Vec<u8>> = replay.by_object.keys().cloned().chain(only_here.iter().cloned()).collect();
    for id in ids {
        let state = server_state(tx, &overlay, &id)?;
        settle_id(tx, &mut overlay, &id, state, &replay, Rebuild::InPlace)?;
    }
    change_log::set_base(raw, commit.version, commit.salt)?;
    Ok(report)
}

/// Whether the server's version numbers still mean what the file's
/// changesets saw: not after a restore from a backup, or for a server
/// that does not know the file.
fn history_continues(reason: ResetReason) -> bool {
    !matches!(reason, ResetReason::ServerRestored | ResetReason::ClientRestored | ResetReason::UnknownClient)
}

/// The object being settled.
struct Settle<'a> {
    ty: &'a str,
    pk: &'a Value,
    pk_key: &'a [u8],
}

/// [`settle`] for an object named by `type \0 key`; its primary key comes
/// from its confirmed state, or from the key.
fn settle_id(
    tx: &mut WriteTransaction<'_>,
    overlay: &mut Overlay<'_>,
    id: &[u8],
    state: Option<ObjectState>,
    replay: &Replay<'_>,
    from: Rebuild,
) -> Result<()> {
    let (ty, pk_key) = split_id(id)?;
    let pk = decode_key(ty, pk_key)?;
    settle(tx, overlay, Settle { ty, pk: &pk, pk_key }, state, replay, from)
}

/// Makes the object show its confirmed state `confirmed` with its pending
/// changes replayed on top, and keeps `confirmed` where it can be read
/// again: in the record (with its stamps) when nothing is pending on the
/// object and the record can say it exactly, in the overlay otherwise.
fn settle(
    tx: &mut WriteTransaction<'_>,
    overlay: &mut Overlay<'_>,
    object: Settle<'_>,
    confirmed: Option<ObjectState>,
    replay: &Replay<'_>,
    from: Rebuild,
) -> Result<()> {
    let Settle { ty, pk, pk_key } = object;
    let Some(object_type) = tx.schema().object_type(ty) else {
        // A type this app's schema does not have: nothing to show.
        return confirmed::set_overlay(overlay, ty, pk, pk_key, confirmed.as_ref());
    };
    let pending = replay.last_client_version(ty, pk_key);
    let optimistic = pending.and_then(|_| replay.onto(ty, pk_key, confirmed.clone()));
    let shown = if pending.is_some() { optimistic.as_ref() } else { confirmed.as_ref() };
    // `Ok(true)`: the record now holds the confirmed state.
    let written = match shown {
        Some(ObjectState::Live { fields, deleted_at }) => {
            confirmed::render(tx.schema(), object_type, pk, fields, *deleted_at).and_then(|rendered| {
                let suffix = match pending {
                    Some(client_version) => {
                        let mut mark = Vec::with_capacity(9);
                        confirmed::push_pending(&mut mark, client_version);
                        Some(mark)
                    }
                    None => rendered.suffix,
                };
                let holds_confirmed = pending.is_none() && suffix.is_some();
                tx.put_synced(object_type, pk_key, pk, rendered.values, suffix.as_deref().unwrap_or_default())?;
                Ok(holds_confirmed)
            })
        }
        _ => tx.remove_synced(object_type, pk_key, pk).map(|_| false),
    };
    let holds_confirmed = match written {
        Ok(holds) => holds,
        // An object that does not fit a new schema is left out.
        Err(Error::InvalidValue(_) | Error::MissingProperty { .. } | Error::Schema(_))
            if from == Rebuild::NewSchema =>
        {
            tx.remove_synced(object_type, pk_key, pk)?;
            false
        }
        Err(e) => return Err(e),
    };
    let kept = if holds_confirmed { None } else { confirmed.as_ref() };
    confirmed::set_overlay(overlay, ty, pk, pk_key, kept)
}

/// The pending log, grouped by object, to replay onto confirmed states
/// (as later than anything the server has: version `after` + 1 onwards).
struct Replay<'a> {
    pending: &'a [Changeset],
    /// `type \0 key` → (changeset index, instruction), in log order.
    by_object: HashMap<Vec<u8>, Vec<(usize, &'a Instruction)>>,
    after: u64,
    ident: u64,
}

impl<'a> Replay<'a> {
    fn new(pending: &'a [Changeset], after: u64, ident: u64) -> Result<Replay<'a>> {
        let mut by_object: HashMap<Vec<u8>, Vec<(usize, &Instruction)>> = HashMap::new();
        for (n, cs) in pending.iter().enumerate() {
            for instruction in &cs.instructions {
                let (ty, pk) = instruction.object();
                by_object.entry(object_id(ty, &key_of(pk)?)).or_default().push((n, instruction));
            }
        }
        Ok(Replay { pending, by_object, after, ident })
    }

    /// The client version of the last pending changeset that touches the
    /// object, if any does.
    fn last_client_version(&self, ty: &str, pk_key: &[u8]) -> Option<u64> {
        if self.by_object.is_empty() {
            return None;
        }
        let (n, _) = self.by_object.get(&object_id(ty, pk_key))?.last()?;
        Some(self.pending[*n].client_version)
    }

    /// The object's optimistic state: `state` with its pending changes applied.
    fn onto(&self, ty: &str, pk_key: &[u8], mut state: Option<ObjectState>) -> Option<ObjectState> {
        for &(n, instruction) in self.by_object.get(&object_id(ty, pk_key)).into_iter().flatten() {
            let cs = &self.pending[n];
            let writer = Writer {
                version: self.after + 1 + n as u64,
                base_version: cs.base_version,
                hlc: cs.hlc,
                replica: self.ident,
            };
            state = apply(state.as_ref(), instruction, &writer).state;
        }
        state
    }
}

/// `type \0 key`: one object across types (type names hold no NUL).
fn object_id(ty: &str, pk_key: &[u8]) -> Vec<u8> {
    let mut id = Vec::with_capacity(ty.len() + 1 + pk_key.len());
    id.extend_from_slice(ty.as_bytes());
    id.push(0);
    id.extend_from_slice(pk_key);
    id
}

fn split_id(id: &[u8]) -> Result<(&str, &[u8])> {
    let at = id.iter().position(|b| *b == 0).ok_or_else(|| Error::Storage("a damaged object id".into()))?;
    let ty = std::str::from_utf8(&id[..at]).map_err(|_| Error::Storage("a damaged object id".into()))?;
    Ok((ty, &id[at + 1..]))
}

/// Acknowledged changesets are part of the confirmed state: they leave the log.
fn drop_acknowledged(pending: &mut redb::Table<u64, &'static [u8]>, uploaded_through: u64) -> Result<()> {
    let acknowledged: Vec<u64> =
        pending.range(..=uploaded_through)?.map(|r| r.map(|(k, _)| k.value())).collect::<Result<_, _>>()?;
    for v in acknowledged {
        pending.remove(v)?;
    }
    Ok(())
}

fn pending_changesets(table: &impl ReadableTable<u64, &'static [u8]>) -> Result<Vec<Changeset>> {
    table.iter()?.map(|r| r.map_err(Error::from).and_then(|(_, v)| decode(v.value()))).collect()
}

fn key_of(pk: &Value) -> Result<Vec<u8>> {
    pk.as_ref().map(key::to_key).ok_or_else(|| Error::Storage("a primary key cannot be a list".into()))
}

fn decode_key(ty: &str, pk_key: &[u8]) -> Result<Value> {
    key::decode(pk_key).ok_or_else(|| Error::Storage(format!("{ty}: a damaged key")))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::Storage(format!("damaged sync state: {e}")))
}
