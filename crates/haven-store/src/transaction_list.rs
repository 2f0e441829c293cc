//! The list operations of a write transaction: insert, set, move and
//! remove one element, by index as the app sees the list.
//!
//! In a file that syncs, each goes to the change log as an element
//! instruction naming elements by identity (`ListInsert` after element
//! X, `ListRemove` of element Y), so that concurrent edits of one list
//! merge element by element (`docs/conflicts.md`). The identities of a
//! list's elements are those of its optimistic state: its confirmed
//! state with the pending changes and this transaction's replayed on
//! top, computed once per list and transaction and then kept in step.

use crate::error::{Error, Result};
use crate::layout::{CONFIRMED, PENDING};
use crate::replica::{change_log, confirmed, settle};
use crate::transaction::WriteTransaction;
use haven_core::merge::{apply_in_place, Changeset, ElementId, Hlc, HlcClock, Instruction, ObjectState, Writer};
use haven_core::{key, record, ObjectSchema, Property, PropertyType, Value, ValueRef};
use std::collections::HashMap;

/// What a transaction knows of list element identities.
#[derive(Default)]
pub(crate) struct ElementIds {
    /// The file's origin and the clock of this transaction, which the ids
    /// it mints carry (its changeset carries the clock too).
    minting: Option<(u64, Hlc)>,
    next_seq: u32,
    /// The pending changesets, the server version they follow and the
    /// file's ident, read once.
    pending: Option<(Vec<Changeset>, (u64, u64))>,
    /// `type \0 key` and property → the ids of the list's elements, in order.
    lists: HashMap<(Vec<u8>, String), Vec<ElementId>>,
}

impl ElementIds {
    /// The clock this transaction's changeset gets, if it minted ids.
    pub(crate) fn hlc(&self) -> Option<Hlc> {
        self.minting.map(|(_, hlc)| hlc)
    }
}

/// One edit of a list, by index.
enum Edit {
    Insert(usize, Value),
    Set(usize, Value),
    /// One field of the embedded object at the index.
    Put(usize, String, Value),
    Move(usize, usize),
    Remove(usize),
}

impl<'t> WriteTransaction<'t> {
    /// Appends `value` to list property `property`.
    ///
    /// ```
    /// # use haven_store::{Config, Database, Schema, UpdateMode, Value};
    /// # use serde_json::json;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let schema = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","tags":"string[]"}}]"#)?;
    /// # let db = Database::open(Config::new(dir.path().join("a.haven")).schema(schema))?;
    /// db.write(|tx| {
    ///     tx.create("Dog", json!({"_id": 1, "tags": ["good"]}), UpdateMode::Never)?;
    ///     tx.list_push("Dog", 1, "tags", "calm")?;
    ///     tx.list_insert("Dog", 1, "tags", 0, "first")?;      // index 0..=len
    ///     tx.list_set("Dog", 1, "tags", 1, "better")?;
    ///     tx.list_move("Dog", 1, "tags", 0, 2)?;              // the element ends at index 2
    ///     assert_eq!(tx.list_remove("Dog", 1, "tags", 0)?, Value::from("better"));
    ///     assert_eq!(tx.get("Dog", 1)?.unwrap()["tags"], json!(["calm", "first"]));
    ///     tx.list_clear("Dog", 1, "tags")?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), haven_store::Error>(())
    /// ```
    pub fn list_push(
        &mut self,
        object_type: &str,
        primary_key: impl Into<Value>,
        property: &str,
        value: impl Into<Value>,
    ) -> Result<()> {
        let (ty, pk, idx) = self.list_of(object_type, primary_key.into(), property)?;
        let value = value.into();
        self.edit_with(ty, pk, idx, None, |len| Edit::Insert(len, value)).map(drop)
    }

    /// Inserts `value` at `index` (0 to the list's length) of list
    /// property `property`.
    pub fn list_insert(
        &mut self,
        object_type: &str,
        primary_key: impl Into<Value>,
        property: &str,
        index: usize,
        value: impl Into<Value>,
    ) -> Result<()> {
        let (ty, pk, idx) = self.list_of(object_type, primary_key.into(), property)?;
        self.edit(ty, pk, idx, Edit::Insert(index, value.into())).map(drop)
    }

