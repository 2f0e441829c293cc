//! The merge rule: how one instruction changes one object, the same on
//! the server (integrating uploads in its order) and on clients
//! (replaying their pending changes on top of the server's state).
//! `docs/conflicts.md` explains it with examples.

use super::changeset::Instruction;
use super::hlc::Hlc;
use super::keyed::{KeyedChange, KeyedState};
use super::list::{ElementChange, ListState};
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
///
/// Encoded as the variants of `wire::StateWire`: a live object whose lists
/// carry no element identities, and that has no set or dictionary entries,
/// encodes exactly as before lists had them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "wire::StateWire")]
pub enum ObjectState {
    /// The object exists.
    Live {
        /// Its fields. A collection property's field holds its value.
        fields: BTreeMap<String, Field>,
        /// The element identities of the list properties that have been
        /// written element by element (or whole, since).
        lists: BTreeMap<String, ListState>,
        /// The entries of the set and dictionary properties that have been
        /// written entry by entry (or whole, since), tombstones included.
        keyed: BTreeMap<String, KeyedState>,
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

impl ObjectState {
    /// The elements of list property `name`, with their identities, as
    /// element operations see them; `None` when the object is deleted or
    /// the property holds no list.
    pub fn list(&self, name: &str) -> Option<std::borrow::Cow<'_, ListState>> {
        let ObjectState::Live { fields, lists, .. } = self else { return None };
        match lists.get(name) {
            Some(list) => Some(std::borrow::Cow::Borrowed(list)),
            None => derived_list(fields.get(name)).map(std::borrow::Cow::Owned),
        }
    }

    /// Whether a live object has list element identities or set and
    /// dictionary entries: merge state a record has no place for.
    pub fn has_element_state(&self) -> bool {
        matches!(self, ObjectState::Live { lists, keyed, .. } if !lists.is_empty() || !keyed.is_empty())
    }

    /// Every stamp of a live object: its fields', its list elements'
    /// writes and moves, and its set and dictionary entries'.
    pub fn stamps(&self) -> impl Iterator<Item = Stamp> + '_ {
        let (fields, lists, keyed) = match self {
            ObjectState::Live { fields, lists, keyed, .. } => (Some(fields), Some(lists), Some(keyed)),
            ObjectState::Deleted { .. } => (None, None, None),
        };
        let elements = lists.into_iter().flat_map(|l| l.values()).flat_map(|l| &l.elements);
        let element_fields = lists.into_iter().flat_map(|l| l.values()).flat_map(|l| l.element_fields.values());
        let entries = keyed.into_iter().flat_map(|k| k.values()).chain(element_fields).flat_map(KeyedState::stamps);
        fields
            .into_iter()
            .flat_map(|f| f.values().map(|f| f.stamp))
            .chain(elements.flat_map(|e| std::iter::once(e.stamp).chain(e.moved)))
            .chain(entries)
    }
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
    pub(crate) fn stamp(&self) -> Stamp {
        Stamp { version: self.version, hlc: self.hlc, replica: self.replica }
    }

    /// Whether this write beats the field's last write: a writer that had
    /// seen that write wins (causality); otherwise the writes are
    /// concurrent and the later clock wins, ties going to the higher
    /// replica id.
    pub(crate) fn beats(&self, last: &Stamp) -> bool {
        self.has_seen(last.version, last.replica) || (self.hlc, self.replica) > (last.hlc, last.replica)
    }

