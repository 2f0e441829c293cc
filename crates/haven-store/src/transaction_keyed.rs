//! The set and dictionary operations of a write transaction: add and
//! remove one element of a set, put and remove one entry of a dictionary.
//!
//! In a file that syncs, each goes to the change log as its own
//! instruction (`SetAdd`, `DictionaryPut`, …), so that concurrent edits of
//! one set or dictionary merge entry by entry (`docs/conflicts.md`).

use crate::error::{Error, Result};
use crate::transaction::WriteTransaction;
use haven_core::merge::Instruction;
use haven_core::{Collection, ObjectSchema, Value};
use std::collections::BTreeMap;

/// One edit of a set or dictionary, checked against the schema.
enum EntryEdit {
    SetElement { element: Value, present: bool },
    DictionaryEntry { key: String, value: Option<Value> },
}

impl<'t> WriteTransaction<'t> {
    /// Adds `value` to set property `property`; `Ok(true)` if it was not
    /// there.
    ///
    /// ```
    /// # use haven_store::{Config, Database, Schema, UpdateMode, Value};
    /// # use serde_json::json;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let schema = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","colors":"string<>","scores":"int{}"}}]"#)?;
    /// # let db = Database::open(Config::new(dir.path().join("a.haven")).schema(schema))?;
    /// db.write(|tx| {
    ///     tx.create("Dog", json!({"_id": 1, "colors": ["brown"], "scores": {"agility": 5}}), UpdateMode::Never)?;
    ///     assert!(tx.set_add("Dog", 1, "colors", "white")?);
    ///     assert!(!tx.set_add("Dog", 1, "colors", "brown")?); // already there
    ///     assert!(tx.set_remove("Dog", 1, "colors", "brown")?);
    ///     tx.dict_put("Dog", 1, "scores", "agility", 7)?;
    ///     tx.dict_put("Dog", 1, "scores", "speed", 3)?;
    ///     assert!(tx.dict_remove("Dog", 1, "scores", "speed")?);
    ///     let dog = tx.get("Dog", 1)?.unwrap();
    ///     assert_eq!((&dog["colors"], &dog["scores"]), (&json!(["white"]), &json!({"agility": 7})));
    ///     Ok(())
    /// })?;
    /// # Ok::<(), haven_store::Error>(())
    /// ```
    pub fn set_add(
        &mut self,
        object_type: &str,
        primary_key: impl Into<Value>,
        property: &str,
        value: impl Into<Value>,
    ) -> Result<bool> {
        let edit = |v| EntryEdit::SetElement { element: v, present: true };
        self.edit_entry(object_type, primary_key.into(), property, Collection::Set, value.into(), edit)
    }

    /// Removes `value` from set property `property`; `Ok(true)` if it was
    /// there.
    pub fn set_remove(
        &mut self,
        object_type: &str,
        primary_key: impl Into<Value>,
        property: &str,
        value: impl Into<Value>,
    ) -> Result<bool> {
        let edit = |v| EntryEdit::SetElement { element: v, present: false };
        self.edit_entry(object_type, primary_key.into(), property, Collection::Set, value.into(), edit)
    }

    /// Puts `value` under `key` of dictionary property `property`.
    pub fn dict_put(
        &mut self,
        object_type: &str,
        primary_key: impl Into<Value>,
        property: &str,
        key: &str,
        value: impl Into<Value>,
    ) -> Result<()> {
        let edit = |v| EntryEdit::DictionaryEntry { key: key.to_owned(), value: Some(v) };
        self.edit_entry(object_type, primary_key.into(), property, Collection::Dictionary, value.into(), edit).map(drop)
    }

    /// Removes `key` from dictionary property `property`; `Ok(true)` if
    /// it was there.
    pub fn dict_remove(
        &mut self,
        object_type: &str,
        primary_key: impl Into<Value>,
        property: &str,
        key: &str,
    ) -> Result<bool> {
        let edit = |_| EntryEdit::DictionaryEntry { key: key.to_owned(), value: None };
        self.edit_entry(object_type, primary_key.into(), property, Collection::Dictionary, Value::Null, edit)
    }

