//! `Results`: a live, lazily evaluated collection of one type's objects.

use crate::database::Database;
use crate::error::{Error, Result};
use crate::notifier::{CollectionChanges, CollectionListener, Listener, NotificationToken};
use crate::object::Object;
use crate::snapshot::run_query;
use haven_core::query::{self, BoundQuery, Filter};
use haven_core::{record, sort_order, PropertyType, Value};

/// The objects of one type that match a query, sorted and limited as asked.
///
/// `Results` is live: each read runs against the latest commit. It is cheap
/// to clone and `Send + Sync`.
///
/// ```
/// # use haven_store::{Config, Database, Schema, UpdateMode};
/// # use serde_json::json;
/// # let dir = tempfile::tempdir().unwrap();
/// # let schema = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","name":"string","lastUpdated":{"type":"int","indexed":true}}}]"#).unwrap();
/// # let db = Database::open(Config::new(dir.path().join("a.haven")).schema(schema)).unwrap();
/// db.write(|tx| {
///     for (id, name) in [(1, "Rex"), (2, "Ace"), (3, "Rover")] {
///         tx.create("Dog", json!({"_id": id, "name": name, "lastUpdated": id * 10}), UpdateMode::Never)?;
///     }
///     Ok(())
/// })?;
/// let recent = db.objects("Dog")?
///     .filtered("lastUpdated > $0 AND name BEGINSWITH[c] $1", &[5.into(), "r".into()])?
///     .sorted("lastUpdated", false)?;
/// assert_eq!(recent.len()?, 2);
/// assert_eq!(recent.get(0)?.unwrap().get("name"), Some("Rover".into()));
/// assert_eq!(recent.explain()?, "index Dog.lastUpdated (1 range), then filter on name");
/// # Ok::<(), haven_store::Error>(())
/// ```
#[derive(Clone)]
pub struct Results {
    db: Database,
    ty: String,
    query: BoundQuery,
}

impl std::fmt::Debug for Results {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Results({}", self.ty)?;
        match self.explain() {
            Ok(plan) => write!(f, ": {plan})"),
            Err(_) => write!(f, ")"),
        }
    }
}

impl Results {
    pub(crate) fn new(db: Database, ty: &str) -> Results {
        Results {
            db,
            ty: ty.to_owned(),
            query: BoundQuery { filter: Filter::Const(true), sort: Vec::new(), distinct: Vec::new(), limit: None },
        }
    }

