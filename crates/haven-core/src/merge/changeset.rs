//! Changesets: what one write transaction did, as instructions that the
//! merge rule can apply on any replica.

use super::hlc::Hlc;
use super::list::ElementId;
use crate::value::Value;
use serde::{Deserialize, Serialize};

/// One change to one object.
///
/// A list property is written whole by `ListAssign` (or, in changesets
/// from before element identity, by a `Create` or `Set` of a list value),
/// and element by element by the other `List*` instructions, which name
/// elements by [`ElementId`]; `ListElementPut` sets one field of an
/// embedded object in a list. A set or dictionary is written whole by a
/// `Set` of its value, and entry by entry by the `Set*` and `Dictionary*`
/// instructions. New variants go after the last one: the encoding numbers
/// them in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Instruction {
    /// Creates the object, or merges these fields into it if it exists
    /// (same primary key, same object).
    Create {
        /// The object type.
        object_type: String,
        /// The primary key.
        pk: Value,
        /// Every property of the new object.
        fields: Vec<(String, Value)>,
    },
    /// Writes one property.
    Set {
        /// The object type.
        object_type: String,
        /// The primary key.
        pk: Value,
        /// The property.
        field: String,
        /// Its new value.
        value: Value,
    },
    /// Adds to an int or double property.
    Increment {
        /// The object type.
        object_type: String,
        /// The primary key.
        pk: Value,
        /// The property.
        field: String,
        /// What to add (an int, or a double for a double property).
        delta: Value,
    },
    /// Deletes the object.
    Delete {
        /// The object type.
        object_type: String,
        /// The primary key.
        pk: Value,
    },
    /// Writes a list property whole: the elements with their ids.
    ListAssign {
        /// The object type.
        object_type: String,
        /// The primary key.
        pk: Value,
        /// The list property.
        field: String,
        /// The new elements, in order.
        elements: Vec<(ElementId, Value)>,
    },
    /// Inserts an element after another (at the start for `None`).
    ListInsert {
        /// The object type.
        object_type: String,
        /// The primary key.
        pk: Value,
        /// The list property.
        field: String,
        /// The element it goes after.
        after: Option<ElementId>,
        /// The new element's id.
        id: ElementId,
        /// Its value.
        value: Value,
    },
    /// Changes one element's value.
    ListSet {
        /// The object type.
        object_type: String,
        /// The primary key.
        pk: Value,
        /// The list property.
        field: String,
        /// The element.
        id: ElementId,
        /// Its new value.
        value: Value,
    },
    /// Moves one element after another (to the start for `None`).
    ListMove {
        /// The object type.
        object_type: String,
        /// The primary key.
        pk: Value,
        /// The list property.
        field: String,
        /// The element.
        id: ElementId,
        /// The element it goes after.
        after: Option<ElementId>,
    },
    /// Removes one element.
    ListRemove {
        /// The object type.
        object_type: String,
        /// The primary key.
        pk: Value,
        /// The list property.
        field: String,
        /// The element.
        id: ElementId,
    },
    /// Adds an element to a set.
    SetAdd {
        /// The object type.
        object_type: String,
        /// The primary key.
        pk: Value,
        /// The set property.
        field: String,
        /// The element.
        value: Value,
    },
    /// Removes an element from a set.
    SetRemove {
        /// The object type.
        object_type: String,
        /// The primary key.
        pk: Value,
        /// The set property.
        field: String,
        /// The element.
        value: Value,
    },
    /// Puts a value under a key of a dictionary.
    DictionaryPut {
        /// The object type.
        object_type: String,
        /// The primary key.
        pk: Value,
        /// The dictionary property.
        field: String,
        /// The key.
        key: String,
        /// The value.
        value: Value,
    },
    /// Removes a key from a dictionary.
    DictionaryRemove {
        /// The object type.
        object_type: String,
        /// The primary key.
        pk: Value,
        /// The dictionary property.
        field: String,
        /// The key.
        key: String,
    },
    /// Sets one field of the embedded object that is one element of a
    /// list of embedded objects.
    ListElementPut {
        /// The object type.
        object_type: String,
        /// The primary key.
        pk: Value,
        /// The list property.
        field: String,
        /// The element.
        id: ElementId,
        /// The embedded object's field.
        key: String,
        /// Its new value.
        value: Value,
    },
}

impl Instruction {
    /// The object the instruction is about: type and primary key.
    pub fn object(&self) -> (&str, &Value) {
        match self {
            Instruction::Create { object_type, pk, .. }
            | Instruction::Set { object_type, pk, .. }
            | Instruction::Increment { object_type, pk, .. }
            | Instruction::Delete { object_type, pk }
            | Instruction::ListAssign { object_type, pk, .. }
            | Instruction::ListInsert { object_type, pk, .. }
            | Instruction::ListSet { object_type, pk, .. }
            | Instruction::ListMove { object_type, pk, .. }
            | Instruction::ListRemove { object_type, pk, .. }
            | Instruction::SetAdd { object_type, pk, .. }
            | Instruction::SetRemove { object_type, pk, .. }
            | Instruction::DictionaryPut { object_type, pk, .. }
            | Instruction::DictionaryRemove { object_type, pk, .. }
            | Instruction::ListElementPut { object_type, pk, .. } => (object_type, pk),
        }
    }

    /// The property an instruction about one property writes.
    pub fn field(&self) -> Option<&str> {
        match self {
            Instruction::Create { .. } | Instruction::Delete { .. } => None,
            Instruction::Set { field, .. }
            | Instruction::Increment { field, .. }
            | Instruction::ListAssign { field, .. }
            | Instruction::ListInsert { field, .. }
            | Instruction::ListSet { field, .. }
            | Instruction::ListMove { field, .. }
            | Instruction::ListRemove { field, .. }
            | Instruction::SetAdd { field, .. }
            | Instruction::SetRemove { field, .. }
            | Instruction::DictionaryPut { field, .. }
            | Instruction::DictionaryRemove { field, .. }
            | Instruction::ListElementPut { field, .. } => Some(field),
        }
    }
}

/// The instructions of one local write transaction, with what the writer
/// knew when it made them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Changeset {
    /// The writing replica (its file ident).
    pub replica: u64,
    /// This changeset's number on that replica: uploads are idempotent by
    /// `(replica, client_version)`.
    pub client_version: u64,
    /// The last server version the writer had integrated.
    pub base_version: u64,
    /// When it was written.
    pub hlc: Hlc,
    /// What it did, in order.
    pub instructions: Vec<Instruction>,
}