    /// Makes a set or dictionary instruction recovered from another file
    /// a local write of this one.
    #[cfg(feature = "sync")]
    pub(crate) fn apply_entry(&mut self, instruction: &Instruction) -> Result<bool> {
        match instruction {
            Instruction::SetAdd { object_type, pk, field, value } => {
                self.set_add(object_type, pk.clone(), field, value.clone())
            }
            Instruction::SetRemove { object_type, pk, field, value } => {
                self.set_remove(object_type, pk.clone(), field, value.clone())
            }
            Instruction::DictionaryPut { object_type, pk, field, key, value }
                if self.is_embedded(object_type, field) =>
            {
                self.set_path(object_type, pk.clone(), &format!("{field}.{key}"), value.clone()).map(|()| true)
            }
            Instruction::DictionaryPut { object_type, pk, field, key, value } => {
                self.dict_put(object_type, pk.clone(), field, key, value.clone()).map(|()| true)
            }
            Instruction::DictionaryRemove { object_type, pk, field, key } => {
                self.dict_remove(object_type, pk.clone(), field, key)
            }
            other => Err(Error::Storage(format!("not a set or dictionary instruction: {other:?}"))),
        }
    }

    /// Whether `object_type.property` holds an embedded object (whose
    /// fields are edited as a dictionary's entries).
    #[cfg(feature = "sync")]
    fn is_embedded(&self, object_type: &str, property: &str) -> bool {
        let prop = self.schema().object_type(object_type).and_then(|t| t.property_named(property));
        prop.is_some_and(|p| matches!(p.ty, haven_core::PropertyType::Embedded(_)))
    }

    /// Checks `value` against the collection's type, writes the edit
    /// `edit` makes of it and logs it; `Ok(true)` if the collection
    /// changed.
    fn edit_entry(
        &mut self,
        object_type: &str,
        primary_key: Value,
        property: &str,
        collection: Collection,
        value: Value,
        edit: impl FnOnce(Value) -> EntryEdit,
    ) -> Result<bool> {
        let (ty, pk, idx) = self.field_of(object_type, primary_key, property)?;
        let prop = &ty.properties()[idx];
        if prop.collection != collection {
            let what = if collection == Collection::Set { "a set" } else { "a dictionary" };
            return Err(entry_error(ty, &prop.name, format!("the property is '{}', not {what}", prop.type_string())));
        }
        let edit = match edit(value) {
            EntryEdit::SetElement { element, present } => {
                EntryEdit::SetElement { element: self.schema().coerce_set_element(ty, prop, element)?, present }
            }
            EntryEdit::DictionaryEntry { key, value: Some(v) } => {
                let v = self.schema().coerce_dictionary_value(ty, prop, &key, v)?;
                EntryEdit::DictionaryEntry { key, value: Some(v) }
            }
            removal => removal,
        };
        self.write_entry(ty, pk, idx, edit)
    }

    /// Sets one field of an embedded object: `path` is the embedded
    /// property and the field, `"address.city"`, or for a list of
    /// embedded objects the property, the element's index and the field,
    /// `"homes.1.city"`. The object must hold an embedded object there
    /// (set it whole first). Concurrent edits of other fields of the same
    /// embedded object merge field by field; in a list, the edit follows
    /// its element wherever concurrent edits move it.
    ///
    /// ```
    /// # use haven_store::{Config, Database, Schema, UpdateMode};
    /// # use serde_json::json;
    /// # let dir = tempfile::tempdir().unwrap();
    /// let schema = Schema::from_json(r#"[
    ///   {"name":"Person","primaryKey":"_id","properties":{"_id":"string","address":"Address","homes":"Address[]"}},
    ///   {"name":"Address","embedded":true,"properties":{"city":"string","street":"string?"}}]"#)?;
    /// # let db = Database::open(Config::new(dir.path().join("a.haven")).schema(schema))?;
    /// db.write(|tx| {
    ///     let ann = json!({"_id": "ann", "address": {"city": "Oslo"}, "homes": [{"city": "Oslo"}, {"city": "Rome"}]});
    ///     tx.create("Person", ann, UpdateMode::Never)?;
    ///     tx.set_path("Person", "ann", "address.city", "Bergen")?;
    ///     tx.set_path("Person", "ann", "homes.1.street", "Via Appia")
    /// })?;
    /// let ann = db.object_for_primary_key("Person", "ann")?.unwrap().to_json();
    /// assert_eq!(ann["address"], json!({"city": "Bergen", "street": null}));
    /// assert_eq!(ann["homes"][1], json!({"city": "Rome", "street": "Via Appia"}));
    /// # Ok::<(), haven_store::Error>(())
    /// ```
    pub fn set_path(
        &mut self,
        object_type: &str,
        primary_key: impl Into<Value>,
        path: &str,
        value: impl Into<Value>,
    ) -> Result<()> {
        let (property, field) = path.split_once('.').unwrap_or((path, ""));
        let (ty, pk, idx) = self.field_of(object_type, primary_key.into(), property)?;
        let prop = &ty.properties()[idx];
        if prop.is_list() {
            let Some((index, field)) = field.split_once('.').and_then(|(i, f)| Some((element_index(i)?, f))) else {
                let message =
                    format!("\"{path}\" names no element: give its index and the field (\"{property}.0.{{field}}\")");
                return Err(entry_error(ty, property, message));
            };
            return self.set_element_field(object_type, pk, property, index, field, value.into());
        }
        let value = self.schema().coerce_embedded_field(ty, prop, None, field, value.into())?;
        self.write_entry(ty, pk, idx, EntryEdit::DictionaryEntry { key: field.to_owned(), value: Some(value) })?;
        Ok(())
    }