    /// Narrows the collection with a query (see the query language in the
    /// crate docs); `$0`, `$1`, ... take `args`. A `SORT` in the query
    /// replaces the current order, and a `DISTINCT` the current one; a
    /// `LIMIT` applies on top of any other.
    pub fn filtered(&self, query_text: &str, args: &[Value]) -> Result<Results> {
        let q = query::bind(self.db.schema(), &self.ty, query_text, args)?;
        let filter = self.query.filter.clone().and(q.filter);
        let sort = if q.sort.is_empty() { self.query.sort.clone() } else { q.sort };
        let distinct = if q.distinct.is_empty() { self.query.distinct.clone() } else { q.distinct };
        let limit = match (self.query.limit, q.limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(Results { query: BoundQuery { filter, sort, distinct, limit }, ..self.clone() })
    }

    /// Sorts by one property (or link path), replacing any previous order.
    pub fn sorted(&self, property: &str, ascending: bool) -> Result<Results> {
        let (path, _) = query::sort_key(self.db.schema(), &self.ty, property)?;
        let mut r = self.clone();
        r.query.sort = vec![(path, ascending)];
        Ok(r)
    }

    /// How the query runs: by primary key, through an index, or by scanning.
    pub fn explain(&self) -> Result<String> {
        let (_, ty) = self.db.type_named(&self.ty)?;
        Ok(query::plan(ty, &self.query).description)
    }

    /// The number of objects.
    pub fn len(&self) -> Result<usize> {
        let snap = self.db.snapshot()?;
        let all = if self.query.filter == Filter::Const(true) && self.query.distinct.is_empty() {
            snap.count(&self.ty)? as usize
        } else {
            let unordered = BoundQuery { sort: Vec::new(), limit: None, ..self.query.clone() };
            run_query(&*snap, &self.ty, &unordered, |_, _| Ok(()))?.len()
        };
        Ok(self.query.limit.map_or(all, |n| all.min(n)))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> Result<bool> {
        let mut first = self.query.clone();
        first.limit = Some(1);
        first.sort.clear();
        Ok(run_query(&*self.db.snapshot()?, &self.ty, &first, |_, _| Ok(()))?.is_empty())
    }

    /// The object at `index` in the collection's order.
    pub fn get(&self, index: usize) -> Result<Option<Object>> {
        let mut upto = self.query.clone();
        upto.limit = Some(upto.limit.unwrap_or(usize::MAX).min(index.saturating_add(1)));
        let mut objects = self.objects_for(&upto)?;
        Ok((objects.len() > index).then(|| objects.swap_remove(index)))
    }

    /// The objects, read from one snapshot.
    pub fn iter(&self) -> Result<std::vec::IntoIter<Object>> {
        Ok(self.to_vec()?.into_iter())
    }

    /// Every object, read from one snapshot, as a vector.
    pub fn to_vec(&self) -> Result<Vec<Object>> {
        self.objects_for(&self.query)
    }

    /// The objects as a JSON array.
    pub fn to_json(&self) -> Result<serde_json::Value> {
        Ok(serde_json::Value::Array(self.iter()?.map(|o| o.to_json()).collect()))
    }

    /// Calls `callback` on the listener thread after each commit that
    /// changes the collection: objects entering it (insertions), leaving it
    /// (deletions), or written while in it (modifications). Commits from
    /// any writer count. Dropping the token unsubscribes.
    ///
    /// ```
    /// # use haven_store::{Config, Database, Schema, UpdateMode, Value};
    /// # use serde_json::json;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let schema = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","age":"int"}}]"#).unwrap();
    /// # let db = Database::open(Config::new(dir.path().join("a.haven")).schema(schema)).unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let puppies = db.objects("Dog")?.filtered("age < 1", &[])?;
    /// let token = puppies.add_listener(move |changes| tx.send(changes.clone()).unwrap());
    /// db.write(|tx| tx.create("Dog", json!({"_id": 7, "age": 0}), UpdateMode::Never))?;
    /// let changes = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    /// assert_eq!(changes.insertions, vec![Value::Int(7)]);
    /// drop(token);
    /// # Ok::<(), haven_store::Error>(())
    /// ```
    pub fn add_listener(&self, callback: impl Fn(&CollectionChanges) + Send + Sync + 'static) -> NotificationToken {
        self.db.add_listener(Listener::Collection(Box::new(CollectionListener {
            ty: self.ty.clone(),
            query: self.query.clone(),
            callback: Box::new(callback),
        })))
    }

    /// The smallest value of an int, double, date or decimal128 property among the
    /// objects (nulls left out); `None` when there is none.
    ///
    /// ```
    /// # use haven_store::{Config, Database, Schema, UpdateMode, Value};
    /// # use serde_json::json;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let schema = Schema::from_json(r#"[{"name":"Dog","primaryKey":"_id","properties":{"_id":"int","age":"int?"}}]"#)?;
    /// # let db = Database::open(Config::new(dir.path().join("a.haven")).schema(schema))?;
    /// db.write(|tx| {
    ///     for (id, age) in [(1, json!(3)), (2, json!(8)), (3, json!(null))] {
    ///         tx.create("Dog", json!({"_id": id, "age": age}), UpdateMode::Never)?;
    ///     }
    ///     Ok(())
    /// })?;
    /// let dogs = db.objects("Dog")?;
    /// assert_eq!(dogs.min("age")?, Some(Value::Int(3)));
    /// assert_eq!(dogs.max("age")?, Some(Value::Int(8)));
    /// assert_eq!(dogs.sum("age")?, Some(Value::Int(11)));
    /// assert_eq!(dogs.avg("age")?, Some(Value::Double(5.5)));
    /// assert_eq!(dogs.filtered("age > 10", &[])?.min("age")?, None);
    /// assert_eq!(dogs.filtered("age > 10", &[])?.sum("age")?, Some(Value::Int(0)));
    /// # Ok::<(), haven_store::Error>(())
    /// ```
    pub fn min(&self, property: &str) -> Result<Option<Value>> {
        let values = self.column(
            property,
            "min",
            &[PropertyType::Int, PropertyType::Double, PropertyType::Date, PropertyType::Decimal128],
        )?;
        Ok(values.into_iter().min_by(sort_order))
    }

    /// The largest value of an int, double, date or decimal128 property among the
    /// objects (nulls left out); `None` when there is none.
    pub fn max(&self, property: &str) -> Result<Option<Value>> {
        let values = self.column(
            property,
            "max",
            &[PropertyType::Int, PropertyType::Double, PropertyType::Date, PropertyType::Decimal128],
        )?;
        Ok(values.into_iter().max_by(sort_order))
    }

    /// The sum of an int or double property over the objects (nulls left
    /// out): an int for an int property, 0 when there are none.
    pub fn sum(&self, property: &str) -> Result<Option<Value>> {
        let values = self.column(property, "sum", &[PropertyType::Int, PropertyType::Double])?;
        let mut ints = 0i64;
        let mut doubles = None::<f64>;
        for v in values {
            match v {
                Value::Int(i) => {
                    ints = ints.checked_add(i).ok_or_else(|| Error::InvalidOperation {
                        object_type: self.ty.clone(),
                        property: property.to_owned(),
                        message: "the sum overflows an int".into(),
                    })?
                }
                Value::Double(d) => *doubles.get_or_insert(0.0) += d,
                _ => {}
            }
        }
        Ok(Some(doubles.map_or(Value::Int(ints), |d| Value::Double(d + ints as f64))))
    }

    /// The mean of an int or double property over the objects (nulls left
    /// out), as a double; `None` when there are none.
    pub fn avg(&self, property: &str) -> Result<Option<Value>> {
        let values = self.column(property, "avg", &[PropertyType::Int, PropertyType::Double])?;
        let n = values.len();
        let total: f64 =
            values.iter().map(|v| v.as_int().map_or_else(|| v.as_double().unwrap_or(0.0), |i| i as f64)).sum();
        Ok((n > 0).then(|| Value::Double(total / n as f64)))
    }

    /// The non-null values of `property` among the objects, read from one
    /// snapshot without decoding the rest of each record; an error names
    /// the property when it is not one of `types` (or a list).
    fn column(&self, property: &str, aggregate: &str, types: &[PropertyType]) -> Result<Vec<Value>> {
        let (_, ty) = self.db.type_named(&self.ty)?;
        let idx = ty
            .property_index(property)
            .ok_or_else(|| Error::UnknownProperty { object_type: self.ty.clone(), property: property.to_owned() })?;
        let prop = &ty.properties()[idx];
        if prop.is_collection() || !types.contains(&prop.ty) {
            let names: Vec<&str> = types.iter().map(PropertyType::name).collect();
            return Err(Error::InvalidOperation {
                object_type: self.ty.clone(),
                property: property.to_owned(),
                message: format!(
                    "{aggregate} works on {} properties, not '{}'",
                    names.join(" and "),
                    prop.type_string()
                ),
            });
        }
        let snap = self.db.snapshot()?;
        let values = run_query(&*snap, &self.ty, &self.query, |_, rec| {
            let value = record::field(rec, idx).map_err(|e| Error::Storage(format!("{}: {e}", self.ty)))?;
            Ok(value.map(|v| v.to_owned()).filter(|v| !v.is_null()))
        })?;
        Ok(values.into_iter().flatten().collect())
    }

    fn objects_for(&self, q: &BoundQuery) -> Result<Vec<Object>> {
        let snap = self.db.snapshot()?;
        let (type_index, _) = self.db.type_named(&self.ty)?;
        run_query(&*snap, &self.ty, q, |_, rec| Object::from_record(&self.db, &snap, type_index, rec))
    }
}
