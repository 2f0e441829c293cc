//! Applying what the server sent: the server-confirmed state moves
//! forward with the merge rule, acknowledged changesets leave the change
//! log, and every object the download touched is rebuilt as its confirmed
//! state with the remaining pending changes replayed on top (`docs/sync.md`).

use crate::change_log::BASE_VERSION;
use crate::error::{Error, Result};
use crate::layout::{CONFIRMED, META, PENDING};
use crate::transaction::WriteTransaction;
use crate::UpdateMode;
use haven_core::merge::{apply, Changeset, ObjectState, Writer};
use haven_core::{key, Value};
use redb::ReadableTable;
use std::collections::BTreeMap;

pub(crate) fn integrate(
    tx: &mut WriteTransaction<'_>,
    changesets: &[(u64, Changeset)],
    uploaded_through: u64,
    ident: u64,
) -> Result<()> {
    let raw = tx.raw();
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
                match apply(current.as_ref(), instruction, &writer).state {
                    Some(state) => confirmed.insert((ty, pk_key.as_slice()), encode(&(pk, &state))?.as_slice())?,
                    None => confirmed.remove((ty, pk_key.as_slice()))?,
                };
                touched.insert((ty.to_owned(), pk_key), pk.clone());
            }
            last_version = last_version.max(*version);
        }

        // Acknowledged changesets are part of the confirmed state now.
        let mut pending = raw.open_table(PENDING)?;
        let acknowledged: Vec<u64> =
            pending.range(..=uploaded_through)?.map(|r| r.map(|(k, _)| k.value())).collect::<Result<_, _>>()?;
        for v in acknowledged {
            pending.remove(v)?;
        }
        let remaining = pending_changesets(&pending)?;

        rebuilt = replay(&confirmed, &remaining, &touched, last_version, ident)?;
        if last_version > 0 {
            raw.open_table(META)?.insert(BASE_VERSION, last_version.to_le_bytes().as_slice())?;
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

/// Stores one batch of the server's state snapshot as confirmed state.
/// Nothing the app reads changes until [`finish_bootstrap`].
pub(crate) fn bootstrap_batch(tx: &mut WriteTransaction<'_>, objects: &[(String, Value, ObjectState)]) -> Result<()> {
    let mut confirmed = tx.raw().open_table(CONFIRMED)?;
    for (ty, pk, state) in objects {
        confirmed.insert((ty.as_str(), key_of(pk)?.as_slice()), encode(&(pk, state))?.as_slice())?;
    }
    Ok(())
}

/// Ends a bootstrap: every object, on the server or only here, becomes
/// its confirmed state with the pending changes replayed on top.
pub(crate) fn finish_bootstrap(tx: &mut WriteTransaction<'_>, version: u64, ident: u64) -> Result<()> {
    let raw = tx.raw();
    let mut everything: BTreeMap<(String, Vec<u8>), Value> = BTreeMap::new();
    let rebuilt = {
        let confirmed = raw.open_table(CONFIRMED)?;
        for row in confirmed.iter()? {
            let (k, v) = row?;
            let (ty, pk_key) = k.value();
            everything.insert((ty.to_owned(), pk_key.to_vec()), decode::<(Value, ObjectState)>(v.value())?.0);
        }
        for ty in tx.schema().types() {
            let name = crate::layout::objects_table(ty.name());
            let table = raw.open_table(crate::layout::objects_def(&name))?;
            for row in table.iter()? {
                let pk_key = row?.0.value().to_vec();
                let pk = key::decode(&pk_key).ok_or_else(|| Error::Storage(format!("{}: a damaged key", ty.name())))?;
                everything.entry((ty.name().to_owned(), pk_key)).or_insert(pk);
            }
        }
        let remaining = pending_changesets(&raw.open_table(PENDING)?)?;
        let rebuilt = replay(&confirmed, &remaining, &everything, version, ident)?;
        raw.open_table(META)?.insert(BASE_VERSION, version.to_le_bytes().as_slice())?;
        rebuilt
    };
    for (ty, pk, state) in rebuilt {
        write_object(tx, &ty, pk, state)?;
    }
    Ok(())
}

/// The optimistic state of each object: confirmed, then the pending
/// changes replayed (as later than anything the server has, `after`).
fn replay(
    confirmed: &impl ReadableTable<(&'static str, &'static [u8]), &'static [u8]>,
    pending: &[Changeset],
    objects: &BTreeMap<(String, Vec<u8>), Value>,
    after: u64,
    ident: u64,
) -> Result<Vec<(String, Value, Option<ObjectState>)>> {
    let mut out = Vec::with_capacity(objects.len());
    for ((ty, pk_key), pk) in objects {
        let mut state = read_state(confirmed, ty, pk_key)?;
        for (n, cs) in pending.iter().enumerate() {
            let writer =
                Writer { version: after + 1 + n as u64, base_version: cs.base_version, hlc: cs.hlc, replica: ident };
            for instruction in cs.instructions.iter().filter(|i| i.object() == (ty.as_str(), pk)) {
                state = apply(state.as_ref(), instruction, &writer).state;
            }
        }
        out.push((ty.clone(), pk.clone(), state));
    }
    Ok(out)
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
            // Properties this app's schema lacks (a newer client's) stay in the confirmed state only.
            let known: Vec<(&str, Value)> = fields
                .iter()
                .filter_map(|(name, f)| object_type.property_named(name).map(|p| (p.name.as_str(), f.value.clone())))
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
        Some(g) => Ok(Some(decode::<(Value, ObjectState)>(g.value())?.1)),
        None => Ok(None),
    }
}

fn key_of(pk: &Value) -> Result<Vec<u8>> {
    pk.as_ref().map(key::to_key).ok_or_else(|| Error::Storage("a primary key cannot be a list".into()))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| Error::Storage(format!("cannot encode sync state: {e}")))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::Storage(format!("damaged sync state: {e}")))
}
