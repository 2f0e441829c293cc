//! One upload merged into a partition, the same for every storage
//! backend: which changesets are new, the versions they take, the writer
//! stamps the server allows, and each touched object's new state. The
//! backend reads the current states and stores what comes out, in one
//! transaction.

use crate::storage::{Integration, StorageError};
use haven_core::merge::{apply, Changeset, ObjectState, Writer};
use haven_core::{key, Value};
use haven_sync::protocol::FileIdent;
use std::collections::HashMap;

/// How far in the future a client's clock may be before the server
/// bounds its stamps.
const MAX_CLOCK_SKEW_MILLIS: u64 = 60_000;

/// An object an upload touched, as it is afterwards.
pub(crate) struct Touched {
    pub object_type: String,
    /// The primary key in the order-preserving key encoding.
    pub key: Vec<u8>,
    pub pk: Value,
    /// `None`: the object does not exist (it never did).
    pub state: Option<ObjectState>,
    /// The version that last changed it.
    pub version: u64,
}

/// What to store for an upload.
pub(crate) struct Merged {
    pub integration: Integration,
    /// The new history: `(version, changeset as stored)`.
    pub history: Vec<(u64, Changeset)>,
    /// Each object touched, once, in the order first touched.
    pub objects: Vec<Touched>,
}

/// Merges `changesets` from `client` (whose changesets up to
/// `uploaded_through` are integrated already) into a partition at
/// `version`; `state_of(type, key)` reads an object's current state.
pub(crate) fn merge(
    client: FileIdent,
    uploaded_through: u64,
    mut version: u64,
    changesets: &[Changeset],
    now_millis: u64,
    mut state_of: impl FnMut(&str, &[u8]) -> Result<Option<ObjectState>, StorageError>,
) -> Result<Merged, StorageError> {
    let mut integration = Integration { versions: vec![], uploaded_through, dropped: vec![] };
    let mut history = Vec::new();
    let mut objects: Vec<Touched> = Vec::new();
    let mut at: HashMap<(String, Vec<u8>), usize> = HashMap::new();
    for cs in changesets {
        if cs.client_version <= integration.uploaded_through {
            continue; // integrated before: uploads are idempotent
        }
        version += 1;
        let writer = Writer {
            version,
            // No writer has seen a version that did not exist yet: a claim
            // otherwise would win every conflict.
            base_version: cs.base_version.min(version - 1),
            hlc: cs.hlc.bounded(now_millis, MAX_CLOCK_SKEW_MILLIS),
            replica: client.ident,
        };
        let mut dropped = vec![];
        for instruction in &cs.instructions {
            let (ty, pk) = instruction.object();
            let object_key = pk_key(pk)?;
            let n = match at.get(&(ty.to_owned(), object_key.clone())) {
                Some(&n) => n,
                None => {
                    let state = state_of(ty, &object_key)?;
                    objects.push(Touched {
                        object_type: ty.to_owned(),
                        key: object_key.clone(),
                        pk: pk.clone(),
                        state,
                        version,
                    });
                    at.insert((ty.to_owned(), object_key), objects.len() - 1);
                    objects.len() - 1
                }
            };
            let applied = apply(objects[n].state.as_ref(), instruction, &writer);
            dropped.extend(applied.dropped.iter().map(|d| d.reason));
            objects[n].state = applied.state;
            objects[n].version = version;
        }
        let stored =
            Changeset { replica: client.ident, hlc: writer.hlc, base_version: writer.base_version, ..cs.clone() };
        history.push((version, stored));
        integration.versions.push(version);
        integration.dropped.push(dropped);
        integration.uploaded_through = cs.client_version;
    }
    Ok(Merged { integration, history, objects })
}

/// The primary key's order-preserving encoding.
pub(crate) fn pk_key(pk: &Value) -> Result<Vec<u8>, StorageError> {
    pk.as_ref().map(key::to_key).ok_or_else(|| StorageError::Backend("a primary key cannot be a list".into()))
}