    /// Writes a checked entry edit and logs it; `Ok(true)` if the value
    /// changed.
    fn write_entry(&mut self, ty: &'t ObjectSchema, pk: Value, idx: usize, edit: EntryEdit) -> Result<bool> {
        let prop = &ty.properties()[idx];
        let mut values = self.require(ty, &pk)?;
        let changed = match (&mut values[idx], &edit) {
            (Value::Set(items), EntryEdit::SetElement { element, present }) => set_element(items, element, *present),
            (Value::Dictionary(entries), EntryEdit::DictionaryEntry { key, value }) => {
                dictionary_entry(entries, key, value.clone())
            }
            (Value::Null, _) => {
                let message = "it holds no embedded object: set it whole first".to_owned();
                return Err(entry_error(ty, &prop.name, message));
            }
            (other, _) => {
                let message = format!("the stored value is {}, not {}", other.kind(), prop.type_string());
                return Err(Error::Storage(format!("{}.{}: {message}", ty.name(), prop.name)));
            }
        };
        if !changed {
            return Ok(false);
        }
        self.write_values(ty, &pk, values, [idx].into())?;
        let (object_type, field) = (ty.name().to_owned(), prop.name.clone());
        self.log(|| match edit {
            EntryEdit::SetElement { element: value, present: true } => {
                Instruction::SetAdd { object_type, pk, field, value }
            }
            EntryEdit::SetElement { element: value, present: false } => {
                Instruction::SetRemove { object_type, pk, field, value }
            }
            EntryEdit::DictionaryEntry { key, value: Some(value) } => {
                Instruction::DictionaryPut { object_type, pk, field, key, value }
            }
            EntryEdit::DictionaryEntry { key, value: None } => {
                Instruction::DictionaryRemove { object_type, pk, field, key }
            }
        });
        Ok(true)
    }
}

/// Adds or removes `element`, keeping the set in its canonical order;
/// `true` if the set changed.
fn set_element(items: &mut Vec<Value>, element: &Value, present: bool) -> bool {
    let had = items.contains(element);
    if had == present {
        return false;
    }
    let rest = std::mem::take(items).into_iter().filter(|v| v != element);
    *items = haven_core::canonical_set(rest.chain(present.then(|| element.clone())));
    true
}

/// Puts or removes one entry; `true` if the dictionary changed.
fn dictionary_entry(entries: &mut BTreeMap<String, Value>, key: &str, value: Option<Value>) -> bool {
    match value {
        Some(v) => entries.insert(key.to_owned(), v.clone()).as_ref() != Some(&v),
        None => entries.remove(key).is_some(),
    }
}

/// An element index as a path writes it: decimal digits only.
fn element_index(text: &str) -> Option<usize> {
    text.bytes().all(|b| b.is_ascii_digit()).then(|| text.parse().ok()).flatten()
}

fn entry_error(ty: &ObjectSchema, property: &str, message: String) -> Error {
    Error::InvalidOperation { object_type: ty.name().to_owned(), property: property.to_owned(), message }
}
