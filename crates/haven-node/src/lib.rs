//! The native half of the npm package `haven` (`bindings/node`): a Haven
//! database as a napi-rs class. The Realm-shaped API (`Haven.open`,
//! `Realm`, `Results`, objects whose properties read and write) is
//! JavaScript, in `bindings/node/lib/`, on top of this small surface.
//!
//! Errors reach JavaScript as `Error`s whose message starts with the kind
//! in brackets (`[QueryError] …`); the JavaScript layer turns the kind
//! into the error's `name`.

use haven::{Config, Database, NotificationToken, ObjectChange, Schema, UpdateMode, Value, WriteTransaction};
use napi::bindgen_prelude::{AsyncTask, Function, Unknown};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi::{Env, Error, Result, Task};
use napi_derive::napi;
use serde_json::Value as Json;
use std::cell::RefCell;
use std::sync::Mutex;

/// An open database, as JavaScript holds it.
#[napi]
pub struct NativeDatabase {
    /// `None` once closed. Every method takes `&self` (a listener's call
    /// may be running when JavaScript closes the realm).
    db: Mutex<Option<Database>>,
    /// The write transaction under way (its address), while `write`'s
    /// callback runs on the JavaScript thread.
    writing: Mutex<Option<usize>>,
}

/// An error named by its kind, for the JavaScript layer.
pub(crate) fn named(kind: &str, message: impl std::fmt::Display) -> Error {
    Error::from_reason(format!("[{kind}] {message}"))
}

/// A Haven error, named by what went wrong.
pub(crate) fn haven_error(error: haven::Error) -> Error {
    let kind = match &error {
        haven::Error::Schema(_) => "SchemaError",
        haven::Error::Query(_) => "QueryError",
        haven::Error::InvalidValue(_)
        | haven::Error::UnknownType(_)
        | haven::Error::EmbeddedType(_)
        | haven::Error::UnknownProperty { .. }
        | haven::Error::MissingProperty { .. }
        | haven::Error::Conversion { .. } => "TypeError",
        haven::Error::DuplicatePrimaryKey { .. } => "DuplicatePrimaryKeyError",
        haven::Error::InvalidOperation { .. } | haven::Error::ReadOnly(_) | haven::Error::StillOpen(_) => {
            "InvalidStateError"
        }
        haven::Error::ObjectNotFound { .. } => "ObjectNotFoundError",
        haven::Error::Sync(_) => "SyncError",
        _ => "HavenError",
    };
    named(kind, error)
}

/// A primary key or argument given as JSON.
fn value(json: &Json, what: &str) -> Result<Value> {
    // Every JavaScript number is a double: an integral one (a key, a Date's
    // milliseconds) is an int, which int, date and double properties take.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if let Some(f) = json.as_f64().filter(|f| json.is_f64() && f.fract() == 0.0 && f.abs() <= EXACT) {
        return Ok(Value::Int(f as i64));
    }
    haven_core::value_from_json(json).ok_or_else(|| named("TypeError", format!("{what}: {json} is not a value")))
}

/// The error of an operation the binding does not know.
fn unknown_operation(object_type: &str, property: &str, collection: &str, op: &str) -> haven::Error {
    haven::Error::InvalidOperation {
        object_type: object_type.to_owned(),
        property: property.to_owned(),
        message: format!("unknown {collection} operation '{op}'"),
    }
}

/// A query's `$0`, `$1`, … arguments.
fn arguments(args: &[Json]) -> Result<Vec<Value>> {
    // An object is no query argument: a query compares with values.
    let argument = |(i, a): (usize, &Json)| match a {
        Json::Object(_) => Err(named("TypeError", format!("${i}: {a} is not a value (an object cannot be compared)"))),
        a => value(a, &format!("${i}")),
    };
    args.iter().enumerate().map(argument).collect()
}

fn update_mode(mode: &str) -> Result<UpdateMode> {
    match mode {
        "never" => Ok(UpdateMode::Never),
        "modified" => Ok(UpdateMode::Modified),
        "all" => Ok(UpdateMode::All),
        other => {
            Err(named("TypeError", format!("unknown update mode '{other}': use \"never\", \"modified\" or \"all\"")))
        }
    }
}

