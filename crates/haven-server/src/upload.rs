//! One upload merged into a partition, the same for every storage
//! backend: which changesets are new, the versions they take, the writer
//! stamps the server allows, and each touched object's new state. The
//! backend reads and writes the objects ([`Objects`]) and stores the
//! history, in one transaction.

use crate::storage::{Integration, StorageError};
use haven_core::merge::{apply_in_place, Changeset, ObjectState, Writer};
use haven_core::{key, Value};
use haven_sync::protocol::FileIdent;

/// How far in the future a client's clock may be before the server
/// bounds its stamps.
const MAX_CLOCK_SKEW_MILLIS: u64 = 60_000;

/// Where an upload's objects are read and written: the backend's tables
/// (or a copy in memory), inside the upload's transaction.
pub(crate) trait Objects {
    /// The object's current state (as left by earlier writes of this upload).
    fn get(&mut self, object_type: &str, key: &[u8]) -> Result<Option<ObjectState>, StorageError>;
    /// Its new state (`None`: it does not exist), changed at `version`.
    fn put(
        &mut self,
        object_type: &str,
        key: &[u8],
        pk: &Value,
        state: Option<&ObjectState>,
        version: u64,
    ) -> Result<(), StorageError>;
}

/// What to store for an upload besides its objects.
pub(crate) struct Merged {
    pub integration: Integration,
    /// The new history: `(version, changeset as stored)`.
    pub history: Vec<(u64, Changeset)>,
}

/// Merges `changesets` from `client` (whose changesets up to
/// `uploaded_through` are integrated already) into a partition at
/// `version`, reading and writing its objects through `objects`.
pub(crate) fn merge(
    client: FileIdent,
    uploaded_through: u64,
    mut version: u64,
    changesets: &[Changeset],
    seen: u64,
    now_millis: u64,
    objects: &mut impl Objects,
) -> Result<Merged, StorageError> {
    let mut integration = Integration { versions: vec![], uploaded_through, dropped: vec![] };
    let mut history = Vec::new();
    for cs in changesets {
        if cs.client_version <= integration.uploaded_through {
            continue; // integrated before: uploads are idempotent
        }
        version += 1;
        let writer = Writer {
            version,
            // A writer has seen at most what it was sent, and no version
            // that did not exist yet: a larger claim would win conflicts
            // it never saw.
            base_version: cs.base_version.min(seen).min(version - 1),
            hlc: cs.hlc.bounded(now_millis, MAX_CLOCK_SKEW_MILLIS),
            replica: client.ident,
        };
        let mut dropped = vec![];
        // Consecutive instructions on one object (a run of edits to one
        // list, say) read and write it once: a long list is not copied
        // per edit.
        let mut open: Option<(&str, Vec<u8>, &Value, Option<ObjectState>)> = None;
        for instruction in &cs.instructions {
            let (ty, pk) = instruction.object();
            let key = pk_key(pk)?;
            let state = match &mut open {
                Some((t, k, _, state)) if *t == ty && *k == key => state,
                _ => {
                    if let Some((t, k, p, state)) = open.take() {
                        objects.put(t, &k, p, state.as_ref(), version)?;
                    }
                    let state = objects.get(ty, &key)?;
                    &mut open.insert((ty, key, pk, state)).3
                }
            };
            dropped.extend(apply_in_place(state, instruction, &writer).iter().map(|d| d.reason));
        }
        if let Some((t, k, p, state)) = open {
            objects.put(t, &k, p, state.as_ref(), version)?;
        }
        let stored =
            Changeset { replica: client.ident, hlc: writer.hlc, base_version: writer.base_version, ..cs.clone() };
        history.push((version, stored));
        integration.versions.push(version);
        integration.dropped.push(dropped);
        integration.uploaded_through = cs.client_version;
    }
    Ok(Merged { integration, history })
}

/// The primary key's order-preserving encoding.
pub(crate) fn pk_key(pk: &Value) -> Result<Vec<u8>, StorageError> {
    pk.as_ref().map(key::to_key).ok_or_else(|| StorageError::Backend("a primary key cannot be a list".into()))
}