    /// Changes the element at `index`: concurrent changes of the same
    /// element merge like a property's. An embedded object in a list is
    /// written field by field (every field of its type, those not given
    /// with their defaults), so that it merges field by field with other
    /// devices' edits of the same element, as [`set_path`](Self::set_path)
    /// edits do.
    pub fn list_set(
        &mut self,
        object_type: &str,
        primary_key: impl Into<Value>,
        property: &str,
        index: usize,
        value: impl Into<Value>,
    ) -> Result<()> {
        let (ty, pk, idx) = self.list_of(object_type, primary_key.into(), property)?;
        let prop = &ty.properties()[idx];
        let PropertyType::Embedded(target) = &prop.ty else {
            return self.edit(ty, pk, idx, Edit::Set(index, value.into())).map(drop);
        };
        let Value::Dictionary(mut given) = self.schema().coerce_list_element(ty, prop, index, value.into())? else {
            return Err(list_error(ty, prop, format!("at index {index}: an embedded object is written as an object")));
        };
        let embedded = self.schema().object_type(target).expect("a schema names only types it has");
        for field in embedded.properties() {
            let value = given.remove(&field.name).unwrap_or_else(|| field.fallback_value());
            self.edit(ty, pk.clone(), idx, Edit::Put(index, field.name.clone(), value))?;
        }
        Ok(())
    }

    /// Moves the element at `from` so that it ends at index `to`.
    pub fn list_move(
        &mut self,
        object_type: &str,
        primary_key: impl Into<Value>,
        property: &str,
        from: usize,
        to: usize,
    ) -> Result<()> {
        let (ty, pk, idx) = self.list_of(object_type, primary_key.into(), property)?;
        self.edit(ty, pk, idx, Edit::Move(from, to)).map(drop)
    }

    /// Removes the element at `index` and returns it.
    pub fn list_remove(
        &mut self,
        object_type: &str,
        primary_key: impl Into<Value>,
        property: &str,
        index: usize,
    ) -> Result<Value> {
        let (ty, pk, idx) = self.list_of(object_type, primary_key.into(), property)?;
        self.edit(ty, pk, idx, Edit::Remove(index))
    }

    /// Removes every element: elements other devices add concurrently stay
    /// (see `docs/conflicts.md`).
    pub fn list_clear(&mut self, object_type: &str, primary_key: impl Into<Value>, property: &str) -> Result<()> {
        self.set(object_type, primary_key, property, Value::List(Vec::new()))
    }

    /// Sets field `field` of the embedded object at `index` of list
    /// property `property` (what [`set_path`](Self::set_path) does for
    /// `"homes.1.city"`).
    pub(crate) fn set_element_field(
        &mut self,
        object_type: &str,
        primary_key: Value,
        property: &str,
        index: usize,
        field: &str,
        value: Value,
    ) -> Result<()> {
        let (ty, pk, idx) = self.list_of(object_type, primary_key, property)?;
        self.edit(ty, pk, idx, Edit::Put(index, field.to_owned(), value)).map(drop)
    }

    /// The type, primary key and position of a list property.
    fn list_of(
        &self,
        object_type: &str,
        primary_key: Value,
        property: &str,
    ) -> Result<(&'t ObjectSchema, Value, usize)> {
        let (ty, pk, idx) = self.field_of(object_type, primary_key, property)?;
        let prop = &ty.properties()[idx];
        if !prop.is_list() {
            return Err(list_error(ty, prop, format!("the property is '{}', not a list", prop.type_string())));
        }
        Ok((ty, pk, idx))
    }

    /// Checks and makes one edit; returns the element removed (or null).
    fn edit(&mut self, ty: &'t ObjectSchema, pk: Value, idx: usize, edit: Edit) -> Result<Value> {
        self.edit_with(ty, pk, idx, None, |_| edit)
    }

