//! Lists whose elements keep their identity, so that concurrent edits of
//! one list merge element by element instead of one device's list
//! replacing another's (`docs/conflicts.md`, "Lists").
//!
//! An element is named by an [`ElementId`] that the device which added it
//! minted. A removed element stays in the sequence as a tombstone, so an
//! insertion that names it as its anchor still has a place. Instructions
//! are applied in the server's order, so an insertion goes right after its
//! anchor: two devices' runs of insertions after the same anchor stay
//! whole, the run integrated later first.

use super::hlc::Hlc;
use super::keyed::{KeyedChange, KeyedState};
use super::rule::{Overruled, Stamp, Writer};
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The first sequence number of ids derived for a list written whole by
/// an instruction that carries no ids (changesets from before element
/// identity, and lists that no element operation has touched yet).
/// Minted ids count from 0 within a transaction and stay below it.
const DERIVED_SEQ: u32 = 1 << 31;

/// The identity of one list element: the origin of the file that added
/// it, the clock of the transaction that added it and its number in that
/// transaction.
///
/// The origin is a random number each database file draws once. It is not
/// the file's ident on the server: a device may write before it has one,
/// and gets a new one in a client reset, and an element must keep its
/// name through both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ElementId {
    /// The adding file's origin.
    pub origin: u64,
    /// The clock of the adding transaction.
    pub hlc: Hlc,
    /// The element's number within that transaction.
    pub seq: u32,
}

impl ElementId {
    fn derived(stamp: &Stamp, index: usize) -> ElementId {
        ElementId { origin: stamp.replica, hlc: stamp.hlc, seq: DERIVED_SEQ.saturating_add(index as u32) }
    }
}

/// One element of a list, or the tombstone of a removed one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListElement {
    /// Its identity.
    pub id: ElementId,
    /// Its value (null once removed).
    pub value: Value,
    /// The last write of its value: the insertion, or a set.
    pub stamp: Stamp,
    /// The write that added it.
    pub added: Stamp,
    /// The last move of it, if it was moved.
    pub moved: Option<Stamp>,
    /// Whether it came from writing the list whole (a newer whole write
    /// replaces it, seen or not).
    pub assigned: bool,
    /// Whether it was removed.
    pub removed: bool,
}

impl ListElement {
    fn new(id: ElementId, value: Value, writer: &Writer, assigned: bool) -> ListElement {
        ListElement { id, value, stamp: writer.stamp(), added: writer.stamp(), moved: None, assigned, removed: false }
    }
}

/// The elements of one list property, tombstones included, in list order.
///
/// Encoded as its elements alone: the fields of embedded objects travel
/// beside the lists, in a variant of the object state of their own, so
/// that a list without them encodes as before they existed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListState {
    /// Every element ever added, in order; removed ones are tombstones.
    pub elements: Vec<ListElement>,
    /// The fields of the live elements that are embedded objects and had
    /// a field written (`ListElementPut`) since their last whole write,
    /// with their stamps, by element: such an element merges field by
    /// field, as an embedded object outside a list does.
    #[serde(skip)]
    pub element_fields: BTreeMap<ElementId, KeyedState>,
}

/// What an element change did to a list's values (its live elements), by
/// index among them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ValuesEdit {
    /// Nothing (a move in place, a removal of a removed element).
    None,
    Insert(usize, Value),
    Replace(usize, Value),
    /// From one index to another, counted once the element is in its new place.
    Move(usize, usize),
    Remove(usize),
}

impl ValuesEdit {
    /// Makes the edit to `values`; `false` (and no edit) when they cannot
    /// be the values it was made on.
    pub(crate) fn apply_to(self, values: &mut Vec<Value>) -> bool {
        let len = values.len();
        match self {
            ValuesEdit::None => true,
            ValuesEdit::Insert(at, value) if at <= len => {
                values.insert(at, value);
                true
            }
            ValuesEdit::Replace(at, value) if at < len => {
                values[at] = value;
                true
            }
            ValuesEdit::Move(from, to) if from < len && to < len => {
                let moving = values.remove(from);
                values.insert(to, moving);
                true
            }
            ValuesEdit::Remove(at) if at < len => {
                values.remove(at);
                true
            }
            _ => false,
        }
    }
}

