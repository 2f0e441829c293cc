//! The merge rule: how one instruction changes one object, the same on
//! the server (integrating uploads in its order) and on clients
//! (replaying their pending changes on top of the server's state).
//! `docs/conflicts.md` explains it with examples.

use super::changeset::Instruction;
use super::hlc::Hlc;
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Who wrote a field last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// The server version of the write.
    pub version: u64,
    /// The writer's clock when it wrote.
    pub hlc: Hlc,
    /// The writing replica.
    pub replica: u64,
}

/// A field's value and the stamp of its last write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// The value.
    pub value: Value,
    /// Who wrote it.
    pub stamp: Stamp,
}

/// What the merge rule knows of one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ObjectState {
    /// The object exists.
    Live {
        /// Its fields.
        fields: BTreeMap<String, Field>,
        /// The delete this object was created again after, if any (server
        /// version, replica): writes from writers who had not seen that
        /// delete belong to the deleted object and are dropped.
        deleted_at: Option<(u64, u64)>,
    },
    /// The object was deleted (a tombstone: later writes from writers who
    /// had not seen the delete are dropped).
    Deleted {
        /// The server version of the delete.
        version: u64,
        /// The replica that deleted it.
        replica: u64,
    },
}

/// The changeset an instruction comes from, as the merge rule needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writer {
    /// The server version the changeset is integrated as.
    pub version: u64,
    /// The last server version the writer had seen.
    pub base_version: u64,
    /// The writer's clock.
    pub hlc: Hlc,
    /// The writing replica.
    pub replica: u64,
}

impl Writer {
    fn stamp(&self) -> Stamp {
        Stamp { version: self.version, hlc: self.hlc, replica: self.replica }
    }

    /// Whether this write beats the field's last write: a writer that had
    /// seen that write wins (causality); otherwise the writes are
    /// concurrent and the later clock wins, ties going to the higher
    /// replica id.
    fn beats(&self, last: &Stamp) -> bool {
        self.has_seen(last.version, last.replica) || (self.hlc, self.replica) > (last.hlc, last.replica)
    }

    /// Whether the writer knew of a write made at `version` by `replica`:
    /// it had integrated that version, or the write was its own (an
    /// earlier changeset of the same replica, or this very changeset).
    fn has_seen(&self, version: u64, replica: u64) -> bool {
        self.base_version >= version || replica == self.replica
    }
}

/// Why (part of) an instruction had no effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Overruled {
    /// The object was deleted by a write the writer had not seen.
    DeletedOnServer,
    /// A concurrent write with a later clock won the field.
    OlderThanServer,
    /// The object does not exist.
    NotFound,
    /// An increment on a value that is not a number of the same kind.
    NotANumber,
}

/// Something an instruction could not change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    /// The field, when only a field was dropped.
    pub field: Option<String>,
    /// Why.
    pub reason: Overruled,
}

/// The result of applying one instruction.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The object afterwards (`None`: it still does not exist).
    pub state: Option<ObjectState>,
    /// What had no effect, and why.
    pub dropped: Vec<Dropped>,
}

