//! `WriteTransaction`: the write operations. Each checks everything before
//! it writes, so a failed operation leaves the transaction as it was.

use crate::changes::{Change, CommitChanges};
use crate::config::UpdateMode;
use crate::error::{Error, Result};
use crate::layout;
use crate::replica::confirmed;
use crate::snapshot::run_query;
use crate::transaction_list::ElementIds;
use haven_core::merge::{Hlc, Instruction};
use haven_core::{key, record, value_from_json, ObjectSchema, PropertyType, Schema, Value, ValueError};
use redb::{ReadableTable, Table};
use serde::Serialize;
use std::collections::BTreeSet;

type WritableObjects<'t> = Table<'t, &'static [u8], &'static [u8]>;
type IndexTable<'t> = Table<'t, &'static [u8], ()>;
type Overlay<'t> = Table<'t, (&'static str, &'static [u8]), &'static [u8]>;

/// An object ready to write: checked values by property position, and the
/// linked objects given inline.
struct Prepared<'t> {
    ty: &'t ObjectSchema,
    fields: Vec<(usize, Value)>,
    inline: Vec<Prepared<'t>>,
}

impl Prepared<'_> {
    fn primary_key(&self) -> Result<Value> {
        let pk = self.ty.primary_key_index();
        self.fields.iter().find(|(i, _)| *i == pk).map(|(_, v)| v.clone()).ok_or_else(|| Error::MissingProperty {
            object_type: self.ty.name().to_owned(),
            property: self.ty.primary_key_name().to_owned(),
        })
    }
}

/// The handle passed to [`Database::write`](crate::Database::write).
///
/// ```
/// # use haven_store::{Config, Database, Schema, UpdateMode};
/// # use serde_json::json;
/// # let dir = tempfile::tempdir().unwrap();
/// # let schema = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string","age":"int?"}}]"#).unwrap();
/// # let db = Database::open(Config::new(dir.path().join("a.haven")).schema(schema)).unwrap();
/// db.write(|tx| {
///     tx.create("Dog", json!({"_id": 1, "name": "Rex"}), UpdateMode::Never)?;
///     tx.create("Dog", json!({"_id": 1, "age": 4}), UpdateMode::Modified)?; // upsert
///     tx.set("Dog", 1, "name", "Rexy")?;
///     tx.increment("Dog", 1, "age", 1)?;
///     assert_eq!(tx.get("Dog", 1)?.unwrap()["age"], 5);
///     assert!(tx.delete("Dog", 1)?);
///     Ok(())
/// })?;
/// # Ok::<(), haven_store::Error>(())
/// ```
pub struct WriteTransaction<'t> {
    txn: &'t redb::WriteTransaction,
    schema: &'t Schema,
    /// The tables of each type written so far, opened once per transaction
    /// (a list: apps have few types, and a lookup by name is on every write).
    tables: Vec<(&'t str, TypeTables<'t>)>,
    /// What changed, for listeners; `None` when nobody listens.
    changes: Option<CommitChanges>,
    /// The instructions for the change log; `None` when the file keeps none.
    log: Option<Vec<Instruction>>,
    /// For local writes in a file that syncs: the client version this
    /// transaction's changeset will get (its records carry it as their
    /// pending mark), and the overlay that takes the confirmed state of a
    /// record it changes.
    pending: Option<(u64, Option<Overlay<'t>>)>,
    /// The identities of list elements this transaction names.
    pub(crate) element_ids: ElementIds,
    /// Reused buffers for the record and index entry being written.
    buf: Vec<u8>,
    entry: Vec<u8>,
}

struct TypeTables<'t> {
    objects: WritableObjects<'t>,
    /// By property position; `Some` for indexed properties.
    indexes: Vec<Option<IndexTable<'t>>>,
}

impl<'t> WriteTransaction<'t> {
    /// A transaction writing with `schema`. `log`: the app's own writes
    /// in a file that syncs, which go to the change log as the changeset
    /// with client version `log`.
    pub(crate) fn new(
        txn: &'t redb::WriteTransaction,
        schema: &'t Schema,
        track_changes: bool,
        log: Option<u64>,
    ) -> Self {
        WriteTransaction {
            txn,
            schema,
            tables: Vec::new(),
            changes: track_changes.then(CommitChanges::default),
            log: log.map(|_| Vec::new()),
            pending: log.map(|client_version| (client_version, None)),
            element_ids: ElementIds::default(),
            buf: Vec::new(),
            entry: Vec::new(),
        }
    }

