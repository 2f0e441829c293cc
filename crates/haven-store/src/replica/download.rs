//! Applying what the server sent: the server-confirmed state moves
//! forward with the merge rule, acknowledged changesets leave the change
//! log, and every object the download touched is settled
//! ([`settle`](super::settle)). Only with the `sync` feature.

use crate::error::{Error, Result};
use crate::layout::{BOOTSTRAP, CONFIRMED, META, META_BOOTSTRAP_IN_PLACE, PENDING};
use crate::replica::change_log;
use crate::replica::confirmed::{self, Suffix};
use crate::replica::reset_tracker::{write_tracker, Plan, ResetTracker};
use crate::replica::settle::{
    decode_key, key_of, object_id, pending_changesets, settle, settle_id, split_id, Overlay, Rebuild, Replay, Settle,
};
use crate::transaction::WriteTransaction;
use haven_core::merge::{apply_in_place, Changeset, HlcClock, Instruction, ObjectState, Writer};
use haven_core::recovery::{Recovery, RecoveryReport};
use haven_core::{record, Value};
use haven_sync::protocol::{ResetReason, SnapshotObject};
use redb::{ReadableTable, ReadableTableMetadata};
use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// An object a download changes, as the download leaves it.
struct Touched {
    pk: Value,
    state: Option<ObjectState>,
    /// Its record says no local change is pending on it once this
    /// download's acknowledgement is applied (otherwise the change log
    /// must tell).
    settled: bool,
    /// The record of an object this file created and the server had not
    /// confirmed, when the changeset being applied is this file's own and
    /// the last local change to the object: if the merge rule drops
    /// nothing of it, the record already shows the confirmed state.
    echoed: Option<Vec<u8>>,
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
                    let now = current(tx, &overlay, ty, &pk_key, uploaded_through)?;
                    let last_change = (cs.replica == ident).then_some(cs.client_version);
                    let echoed = now.echo_candidate.filter(|_| last_change.is_some() && now.mark == last_change);
                    e.insert(Touched { pk: pk.clone(), state: now.state, settled: now.settled, echoed })
                }
            };
            if !apply_in_place(&mut object.state, instruction, &writer).is_empty() {
                object.echoed = None;
            }
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
            if let Some(record) = &object.echoed {
                if stamp_echo(tx, ty, pk_key, record, object.state.as_ref())? {
                    continue;
                }
            }
            let target = Settle { ty, pk: &object.pk, pk_key };
            settle(tx, &mut overlay, target, object.state, replay, Rebuild::InPlace)?;
        }
    }
    if last_version > 0 {
        change_log::set_base(raw, last_version, last_salt)?;
    }
    Ok(())
}

/// What [`current`] finds of an object.
struct Current {
    /// Its confirmed state.
    state: Option<ObjectState>,
    /// Whether its record says no local change remains pending on it.
    settled: bool,
    /// Its record's pending mark: the last local change to it.
    mark: Option<u64>,
    /// Its record, when the object has no confirmed state and its last
    /// local change is acknowledged (see [`Touched::echoed`]).
    echo_candidate: Option<Vec<u8>>,
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
) -> Result<Current> {
    let (mut settled, mut record, mut mark) = (false, None, None);
    if let Some(object_type) = tx.schema().object_type(ty) {
        if let Some(bytes) = tx.record(object_type, pk_key)? {
            let rest = record::after(&bytes).map_err(|e| Error::Storage(format!("{ty}: {e}")))?;
            match Suffix::read(rest)? {
                Suffix::Confirmed(_) => {
                    let state = confirmed::state_in_record(object_type, &bytes)?;
                    return Ok(Current { state, settled: true, mark: None, echo_candidate: None });
                }
                Suffix::Pending(client_version) => {
                    settled = client_version <= acknowledged;
                    mark = Some(client_version);
                }
                Suffix::None => {}
            }
            record = Some(bytes);
        }
    }
    let state = confirmed::in_overlay(overlay, ty, pk_key)?;
    let echo_candidate = record.filter(|_| settled && state.is_none());
    Ok(Current { state, settled, mark, echo_candidate })
}