    /// Whether the writer knew of a write made at `version` by `replica`:
    /// it had integrated that version, or the write was its own (an
    /// earlier changeset of the same replica, or this very changeset).
    pub(crate) fn has_seen(&self, version: u64, replica: u64) -> bool {
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
    /// A list operation on an element that was removed.
    ElementRemoved,
    /// A list operation naming an element the list never had.
    ElementNotFound,
    /// An insertion whose element id the list already has.
    ElementExists,
    /// A collection operation on a property that does not hold that kind
    /// of collection.
    NotAList,
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
    let mut state = current.cloned();
    let dropped = apply_in_place(&mut state, instruction, writer);
    Applied { state, dropped }
}

/// [`apply`] changing `state` where it is: what a replica applying many
/// instructions to one object uses, so that a long list is not copied
/// once per instruction. Returns what had no effect, and why.
pub fn apply_in_place(state: &mut Option<ObjectState>, instruction: &Instruction, writer: &Writer) -> Vec<Dropped> {
    let whole = |reason| vec![Dropped { field: None, reason }];
    let (fields, lists, keyed, deleted_at) = match state {
        None => {
            return match instruction {
                Instruction::Create { fields, .. } => {
                    *state = Some(fresh(fields, writer, None));
                    vec![]
                }
                Instruction::Delete { .. } => vec![],
                _ => whole(Overruled::NotFound),
            }
        }
        Some(ObjectState::Deleted { version, replica }) => {
            return match instruction {
                // Created again by a writer who had seen the delete: it comes back.
                Instruction::Create { fields, .. } if writer.has_seen(*version, *replica) => {
                    *state = Some(fresh(fields, writer, Some((*version, *replica))));
                    vec![]
                }
                Instruction::Delete { .. } => vec![],
                _ => whole(Overruled::DeletedOnServer),
            };
        }
        Some(ObjectState::Live { fields, lists, keyed, deleted_at }) => (fields, lists, keyed, *deleted_at),
    };
    if deleted_at.is_some_and(|(version, replica)| !writer.has_seen(version, replica)) {
        // About the incarnation that was deleted: delete wins.
        return whole(Overruled::DeletedOnServer);
    }
    let mut live = LiveObject { fields, lists, keyed };
    match instruction {
        Instruction::Delete { .. } => {
            *state = Some(ObjectState::Deleted { version: writer.version, replica: writer.replica });
            vec![]
        }
        Instruction::Create { fields: given, .. } => {
            given.iter().filter_map(|(name, value)| live.set(name, value, writer)).collect()
        }
        Instruction::Set { field, value, .. } => live.set(field, value, writer).into_iter().collect(),
        Instruction::Increment { field, delta, .. } => live.increment(field, delta, writer).into_iter().collect(),
        Instruction::ListAssign { field, elements, .. } => {
            live.assign(field, elements.iter().cloned(), writer).into_iter().collect()
        }
        Instruction::ListInsert { field, after, id, value, .. } => {
            live.change(field, ElementChange::Insert { after: *after, id: *id, value }, writer)
        }
        Instruction::ListSet { field, id, value, .. } => {
            live.change(field, ElementChange::Set { id: *id, value }, writer)
        }
        Instruction::ListMove { field, id, after, .. } => {
            live.change(field, ElementChange::Move { id: *id, after: *after }, writer)
        }
        Instruction::ListRemove { field, id, .. } => live.change(field, ElementChange::Remove { id: *id }, writer),
        Instruction::ListElementPut { field, id, key, value, .. } => {
            live.change(field, ElementChange::Put { id: *id, key, value }, writer)
        }
        Instruction::SetAdd { field, value, .. } => {
            live.change_entry(field, KeyedChange::SetElement { element: value, present: true }, writer)
        }
        Instruction::SetRemove { field, value, .. } => {
            live.change_entry(field, KeyedChange::SetElement { element: value, present: false }, writer)
        }
        Instruction::DictionaryPut { field, key, value, .. } => {
            live.change_entry(field, KeyedChange::DictionaryEntry { key, value: Some(value) }, writer)
        }
        Instruction::DictionaryRemove { field, key, .. } => {
            live.change_entry(field, KeyedChange::DictionaryEntry { key, value: None }, writer)
        }
    }
}

fn fresh(given: &[(String, Value)], writer: &Writer, deleted_at: Option<(u64, u64)>) -> ObjectState {
    let stamp = writer.stamp();
    let fields = given.iter().map(|(n, v)| (n.clone(), Field { value: v.clone(), stamp })).collect();
    ObjectState::Live { fields, lists: BTreeMap::new(), keyed: BTreeMap::new(), deleted_at }
}

/// A live object's fields, list identities and set and dictionary
/// entries, as an instruction changes them.
struct LiveObject<'s> {
    fields: &'s mut BTreeMap<String, Field>,
    lists: &'s mut BTreeMap<String, ListState>,
    keyed: &'s mut BTreeMap<String, KeyedState>,
}