    /// [`edit`](Self::edit) of the edit `edit` makes of the list's
    /// length, giving an inserted element the id `given` (a recovered
    /// insertion keeps its id) instead of a new one.
    fn edit_with(
        &mut self,
        ty: &'t ObjectSchema,
        pk: Value,
        idx: usize,
        given: Option<ElementId>,
        edit: impl FnOnce(usize) -> Edit,
    ) -> Result<Value> {
        let prop = &ty.properties()[idx];
        let key = key::to_key(pk.as_ref().expect("scalar"));
        let record = self.list_record(ty, &pk, &key, idx)?;
        let list = match record::field(&record, idx) {
            Ok(Some(ValueRef::List(list))) => list,
            Ok(_) => return Err(Error::Storage(format!("{}.{}: the record holds no list", ty.name(), prop.name))),
            Err(e) => return Err(Error::Storage(format!("{}: {e}", ty.name()))),
        };
        let element = |at, value| self.schema().coerce_list_element(ty, prop, at, value);
        let edit = match edit(list.len()) {
            Edit::Insert(at, v) => Edit::Insert(at, element(at, v)?),
            Edit::Set(at, v) => Edit::Set(at, element(at, v)?),
            Edit::Put(at, field, v) => {
                let v = self.schema().coerce_embedded_field(ty, prop, Some(at), &field, v)?;
                Edit::Put(at, field, v)
            }
            other => other,
        };
        check_index(ty, prop, &edit, list.len())?;
        let instruction = match self.logs() {
            true => Some(self.element_instruction(ty, &pk, prop, &edit, list.len(), given)?),
            false => None,
        };
        let nth = |at: usize| list.iter().nth(at).map_or(Value::Null, |v| v.to_owned());
        let damaged = |e: record::CorruptRecord| Error::Storage(format!("{}: {e}", ty.name()));
        let mut spliced = Vec::with_capacity(record.len() + 16);
        let removed = match edit {
            Edit::Insert(at, v) => {
                record::splice_list(&record, idx, at, 0, &[v], &mut spliced).map_err(damaged)?;
                Value::Null
            }
            Edit::Set(at, v) => {
                record::splice_list(&record, idx, at, 1, &[v], &mut spliced).map_err(damaged)?;
                nth(at)
            }
            Edit::Remove(at) => {
                record::splice_list(&record, idx, at, 1, &[], &mut spliced).map_err(damaged)?;
                nth(at)
            }
            Edit::Put(at, field, v) => {
                let Value::Dictionary(mut fields) = nth(at) else {
                    return Err(list_error(ty, prop, format!("at index {at}: the element is not an embedded object")));
                };
                fields.insert(field, v);
                record::splice_list(&record, idx, at, 1, &[Value::Dictionary(fields)], &mut spliced)
                    .map_err(damaged)?;
                Value::Null
            }
            Edit::Move(from, to) => {
                let mut taken = Vec::with_capacity(record.len());
                record::splice_list(&record, idx, from, 1, &[], &mut taken).map_err(damaged)?;
                record::splice_list(&taken, idx, to, 0, &[nth(from)], &mut spliced).map_err(damaged)?;
                Value::Null
            }
        };
        self.write_record(ty, &pk, &key, &mut spliced, [idx].into())?;
        if let Some(instruction) = instruction {
            self.log(|| instruction);
        }
        Ok(removed)
    }

    /// The object's record (its values only), with list property `idx` in
    /// it: a record from before the property was added gets it, empty.
    fn list_record(&mut self, ty: &'t ObjectSchema, pk: &Value, key: &[u8], idx: usize) -> Result<Vec<u8>> {
        let Some(mut bytes) = self.record(ty, key)? else {
            return Err(Error::ObjectNotFound { object_type: ty.name().to_owned(), primary_key: pk.to_string() });
        };
        let values_end =
            bytes.len() - record::after(&bytes).map_err(|e| Error::Storage(format!("{}: {e}", ty.name())))?.len();
        match record::field(&bytes, idx) {
            Ok(Some(_)) => {
                bytes.truncate(values_end);
                Ok(bytes)
            }
            _ => {
                let mut full = Vec::new();
                record::encode(&self.require(ty, pk)?, &mut full);
                Ok(full)
            }
        }
    }

    /// The element instruction for `edit`, with the ids of the elements
    /// it names; keeps this transaction's ids of the list in step.
    fn element_instruction(
        &mut self,
        ty: &'t ObjectSchema,
        pk: &Value,
        prop: &Property,
        edit: &Edit,
        len: usize,
        given: Option<ElementId>,
    ) -> Result<Instruction> {
        let (object_type, field) = (ty.name().to_owned(), prop.name.clone());
        let new_id = match (edit, given) {
            (Edit::Insert(..), None) => Some(self.mint()?),
            (_, given) => given,
        };
        let ids = self.list_ids(ty, pk, prop, len)?;
        let pk = pk.clone();
        Ok(match edit {
            Edit::Insert(at, value) => {
                let after = at.checked_sub(1).map(|i| ids[i]);
                let id = new_id.expect("minted above");
                ids.insert(*at, id);
                Instruction::ListInsert { object_type, pk, field, after, id, value: value.clone() }
            }
            Edit::Set(at, value) => Instruction::ListSet { object_type, pk, field, id: ids[*at], value: value.clone() },
            Edit::Put(at, key, value) => Instruction::ListElementPut {
                object_type,
                pk,
                field,
                id: ids[*at],
                key: key.clone(),
                value: value.clone(),
            },
            Edit::Move(from, to) => {
                let id = ids.remove(*from);
                let after = to.checked_sub(1).map(|i| ids[i]);
                ids.insert(*to, id);
                Instruction::ListMove { object_type, pk, field, id, after }
            }
            Edit::Remove(at) => Instruction::ListRemove { object_type, pk, field, id: ids.remove(*at) },
        })
    }

