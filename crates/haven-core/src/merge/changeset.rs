//! Changesets: what one write transaction did, as instructions that the
//! merge rule can apply on any replica.

use super::hlc::Hlc;
use crate::value::Value;
use serde::{Deserialize, Serialize};

/// One change to one object. Lists are written whole (as a `Set`).
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
}

impl Instruction {
    /// The object the instruction is about: type and primary key.
    pub fn object(&self) -> (&str, &Value) {
        match self {
            Instruction::Create { object_type, pk, .. }
            | Instruction::Set { object_type, pk, .. }
            | Instruction::Increment { object_type, pk, .. }
            | Instruction::Delete { object_type, pk } => (object_type, pk),
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