    /// Closes the tables and returns what the transaction changed (empty
    /// when changes were not tracked), its instructions for the change
    /// log (empty when the file keeps none) and the clock its changeset
    /// must carry (when list elements it added carry that clock).
    pub(crate) fn finish(self) -> (CommitChanges, Vec<Instruction>, Option<Hlc>) {
        (self.changes.unwrap_or_default(), self.log.unwrap_or_default(), self.element_ids.hlc())
    }

    fn record_change(&mut self, ty: &'t ObjectSchema, key: &[u8], pk: &Value, change: Change) {
        if let Some(c) = &mut self.changes {
            c.record(ty.name(), key, pk, change);
        }
    }

    /// The underlying redb transaction, for tables outside the object model.
    pub(crate) fn raw(&self) -> &'t redb::WriteTransaction {
        self.txn
    }

    /// The schema the transaction writes with.
    pub(crate) fn schema(&self) -> &'t Schema {
        self.schema
    }

    /// Adds an instruction to the change log, if the file keeps one.
    pub(crate) fn log(&mut self, instruction: impl FnOnce() -> Instruction) {
        if let Some(log) = &mut self.log {
            log.push(instruction());
        }
    }

    /// Whether this transaction's writes go to the change log.
    pub(crate) fn logs(&self) -> bool {
        self.log.is_some()
    }

    /// The instructions logged so far.
    pub(crate) fn logged(&self) -> &[Instruction] {
        self.log.as_deref().unwrap_or_default()
    }

    /// The overlay of confirmed states, if this transaction holds it open.
    pub(crate) fn overlay(&self) -> Option<&Overlay<'t>> {
        self.pending.as_ref().and_then(|(_, overlay)| overlay.as_ref())
    }

    /// Creates an object from a JSON object, or updates it per `mode` when
    /// its primary key exists. Properties not given keep their value (a new
    /// object gets null for optional properties and `[]` for lists). A link
    /// may be given as the target's primary key or as a nested object, which
    /// is created or updated with the same mode.
    pub fn create(&mut self, object_type: &str, values: serde_json::Value, mode: UpdateMode) -> Result<()> {
        let ty = self.object_type(object_type)?;
        let object = self.prepare(ty, values)?;
        if !object.inline.is_empty() {
            // Linked objects written inline are written first: check the
            // whole tree before anything is written, so that a failure
            // leaves the transaction as it was.
            self.check(&object, mode)?;
        }
        self.apply(object, mode)
    }

    /// Converts a JSON object (and the linked objects written inline in
    /// it) to checked values, writing nothing.
    fn prepare(&mut self, ty: &'t ObjectSchema, values: serde_json::Value) -> Result<Prepared<'t>> {
        let serde_json::Value::Object(map) = values else {
            return Err(invalid(ty, ty.primary_key_name(), format!("expected a JSON object, got {values}")));
        };
        let mut fields = Vec::with_capacity(map.len());
        let mut inline = Vec::new();
        for (name, json) in map {
            let idx = property_index(ty, &name)?;
            let prop = &ty.properties()[idx];
            match (&prop.ty, json) {
                (PropertyType::Link(target), serde_json::Value::Object(obj)) if !prop.is_collection() => {
                    let target = self.object_type(target)?;
                    let linked = self.prepare(target, serde_json::Value::Object(obj))?;
                    fields.push((idx, linked.primary_key()?));
                    inline.push(linked);
                }
                (_, json) => {
                    let value = value_from_json(&json).ok_or_else(|| {
                        invalid(ty, &name, format!("expected {}, got a JSON object", prop.type_string()))
                    })?;
                    fields.push((idx, self.schema.coerce(ty, prop, value)?));
                }
            }
        }
        Ok(Prepared { ty, fields, inline })
    }

    /// Checks that writing `object` (and its inline links) with `mode`
    /// cannot fail for a reason of the data.
    fn check(&mut self, object: &Prepared<'t>, mode: UpdateMode) -> Result<()> {
        for linked in &object.inline {
            self.check(linked, mode)?;
        }
        let pk = object.primary_key()?;
        let key = key::to_key(pk.as_ref().expect("scalar"));
        let exists = self.tables(object.ty)?.objects.get(key.as_slice())?.is_some();
        match (exists, mode) {
            (true, UpdateMode::Never) => Err(duplicate(object.ty, &pk)),
            (true, _) => Ok(()),
            (false, _) => missing_required(object.ty, &object.fields),
        }
    }

    fn apply(&mut self, object: Prepared<'t>, mode: UpdateMode) -> Result<()> {
        for linked in object.inline {
            self.apply(linked, mode)?;
        }
        self.upsert(object.ty, object.fields, mode)
    }

    /// [`create`](Self::create) from any `Serialize` value (a struct whose
    /// fields are the properties).
    pub fn create_from<T: Serialize>(&mut self, object_type: &str, value: &T, mode: UpdateMode) -> Result<()> {
        let json = serde_json::to_value(value).map_err(|e| Error::Conversion {
            object_type: object_type.to_owned(),
            message: format!("cannot serialize the value: {e}"),
        })?;
        self.create(object_type, json, mode)
    }

    /// Creates or updates an object from property values (no JSON on the
    /// way: the fastest way to write many objects).
    pub fn create_values<'a>(
        &mut self,
        object_type: &str,
        values: impl IntoIterator<Item = (&'a str, Value)>,
        mode: UpdateMode,
    ) -> Result<()> {
        let ty = self.object_type(object_type)?;
        let mut fields: Vec<(usize, Value)> = Vec::with_capacity(ty.properties().len());
        for (name, v) in values {
            let idx = property_index(ty, name)?;
            if fields.iter().any(|(i, _)| *i == idx) {
                return Err(invalid(ty, name, "the property is given twice".into()));
            }
            fields.push((idx, self.schema.coerce(ty, &ty.properties()[idx], v)?));
        }
        self.upsert(ty, fields, mode)
    }

    /// Sets one property of an existing object.
    pub fn set(
        &mut self,
        object_type: &str,
        primary_key: impl Into<Value>,
        property: &str,
        value: impl Into<Value>,
    ) -> Result<()> {
        let (ty, pk, idx) = self.field_of(object_type, primary_key.into(), property)?;
        let value = self.schema.coerce(ty, &ty.properties()[idx], value.into())?;
        self.require(ty, &pk)?;
        self.upsert(ty, vec![(ty.primary_key_index(), pk), (idx, value)], UpdateMode::All)
    }

    /// Adds `delta` to an int or double property of an existing object.
    pub fn increment(
        &mut self,
        object_type: &str,
        primary_key: impl Into<Value>,
        property: &str,
        delta: impl Into<Value>,
    ) -> Result<()> {
        let (ty, pk, idx) = self.field_of(object_type, primary_key.into(), property)?;
        let prop = &ty.properties()[idx];
        let fail = |message: String| Error::InvalidOperation {
            object_type: ty.name().to_owned(),
            property: property.to_owned(),
            message,
        };
        let values = self.require(ty, &pk)?;
        let delta = delta.into();
        let sum = match (&prop.ty, prop.is_collection(), &values[idx], delta.clone()) {
            (PropertyType::Int, false, Value::Int(a), Value::Int(d)) => {
                Value::Int(a.checked_add(d).ok_or_else(|| fail(format!("{a} + {d} overflows an int")))?)
            }
            (PropertyType::Double, false, Value::Double(a), Value::Int(d)) => Value::Double(a + d as f64),
            (PropertyType::Double, false, Value::Double(a), Value::Double(d)) => Value::Double(a + d),
            (_, _, Value::Null, _) => return Err(fail("the value is null; set it before incrementing".into())),
            (PropertyType::Int | PropertyType::Double, false, _, d) => {
                return Err(fail(format!("cannot add {} to {}", d.kind(), prop.type_string())))
            }
            _ => {
                return Err(fail(format!(
                    "only int and double properties can be incremented, not {}",
                    prop.type_string()
                )))
            }
        };
        // The log records the increment itself, not the sum it wrote:
        // concurrent increments from several devices must all count.
        let log = self.log.take();
        let written = self.upsert(ty, vec![(ty.primary_key_index(), pk.clone()), (idx, sum)], UpdateMode::All);
        self.log = log;
        written?;
        self.log(|| Instruction::Increment { object_type: ty.name().to_owned(), pk, field: prop.name.clone(), delta });
        Ok(())
    }

    /// Deletes an object; `Ok(false)` if there was none.
    pub fn delete(&mut self, object_type: &str, primary_key: impl Into<Value>) -> Result<bool> {
        let ty = self.object_type(object_type)?;
        let pk = coerce_primary_key(self.schema, ty, primary_key.into())?;
        let key = key::to_key(pk.as_ref().expect("scalar"));
        let Some(values) = self.load(ty, &key)? else {
            return Ok(false);
        };
        self.remove(ty, &key, &pk, &values)?;
        Ok(true)
    }

    /// Deletes every object of a type; returns how many there were.
    pub fn delete_all(&mut self, object_type: &str) -> Result<usize> {
        let ty = self.object_type(object_type)?;
        let rows: Vec<(Vec<u8>, Vec<u8>)> = {
            let table = &self.tables(ty)?.objects;
            table.iter()?.map(|r| r.map(|(k, v)| (k.value().to_vec(), v.value().to_vec()))).collect::<Result<_, _>>()?
        };
        for (key, rec) in &rows {
            let values = decode(ty, rec)?;
            let pk = values[ty.primary_key_index()].clone();
            self.remove(ty, key, &pk, &values)?;
        }
        Ok(rows.len())
    }

    /// An object as JSON, as this transaction sees it (its own writes included).
    pub fn get(&mut self, object_type: &str, primary_key: impl Into<Value>) -> Result<Option<serde_json::Value>> {
        let ty = self.object_type(object_type)?;
        let pk = coerce_primary_key(self.schema, ty, primary_key.into())?;
        let Some(values) = self.load(ty, &key::to_key(pk.as_ref().expect("scalar")))? else {
            return Ok(None);
        };
        Ok(Some(json_object(ty, &values)))
    }

    /// The objects of `object_type` that match `query_text` (with `args`;
    /// a `SORT` or `LIMIT` in it applies), as JSON, as this transaction
    /// sees them: its own creates, changes and deletes included, which
    /// [`Results`](crate::Results) read inside the write do not see.
    ///
    /// ```
    /// # use haven_store::{Config, Database, Schema, UpdateMode};
    /// # use serde_json::json;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let schema = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","age":{"type":"int","indexed":true}}}]"#)?;
    /// # let db = Database::open(Config::new(dir.path().join("a.haven")).schema(schema))?;
    /// db.write(|tx| {
    ///     tx.create("Dog", json!({"_id": 1, "age": 3}), UpdateMode::Never)?;
    ///     tx.create("Dog", json!({"_id": 2, "age": 9}), UpdateMode::Never)?;
    ///     let old = tx.query("Dog", "age > $0 SORT(age DESC)", &[2.into()])?;
    ///     assert_eq!(old, vec![json!({"_id": 2, "age": 9}), json!({"_id": 1, "age": 3})]);
    ///     Ok(())
    /// })?;
    /// # Ok::<(), haven_store::Error>(())
    /// ```
    pub fn query(&mut self, object_type: &str, query_text: &str, args: &[Value]) -> Result<Vec<serde_json::Value>> {
        let ty = self.object_type(object_type)?;
        let query = haven_core::query::bind(self.schema, object_type, query_text, args)?;
        // redb opens a table once at a time in a transaction: the query
        // opens its own, and writes open theirs again afterwards.
        self.tables.clear();
        let view = crate::transaction_query::TransactionView::new(self.txn, self.schema);
        run_query(&view, object_type, &query, |_, rec| Ok(json_object(ty, &decode(ty, rec)?)))
    }

    /// The type, converted primary key and property position that `set`
    /// and `increment` address (any property but the primary key).
    pub(crate) fn field_of(
        &self,
        object_type: &str,
        primary_key: Value,
        property: &str,
    ) -> Result<(&'t ObjectSchema, Value, usize)> {
        let ty = self.object_type(object_type)?;
        let pk = coerce_primary_key(self.schema, ty, primary_key)?;
        Ok((ty, pk, changeable_property(ty, property)?))
    }

    fn object_type(&self, name: &str) -> Result<&'t ObjectSchema> {
        let ty = self.schema.object_type(name).ok_or_else(|| Error::UnknownType(name.to_owned()))?;
        crate::error::not_embedded(ty)
    }

    pub(crate) fn require(&mut self, ty: &'t ObjectSchema, pk: &Value) -> Result<Vec<Value>> {
        self.load(ty, &key::to_key(pk.as_ref().expect("scalar")))?
            .ok_or_else(|| Error::ObjectNotFound { object_type: ty.name().to_owned(), primary_key: pk.to_string() })
    }

    /// Writes `fields` (already coerced) to the object whose primary key is
    /// among them, creating it if missing.
    fn upsert(&mut self, ty: &'t ObjectSchema, fields: Vec<(usize, Value)>, mode: UpdateMode) -> Result<()> {
        let pk_idx = ty.primary_key_index();
        let pk = fields.iter().find(|(i, _)| *i == pk_idx).map(|(_, v)| v.clone()).ok_or_else(|| {
            Error::MissingProperty { object_type: ty.name().to_owned(), property: ty.primary_key_name().to_owned() }
        })?;
        let key = key::to_key(pk.as_ref().expect("scalar"));
        if mode == UpdateMode::Never {
            // The common case of a new object: one tree operation, not a
            // lookup and then an insert.
            return self.insert_new(ty, &key, pk, fields);
        }
        match self.load(ty, &key)? {
            None => self.insert_new(ty, &key, pk, fields)?,
            Some(mut values) => {
                let mut changed = BTreeSet::new();
                for (i, v) in fields {
                    if i == pk_idx || (mode == UpdateMode::Modified && values[i] == v) {
                        continue;
                    }
                    if ty.properties()[i].indexed && values[i] != v {
                        self.index_entry(ty, i, &key, &values[i], false)?;
                        self.index_entry(ty, i, &key, &v, true)?;
                    }
                    values[i] = v;
                    changed.insert(i);
                }
                if !changed.is_empty() {
                    for &i in &changed {
                        let prop = &ty.properties()[i];
                        if prop.is_list() && self.logs() {
                            let assign =
                                self.assign_instruction(ty, &pk, prop, values[i].as_list().unwrap_or_default())?;
                            self.log(|| assign);
                            continue;
                        }
                        let field = prop.name.clone();
                        let value = values[i].clone();
                        let object_type = ty.name().to_owned();
                        let pk = pk.clone();
                        self.log(|| Instruction::Set { object_type, pk, field, value });
                    }
                    self.write_values(ty, &pk, values, changed)?;
                }
            }
        }
        Ok(())
    }

    /// Writes the values of an existing object whose properties `changed`
    /// changed (none of them indexed), logging nothing.
    pub(crate) fn write_values(
        &mut self,
        ty: &'t ObjectSchema,
        pk: &Value,
        values: Vec<Value>,
        changed: BTreeSet<usize>,
    ) -> Result<()> {
        let key = key::to_key(pk.as_ref().expect("scalar"));
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        record::encode(&values, &mut buf);
        let written = self.write_record(ty, pk, &key, &mut buf, changed);
        self.buf = buf;
        written
    }

    /// Writes a new object; fails with `DuplicatePrimaryKey`, changing
    /// nothing, if the key exists.
    fn insert_new(&mut self, ty: &'t ObjectSchema, key: &[u8], pk: Value, fields: Vec<(usize, Value)>) -> Result<()> {
        let values = complete(ty, fields)?;
        if let Some(previous) = self.store(ty, key, &values)? {
            self.tables(ty)?.objects.insert(key, previous.as_slice())?;
            return Err(duplicate(ty, &pk));
        }
        for (i, p) in ty.properties().iter().enumerate() {
            if p.indexed {
                self.index_entry(ty, i, key, &values[i], true)?;
            }
        }
        if self.logs() {
            // A list with elements goes to the log as its own instruction,
            // which gives the elements their identities.
            let mut fields = Vec::with_capacity(values.len());
            let mut lists = Vec::new();
            for (p, value) in ty.properties().iter().zip(values) {
                match value {
                    Value::List(items) if !items.is_empty() => lists.push(self.assign_instruction(ty, &pk, p, &items)?),
                    value => fields.push((p.name.clone(), value)),
                }
            }
            self.log(|| Instruction::Create { object_type: ty.name().to_owned(), pk: pk.clone(), fields });
            lists.into_iter().for_each(|assign| self.log(|| assign));
        }
        self.record_change(ty, key, &pk, Change::Inserted);
        Ok(())
    }

    fn remove(&mut self, ty: &'t ObjectSchema, key: &[u8], pk: &Value, values: &[Value]) -> Result<()> {
        self.keep_confirmed(ty, key, pk)?;
        self.tables(ty)?.objects.remove(key)?;
        for (i, p) in ty.properties().iter().enumerate() {
            if p.indexed {
                self.index_entry(ty, i, key, &values[i], false)?;
            }
        }
        self.log(|| Instruction::Delete { object_type: ty.name().to_owned(), pk: pk.clone() });
        if self.logs() {
            self.forget_lists(ty, pk)?;
        }
        self.record_change(ty, key, pk, Change::Deleted);
        Ok(())
    }

    fn load(&mut self, ty: &'t ObjectSchema, key: &[u8]) -> Result<Option<Vec<Value>>> {
        let table = &self.tables(ty)?.objects;
        let Some(rec) = table.get(key)? else {
            return Ok(None);
        };
        decode(ty, rec.value()).map(Some)
    }

    /// Writes the record (with the pending mark of a local write in a
    /// file that syncs); returns the record it replaced, if any.
    fn store(&mut self, ty: &'t ObjectSchema, key: &[u8], values: &[Value]) -> Result<Option<Vec<u8>>> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        record::encode(values, &mut buf);
        let result = self.store_encoded(ty, key, &mut buf);
        self.buf = buf;
        result
    }

    /// [`store`](Self::store) of a record already encoded in `buf`.
    fn store_encoded(&mut self, ty: &'t ObjectSchema, key: &[u8], buf: &mut Vec<u8>) -> Result<Option<Vec<u8>>> {
        if let Some((client_version, _)) = &self.pending {
            confirmed::push_pending(buf, *client_version);
        }
        Ok(self.tables(ty)?.objects.insert(key, buf.as_slice()).map(|old| old.map(|g| g.value().to_vec()))?)
    }

    /// Writes the encoded record of an existing object whose properties
    /// `changed` changed (none of them indexed), logging nothing; `record`
    /// gets the sync suffix this transaction writes.
    pub(crate) fn write_record(
        &mut self,
        ty: &'t ObjectSchema,
        pk: &Value,
        key: &[u8],
        record: &mut Vec<u8>,
        changed: BTreeSet<usize>,
    ) -> Result<()> {
        self.keep_confirmed(ty, key, pk)?;
        self.store_encoded(ty, key, record)?;
        self.record_change(ty, key, pk, Change::Modified(changed));
        Ok(())
    }

    /// Before a local write changes or removes a record that is its
    /// object's confirmed state, moves that state to the overlay: the
    /// next download needs it to replay the pending change on.
    fn keep_confirmed(&mut self, ty: &'t ObjectSchema, key: &[u8], pk: &Value) -> Result<()> {
        if self.pending.is_none() {
            return Ok(());
        }
        let Some(state) = self.tables(ty)?.objects.get(key)?.map(|g| confirmed::state_in_record(ty, g.value())) else {
            return Ok(());
        };
        let Some(state) = state? else { return Ok(()) };
        let txn = self.txn;
        let (_, overlay) = self.pending.as_mut().expect("checked above");
        let overlay = match overlay {
            Some(table) => table,
            None => overlay.insert(txn.open_table(layout::CONFIRMED)?),
        };
        confirmed::set_overlay(overlay, ty.name(), pk, key, Some(&state))
    }

    /// The stored bytes of one object's record (its sync suffix included).
    pub(crate) fn record(&mut self, ty: &'t ObjectSchema, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tables(ty)?.objects.get(key)?.map(|g| g.value().to_vec()))
    }

    /// Replaces an object's stored bytes with `bytes` whose values are the
    /// same (only its sync suffix differs): no index or listener change.
    #[cfg(feature = "sync")]
    pub(crate) fn replace_record(&mut self, ty: &'t ObjectSchema, key: &[u8], bytes: &[u8]) -> Result<()> {
        self.tables(ty)?.objects.insert(key, bytes)?;
        Ok(())
    }

    /// The encoded primary keys of every object of a type.
    #[cfg(feature = "sync")]
    pub(crate) fn keys(&mut self, ty: &'t ObjectSchema) -> Result<Vec<Vec<u8>>> {
        let table = &self.tables(ty)?.objects;
        Ok(table.iter()?.map(|r| r.map(|(k, _)| k.value().to_vec())).collect::<Result<_, _>>()?)
    }

    /// Writes an object as the server's state makes it (no change-log
    /// entry: for the replica): `values` complete, by position, followed by
    /// `suffix`. Indexes and listeners follow as for any write.
    pub(crate) fn put_synced(
        &mut self,
        ty: &'t ObjectSchema,
        key: &[u8],
        pk: &Value,
        values: Vec<Value>,
        suffix: &[u8],
    ) -> Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        record::encode(&values, &mut buf);
        buf.extend_from_slice(suffix);
        let old = match self.tables(ty)?.objects.get(key)? {
            // A client reset meets most objects as they were: no write.
            Some(g) if g.value() == buf.as_slice() => None,
            Some(g) => Some(Some(decode(ty, g.value())?)),
            None => Some(None),
        };
        let Some(old) = old else {
            self.buf = buf;
            return Ok(());
        };
        let mut changed = BTreeSet::new();
        for (i, p) in ty.properties().iter().enumerate() {
            let before = old.as_ref().map(|o| &o[i]);
            if before == Some(&values[i]) {
                continue;
            }
            if p.indexed {
                if let Some(before) = before {
                    self.index_entry(ty, i, key, before, false)?;
                }
                self.index_entry(ty, i, key, &values[i], true)?;
            }
            changed.insert(i);
        }
        let written = self.tables(ty)?.objects.insert(key, buf.as_slice()).map(|_| ());
        self.buf = buf;
        written?;
        match old {
            None => self.record_change(ty, key, pk, Change::Inserted),
            Some(_) if !changed.is_empty() => self.record_change(ty, key, pk, Change::Modified(changed)),
            Some(_) => {}
        }
        Ok(())
    }

    /// Removes an object as the server's state makes it (no change-log
    /// entry); `Ok(false)` if there was none.
    pub(crate) fn remove_synced(&mut self, ty: &'t ObjectSchema, key: &[u8], pk: &Value) -> Result<bool> {
        let Some(values) = self.load(ty, key)? else {
            return Ok(false);
        };
        self.remove(ty, key, pk, &values)?;
        Ok(true)
    }

    fn index_entry(&mut self, ty: &'t ObjectSchema, prop: usize, key: &[u8], value: &Value, add: bool) -> Result<()> {
        let mut entry = std::mem::take(&mut self.entry);
        entry.clear();
        key::encode(value.as_ref().expect("indexed properties are scalars"), &mut entry);
        entry.extend_from_slice(key);
        let table = self.tables(ty)?.indexes[prop].as_mut().expect("the property is indexed");
        let result = if add {
            table.insert(entry.as_slice(), ()).map(|_| ())
        } else {
            table.remove(entry.as_slice()).map(|_| ())
        };
        self.entry = entry;
        Ok(result?)
    }

    fn tables(&mut self, ty: &'t ObjectSchema) -> Result<&mut TypeTables<'t>> {
        let at = match self.tables.iter().position(|(name, _)| *name == ty.name()) {
            Some(at) => at,
            None => {
                let tables = self.open_tables(ty)?;
                self.tables.push((ty.name(), tables));
                self.tables.len() - 1
            }
        };
        Ok(&mut self.tables[at].1)
    }

    fn open_tables(&self, ty: &ObjectSchema) -> Result<TypeTables<'t>> {
        let objects = self.txn.open_table(layout::objects_def(&layout::objects_table(ty.name())))?;
        let mut indexes = Vec::with_capacity(ty.properties().len());
        for p in ty.properties() {
            let index = match p.indexed {
                true => Some(self.txn.open_table(layout::index_def(&layout::index_table(ty.name(), &p.name)))?),
                false => None,
            };
            indexes.push(index);
        }
        Ok(TypeTables { objects, indexes })
    }
}