#[napi]
impl NativeDatabase {
    /// Opens (or creates) the database at `path`, with `schema_json`
    /// (Realm's schema form, as JSON) or the file's own schema.
    #[napi(factory)]
    pub fn open(path: String, schema_json: Option<String>, read_only: Option<bool>) -> Result<NativeDatabase> {
        let mut config = Config::new(&path);
        if let Some(json) = schema_json {
            config = config.schema(Schema::from_json(&json).map_err(|e| named("SchemaError", e))?);
        }
        if read_only == Some(true) {
            config = config.read_only();
        }
        let db = Database::open(config).map_err(haven_error)?;
        Ok(NativeDatabase::from_database(db))
    }

    pub(crate) fn from_database(db: Database) -> NativeDatabase {
        NativeDatabase { db: Mutex::new(Some(db)), writing: Mutex::new(None) }
    }

    pub(crate) fn db(&self) -> Result<Database> {
        let db = self.db.lock().expect("database handle").clone();
        db.ok_or_else(|| named("ClosedError", "the realm is closed: open it again to use it"))
    }

    /// Closes this handle (other handles on the same path keep it open).
    #[napi]
    pub fn close(&self) -> Result<()> {
        if self.writing().is_some() {
            return Err(named("InvalidStateError", "cannot close a realm inside its write transaction"));
        }
        self.db.lock().expect("database handle").take();
        Ok(())
    }

    /// Whether `close` was called.
    #[napi(getter)]
    pub fn is_closed(&self) -> bool {
        self.db.lock().expect("database handle").is_none()
    }

    /// The file's path.
    #[napi(getter)]
    pub fn path(&self) -> Result<String> {
        Ok(self.db()?.path().display().to_string())
    }

    /// The schema, as JSON.
    #[napi(getter)]
    pub fn schema_json(&self) -> Result<String> {
        Ok(self.db()?.schema().to_json())
    }

    /// Whether a write transaction is under way.
    #[napi(getter)]
    pub fn is_in_transaction(&self) -> bool {
        self.writing().is_some()
    }

    fn writing(&self) -> Option<usize> {
        *self.writing.lock().expect("write state")
    }

    fn set_writing(&self, tx: Option<usize>) {
        *self.writing.lock().expect("write state") = tx;
    }

    /// Runs `callback` in a write transaction: everything it writes
    /// commits together, and if it throws nothing is written and the
    /// exception propagates.
    #[napi]
    pub fn write(&self, callback: Function<(), Unknown>) -> Result<()> {
        if self.writing().is_some() {
            return Err(named("InvalidStateError", "the realm is already in a write transaction"));
        }
        let mut thrown = None;
        let written = self.db()?.write(|tx| {
            // SAFETY: the pointer is only used by this object's methods,
            // on this thread, while `callback` runs inside this closure,
            // where `tx` lives; it is cleared before the closure returns.
            let tx: *mut WriteTransaction<'_> = tx;
            self.set_writing(Some(tx as usize));
            let called = callback.call(());
            self.set_writing(None);
            if let Err(e) = called {
                thrown = Some(e);
                // Any error rolls back; the exception is what JavaScript sees.
                return Err(haven::Error::Storage("the write callback threw".into()));
            }
            Ok(())
        });
        match (thrown, written) {
            (Some(e), _) => Err(e),
            (None, written) => written.map_err(haven_error),
        }
    }