/// The stamp of a field nobody has written: every write beats it.
const UNWRITTEN: Stamp = Stamp { version: 0, hlc: Hlc { millis: 0, counter: 0 }, replica: 0 };

impl LiveObject<'_> {
    /// Adds to an int or double field; concurrent or not, increments all
    /// count.
    fn increment(&mut self, name: &str, delta: &Value, writer: &Writer) -> Option<Dropped> {
        let not_a_number = Some(Dropped { field: Some(name.to_owned()), reason: Overruled::NotANumber });
        let Some(f) = self.fields.get_mut(name) else { return not_a_number };
        let Some(sum) = add(&f.value, delta) else { return not_a_number };
        // The field keeps the later clock of the two: adding to a value must
        // not make it easier for an older concurrent set to win.
        let (hlc, replica) = (f.stamp.hlc, f.stamp.replica).max((writer.hlc, writer.replica));
        *f = Field { value: sum, stamp: Stamp { version: writer.version, hlc, replica } };
        None
    }

    /// Writes one field if the writer beats its last write; otherwise
    /// says why not. A list value written to a list that has element
    /// identities replaces its elements (with ids derived from the write);
    /// a set or dictionary value replaces entries as [`KeyedState::assign`]
    /// says.
    fn set(&mut self, name: &str, value: &Value, writer: &Writer) -> Option<Dropped> {
        if let Some(state) = self.keyed(name, value) {
            if let Err(reason) = state.assign(value, writer) {
                return Some(Dropped { field: Some(name.to_owned()), reason });
            }
            let value = state.value();
            // The field's stamp stays the later of the two: a whole write
            // that lost some entries must not make an older plain write
            // (a null) win.
            let stamp = match self.fields.get(name) {
                Some(f) if !writer.beats(&f.stamp) => f.stamp,
                _ => writer.stamp(),
            };
            self.fields.insert(name.to_owned(), Field { value, stamp });
            return None;
        }
        if let (Some(items), true) = (value.as_list(), self.lists.contains_key(name)) {
            let stamp = writer.stamp();
            let derived = ListState::derived(items, &stamp).elements.into_iter().map(|e| (e.id, e.value));
            return self.assign(name, derived, writer);
        }
        match self.fields.get_mut(name) {
            Some(f) if !writer.beats(&f.stamp) => {
                Some(Dropped { field: Some(name.to_owned()), reason: Overruled::OlderThanServer })
            }
            Some(f) => {
                *f = Field { value: value.clone(), stamp: writer.stamp() };
                // A value that is no set or dictionary (an embedded object
                // set to null) ends the entries: later entry edits derive
                // them from what it holds now.
                self.keyed.remove(name);
                None
            }
            None => {
                self.fields.insert(name.to_owned(), Field { value: value.clone(), stamp: writer.stamp() });
                None
            }
        }
    }

    /// Writes a list whole, if the writer beats its last whole write.
    fn assign(
        &mut self,
        name: &str,
        elements: impl IntoIterator<Item = (super::ElementId, Value)>,
        writer: &Writer,
    ) -> Option<Dropped> {
        let dropped = |reason| Some(Dropped { field: Some(name.to_owned()), reason });
        let last = self.fields.get(name).map_or(UNWRITTEN, |f| f.stamp);
        let Some(list) = self.list(name) else { return dropped(Overruled::NotAList) };
        if !writer.beats(&last) {
            return dropped(Overruled::OlderThanServer);
        }
        list.assign(elements, writer);
        let value = Value::List(list.values());
        self.fields.insert(name.to_owned(), Field { value, stamp: writer.stamp() });
        None
    }

    /// Changes one element of a list, and the field's value with it.
    fn change(&mut self, name: &str, change: ElementChange<'_>, writer: &Writer) -> Vec<Dropped> {
        let Some(list) = self.list(name) else {
            return vec![Dropped { field: Some(name.to_owned()), reason: Overruled::NotAList }];
        };
        let edit = match list.change(change, writer) {
            Ok(edit) => edit,
            Err(reason) => return vec![Dropped { field: Some(name.to_owned()), reason }],
        };
        // The field keeps the stamp of the list's last whole write.
        let field = self.fields.entry(name.to_owned()).or_insert(Field { value: Value::Null, stamp: UNWRITTEN });
        let edited = match &mut field.value {
            Value::List(values) => edit.apply_to(values),
            _ => false,
        };
        if !edited {
            field.value = Value::List(self.lists[name].values());
        }
        debug_assert_eq!(field.value, Value::List(self.lists[name].values()), "{name}: the values kept in step");
        vec![]
    }

    /// Adds or removes one element of a set, or puts or removes one entry
    /// of a dictionary.
    fn change_entry(&mut self, name: &str, change: KeyedChange<'_>, writer: &Writer) -> Vec<Dropped> {
        let kind = match change {
            KeyedChange::SetElement { .. } => Value::Set(Vec::new()),
            KeyedChange::DictionaryEntry { .. } => Value::Dictionary(BTreeMap::new()),
        };
        let outcome = match self.keyed(name, &kind) {
            Some(state) => state.change(change, writer).map(|()| state.value()),
            None => Err(Overruled::NotAList),
        };
        match outcome {
            Ok(value) => {
                // The field keeps the stamp of the collection's last whole write.
                let field =
                    self.fields.entry(name.to_owned()).or_insert(Field { value: Value::Null, stamp: UNWRITTEN });
                field.value = value;
                vec![]
            }
            Err(reason) => vec![Dropped { field: Some(name.to_owned()), reason }],
        }
    }

    /// The entries of a set or dictionary property (of the kind of
    /// `like`), derived from its value the first time they are needed;
    /// `None` when `like` is neither, or the property holds something else.
    fn keyed(&mut self, name: &str, like: &Value) -> Option<&mut KeyedState> {
        let empty = match like {
            Value::Set(_) => Value::Set(Vec::new()),
            Value::Dictionary(_) => Value::Dictionary(BTreeMap::new()),
            _ => return None,
        };
        if !self.keyed.contains_key(name) {
            let state = match self.fields.get(name) {
                None => KeyedState::derived(&empty, &UNWRITTEN)?,
                Some(f) => KeyedState::derived(&f.value, &f.stamp)?,
            };
            // An operation that does not fit leaves no entries behind.
            if !state.holds_kind_of(like) {
                return None;
            }
            self.keyed.insert(name.to_owned(), state);
        }
        self.keyed.get_mut(name).filter(|state| state.holds_kind_of(like))
    }

    /// The element identities of a list property, derived from its value
    /// the first time they are needed; `None` when it holds no list.
    fn list(&mut self, name: &str) -> Option<&mut ListState> {
        if !self.lists.contains_key(name) {
            let state = derived_list(self.fields.get(name))?;
            self.lists.insert(name.to_owned(), state);
        }
        self.lists.get_mut(name)
    }
}

