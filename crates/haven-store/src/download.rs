//! Applying what the server sent: the server-confirmed state moves
//! forward with the merge rule, acknowledged changesets leave the change
//! log, and every object the download touched is rebuilt as its confirmed
//! state with the remaining pending changes replayed on top (`docs/sync.md`).

use crate::change_log;
use crate::error::{Error, Result};
use crate::layout::{CONFIRMED, PENDING};
use crate::reset_tracker::{write_tracker, Plan, ResetTracker};
use crate::transaction::WriteTransaction;
use crate::UpdateMode;
use haven_core::merge::{apply, Changeset, HlcClock, Instruction, ObjectState, Writer};
use haven_core::recovery::{Recovery, RecoveryReport};
use haven_core::{key, Value};
use haven_sync::protocol::ResetReason;
use haven_sync::protocol::SnapshotObject;
use redb::ReadableTable;
use std::collections::{BTreeMap, HashMap};

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
    // This file's own changesets coming back, with nothing from others
    // between them, change no value here: the app's objects already show
    // them, replayed in the same order (the merge rule lets a replica's
    // later write win over its own earlier one whatever the stamps). Only
    // the stamps move, and they live in the confirmed state: no object
    // needs rebuilding, unless the rule dropped something (a clock the
    // server bounded, say).
    let only_own = changesets.iter().all(|(_, cs)| cs.replica == ident);
    let mut touched: BTreeMap<(String, Vec<u8>), Value> = BTreeMap::new();
    let mut last_version = 0;
    let rebuilt;
    {
        let mut confirmed = raw.open_table(CONFIRMED)?;
        for (version, cs) in changesets {
            let writer = Writer { version: *version, base_version: cs.base_version, hlc: cs.hlc, replica: cs.replica };
            for instruction in &cs.instructions {
                let (ty, pk) = instruction.object();
                let pk_key = key_of(pk)?;
                let current = read_state(&confirmed, ty, &pk_key)?;
                let applied = apply(current.as_ref(), instruction, &writer);
                match &applied.state {
                    Some(state) => confirmed.insert((ty, pk_key.as_slice()), encode_state(pk, state)?.as_slice())?,
                    None => confirmed.remove((ty, pk_key.as_slice()))?,
                };
                if !only_own || !applied.dropped.is_empty() {
                    touched.insert((ty.to_owned(), pk_key), pk.clone());
                }
            }
            last_version = last_version.max(*version);
        }

        let mut pending = raw.open_table(PENDING)?;
        drop_acknowledged(&mut pending, uploaded_through)?;
        // Nothing to rebuild (this file's own changesets coming back): the
        // rest of the log need not even be read.
        let remaining = if touched.is_empty() { Vec::new() } else { pending_changesets(&pending)? };
        let replay = Replay::new(&remaining, last_version, ident)?;
        rebuilt = touched
            .into_iter()
            .map(|((ty, pk_key), pk)| {
                let state = replay.onto(&ty, &pk_key, read_state(&confirmed, &ty, &pk_key)?);
                Ok((ty, pk, state))
            })
            .collect::<Result<Vec<_>>>()?;
        if last_version > 0 {
            change_log::set_base(raw, last_version, last_salt)?;
        }
    }
    for (ty, pk, state) in rebuilt {
        write_object(tx, &ty, pk, state)?;
    }
    Ok(())
}

/// Starts a bootstrap: forgets the confirmed state (a bootstrap that a
/// crash interrupted starts again from nothing).
pub(crate) fn begin_bootstrap(tx: &mut WriteTransaction<'_>) -> Result<()> {
    tx.raw().delete_table(CONFIRMED)?;
    Ok(())
}

/// Stores one batch of the server's state snapshot as confirmed state,
/// as the server sent it (the same encoding). Nothing the app reads
/// changes until [`finish_bootstrap`].
pub(crate) fn bootstrap_batch(tx: &mut WriteTransaction<'_>, objects: &[SnapshotObject]) -> Result<()> {
    let mut confirmed = tx.raw().open_table(CONFIRMED)?;
    for o in objects {
        confirmed.insert((o.object_type.as_str(), o.key.as_slice()), o.state.as_slice())?;
    }
    Ok(())
}