    /// Makes a list instruction recovered from another file a local write
    /// of this one, keeping the ids it names and gives.
    #[cfg(feature = "sync")]
    pub(crate) fn apply_element(&mut self, instruction: &Instruction) -> Result<()> {
        let (object_type, pk) = instruction.object();
        let field = instruction.field().unwrap_or_default();
        let (ty, pk, idx) = self.list_of(object_type, pk.clone(), field)?;
        let prop = &ty.properties()[idx];
        if let Instruction::ListAssign { elements, .. } = instruction {
            let items = elements.iter().map(|(_, v)| v.clone()).collect();
            let mut values = self.require(ty, &pk)?;
            values[idx] = Value::List(items);
            self.write_values(ty, &pk, values, [idx].into())?;
            let key = (object_id(ty, &pk)?, prop.name.clone());
            self.element_ids().lists.insert(key, elements.iter().map(|(id, _)| *id).collect());
            self.log(|| instruction.clone());
            return Ok(());
        }
        let len = self.require(ty, &pk)?[idx].as_list().map_or(0, <[Value]>::len);
        let ids = self.list_ids(ty, &pk, prop, len)?;
        let at = |id: &ElementId| {
            ids.iter().position(|x| x == id).ok_or_else(|| {
                list_error(ty, prop, format!("the list has no element {id:?} (removed since it was recovered)"))
            })
        };
        let after = |anchor: &Option<ElementId>| anchor.as_ref().map_or(Ok(0), |a| at(a).map(|i| i + 1));
        let (edit, given) = match instruction {
            Instruction::ListInsert { after: anchor, id, value, .. } => {
                (Edit::Insert(after(anchor)?, value.clone()), Some(*id))
            }
            Instruction::ListSet { id, value, .. } => (Edit::Set(at(id)?, value.clone()), None),
            Instruction::ListElementPut { id, key, value, .. } => {
                (Edit::Put(at(id)?, key.clone(), value.clone()), None)
            }
            Instruction::ListMove { id, after: anchor, .. } => {
                let (from, to) = (at(id)?, after(anchor)?);
                // `to` counts the moving element while it is still in place.
                (Edit::Move(from, if to > from { to - 1 } else { to }), None)
            }
            Instruction::ListRemove { id, .. } => (Edit::Remove(at(id)?), None),
            other => return Err(list_error(ty, prop, format!("not a list instruction: {other:?}"))),
        };
        self.edit_with(ty, pk, idx, given, |_| edit).map(drop)
    }

    /// The instruction that writes list `prop` whole with `items`, with
    /// newly minted ids (which become this transaction's ids of the list).
    pub(crate) fn assign_instruction(
        &mut self,
        ty: &ObjectSchema,
        pk: &Value,
        prop: &Property,
        items: &[Value],
    ) -> Result<Instruction> {
        let elements: Vec<(ElementId, Value)> =
            items.iter().map(|v| Ok((self.mint()?, v.clone()))).collect::<Result<_>>()?;
        let key = (object_id(ty, pk)?, prop.name.clone());
        self.element_ids().lists.insert(key, elements.iter().map(|(id, _)| *id).collect());
        Ok(Instruction::ListAssign {
            object_type: ty.name().to_owned(),
            pk: pk.clone(),
            field: prop.name.clone(),
            elements,
        })
    }

    /// Forgets the ids of a deleted object's lists.
    pub(crate) fn forget_lists(&mut self, ty: &ObjectSchema, pk: &Value) -> Result<()> {
        let id = object_id(ty, pk)?;
        self.element_ids().lists.retain(|(object, _), _| *object != id);
        Ok(())
    }

    fn element_ids(&mut self) -> &mut ElementIds {
        &mut self.element_ids
    }

    /// A new element id.
    fn mint(&mut self) -> Result<ElementId> {
        let txn = self.raw();
        let ids = self.element_ids();
        let (origin, hlc) = match ids.minting {
            Some(minting) => minting,
            None => {
                let hlc = HlcClock::starting_after(change_log::clock(txn)?).now(change_log::wall_millis());
                *ids.minting.insert((change_log::element_origin(txn)?, hlc))
            }
        };
        let seq = ids.next_seq;
        ids.next_seq += 1;
        Ok(ElementId { origin, hlc, seq })
    }