/// One change to one element of a list.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ElementChange<'a> {
    Insert { after: Option<ElementId>, id: ElementId, value: &'a Value },
    Set { id: ElementId, value: &'a Value },
    Put { id: ElementId, key: &'a str, value: &'a Value },
    Move { id: ElementId, after: Option<ElementId> },
    Remove { id: ElementId },
}

impl ListState {
    /// The identities of a list that was written whole with `items` by
    /// the write stamped `stamp`: the same on every replica.
    pub(crate) fn derived(items: &[Value], stamp: &Stamp) -> ListState {
        let elements = items
            .iter()
            .enumerate()
            .map(|(i, value)| ListElement {
                id: ElementId::derived(stamp, i),
                value: value.clone(),
                stamp: *stamp,
                added: *stamp,
                moved: None,
                assigned: true,
                removed: false,
            })
            .collect();
        ListState { elements, element_fields: BTreeMap::new() }
    }

    /// The list's values, in order.
    pub fn values(&self) -> Vec<Value> {
        self.live().map(|e| e.value.clone()).collect()
    }

    /// The elements not removed, in order.
    pub fn live(&self) -> impl Iterator<Item = &ListElement> {
        self.elements.iter().filter(|e| !e.removed)
    }

    /// Writes the list whole, for a writer who beat its last whole write:
    /// the elements the writer had seen, and those of the whole write it
    /// beat, are removed; elements added concurrently by others stay,
    /// after the new ones.
    pub(crate) fn assign(&mut self, items: impl IntoIterator<Item = (ElementId, Value)>, writer: &Writer) {
        for e in self.elements.iter_mut().filter(|e| !e.removed) {
            if e.assigned || writer.has_seen(e.added.version, e.added.replica) {
                tombstone(e, &mut self.element_fields);
            }
        }
        let new: Vec<ListElement> = items
            .into_iter()
            .map(|(id, value)| ListElement::new(id, value, writer, true))
            .filter(|e| self.position(e.id).is_none())
            .collect();
        self.elements.splice(0..0, new);
    }

    /// Applies one element change; `Err` says why it had no effect. `Ok`
    /// says what it did to the list's values, so that a replica keeps them
    /// in step without rebuilding them (a long list takes many changes).
    pub(crate) fn change(&mut self, change: ElementChange<'_>, writer: &Writer) -> Result<ValuesEdit, Overruled> {
        match change {
            ElementChange::Insert { after, id, value } => {
                let element = ListElement::new(id, value.clone(), writer, false);
                if self.position(element.id).is_some() {
                    return Err(Overruled::ElementExists);
                }
                let at = self.after(after)?;
                self.elements.insert(at, element);
                Ok(ValuesEdit::Insert(self.live_before(at), value.clone()))
            }
            ElementChange::Put { id, key, value } => self.put_field(id, key, value, writer),
            ElementChange::Set { id, value } => {
                // A whole write must beat the element's fields written since
                // one by one, as well as its last whole write.
                let fields = self.element_fields.get(&id);
                let beats_fields = fields.is_none_or(|f| f.stamps().all(|stamp| writer.beats(&stamp)));
                let e = self.live_element(id)?;
                if !writer.beats(&e.stamp) || !beats_fields {
                    return Err(Overruled::OlderThanServer);
                }
                e.value = value.clone();
                e.stamp = writer.stamp();
                // An embedded object written whole: its fields' stamps go
                // with the value they were of.
                self.element_fields.remove(&id);
                Ok(ValuesEdit::Replace(self.live_index(id), value.clone()))
            }
            ElementChange::Move { id, after } => {
                let e = self.live_element(id)?;
                if e.moved.is_some_and(|last| !writer.beats(&last)) {
                    return Err(Overruled::OlderThanServer);
                }
                if after == Some(id) {
                    return Ok(ValuesEdit::None);
                }
                if after.is_some_and(|a| self.position(a).is_none()) {
                    return Err(Overruled::ElementNotFound);
                }
                let from = self.position(id).expect("found above");
                let live_from = self.live_before(from);
                let mut moving = self.elements.remove(from);
                moving.moved = Some(writer.stamp());
                let at = self.after(after).expect("checked above");
                self.elements.insert(at, moving);
                Ok(ValuesEdit::Move(live_from, self.live_before(at)))
            }
            ElementChange::Remove { id } => {
                let at = self.position(id).ok_or(Overruled::ElementNotFound)?;
                if self.elements[at].removed {
                    return Ok(ValuesEdit::None);
                }
                tombstone(&mut self.elements[at], &mut self.element_fields);
                Ok(ValuesEdit::Remove(self.live_before(at)))
            }
        }
    }

    /// How many live elements come before raw position `at`.
    fn live_before(&self, at: usize) -> usize {
        self.elements[..at].iter().filter(|e| !e.removed).count()
    }

    /// The index among the values of live element `id`.
    fn live_index(&self, id: ElementId) -> usize {
        self.live_before(self.position(id).expect("a live element"))
    }

    /// Sets field `key` of the embedded object that is element `id`, by
    /// the rule of a field of an embedded object outside a list: its
    /// fields' stamps are derived from the element's last whole write the
    /// first time one is set.
    fn put_field(&mut self, id: ElementId, key: &str, value: &Value, writer: &Writer) -> Result<ValuesEdit, Overruled> {
        let at = self.position(id).ok_or(Overruled::ElementNotFound)?;
        let e = &mut self.elements[at];
        if e.removed {
            return Err(Overruled::ElementRemoved);
        }
        let known = self.element_fields.remove(&id);
        let derived = known.is_none();
        let mut fields = match known {
            Some(known) => known,
            None => KeyedState::derived(&e.value, &e.stamp)
                .filter(|f| matches!(f, KeyedState::Dictionary(_)))
                .ok_or(Overruled::NotAList)?,
        };
        if let Err(reason) = fields.change(KeyedChange::DictionaryEntry { key, value: Some(value) }, writer) {
            // A lost edit leaves the element as it was: no stamps derived.
            if !derived {
                self.element_fields.insert(id, fields);
            }
            return Err(reason);
        }
        e.value = fields.value();
        let value = e.value.clone();
        self.element_fields.insert(id, fields);
        Ok(ValuesEdit::Replace(self.live_before(at), value))
    }

    fn position(&self, id: ElementId) -> Option<usize> {
        self.elements.iter().position(|e| e.id == id)
    }

    /// Where an element inserted after `anchor` goes (the start for none).
    fn after(&self, anchor: Option<ElementId>) -> Result<usize, Overruled> {
        match anchor {
            None => Ok(0),
            Some(a) => self.position(a).map(|at| at + 1).ok_or(Overruled::ElementNotFound),
        }
    }

    fn live_element(&mut self, id: ElementId) -> Result<&mut ListElement, Overruled> {
        let at = self.position(id).ok_or(Overruled::ElementNotFound)?;
        let e = &mut self.elements[at];
        match e.removed {
            true => Err(Overruled::ElementRemoved),
            false => Ok(e),
        }
    }
}

/// Removes an element, and the fields of it if it was an embedded object.
fn tombstone(e: &mut ListElement, element_fields: &mut BTreeMap<ElementId, KeyedState>) {
    e.removed = true;
    e.value = Value::Null;
    element_fields.remove(&e.id);
}