/// Ends a bootstrap of the snapshot at `version` (whose salt is `salt`):
/// the pending changes up to `uploaded_through` are in the snapshot
/// already and leave the log, then every object is [`rebuild`]t.
pub(crate) fn finish_bootstrap(
    tx: &mut WriteTransaction<'_>,
    version: u64,
    salt: u64,
    uploaded_through: u64,
    ident: u64,
) -> Result<()> {
    drop_acknowledged(&mut tx.raw().open_table(PENDING)?, uploaded_through)?;
    rebuild(tx, version, ident, Rebuild::InPlace)?;
    change_log::set_base(tx.raw(), version, salt)
}

/// What a rebuild starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rebuild {
    /// The objects tables hold the app's objects (a download, a bootstrap,
    /// a reset's commit): an object the schema cannot hold is an error
    /// (the server sent what this schema does not allow).
    InPlace,
    /// The objects tables were just emptied for a new schema: objects come
    /// from the confirmed state and the change log alone, and one that
    /// cannot be completed under the new schema is left out (the client
    /// reset that follows fills it from the server).
    NewSchema,
}

/// Makes every object, on the server or only here, its confirmed state
/// with the pending changes replayed on top (as later than server
/// `version`), under the transaction's schema. Objects are rebuilt as
/// they are read, so memory does not grow with the data.
pub(crate) fn rebuild(tx: &mut WriteTransaction<'_>, version: u64, ident: u64, from: Rebuild) -> Result<()> {
    let raw = tx.raw();
    let pending = pending_changesets(&raw.open_table(PENDING)?)?;
    let replay = Replay::new(&pending, version, ident)?;
    let confirmed = raw.open_table(CONFIRMED)?;
    // Objects only this file has: its pending changes replayed onto nothing.
    // (Found before any write: the transaction keeps the tables it writes open.)
    let mut local_only = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for ty in tx.schema().types() {
        let name = crate::layout::objects_table(ty.name());
        let table = raw.open_table(crate::layout::objects_def(&name))?;
        for row in table.iter()? {
            let pk_key = row?.0.value().to_vec();
            if confirmed.get((ty.name(), pk_key.as_slice()))?.is_none() {
                let pk = key::decode(&pk_key).ok_or_else(|| Error::Storage(format!("{}: a damaged key", ty.name())))?;
                seen.insert(object_id(ty.name(), &pk_key));
                local_only.push((ty.name(), pk, replay.onto(ty.name(), &pk_key, None)));
            }
        }
    }
    // Under a new schema the tables are empty: the change log says which
    // objects only this file has.
    let from_log = match from {
        Rebuild::NewSchema => replay.objects().collect(),
        Rebuild::InPlace => Vec::new(),
    };
    for (ty, pk) in from_log {
        let pk_key = key_of(pk)?;
        if confirmed.get((ty, pk_key.as_slice()))?.is_none() && seen.insert(object_id(ty, &pk_key)) {
            local_only.push((ty, pk.clone(), replay.onto(ty, &pk_key, None)));
        }
    }
    for row in confirmed.iter()? {
        let (k, v) = row?;
        let (ty, pk_key) = k.value();
        let (pk, state) = decode_state(v.value())?;
        let state = replay.onto(ty, pk_key, Some(state));
        write_fitting(tx, ty, pk, state, from)?;
    }
    for (ty, pk, state) in local_only {
        write_fitting(tx, ty, pk, state, from)?;
    }
    Ok(())
}