    /// The ids of the elements of list `prop`, which has `len` elements.
    fn list_ids(
        &mut self,
        ty: &'t ObjectSchema,
        pk: &Value,
        prop: &Property,
        len: usize,
    ) -> Result<&mut Vec<ElementId>> {
        let key = (object_id(ty, pk)?, prop.name.clone());
        if !self.element_ids().lists.contains_key(&key) {
            let ids = self.optimistic_ids(ty, pk, &prop.name)?;
            self.element_ids().lists.insert(key.clone(), ids);
        }
        let ids = self.element_ids().lists.get_mut(&key).expect("inserted above");
        if ids.len() != len {
            return Err(Error::Storage(format!(
                "{}.{}: the list has {len} elements but its sync state {}",
                ty.name(),
                prop.name,
                ids.len()
            )));
        }
        Ok(ids)
    }

    /// The element ids of a list in the object's optimistic state.
    fn optimistic_ids(&mut self, ty: &'t ObjectSchema, pk: &Value, field: &str) -> Result<Vec<ElementId>> {
        let pk_key = key::to_key(pk.as_ref().expect("scalar"));
        let mut state = self.confirmed_state(ty, &pk_key)?;
        let txn = self.raw();
        if self.element_ids().pending.is_none() {
            let pending = settle::pending_changesets(&txn.open_table(PENDING)?)?;
            let position = change_log::base_and_ident(txn)?;
            self.element_ids().pending = Some((pending, position));
        }
        let hlc = self.element_ids().hlc().unwrap_or_default();
        let (pending, (after, ident)) = self.element_ids.pending.as_ref().expect("read above");
        let about = |i: &&Instruction| i.object() == (ty.name(), pk);
        // As a download replays them (`settle::Replay`).
        let writer =
            |n: usize, base_version, hlc| Writer { version: after + 1 + n as u64, base_version, hlc, replica: *ident };
        for (n, cs) in pending.iter().enumerate() {
            for i in cs.instructions.iter().filter(about) {
                apply_in_place(&mut state, i, &writer(n, cs.base_version, cs.hlc));
            }
        }
        let this = writer(pending.len(), *after, hlc);
        for i in self.logged().iter().filter(about) {
            apply_in_place(&mut state, i, &this);
        }
        Ok(state.as_ref().and_then(|s| s.list(field)).map(|l| l.live().map(|e| e.id).collect()).unwrap_or_default())
    }

    /// The object's confirmed state: its overlay entry, else its record's.
    fn confirmed_state(&mut self, ty: &'t ObjectSchema, pk_key: &[u8]) -> Result<Option<ObjectState>> {
        if let Some(state) = self.with_overlay(|overlay| confirmed::in_overlay(overlay, ty.name(), pk_key))? {
            return Ok(Some(state));
        }
        match self.record(ty, pk_key)? {
            Some(bytes) => confirmed::state_in_record(ty, &bytes),
            None => Ok(None),
        }
    }

    /// Reads the overlay, through the table this transaction holds open
    /// if it does.
    fn with_overlay<T>(&mut self, read: impl FnOnce(&settle::Overlay<'_>) -> Result<T>) -> Result<T> {
        match self.overlay() {
            Some(overlay) => read(overlay),
            None => read(&self.raw().open_table(CONFIRMED)?),
        }
    }
}

fn object_id(ty: &ObjectSchema, pk: &Value) -> Result<Vec<u8>> {
    Ok(settle::object_id(ty.name(), &settle::key_of(pk)?))
}

/// Checks an edit's indices against a list of `len` elements.
fn check_index(ty: &ObjectSchema, prop: &Property, edit: &Edit, len: usize) -> Result<()> {
    let (index, limit) = match edit {
        Edit::Insert(at, _) => (*at, len + 1),
        Edit::Set(at, _) | Edit::Put(at, ..) | Edit::Remove(at) => (*at, len),
        Edit::Move(from, _) if *from >= len => (*from, len),
        Edit::Move(_, to) => (*to, len),
    };
    match index < limit {
        true => Ok(()),
        false => Err(list_error(ty, prop, format!("index {index} is out of range: the list has {len} element(s)"))),
    }
}

fn list_error(ty: &ObjectSchema, prop: &Property, message: String) -> Error {
    Error::InvalidOperation { object_type: ty.name().to_owned(), property: prop.name.clone(), message }
}