/// Applies `instruction` from `writer` to the object's current state.
///
/// ```
/// use haven_core::merge::{apply, Hlc, Instruction, ObjectState, Writer};
/// use haven_core::Value;
/// let writer = |version, base_version, millis, replica| Writer { version, base_version, hlc: Hlc { millis, counter: 0 }, replica };
/// let create = Instruction::Create { object_type: "Dog".into(), pk: 1.into(), fields: vec![("age".into(), 1.into())] };
/// let dog = apply(None, &create, &writer(1, 0, 10, 7)).state;
/// // Two devices that both saw version 1 set `age` concurrently: the later clock wins.
/// let set = |age: i64| Instruction::Set { object_type: "Dog".into(), pk: 1.into(), field: "age".into(), value: age.into() };
/// let after_r = apply(dog.as_ref(), &set(6), &writer(2, 1, 30, 8)).state;
/// let after_l = apply(after_r.as_ref(), &set(4), &writer(3, 1, 20, 7));
/// let Some(ObjectState::Live { fields, .. }) = &after_l.state else { panic!() };
/// assert_eq!(fields["age"].value, Value::Int(6));
/// assert_eq!(after_l.dropped.len(), 1); // L's older write: OlderThanServer
/// ```
pub fn apply(current: Option<&ObjectState>, instruction: &Instruction, writer: &Writer) -> Applied {
    let unchanged = |dropped: Vec<Dropped>| Applied { state: current.cloned(), dropped };
    let drop_whole = |reason| unchanged(vec![Dropped { field: None, reason }]);
    let (fields, deleted_at) = match current {
        None => {
            return match instruction {
                Instruction::Create { fields, .. } => {
                    Applied { state: Some(fresh(fields, writer, None)), dropped: vec![] }
                }
                Instruction::Delete { .. } => unchanged(vec![]),
                _ => drop_whole(Overruled::NotFound),
            }
        }
        Some(ObjectState::Deleted { version, replica }) => {
            return match instruction {
                // Created again by a writer who had seen the delete: it comes back.
                Instruction::Create { fields, .. } if writer.has_seen(*version, *replica) => {
                    Applied { state: Some(fresh(fields, writer, Some((*version, *replica)))), dropped: vec![] }
                }
                Instruction::Delete { .. } => unchanged(vec![]),
                _ => drop_whole(Overruled::DeletedOnServer),
            };
        }
        Some(ObjectState::Live { fields, deleted_at }) => (fields, *deleted_at),
    };
    if deleted_at.is_some_and(|(version, replica)| !writer.has_seen(version, replica)) {
        // About the incarnation that was deleted: delete wins.
        return drop_whole(Overruled::DeletedOnServer);
    }
    let mut fields = fields.clone();
    let dropped = match instruction {
        Instruction::Delete { .. } => {
            let state = ObjectState::Deleted { version: writer.version, replica: writer.replica };
            return Applied { state: Some(state), dropped: vec![] };
        }
        Instruction::Create { fields: given, .. } => {
            given.iter().filter_map(|(name, value)| set_field(&mut fields, name, value, writer)).collect()
        }
        Instruction::Set { field, value, .. } => set_field(&mut fields, field, value, writer).into_iter().collect(),
        Instruction::Increment { field, delta, .. } => {
            match fields.get_mut(field).and_then(|f| add(&f.value, delta).map(|sum| (f, sum))) {
                Some((f, sum)) => {
                    // Increments always count, concurrent or not. The field
                    // keeps the later clock of the two: adding to a value must
                    // not make it easier for an older concurrent set to win.
                    let (hlc, replica) = (f.stamp.hlc, f.stamp.replica).max((writer.hlc, writer.replica));
                    *f = Field { value: sum, stamp: Stamp { version: writer.version, hlc, replica } };
                    vec![]
                }
                None => return unchanged(vec![Dropped { field: Some(field.clone()), reason: Overruled::NotANumber }]),
            }
        }
    };
    Applied { state: Some(ObjectState::Live { fields, deleted_at }), dropped }
}

fn fresh(given: &[(String, Value)], writer: &Writer, deleted_at: Option<(u64, u64)>) -> ObjectState {
    let stamp = writer.stamp();
    let fields = given.iter().map(|(n, v)| (n.clone(), Field { value: v.clone(), stamp })).collect();
    ObjectState::Live { fields, deleted_at }
}

/// Writes one field if the writer beats its last write; otherwise says
/// why not.
fn set_field(live: &mut BTreeMap<String, Field>, name: &str, value: &Value, writer: &Writer) -> Option<Dropped> {
    match live.get_mut(name) {
        Some(f) if !writer.beats(&f.stamp) => {
            Some(Dropped { field: Some(name.to_owned()), reason: Overruled::OlderThanServer })
        }
        Some(f) => {
            *f = Field { value: value.clone(), stamp: writer.stamp() };
            None
        }
        None => {
            live.insert(name.to_owned(), Field { value: value.clone(), stamp: writer.stamp() });
            None
        }
    }
}

fn add(value: &Value, delta: &Value) -> Option<Value> {
    match (value, delta) {
        (Value::Int(a), Value::Int(d)) => a.checked_add(*d).map(Value::Int),
        (Value::Double(a), Value::Int(d)) => Some(Value::Double(a + *d as f64)),
        (Value::Double(a), Value::Double(d)) => Some(Value::Double(a + d)),
        _ => None,
    }
}