/// The values of a new object: the given fields, and defaults for the
/// others; a required property not given is an error.
fn complete(ty: &ObjectSchema, mut fields: Vec<(usize, Value)>) -> Result<Vec<Value>> {
    // Fields usually come in schema order already; then this is one pass.
    if !fields.is_sorted_by_key(|(i, _)| *i) {
        fields.sort_by_key(|(i, _)| *i);
    }
    let mut given = fields.into_iter().peekable();
    let mut values = Vec::with_capacity(ty.properties().len());
    for (i, p) in ty.properties().iter().enumerate() {
        let value = given.next_if(|(j, _)| *j == i).map(|(_, v)| v);
        values.push(value.or_else(|| p.default_value()).ok_or_else(|| missing(ty, p))?);
    }
    Ok(values)
}

/// Fails, naming the property, when a new object would lack a required one.
fn missing_required(ty: &ObjectSchema, fields: &[(usize, Value)]) -> Result<()> {
    let given = |i: usize| fields.iter().any(|(j, _)| *j == i);
    match ty.properties().iter().enumerate().find(|(i, p)| p.default_value().is_none() && !given(*i)) {
        Some((_, p)) => Err(missing(ty, p)),
        None => Ok(()),
    }
}

fn missing(ty: &ObjectSchema, p: &haven_core::Property) -> Error {
    Error::MissingProperty { object_type: ty.name().to_owned(), property: p.name.clone() }
}

