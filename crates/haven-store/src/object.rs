//! `Object`: one object's values, read from a snapshot.

use crate::database::Database;
use crate::error::{Error, Result};
use crate::notifier::{NotificationToken, ObjectChange};
use crate::snapshot::Snapshot;
use haven_core::{key, record, ObjectSchema, PropertyType, Schema, Value};
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;

/// An object as it was when read. Cheap to clone; `Send + Sync`.
///
/// An `Object` does not change when the database does: read it again with
/// [`Database::object_for_primary_key`], or watch it with
/// [`Object::add_listener`].
#[derive(Clone)]
pub struct Object {
    inner: Arc<ObjectData>,
}

struct ObjectData {
    db: Database,
    schema: Arc<Schema>,
    type_index: usize,
    /// The encoded record; fields are decoded when asked for.
    record: Vec<u8>,
    /// Link properties whose target was gone when read: (position, value
    /// as read: null, the list or set without the missing targets, the
    /// dictionary with null for them).
    repaired_links: Vec<(usize, Value)>,
}

impl Object {
    /// Wraps a record read from `snap`. Links whose target is gone read as
    /// null (and leave link lists); that is checked here, against the same
    /// snapshot, so that the object does not keep the snapshot alive.
    pub(crate) fn from_record(
        db: &Database,
        snap: &Snapshot,
        type_index: usize,
        rec: impl Into<Vec<u8>>,
    ) -> Result<Object> {
        let record = rec.into();
        let rec = record.as_slice();
        let ty = &snap.schema.types()[type_index];
        let mut repaired_links = Vec::new();
        for (i, prop) in ty.properties().iter().enumerate() {
            let PropertyType::Link(target) = &prop.ty else {
                continue;
            };
            let exists =
                |pk: &Value| pk.as_ref().is_some_and(|r| snap.contains(target, &key::to_key(r)).unwrap_or(false));
            let value = read_field(ty, rec, i)?;
            let repaired = match &value {
                Value::List(items) if !items.iter().all(exists) => {
                    Value::List(items.iter().filter(|pk| exists(pk)).cloned().collect())
                }
                Value::Set(items) if !items.iter().all(exists) => {
                    Value::Set(items.iter().filter(|pk| exists(pk)).cloned().collect())
                }
                Value::Dictionary(entries) if !entries.values().all(|v| v.is_null() || exists(v)) => {
                    let repaired =
                        entries.iter().map(|(k, v)| (k.clone(), if exists(v) { v.clone() } else { Value::Null }));
                    Value::Dictionary(repaired.collect())
                }
                Value::List(_) | Value::Set(_) | Value::Dictionary(_) | Value::Null => continue,
                v if !exists(v) => Value::Null,
                _ => continue,
            };
            repaired_links.push((i, repaired));
        }
        Ok(Object {
            inner: Arc::new(ObjectData {
                db: db.clone(),
                schema: snap.schema.clone(),
                type_index,
                record,
                repaired_links,
            }),
        })
    }

    fn ty(&self) -> &ObjectSchema {
        &self.inner.schema.types()[self.inner.type_index]
    }

    fn field(&self, i: usize) -> Value {
        if let Some((_, v)) = self.inner.repaired_links.iter().find(|(j, _)| *j == i) {
            return v.clone();
        }
        // A field that cannot be decoded is damage on disk: say so, read null.
        let value = read_field(self.ty(), &self.inner.record, i)
            .inspect_err(|e| tracing::error!(error = %e, "unreadable field"))
            .unwrap_or(Value::Null);
        match &self.ty().properties()[i].ty {
            PropertyType::Embedded(target) => self.inner.schema.with_embedded_defaults(target, value),
            _ => value,
        }
    }

    /// The object's type name.
    pub fn object_type(&self) -> &str {
        self.ty().name()
    }

    /// The primary key.
    pub fn primary_key(&self) -> Value {
        self.field(self.ty().primary_key_index())
    }

    /// A property's value (a link as its target's primary key); `None` if
    /// the type has no such property.
    pub fn get(&self, property: &str) -> Option<Value> {
        self.ty().property_index(property).map(|i| self.field(i))
    }

    /// The values in the type's property order.
    pub fn values(&self) -> Vec<Value> {
        (0..self.ty().properties().len()).map(|i| self.field(i)).collect()
    }

    /// The object as a JSON object (see [`Value::to_json`] for the forms).
    pub fn to_json(&self) -> serde_json::Value {
        let map =
            self.ty().properties().iter().enumerate().map(|(i, p)| (p.name.clone(), self.field(i).to_json())).collect();
        serde_json::Value::Object(map)
    }

