//! Sets and dictionaries: collections whose entries are named by what they
//! are (a set's element by its value, a dictionary's value by its key), so
//! that each entry merges like a field (`docs/conflicts.md`, "Sets and
//! dictionaries").
//!
//! A removed entry stays as a tombstone with the stamp of its removal: a
//! concurrent add or put with an earlier clock must lose to it on every
//! replica, whichever order they arrive in.

use super::rule::{Overruled, Stamp, Writer};
use crate::value::{canonical_set, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One entry of a set or dictionary, or the tombstone of a removed one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyedEntry {
    /// The value (a set's element, a dictionary's value); `None` once removed.
    pub value: Option<Value>,
    /// The last add, put or removal of this entry.
    pub stamp: Stamp,
}

/// The entries of one set or dictionary property, tombstones included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum KeyedState {
    /// A set's elements, by their record encoding.
    Set(BTreeMap<Vec<u8>, KeyedEntry>),
    /// A dictionary's values, by key.
    Dictionary(BTreeMap<String, KeyedEntry>),
}

/// One change to one entry: a set element added (`present`) or removed,
/// a dictionary value put (`Some`) or removed (`None`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum KeyedChange<'a> {
    SetElement { element: &'a Value, present: bool },
    DictionaryEntry { key: &'a str, value: Option<&'a Value> },
}

impl KeyedState {
    /// The entries of a set or dictionary written whole as `value` by the
    /// write stamped `stamp`; `None` when `value` is neither.
    pub(crate) fn derived(value: &Value, stamp: &Stamp) -> Option<KeyedState> {
        let entry = |v: &Value| KeyedEntry { value: Some(v.clone()), stamp: *stamp };
        Some(match value {
            Value::Set(items) => {
                KeyedState::Set(items.iter().map(|v| (crate::record::encode_one(v), entry(v))).collect())
            }
            Value::Dictionary(d) => KeyedState::Dictionary(d.iter().map(|(k, v)| (k.clone(), entry(v))).collect()),
            _ => return None,
        })
    }

    /// Whether `value` is a collection of this kind (a set for a set).
    pub(crate) fn holds_kind_of(&self, value: &Value) -> bool {
        matches!((self, value), (KeyedState::Set(_), Value::Set(_)) | (KeyedState::Dictionary(_), Value::Dictionary(_)))
    }

    /// The collection's value: a [`Value::Set`] or a [`Value::Dictionary`].
    pub fn value(&self) -> Value {
        match self {
            KeyedState::Set(entries) => Value::Set(canonical_set(entries.values().filter_map(|e| e.value.clone()))),
            KeyedState::Dictionary(entries) => {
                Value::Dictionary(entries.iter().filter_map(|(k, e)| Some((k.clone(), e.value.clone()?))).collect())
            }
        }
    }

    /// Every stamp of its entries.
    pub(crate) fn stamps(&self) -> Box<dyn Iterator<Item = Stamp> + '_> {
        match self {
            KeyedState::Set(entries) => Box::new(entries.values().map(|e| e.stamp)),
            KeyedState::Dictionary(entries) => Box::new(entries.values().map(|e| e.stamp)),
        }
    }

    /// Applies one change if the writer beats the entry's last write
    /// (causality first, then the clock, as for fields).
    pub(crate) fn change(&mut self, change: KeyedChange<'_>, writer: &Writer) -> Result<(), Overruled> {
        match (self, change) {
            (KeyedState::Set(entries), KeyedChange::SetElement { element, present }) => {
                let value = present.then(|| element.clone());
                write(entries, crate::record::encode_one(element), value, writer)
            }
            (KeyedState::Dictionary(entries), KeyedChange::DictionaryEntry { key, value }) => {
                write(entries, key.to_owned(), value.cloned(), writer)
            }
            _ => Err(Overruled::NotAList),
        }
    }

    /// Writes the collection whole, as `value` (of the same kind): every
    /// entry of `value` is written as by [`KeyedState::change`]; every
    /// other entry the writer had seen is removed. Entries others wrote
    /// concurrently stay, and a given entry that loses to a later write of
    /// its key is left out, as a field is; the rest of the write applies.
    pub(crate) fn assign(&mut self, value: &Value, writer: &Writer) -> Result<(), Overruled> {
        match (self, value) {
            (KeyedState::Set(entries), Value::Set(items)) => {
                let given = items.iter().map(|v| (crate::record::encode_one(v), v.clone())).collect();
                replace(entries, given, writer);
                Ok(())
            }
            (KeyedState::Dictionary(entries), Value::Dictionary(given)) => {
                replace(entries, given.clone(), writer);
                Ok(())
            }
            _ => Err(Overruled::NotAList),
        }
    }
}

/// Writes one entry if `writer` beats its last write.
fn write<K: Ord>(
    entries: &mut BTreeMap<K, KeyedEntry>,
    key: K,
    value: Option<Value>,
    writer: &Writer,
) -> Result<(), Overruled> {
    if entries.get(&key).is_some_and(|e| !writer.beats(&e.stamp)) {
        return Err(Overruled::OlderThanServer);
    }
    entries.insert(key, KeyedEntry { value, stamp: writer.stamp() });
    Ok(())
}

/// Replaces the entries with `given`, keeping what the writer had not seen.
fn replace<K: Ord + Clone>(entries: &mut BTreeMap<K, KeyedEntry>, given: BTreeMap<K, Value>, writer: &Writer) {
    let unseen = |e: &KeyedEntry| !writer.has_seen(e.stamp.version, e.stamp.replica);
    let removed: Vec<K> = entries
        .iter()
        .filter(|(k, e)| e.value.is_some() && !given.contains_key(*k) && !unseen(e))
        .map(|(k, _)| k.clone())
        .collect();
    for key in removed {
        entries.insert(key, KeyedEntry { value: None, stamp: writer.stamp() });
    }
    for (key, value) in given {
        // A later write of this key wins over the whole write.
        let _ = write(entries, key, Some(value), writer);
    }
}
