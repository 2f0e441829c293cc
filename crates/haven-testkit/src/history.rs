//! The state a partition's history implies.

use haven_core::merge::{apply, ObjectState, Writer};
use haven_core::Value;
use haven_server::Storage;
use std::collections::BTreeMap;

/// An object's non-null fields by name.
pub type Fields = BTreeMap<String, Value>;

/// What the merge rule makes of `partition`'s whole history, from nothing:
/// the live objects (integer primary keys) with their non-null fields.
/// The server and every synced device must hold exactly this.
pub fn fold_history(storage: &dyn Storage, partition: &str) -> BTreeMap<i64, Fields> {
    let mut states: BTreeMap<i64, ObjectState> = BTreeMap::new();
    for h in storage.history(partition, 0, usize::MAX).expect("the history reads") {
        let cs = &h.changeset;
        let writer =
            Writer { version: h.server_version, base_version: cs.base_version, hlc: cs.hlc, replica: cs.replica };
        for instruction in &cs.instructions {
            let pk = instruction.object().1.as_int().expect("integer primary keys");
            match apply(states.get(&pk), instruction, &writer).state {
                Some(state) => states.insert(pk, state),
                None => states.remove(&pk),
            };
        }
    }
    states
        .into_iter()
        .filter_map(|(pk, state)| match state {
            ObjectState::Live { fields, .. } => Some((
                pk,
                fields.into_iter().filter(|(_, f)| f.value != Value::Null).map(|(k, f)| (k, f.value)).collect(),
            )),
            ObjectState::Deleted { .. } => None,
        })
        .collect()
}