    /// Runs `f` on the write transaction under way, or fails with the
    /// error Realm users know, naming `what` was attempted.
    fn in_write<R>(
        &self,
        what: impl FnOnce() -> String,
        f: impl FnOnce(&mut WriteTransaction<'static>) -> haven::Result<R>,
    ) -> Result<R> {
        match self.writing() {
            // SAFETY: see `write`: set only while the transaction lives, and
            // used by one call at a time on the JavaScript thread.
            Some(tx) => f(unsafe { &mut *(tx as *mut WriteTransaction<'static>) }).map_err(haven_error),
            None => Err(named(
                "InvalidStateError",
                format!("cannot {} outside of a write transaction: call it inside realm.write(() => {{ … }})", what()),
            )),
        }
    }

    /// Creates (or, with mode "modified"/"all", updates) an object.
    #[napi]
    pub fn create(&self, object_type: String, values: String, mode: String) -> Result<()> {
        let mode = update_mode(&mode)?;
        let values: Json = serde_json::from_str(&values).map_err(|e| named("TypeError", e))?;
        self.in_write(|| format!("create a {object_type}"), |tx| tx.create(&object_type, values, mode))
    }

    /// Sets one property of the object with this primary key.
    #[napi]
    pub fn set_property(&self, object_type: String, primary_key: Json, property: String, value: Json) -> Result<()> {
        let key = self::value(&primary_key, "the primary key")?;
        let value = self::value(&value, &property)?;
        let what = || format!("set {object_type}.{property}");
        self.in_write(what, |tx| tx.set(&object_type, key, &property, value))
    }

    /// Edits one element of a list property: `op` is "insert" (at
    /// `at[0]`), "set", "remove" (returns the removed value), "move" (from
    /// `at[0]` so that it ends at `at[1]`) or "clear".
    #[napi]
    pub fn list_edit(
        &self,
        object_type: String,
        primary_key: Json,
        property: String,
        op: String,
        at: Vec<u32>,
        value: Json,
    ) -> Result<Json> {
        let key = self::value(&primary_key, "the primary key")?;
        let (at, to) = (at.first().copied().unwrap_or(0) as usize, at.get(1).copied().unwrap_or(0) as usize);
        let element = match op.as_str() {
            "insert" | "set" => self::value(&value, &property)?,
            _ => Value::Null,
        };
        let what = || format!("change the list {object_type}.{property}");
        let removed = self.in_write(what, |tx| match op.as_str() {
            "insert" => tx.list_insert(&object_type, key, &property, at, element).map(|_| Value::Null),
            "set" => tx.list_set(&object_type, key, &property, at, element).map(|_| Value::Null),
            "remove" => tx.list_remove(&object_type, key, &property, at),
            "move" => tx.list_move(&object_type, key, &property, at, to).map(|_| Value::Null),
            "clear" => tx.list_clear(&object_type, key, &property).map(|_| Value::Null),
            other => Err(unknown_operation(&object_type, &property, "list", other)),
        })?;
        Ok(removed.to_json())
    }

    /// Sets one field of an embedded object: `path` is `"address.city"`.
    #[napi]
    pub fn set_path(&self, object_type: String, primary_key: Json, path: String, value: Json) -> Result<()> {
        let key = self::value(&primary_key, "the primary key")?;
        let value = self::value(&value, &path)?;
        let what = || format!("set {object_type}.{path}");
        self.in_write(what, |tx| tx.set_path(&object_type, key, &path, value))
    }

    /// Edits one element of a set property: `op` is "add" or "remove";
    /// whether the set changed.
    #[napi]
    pub fn set_edit(
        &self,
        object_type: String,
        primary_key: Json,
        property: String,
        op: String,
        value: Json,
    ) -> Result<bool> {
        let key = self::value(&primary_key, "the primary key")?;
        let element = self::value(&value, &property)?;
        let what = || format!("change the set {object_type}.{property}");
        self.in_write(what, |tx| match op.as_str() {
            "add" => tx.set_add(&object_type, key, &property, element),
            "remove" => tx.set_remove(&object_type, key, &property, element),
            other => Err(unknown_operation(&object_type, &property, "set", other)),
        })
    }

    /// Edits one entry of a dictionary property: `op` is "put" (`value`
    /// under `entry`) or "remove"; whether the dictionary changed (always
    /// true for a put).
    #[napi]
    pub fn dictionary_edit(
        &self,
        object_type: String,
        primary_key: Json,
        property: String,
        op: String,
        entry: String,
        value: Json,
    ) -> Result<bool> {
        let key = self::value(&primary_key, "the primary key")?;
        let what = || format!("change the dictionary {object_type}.{property}");
        match op.as_str() {
            "put" => {
                let value = self::value(&value, &property)?;
                self.in_write(what, |tx| tx.dict_put(&object_type, key, &property, &entry, value).map(|()| true))
            }
            "remove" => self.in_write(what, |tx| tx.dict_remove(&object_type, key, &property, &entry)),
            other => Err(haven_error(unknown_operation(&object_type, &property, "dictionary", other))),
        }
    }

    /// Deletes the object with this primary key; whether it existed.
    #[napi]
    pub fn delete_object(&self, object_type: String, primary_key: Json) -> Result<bool> {
        let key = self::value(&primary_key, "the primary key")?;
        self.in_write(|| format!("delete {object_type} {primary_key}"), |tx| tx.delete(&object_type, key))
    }

    /// The object with this primary key as JSON text (JavaScript's
    /// `JSON.parse` makes the object faster than napi can, property by
    /// property), or null.
    #[napi]
    pub fn object(&self, object_type: String, primary_key: Json) -> Result<Option<String>> {
        let key = self::value(&primary_key, "the primary key")?;
        let json = if self.writing().is_some() {
            // Inside a write, reads see the transaction's own writes.
            self.in_write(String::new, |tx| tx.get(&object_type, key))?
        } else {
            self.db()?.object_for_primary_key(&object_type, key).map_err(haven_error)?.map(|o| o.to_json())
        };
        Ok(json.map(|j| j.to_string()))
    }

    /// A number that changes with each commit to the file (this realm's,
    /// another handle's, the sync session's): what was read at one version
    /// stays valid until it changes.
    #[napi(getter)]
    pub fn version(&self) -> Result<f64> {
        // A commit count: exact in a double far beyond any file's life.
        Ok(self.db()?.version() as f64)
    }

    /// The objects of `object_type` that match `query` (with `args`; a
    /// `SORT` or `LIMIT` in it applies), read now from one snapshot.
    #[napi]
    pub fn rows(&self, object_type: String, query: Option<String>, args: Vec<Json>) -> Result<NativeRows> {
        let results = self.results(&object_type, query, &args)?;
        let db = self.db()?;
        let names =
            db.schema().object_type(&object_type).map(|t| t.properties().iter().map(|p| p.name.clone()).collect());
        Ok(NativeRows {
            objects: RefCell::new(results.to_vec().map_err(haven_error)?),
            names: names.unwrap_or_default(),
        })
    }

    /// Inside `write`: the objects of `object_type` that match `query`
    /// (which may end in `SORT`/`LIMIT`), as the write transaction sees
    /// them, its own writes included, as JSON text of an array.
    #[napi]
    pub fn rows_in_write(&self, object_type: String, query: Option<String>, args: Vec<Json>) -> Result<String> {
        let args = arguments(&args)?;
        let query = query.unwrap_or_else(|| "TRUEPREDICATE".to_owned());
        let rows =
            self.in_write(|| format!("query {object_type} in a write"), |tx| tx.query(&object_type, &query, &args))?;
        Ok(Json::Array(rows).to_string())
    }

    fn results(&self, object_type: &str, query: Option<String>, args: &[Json]) -> Result<haven::Results> {
        let results = self.db()?.objects(object_type).map_err(haven_error)?;
        let Some(query) = query else { return Ok(results) };
        results.filtered(&query, &arguments(args)?).map_err(haven_error)
    }

    /// Resolves once the listeners have heard of every commit so far.
    #[napi]
    pub fn listeners_settled(&self) -> Result<AsyncTask<ListenersSettled>> {
        Ok(AsyncTask::new(ListenersSettled(Some(self.db()?))))
    }

    /// Calls `callback` (on the JavaScript thread) after each commit that
    /// changes the objects matching `query`, with the primary keys
    /// inserted, deleted and modified. The subscription lasts while the
    /// returned listener does and does not keep the process alive.
    #[napi]
    pub fn add_listener(
        &self,
        object_type: String,
        query: Option<String>,
        args: Vec<Json>,
        callback: Function<Json, ()>,
    ) -> Result<NativeListener> {
        let results = self.results(&object_type, query, &args)?;
        let callback = callback.build_threadsafe_function::<Json>().callee_handled::<false>().weak::<true>().build()?;
        let keys = |values: &[Value]| values.iter().map(Value::to_json).collect::<Vec<_>>();
        let token = results.add_listener(move |changes| {
            let changes = serde_json::json!({
                "insertions": keys(&changes.insertions),
                "deletions": keys(&changes.deletions),
                "modifications": keys(&changes.modifications),
            });
            callback.call(changes, ThreadsafeFunctionCallMode::NonBlocking);
        });
        Ok(NativeListener { token: RefCell::new(Some(token)) })
    }

    /// Calls `callback` (on the JavaScript thread) after each commit that
    /// writes or deletes the object with this primary key, with
    /// `{deleted, changedProperties}`.
    #[napi]
    pub fn add_object_listener(
        &self,
        object_type: String,
        primary_key: Json,
        callback: Function<Json, ()>,
    ) -> Result<NativeListener> {
        let key = self::value(&primary_key, "the primary key")?;
        let object = self.db()?.object_for_primary_key(&object_type, key).map_err(haven_error)?.ok_or_else(|| {
            named("InvalidStateError", format!("{object_type} {primary_key} was deleted or is not there"))
        })?;
        let callback = callback.build_threadsafe_function::<Json>().callee_handled::<false>().weak::<true>().build()?;
        let token = object.add_listener(move |change| {
            let change = match change {
                ObjectChange::Deleted => serde_json::json!({"deleted": true, "changedProperties": []}),
                ObjectChange::Modified { properties } => {
                    serde_json::json!({"deleted": false, "changedProperties": properties})
                }
            };
            callback.call(change, ThreadsafeFunctionCallMode::NonBlocking);
        });
        Ok(NativeListener { token: RefCell::new(Some(token)) })
    }
}

/// Waits, off the JavaScript thread, until the listeners have heard of
/// every commit so far. While it runs it keeps the process alive, so that
/// a listener's call, queued before it ends, is delivered even when
/// nothing else is pending (listeners alone never keep the process alive).
///
/// The handle is dropped on the worker thread as soon as the wait ends,
/// not when the promise resolves on the JavaScript thread: a realm closed
/// in between (to initiate a client reset, say) must not stay open.
pub struct ListenersSettled(Option<Database>);

impl Task for ListenersSettled {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        if let Some(db) = self.0.take() {
            db.wait_for_listeners();
        }
        Ok(())
    }

    fn resolve(&mut self, _: Env, _: ()) -> Result<()> {
        Ok(())
    }
}

/// The objects a query matched, as read from one snapshot: JavaScript
/// reads their properties one at a time, as it needs them, while the
/// realm's version stays the one they were read at.
#[napi]
pub struct NativeRows {
    /// Emptied by `release`: each object keeps its database open.
    objects: RefCell<Vec<haven::Object>>,
    /// The type's property names, in schema order: JavaScript names a
    /// property by its position, which crosses faster than a string.
    names: Vec<String>,
}

#[napi]
impl NativeRows {
    /// How many objects matched.
    #[napi(getter)]
    pub fn length(&self) -> u32 {
        self.objects.borrow().len() as u32
    }

    /// The property at `position` (in schema order) of every object, as
    /// JSON text of an array: a loop over the rows reads a column in one
    /// call rather than one call per row.
    #[napi]
    pub fn column(&self, position: u32) -> String {
        let name = self.names.get(position as usize).map_or("", String::as_str);
        let objects = self.objects.borrow();
        let mut text = Vec::with_capacity(objects.len() * 8 + 2);
        text.push(b'[');
        for (i, object) in objects.iter().enumerate() {
            if i > 0 {
                text.push(b',');
            }
            // Strings, the most common column, skip the JSON value in between.
            let written = match object.get(name) {
                Some(Value::String(s)) => serde_json::to_writer(&mut text, &s),
                Some(v) => serde_json::to_writer(&mut text, &v.to_json()),
                None => serde_json::to_writer(&mut text, &Json::Null),
            };
            written.expect("writing JSON to memory");
        }
        text.push(b']');
        String::from_utf8(text).expect("JSON is UTF-8")
    }

    /// The property at `position` (in schema order) of the object at
    /// `index` (`undefined` past the end).
    #[napi]
    pub fn value(&self, index: u32, position: u32) -> Option<Json> {
        let objects = self.objects.borrow();
        Some(objects.get(index as usize)?.get(self.names.get(position as usize)?)?.to_json())
    }

    /// The object at `index`, as JSON text.
    #[napi]
    pub fn row(&self, index: u32) -> Option<String> {
        Some(self.objects.borrow().get(index as usize)?.to_json().to_string())
    }

    /// Every object, as JSON text of an array.
    #[napi]
    pub fn to_json(&self) -> String {
        Json::Array(self.objects.borrow().iter().map(haven::Object::to_json).collect()).to_string()
    }

    /// Lets go of the objects (and the database they keep open): the realm
    /// does this when it closes or reads a newer version.
    #[napi]
    pub fn release(&self) {
        self.objects.borrow_mut().clear();
    }
}

/// A listener's subscription, as JavaScript holds it: `remove()` (or
/// being collected) unsubscribes.
#[napi]
pub struct NativeListener {
    token: RefCell<Option<NotificationToken>>,
}

#[napi]
impl NativeListener {
    /// Unsubscribes; later calls do nothing.
    #[napi]
    pub fn remove(&self) {
        self.token.borrow_mut().take();
    }
}

// After `NativeDatabase`: napi-rs expands a class's impl blocks only once it
// has seen the class.
#[cfg(feature = "bench")]
pub mod bench;
pub mod sync;