/// Settles an object this file created and the server now confirms with
/// only this file's changes, whose record already shows its values: only
/// the stamps are written, after them. `false` when the state is not one
/// the record can hold (then it is settled as any other).
fn stamp_echo(
    tx: &mut WriteTransaction<'_>,
    ty: &str,
    pk_key: &[u8],
    record: &[u8],
    state: Option<&ObjectState>,
) -> Result<bool> {
    let (Some(object_type), Some(live @ ObjectState::Live { fields, deleted_at, .. })) =
        (tx.schema().object_type(ty), state)
    else {
        return Ok(false);
    };
    if live.has_element_state() {
        return Ok(false);
    }
    let Some(suffix) = confirmed::stamps_suffix(object_type, fields, *deleted_at)? else {
        return Ok(false);
    };
    let values = record.len() - record::after(record).map_err(|e| Error::Storage(format!("{ty}: {e}")))?.len();
    let mut bytes = Vec::with_capacity(values + suffix.len());
    bytes.extend_from_slice(&record[..values]);
    bytes.extend_from_slice(&suffix);
    tx.replace_record(object_type, pk_key, &bytes)?;
    Ok(true)
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
        let only_here = apply_snapshot(tx, &replay, &HashSet::new())?;
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
        let state = current(tx, &overlay, ty, pk_key, 0)?.state;
        settle_id(tx, &mut overlay, id, state, replay, Rebuild::InPlace)?;
    }
    Ok(())
}

/// Settles every object of the staged snapshot (the overlay is forgotten
/// first: the snapshot is the whole confirmed state). Returns the objects
/// the file has that the snapshot lacks, as `type \0 key`.
/// Objects in `held` only get their overlay entry: their owner settles
/// them once it knows what else they need (a reset, its recovered changes).
fn apply_snapshot(
    tx: &mut WriteTransaction<'_>,
    replay: &Replay<'_>,
    held: &HashSet<Vec<u8>>,
) -> Result<HashSet<Vec<u8>>> {
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
            let id = object_id(&o.object_type, &o.key);
            only_here.remove(&id);
            let (pk, state) = confirmed::decode_entry(&o.state)?;
            if held.contains(&id) {
                confirmed::set_overlay(&mut overlay, &o.object_type, &pk, &o.key, Some(&state))?;
                continue;
            }
            let object = Settle { ty: &o.object_type, pk: &pk, pk_key: &o.key };
            settle(tx, &mut overlay, object, Some(state), replay, Rebuild::InPlace)?;
        }
    }
    drop(staged);
    raw.delete_table(BOOTSTRAP)?;
    Ok(only_here)
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
/// staged (or taken in place): every object the unsynced changes did not
/// touch becomes the server's state; the unsynced changesets become the
/// recovered ones (or none); the file takes its new ident; and the
/// objects the unsynced or recovered changes touch, or that only this
/// file had, are settled once, with the recovered changes on top.
/// Returns what became of each unsynced change.
pub(crate) fn finish_reset(tx: &mut WriteTransaction<'_>, commit: ResetCommit) -> Result<RecoveryReport> {
    let raw = tx.raw();
    let acknowledged = commit.tracker.acknowledged.unwrap_or(0);
    let unsynced: Vec<Changeset> = pending_changesets(&raw.open_table(PENDING)?)?
        .into_iter()
        .filter(|cs| cs.client_version > acknowledged)
        .collect();
    let clock = change_log::clock(raw)?;
    // Objects the unsynced changes touch are settled once, after the
    // recovery: their listeners hear only what the reset really changed.
    let mut unsynced_objects = HashSet::new();
    for (ty, pk) in unsynced.iter().flat_map(|cs| &cs.instructions).map(Instruction::object) {
        unsynced_objects.insert(object_id(ty, &key_of(pk)?));
    }
    let only_here = match take_in_place(raw)? {
        true => HashSet::new(),
        false => apply_snapshot(tx, &Replay::new(&[], commit.version, commit.ident.0)?, &unsynced_objects)?,
    };
    let server_state =
        |tx: &mut WriteTransaction<'_>, overlay: &Overlay<'_>, id: &[u8]| -> Result<Option<ObjectState>> {
            let (ty, pk_key) = split_id(id)?;
            match only_here.contains(id) {
                true => Ok(None),
                false => Ok(current(tx, overlay, ty, pk_key, 0)?.state),
            }
        };
    let mut overlay = raw.open_table(CONFIRMED)?;
    let (recovered, report, clock) = match commit.plan {
        Plan::Recover(policy) => {
            let mut states = HashMap::new();
            for id in &unsynced_objects {
                states.insert(id.clone(), server_state(tx, &overlay, id)?);
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
    let ids: BTreeSet<&Vec<u8>> = replay.by_object.keys().chain(&only_here).chain(&unsynced_objects).collect();
    for id in ids {
        let state = server_state(tx, &overlay, id)?;
        settle_id(tx, &mut overlay, id, state, &replay, Rebuild::InPlace)?;
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

/// Acknowledged changesets are part of the confirmed state: they leave the log.
fn drop_acknowledged(pending: &mut redb::Table<u64, &'static [u8]>, uploaded_through: u64) -> Result<()> {
    let acknowledged: Vec<u64> =
        pending.range(..=uploaded_through)?.map(|r| r.map(|(k, _)| k.value())).collect::<Result<_, _>>()?;
    for v in acknowledged {
        pending.remove(v)?;
    }
    Ok(())
}