/// The element identities of a list property that has none stored yet:
/// derived from its field (empty when it was never written); `None` when
/// the field holds something else.
fn derived_list(field: Option<&Field>) -> Option<ListState> {
    match field {
        None => Some(ListState::default()),
        Some(Field { value: Value::List(items), stamp }) => Some(ListState::derived(items, stamp)),
        Some(_) => None,
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

impl Serialize for ObjectState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        wire::StateRef::from(self).serialize(serializer)
    }
}

/// How an [`ObjectState`] is encoded. Postcard numbers enum variants in
/// order: `Live` and `Deleted` are the encodings from before lists had
/// element identities, `LiveWithLists` came with them,
/// `LiveWithCollections` with sets and dictionaries and
/// `LiveWithElementFields` with field edits of embedded objects in lists,
/// each after the others, so old bytes decode as they always did.
mod wire {
    use super::{Field, KeyedState, ListState, ObjectState};
    use crate::merge::ElementId;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    type Deletion = Option<(u64, u64)>;
    /// By list property, the fields of its embedded elements (`ListState::element_fields`).
    type ElementFields = BTreeMap<String, BTreeMap<ElementId, KeyedState>>;

    #[derive(Deserialize)]
    #[serde(rename = "ObjectState")]
    pub(super) enum StateWire {
        Live {
            fields: BTreeMap<String, Field>,
            deleted_at: Deletion,
        },
        Deleted {
            version: u64,
            replica: u64,
        },
        LiveWithLists {
            fields: BTreeMap<String, Field>,
            deleted_at: Deletion,
            lists: BTreeMap<String, ListState>,
        },
        LiveWithCollections {
            fields: BTreeMap<String, Field>,
            deleted_at: Deletion,
            lists: BTreeMap<String, ListState>,
            keyed: BTreeMap<String, KeyedState>,
        },
        LiveWithElementFields {
            fields: BTreeMap<String, Field>,
            deleted_at: Deletion,
            lists: BTreeMap<String, ListState>,
            keyed: BTreeMap<String, KeyedState>,
            element_fields: ElementFields,
        },
    }