/// [`write_object`], leaving out an object that does not fit a new
/// schema (its primary key changed, say).
fn write_fitting(
    tx: &mut WriteTransaction<'_>,
    ty: &str,
    pk: Value,
    state: Option<ObjectState>,
    from: Rebuild,
) -> Result<()> {
    match write_object(tx, ty, pk, state) {
        Err(Error::InvalidValue(_) | Error::MissingProperty { .. } | Error::Schema(_))
            if from == Rebuild::NewSchema =>
        {
            Ok(())
        }
        written => written,
    }
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

/// Ends a client reset in one commit, once the server's snapshot is the
/// confirmed state: the unsynced changesets become the recovered ones (or
/// none), the file takes its new ident, and every object becomes the
/// server's state with the recovered changes on top. Returns what became
/// of each unsynced change.
pub(crate) fn finish_reset(tx: &mut WriteTransaction<'_>, commit: ResetCommit) -> Result<RecoveryReport> {
    let raw = tx.raw();
    let acknowledged = commit.tracker.acknowledged.unwrap_or(0);
    let unsynced: Vec<Changeset> = pending_changesets(&raw.open_table(PENDING)?)?
        .into_iter()
        .filter(|cs| cs.client_version > acknowledged)
        .collect();
    let clock = change_log::clock(raw)?;
    let (recovered, report, clock) = match commit.plan {
        Plan::Recover(policy) => {
            let confirmed = raw.open_table(CONFIRMED)?;
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
                let state = key_of(pk).and_then(|k| read_state(&confirmed, ty, &k));
                // A damaged row reads as absent: the recovery reports what it drops.
                state
                    .inspect_err(|e| tracing::error!(error = %e, "client reset: unreadable server state"))
                    .ok()
                    .flatten()
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
    finish_bootstrap(tx, commit.version, commit.salt, 0, commit.ident.0)?;
    Ok(report)
}

/// Whether the server's version numbers still mean what the file's
/// changesets saw: not after a restore from a backup, or for a server
/// that does not know the file.
fn history_continues(reason: ResetReason) -> bool {
    !matches!(reason, ResetReason::ServerRestored | ResetReason::ClientRestored | ResetReason::UnknownClient)
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

    /// Every object the pending changes touch (once per change).
    fn objects(&self) -> impl Iterator<Item = (&'a str, &'a Value)> {
        self.pending.iter().flat_map(|cs| &cs.instructions).map(Instruction::object)
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

fn object_id(ty: &str, pk_key: &[u8]) -> Vec<u8> {
    let mut id = Vec::with_capacity(ty.len() + 1 + pk_key.len());
    id.extend_from_slice(ty.as_bytes());
    id.push(0);
    id.extend_from_slice(pk_key);
    id
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

/// Makes the object's record say what `state` says.
fn write_object(tx: &mut WriteTransaction<'_>, ty: &str, pk: Value, state: Option<ObjectState>) -> Result<()> {
    let Some(object_type) = tx.schema().object_type(ty) else {
        return Ok(()); // a type this app's schema does not have: nothing to show
    };
    match state {
        Some(ObjectState::Live { fields, .. }) => {
            // Properties this app's schema lacks (a newer client's) stay in
            // the confirmed state only. After a breaking schema change, a
            // value of another type, or none for a required property, shows
            // as the property's fallback (the primary key has none: such
            // an object does not fit).
            let schema = tx.schema();
            let pk_name = object_type.primary_key_name();
            let known: Vec<(&str, Value)> = object_type
                .properties()
                .iter()
                .filter_map(|p| {
                    let value = match fields.get(&p.name) {
                        Some(f) => schema.coerce(object_type, p, f.value.clone()).ok(),
                        None if p.default_value().is_none() && p.name != pk_name => None,
                        None => return None,
                    };
                    Some((p.name.as_str(), value.unwrap_or_else(|| p.fallback_value())))
                })
                .collect();
            tx.create_values(ty, known, UpdateMode::Modified)
        }
        _ => tx.delete(ty, pk).map(|_| ()),
    }
}

fn read_state(
    table: &impl ReadableTable<(&'static str, &'static [u8]), &'static [u8]>,
    ty: &str,
    pk_key: &[u8],
) -> Result<Option<ObjectState>> {
    match table.get((ty, pk_key))? {
        Some(g) => Ok(Some(decode_state(g.value())?.1)),
        None => Ok(None),
    }
}

fn key_of(pk: &Value) -> Result<Vec<u8>> {
    pk.as_ref().map(key::to_key).ok_or_else(|| Error::Storage("a primary key cannot be a list".into()))
}

fn encode_state(pk: &Value, state: &ObjectState) -> Result<Vec<u8>> {
    SnapshotObject::encode_state(pk, state).map_err(|e| Error::Storage(format!("cannot encode sync state: {e}")))
}

pub(crate) fn decode_state(bytes: &[u8]) -> Result<(Value, ObjectState)> {
    SnapshotObject::decode_state(bytes).map_err(|e| Error::Storage(format!("damaged sync state: {e}")))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::Storage(format!("damaged sync state: {e}")))
}
