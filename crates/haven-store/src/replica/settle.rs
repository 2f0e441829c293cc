//! Settling an object: making it show its confirmed state with its
//! pending changes replayed on top, and keeping the confirmed state where
//! [`confirmed`] says. Downloads, bootstraps, a client reset's commit, a
//! new schema and the format-2 migration all end here.

use crate::error::{Error, Result};
use crate::layout::{CONFIRMED, PENDING};
use crate::replica::confirmed;
use crate::transaction::WriteTransaction;
use haven_core::merge::{apply_in_place, Changeset, Instruction, ObjectState, Writer};
use haven_core::{key, Value};
use redb::ReadableTable;
use std::collections::{BTreeSet, HashMap};

pub(crate) type Overlay<'t> = redb::Table<'t, (&'static str, &'static [u8]), &'static [u8]>;

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

/// Settles every object the overlay or the change log knows of, as later
/// than server `version`: after a new schema emptied the objects tables
/// (see `download::unfold_records`), or to move a format-1 file's confirmed states
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

/// The object being settled.
pub(crate) struct Settle<'a> {
    pub ty: &'a str,
    pub pk: &'a Value,
    pub pk_key: &'a [u8],
}

/// [`settle`] for an object named by `type \0 key` (its primary key is
/// decoded from the key).
pub(crate) fn settle_id(
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
pub(crate) fn settle(
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
        Some(live @ ObjectState::Live { fields, deleted_at, .. }) => {
            let element_state = live.has_element_state();
            confirmed::render(tx.schema(), object_type, pk, fields, element_state, *deleted_at).and_then(|rendered| {
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
pub(crate) struct Replay<'a> {
    pending: &'a [Changeset],
    /// `type \0 key` → (changeset index, instruction), in log order.
    pub by_object: HashMap<Vec<u8>, Vec<(usize, &'a Instruction)>>,
    after: u64,
    ident: u64,
}

impl<'a> Replay<'a> {
    pub fn new(pending: &'a [Changeset], after: u64, ident: u64) -> Result<Replay<'a>> {
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
    pub fn last_client_version(&self, ty: &str, pk_key: &[u8]) -> Option<u64> {
        if self.by_object.is_empty() {
            return None;
        }
        let (n, _) = self.by_object.get(&object_id(ty, pk_key))?.last()?;
        Some(self.pending[*n].client_version)
    }

    /// The object's optimistic state: `state` with its pending changes applied.
    pub fn onto(&self, ty: &str, pk_key: &[u8], mut state: Option<ObjectState>) -> Option<ObjectState> {
        for &(n, instruction) in self.by_object.get(&object_id(ty, pk_key)).into_iter().flatten() {
            let cs = &self.pending[n];
            let writer = Writer {
                version: self.after + 1 + n as u64,
                base_version: cs.base_version,
                hlc: cs.hlc,
                replica: self.ident,
            };
            apply_in_place(&mut state, instruction, &writer);
        }
        state
    }
}

/// `type \0 key`: one object across types (type names hold no NUL).
pub(crate) fn object_id(ty: &str, pk_key: &[u8]) -> Vec<u8> {
    let mut id = Vec::with_capacity(ty.len() + 1 + pk_key.len());
    id.extend_from_slice(ty.as_bytes());
    id.push(0);
    id.extend_from_slice(pk_key);
    id
}

pub(crate) fn split_id(id: &[u8]) -> Result<(&str, &[u8])> {
    let at = id.iter().position(|b| *b == 0).ok_or_else(|| Error::Storage("a damaged object id".into()))?;
    let ty = std::str::from_utf8(&id[..at]).map_err(|_| Error::Storage("a damaged object id".into()))?;
    Ok((ty, &id[at + 1..]))
}

pub(crate) fn pending_changesets(table: &impl ReadableTable<u64, &'static [u8]>) -> Result<Vec<Changeset>> {
    table.iter()?.map(|r| r.map_err(Error::from).and_then(|(_, v)| decode(v.value()))).collect()
}

pub(crate) fn key_of(pk: &Value) -> Result<Vec<u8>> {
    pk.as_ref().map(key::to_key).ok_or_else(|| Error::Storage("a primary key cannot be a list".into()))
}

pub(crate) fn decode_key(ty: &str, pk_key: &[u8]) -> Result<Value> {
    key::decode(pk_key).ok_or_else(|| Error::Storage(format!("{ty}: a damaged key")))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::Storage(format!("damaged sync state: {e}")))
}