    #[derive(Serialize)]
    #[serde(rename = "ObjectState")]
    pub(super) enum StateRef<'a> {
        Live {
            fields: &'a BTreeMap<String, Field>,
            deleted_at: &'a Deletion,
        },
        Deleted {
            version: u64,
            replica: u64,
        },
        LiveWithLists {
            fields: &'a BTreeMap<String, Field>,
            deleted_at: &'a Deletion,
            lists: &'a BTreeMap<String, ListState>,
        },
        LiveWithCollections {
            fields: &'a BTreeMap<String, Field>,
            deleted_at: &'a Deletion,
            lists: &'a BTreeMap<String, ListState>,
            keyed: &'a BTreeMap<String, KeyedState>,
        },
        LiveWithElementFields {
            fields: &'a BTreeMap<String, Field>,
            deleted_at: &'a Deletion,
            lists: &'a BTreeMap<String, ListState>,
            keyed: &'a BTreeMap<String, KeyedState>,
            element_fields: BTreeMap<&'a str, &'a BTreeMap<ElementId, KeyedState>>,
        },
    }

    impl From<StateWire> for ObjectState {
        fn from(wire: StateWire) -> ObjectState {
            match wire {
                StateWire::Live { fields, deleted_at } => {
                    ObjectState::Live { fields, lists: BTreeMap::new(), keyed: BTreeMap::new(), deleted_at }
                }
                StateWire::Deleted { version, replica } => ObjectState::Deleted { version, replica },
                StateWire::LiveWithLists { fields, deleted_at, lists } => {
                    ObjectState::Live { fields, lists, keyed: BTreeMap::new(), deleted_at }
                }
                StateWire::LiveWithCollections { fields, deleted_at, lists, keyed } => {
                    ObjectState::Live { fields, lists, keyed, deleted_at }
                }
                StateWire::LiveWithElementFields { fields, deleted_at, mut lists, keyed, element_fields } => {
                    for (name, by_element) in element_fields {
                        if let Some(list) = lists.get_mut(&name) {
                            list.element_fields = by_element;
                        }
                    }
                    ObjectState::Live { fields, lists, keyed, deleted_at }
                }
            }
        }
    }

    fn has_fields(list: &ListState) -> bool {
        !list.element_fields.is_empty()
    }

    impl<'a> From<&'a ObjectState> for StateRef<'a> {
        fn from(state: &'a ObjectState) -> StateRef<'a> {
            match state {
                ObjectState::Live { fields, lists, keyed, deleted_at } if lists.is_empty() && keyed.is_empty() => {
                    StateRef::Live { fields, deleted_at }
                }
                ObjectState::Live { fields, lists, keyed, deleted_at } if lists.values().any(has_fields) => {
                    let element_fields = lists
                        .iter()
                        .filter(|(_, l)| has_fields(l))
                        .map(|(n, l)| (n.as_str(), &l.element_fields))
                        .collect();
                    StateRef::LiveWithElementFields { fields, deleted_at, lists, keyed, element_fields }
                }
                ObjectState::Live { fields, lists, keyed, deleted_at } if keyed.is_empty() => {
                    StateRef::LiveWithLists { fields, deleted_at, lists }
                }
                ObjectState::Live { fields, lists, keyed, deleted_at } => {
                    StateRef::LiveWithCollections { fields, deleted_at, lists, keyed }
                }
                ObjectState::Deleted { version, replica } => StateRef::Deleted { version: *version, replica: *replica },
            }
        }
    }
}