fn duplicate(ty: &ObjectSchema, pk: &Value) -> Error {
    Error::DuplicatePrimaryKey { object_type: ty.name().to_owned(), primary_key: pk.to_string() }
}

/// An object's values as a JSON object, by property name.
fn json_object(ty: &ObjectSchema, values: &[Value]) -> serde_json::Value {
    serde_json::Value::Object(ty.properties().iter().zip(values).map(|(p, v)| (p.name.clone(), v.to_json())).collect())
}

/// Decodes a record, filling properties added after it was written with
/// their defaults (a sync suffix after it is not read).
fn decode(ty: &ObjectSchema, rec: &[u8]) -> Result<Vec<Value>> {
    let mut values = record::decode(rec).map_err(|e| Error::Storage(format!("{}: {e}", ty.name())))?;
    for p in &ty.properties()[values.len().min(ty.properties().len())..] {
        values.push(p.default_value().unwrap_or(Value::Null));
    }
    Ok(values)
}

fn property_index(ty: &ObjectSchema, name: &str) -> Result<usize> {
    if let Some(b) = ty.backlink_named(name) {
        return Err(Error::InvalidOperation {
            object_type: ty.name().to_owned(),
            property: name.to_owned(),
            message: format!(
                "it is computed from {}.{} (linkingObjects) and cannot be written: set the link on the {} instead",
                b.object_type, b.property, b.object_type
            ),
        });
    }
    ty.property_index(name)
        .ok_or_else(|| Error::UnknownProperty { object_type: ty.name().to_owned(), property: name.to_owned() })
}

/// The position of a property that `set` and `increment` may change:
/// any but the primary key.
fn changeable_property(ty: &ObjectSchema, name: &str) -> Result<usize> {
    let idx = property_index(ty, name)?;
    if idx == ty.primary_key_index() {
        return Err(Error::InvalidOperation {
            object_type: ty.name().to_owned(),
            property: name.to_owned(),
            message: "a primary key cannot change; create a new object instead".into(),
        });
    }
    Ok(idx)
}

fn invalid(ty: &ObjectSchema, property: &str, message: String) -> Error {
    Error::InvalidValue(ValueError { object_type: ty.name().to_owned(), property: property.to_owned(), message })
}

/// Converts a primary key given by the app to the type's key type.
pub(crate) fn coerce_primary_key(schema: &Schema, ty: &ObjectSchema, pk: Value) -> Result<Value> {
    Ok(schema.coerce(ty, ty.primary_key_property(), pk)?)
}