    /// The object as a `T` (through serde).
    ///
    /// ```
    /// # use haven_store::{Config, Database, Schema, UpdateMode};
    /// #[derive(serde::Deserialize)]
    /// struct Dog { _id: i64, name: String }
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let schema = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string"}}]"#).unwrap();
    /// # let db = Database::open(Config::new(dir.path().join("a.haven")).schema(schema)).unwrap();
    /// # db.write(|tx| tx.create("Dog", serde_json::json!({"_id": 1, "name": "Rex"}), UpdateMode::Never)).unwrap();
    /// let dog: Dog = db.object_for_primary_key("Dog", 1)?.unwrap().to()?;
    /// assert_eq!(dog.name, "Rex");
    /// # Ok::<(), haven_store::Error>(())
    /// ```
    pub fn to<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(self.to_json()).map_err(|e| Error::Conversion {
            object_type: self.object_type().to_owned(),
            message: format!("cannot convert to {}: {e}", std::any::type_name::<T>()),
        })
    }

    /// The object a link property points at, read now; `None` when the link
    /// is null or its target is gone.
    pub fn linked(&self, property: &str) -> Result<Option<Object>> {
        let target = self.link_target(property)?;
        match self.get(property) {
            Some(pk) if !pk.is_null() => self.inner.db.object_for_primary_key(&target, pk),
            _ => Ok(None),
        }
    }

    /// The objects whose link points at this one, through the computed
    /// `linkingObjects` property `property`: live [`Results`](crate::Results)
    /// of the linking type.
    ///
    /// ```
    /// # use haven_store::{Config, Database, Schema, UpdateMode};
    /// # use serde_json::json;
    /// # let dir = tempfile::tempdir().unwrap();
    /// let schema = Schema::from_json(r#"[
    ///   {"name":"Person","primaryKey":"_id","properties":{"_id":"string",
    ///    "dogs":{"type":"linkingObjects","objectType":"Dog","property":"owner"}}},
    ///   {"name":"Dog","primaryKey":"_id","properties":{"_id":"int","owner":"Person?"}}]"#)?;
    /// # let db = Database::open(Config::new(dir.path().join("a.haven")).schema(schema))?;
    /// db.write(|tx| {
    ///     tx.create("Person", json!({"_id": "ann"}), UpdateMode::Never)?;
    ///     tx.create("Dog", json!({"_id": 1, "owner": "ann"}), UpdateMode::Never)
    /// })?;
    /// let ann = db.object_for_primary_key("Person", "ann")?.unwrap();
    /// assert_eq!(ann.linking_objects("dogs")?.len()?, 1);
    /// # Ok::<(), haven_store::Error>(())
    /// ```
    pub fn linking_objects(&self, property: &str) -> Result<crate::Results> {
        let Some(backlink) = self.ty().backlink_named(property) else {
            return Err(Error::InvalidOperation {
                object_type: self.object_type().to_owned(),
                property: property.to_owned(),
                message: "not a linkingObjects property".into(),
            });
        };
        let objects = self.inner.db.objects(&backlink.object_type)?;
        objects.filtered(&format!("{} == $0", backlink.property), &[self.primary_key()])
    }

    /// The objects a link list points at, read now.
    pub fn linked_list(&self, property: &str) -> Result<Vec<Object>> {
        let target = self.link_target(property)?;
        let pks = self.get(property).and_then(|v| v.as_list().map(<[Value]>::to_vec)).unwrap_or_default();
        let mut out = Vec::new();
        for pk in pks {
            out.extend(self.inner.db.object_for_primary_key(&target, pk)?);
        }
        Ok(out)
    }

    fn link_target(&self, property: &str) -> Result<String> {
        match self.ty().property_named(property) {
            Some(p) => match &p.ty {
                PropertyType::Link(t) => Ok(t.clone()),
                _ => Err(Error::InvalidOperation {
                    object_type: self.object_type().to_owned(),
                    property: property.to_owned(),
                    message: "not a link".into(),
                }),
            },
            None => Err(Error::UnknownProperty {
                object_type: self.object_type().to_owned(),
                property: property.to_owned(),
            }),
        }
    }

    /// Calls `callback` on the listener thread after each commit that
    /// modifies or deletes this object. Dropping the token unsubscribes.
    pub fn add_listener(&self, callback: impl Fn(&ObjectChange) + Send + Sync + 'static) -> NotificationToken {
        self.inner.db.add_object_listener(self.object_type(), self.primary_key(), Box::new(callback))
    }
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.object_type(), self.to_json())
    }
}

/// Field `i` of a record, or the property's default when the record
/// predates the property.
fn read_field(ty: &ObjectSchema, rec: &[u8], i: usize) -> Result<Value> {
    match record::field(rec, i).map_err(|e| Error::Storage(format!("{}: {e}", ty.name())))? {
        Some(v) => Ok(v.to_owned()),
        None => Ok(ty.properties()[i].default_value().unwrap_or(Value::Null)),
    }
}
