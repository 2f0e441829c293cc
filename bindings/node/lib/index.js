"use strict";
// Haven for Node.js, in Realm JS's shape: Haven.open gives a Realm whose
// objects read current values and write inside realm.write(), and whose
// Results are live and array-like. The native half (crates/haven-node)
// is a database handle; everything Realm-shaped is here.

const fs = require("node:fs");
const nodePath = require("node:path");
const binding = require("../native/index.js");

const { NativeDatabase } = binding;

/** An error whose `name` says what went wrong (Realm JS users test it). */
class HavenError extends Error {
  constructor(name, message) {
    super(message);
    this.name = name;
  }
}

/** A native error's "[Kind] message" as a named error. */
function named(error) {
  const match = /^\[(\w+)\] ([\s\S]*)$/.exec(error && error.message);
  return match ? new HavenError(match[1], match[2]) : error;
}

/** Calls into the native half, turning "[Kind] message" into a named error. */
function native(call) {
  try {
    return call();
  } catch (error) {
    throw named(error);
  }
}

/** Awaits a native promise, naming its error as `native` does. */
async function nativeAsync(promise) {
  try {
    return await promise;
  } catch (error) {
    throw named(error);
  }
}

const UpdateMode = Object.freeze({ Never: "never", Modified: "modified", All: "all" });

const UPDATE_MODES = new Set(Object.values(UpdateMode));

function updateMode(mode) {
  if (mode === undefined || mode === false) return UpdateMode.Never;
  if (mode === true) return UpdateMode.All;
  if (UPDATE_MODES.has(mode)) return mode;
  throw new HavenError("TypeError", `unknown update mode '${String(mode)}': use "never", "modified", "all" or Haven.UpdateMode`);
}

/** Realm's schema forms: an array of object schemas, or of classes with a static `schema`. */
function schemaJson(schema) {
  if (schema === undefined) return undefined;
  if (!Array.isArray(schema)) throw new HavenError("SchemaError", "config.schema must be an array of object schemas");
  return JSON.stringify(schema.map((s) => (typeof s === "function" ? s.schema : s)));
}

/** Stretches of synchronous JavaScript. A realm asks the native side
 * for its version once per stretch, as Realm JS refreshes between
 * event-loop turns: a loop over Results reads one state of the database,
 * and reads in it are served from what the stretch already read. */
const stretch = { id: 0, ending: false };

function currentStretch() {
  if (!stretch.ending) {
    stretch.ending = true;
    queueMicrotask(endStretch);
  }
  return stretch.id;
}

function endStretch() {
  stretch.id++;
  stretch.ending = false;
}

/** Primitive property types; any other type name is a link. */
const PRIMITIVES = new Set(["bool", "int", "float", "double", "string", "data", "date", "objectId", "uuid", "decimal128", "mixed"]);

/** The collection suffixes of Realm's schema strings. */
const COLLECTIONS = { "[]": "list", "<>": "set", "{}": "dictionary" };

/** How each property of a type reads: a date as a Date, a link as the
 * linked object, a list or set element by element, a dictionary value by
 * value; everything else as stored. `collection` is "list", "set",
 * "dictionary" or undefined. */
function typeInfo(objectSchema, embeddedTypes) {
  const properties = new Map();
  const dates = [];
  /** Computed `linkingObjects` properties: not stored, so no position. */
  const backlinks = new Map();
  for (const [name, spec] of Object.entries(objectSchema.properties)) {
    if (spec.type === "linkingObjects") {
      backlinks.set(name, spec);
      continue;
    }
    const written = typeof spec === "string" ? spec : spec.type;
    const collection = COLLECTIONS[written.slice(-2)];
    const base = (collection ? written.slice(0, -2) : written).replace(/\?$/, "");
    if (embeddedTypes.has(base) && !collection) {
      properties.set(name, { read: (v) => v, position: properties.size, collection: "embedded" });
      continue;
    }
    // A list of embedded objects is stored as a list of plain objects;
    // listItems() makes each a live embedded object.
    const stored = PRIMITIVES.has(base) || embeddedTypes.has(base);
    const one = base === "date" ? (v, _) => new Date(v) : stored ? undefined : (v, realm) => makeObject(realm, base, v);
    const maybe = one && ((v, realm) => (v === null ? null : one(v, realm)));
    let read = (v) => v;
    if (one && collection === "dictionary") read = (v, realm) => Object.fromEntries(Object.entries(v).map(([k, item]) => [k, maybe(item, realm)]));
    else if (one && collection) read = (v, realm) => v.map((item) => one(item, realm));
    else if (one) read = maybe;
    properties.set(name, { read, position: properties.size, collection, embedded: embeddedTypes.has(base) });
    if (base === "date") dates.push(name);
  }
  return { name: objectSchema.name, primaryKey: objectSchema.primaryKey, properties, names: [...properties.keys()], dates, backlinks };
}

/** A type given by name, or as a class with a static `schema` (as Realm JS takes it). */
function typeName(type) {
  if (typeof type === "function" && type.schema && typeof type.schema.name === "string") return type.schema.name;
  if (typeof type !== "string") throw new HavenError("TypeError", "an object type is given by its name, a string (or a class with a static schema)");
  return type;
}

/** The base class of class-based models (`class Dog extends
 * Haven.Realm.Object { static schema = … }`): the objects of such a type
 * are instances of the class, with its getters and methods. */
class RealmObject {}

/** The model classes of a configuration's schema, by type name. */
function modelClasses(schema) {
  if (!Array.isArray(schema)) return new Map();
  return new Map(schema.filter((s) => typeof s === "function").map((c) => [c.schema.name, c]));
}

/** A Realm: one open database. */
class Realm {
  constructor(handle, classes = new Map()) {
    this._handle = handle;
    this._classes = classes;
    /** Every native subscription of this realm: removed when it closes. */
    this._subscriptions = new Set();
    this._schema = JSON.parse(handle.schemaJson);
    const embeddedTypes = new Set(this._schema.filter((s) => s.embedded).map((s) => s.name));
    this._types = new Map(this._schema.map((s) => [s.name, typeInfo(s, embeddedTypes)]));
    /** What was read, valid while `_stamp()` returns the same number:
     * it changes when the database does, and with each write of this realm. */
    this._stampValue = 0;
    this._stretch = -1;
    this._nativeVersion = undefined;
    /** Query results read at the current stamp, by query. */
    this._rowsCache = new Map();
  }

  get path() {
    return native(() => this._handle.path);
  }

  get isClosed() {
    return this._handle.isClosed;
  }

  get isInTransaction() {
    return this._handle.isInTransaction;
  }

  /** The schema, in Realm's form. */
  get schema() {
    return this._schema;
  }

  /** Runs `callback` in a write transaction and returns what it returns;
   * if it throws, nothing is written and the exception propagates. */
  write(callback) {
    if (typeof callback !== "function") throw new HavenError("TypeError", "realm.write needs a function");
    let result;
    try {
      native(() => this._handle.write(() => {
        result = callback();
      }));
    } finally {
      this._changed();
    }
    if (this._subscriptions.size > 0) {
      // Keeps the process alive until this commit's listeners have run.
      this._handle.listenersSettled().catch(() => {});
    }
    return result;
  }

  /** Creates an object (or updates one, with "modified" or "all") and returns it. */
  create(type, values, mode) {
    const info = this._type(type);
    if (values === null || typeof values !== "object") {
      throw new HavenError("TypeError", `${info.name}: realm.create needs an object of property values`);
    }
    // An object of another realm (a backup's, say) is copied by value.
    const json = isObject(values) ? currentRow(values[OBJECT]) : plain(values);
    const how = updateMode(mode);
    native(() => this._handle.create(info.name, JSON.stringify(json), how));
    this._changed();
    return makeObject(this, info.name, json[info.primaryKey]);
  }

  /** The object with this primary key, or undefined (as Realm JS). */
  objectForPrimaryKey(type, primaryKey) {
    const info = this._type(type);
    if (primaryKey === undefined) throw new HavenError("TypeError", `objectForPrimaryKey("${info.name}", key) needs the ${info.primaryKey} to look up`);
    const stamp = this._stamp();
    const row = parseRow(native(() => this._handle.object(info.name, plain(primaryKey))));
    if (row === null) return undefined;
    const object = makeObject(this, info.name, row[info.primaryKey]);
    Object.assign(object[OBJECT], { row, stamp });
    return object;
  }

  /** Every object of a type, as live Results. */
  objects(type) {
    return makeResults(this, this._type(type).name, [], [], undefined);
  }

  /** Deletes an object, an array of objects, or Results. */
  delete(target) {
    if (target === null || target === undefined) return;
    if (isObject(target)) {
      const { type, key } = target[OBJECT];
      native(() => this._handle.deleteObject(type, key));
      this._changed();
      return;
    }
    if (typeof target[Symbol.iterator] === "function") {
      for (const object of [...target]) this.delete(object);
      return;
    }
    throw new HavenError("TypeError", "realm.delete takes an object, an array of objects, or Results");
  }

  /** Closes the realm; using it afterwards throws a clear error. */
  close() {
    if (this.isInTransaction) throw new HavenError("InvalidStateError", "cannot close a realm inside its write transaction");
    for (const subscription of this._subscriptions) subscription.remove();
    this._subscriptions.clear();
    this._forget();
    if (!this._handle.isClosed) native(() => this._handle.close());
  }

  /** Subscribes through `subscribe` (a native call that returns a
   * subscription); the subscription ends with `remove` or with the realm. */
  _subscribe(subscribe) {
    const subscription = native(subscribe);
    this._subscriptions.add(subscription);
    return {
      remove: () => {
        subscription.remove();
        this._subscriptions.delete(subscription);
      },
    };
  }

  _type(type) {
    const name = typeName(type);
    const info = this._types.get(name);
    if (info === undefined) throw new HavenError("TypeError", `unknown object type '${name}'; the schema has ${[...this._types.keys()].join(", ")}`);
    return info;
  }

  /** The number that says whether what was read is still current. */
  _stamp() {
    if (this._stretch !== stretch.id) {
      this._stretch = currentStretch();
      const version = native(() => this._handle.version);
      if (version !== this._nativeVersion) {
        this._nativeVersion = version;
        this._forget();
      }
    }
    return this._stampValue;
  }

  /** This realm wrote (or committed): what was read is stale, here and in
   * other realms on the same file. */
  _changed() {
    this._forget();
    endStretch();
  }

  _forget() {
    this._stampValue++;
    for (const entry of this._rowsCache.values()) {
      // Objects read from these rows find themselves by primary key from now on.
      if (entry.handedOut) entryKeys(entry);
      entry.rows.release();
    }
    this._rowsCache.clear();
  }

  /** The rows of a query, read once per stamp. */
  _rows(type, query, args) {
    const stamp = this._stamp();
    const cacheKey = JSON.stringify([type, query, args]);
    let entry = this._rowsCache.get(cacheKey);
    if (entry === undefined) {
      const { primaryKey, properties, names } = this._types.get(type);
      // Inside a write, the transaction answers (its own writes included).
      const rows = this._handle.isInTransaction
        ? new WrittenRows(JSON.parse(native(() => this._handle.rowsInWrite(type, query, args))), names)
        : new SnapshotRows(native(() => this._handle.rows(type, query, args)));
      const keyPosition = properties.get(primaryKey).position;
      entry = { rows, length: rows.length, keys: undefined, keyPosition, handedOut: false, stamp, columns: [], reads: 0 };
      this._rowsCache.set(cacheKey, entry);
    }
    return entry;
  }
}

const OBJECT = Symbol("haven.object");
/** On an embedded object: its fields now (null when there is none). */
const EMBEDDED = Symbol("haven.embedded");

function isObject(value) {
  return value !== null && typeof value === "object" && value[OBJECT] !== undefined;
}

/** Plain JSON of values that may hold Haven objects (a link is written as
 * its primary key) or Dates; values that hold neither are passed as they are. */
function plain(values) {
  if (values === null || typeof values !== "object") return values;
  if (isObject(values)) return values[OBJECT].key;
  // An embedded object is copied as it is now: read later, one in a list
  // could be another element by then.
  const fields = values[EMBEDDED];
  if (fields !== undefined) return fields === null ? null : { ...fields };
  if (values instanceof Date) return values.getTime();
  if (Array.isArray(values) || values instanceof HavenSet || values instanceof List) return Array.from(values, plain);
  let copy;
  for (const k of Object.keys(values)) {
    const v = values[k];
    if (v !== null && typeof v === "object") {
      copy ??= { ...values };
      copy[k] = plain(v);
    }
  }
  return copy ?? values;
}

/** A query's rows as read from one snapshot (`NativeRows`), read a
 * value, a row or a column at a time. */
class SnapshotRows {
  constructor(rows) {
    this.native = rows;
    this.length = rows.length;
  }

  value(index, position) {
    return this.native.value(index, position);
  }

  column(position) {
    return JSON.parse(this.native.column(position));
  }

  row(index) {
    return parseRow(this.native.row(index));
  }

  all() {
    return JSON.parse(this.native.toJson());
  }

  release() {
    this.native.release();
  }
}

/** Inside a write: a query's rows as the write sees them, the same way. */
class WrittenRows {
  constructor(rows, names) {
    this.rows = rows;
    this.names = names;
    this.length = rows.length;
  }

  value(index, position) {
    return this.rows[index]?.[this.names[position]];
  }

  column(position) {
    const name = this.names[position];
    return this.rows.map((row) => row[name]);
  }

  row(index) {
    return this.rows[index];
  }

  all() {
    return this.rows.map((row) => ({ ...row }));
  }

  release() {}
}

/** The primary keys of a query's rows, read when first needed. */
function entryKeys(entry) {
  entry.keys ??= entry.rows.column(entry.keyPosition);
  return entry.keys;
}

/** Reads of single values from one query's rows after which a property
 * is read for every row at once (a loop is reading them all). */
const COLUMN_AFTER = 32;

/** What an object of the realm knows of itself: its identity, and what it
 * read at which stamp (a row of its own, or its place in query rows). */
class ObjectState {
  constructor(realm, type, key, entry, index, stamp) {
    this.realm = realm;
    this.type = type;
    this.knownKey = key;
    this.info = realm._types.get(type);
    this.entry = entry;
    this.index = index;
    this.row = undefined;
    this.stamp = stamp;
    this.listeners = undefined;
    this.proto = (realm._classes.get(type) || RealmObject).prototype;
  }

  /** The primary key (of an object read from a query's rows: read when first needed). */
  get key() {
    this.knownKey ??= entryKeys(this.entry)[this.index];
    return this.knownKey;
  }
}

/** The object's values as stored, read again if the realm changed. */
function currentRow(state) {
  const stamp = state.realm._stamp();
  if (state.row === undefined || state.stamp !== stamp) {
    const row = state.entry !== undefined && state.stamp === stamp
      ? state.entry.rows.row(state.index)
      : parseRow(native(() => state.realm._handle.object(state.type, state.key)));
    if (row === null || row === undefined) throw new HavenError("InvalidStateError", `${state.type} ${JSON.stringify(state.key)} was deleted or is not there`);
    Object.assign(state, { row, entry: undefined, stamp });
  }
  return state.row;
}

/** Rows cross from the native side as JSON text: `JSON.parse` builds them
 * faster than napi does property by property. */
function parseRow(text) {
  return text === null || text === undefined ? text : JSON.parse(text);
}

function readProperty(state, property, { read, position }) {
  const stamp = state.realm._stamp();
  const entry = state.entry;
  if (entry === undefined || state.stamp !== stamp) return read(currentRow(state)[property], state.realm);
  let column = entry.columns[position];
  if (column === undefined && ++entry.reads > COLUMN_AFTER) column = entry.columns[position] = entry.rows.column(position);
  return read(column === undefined ? entry.rows.value(state.index, position) : column[state.index], state.realm);
}

/** A row as `toJSON` gives it: dates as Dates, links as primary keys (no cycles). */
function withDates(row, info, realm) {
  for (const name of info.dates) row[name] = info.properties.get(name).read(row[name], realm);
  return row;
}

function objectListeners(state, proxy) {
  const { realm, type, key } = state;
  state.listeners ??= listenerSet((callback) => {
    let active = true;
    // A call queued before the listener was removed, or its realm closed, is dropped.
    const subscription = realm._subscribe(() =>
      realm._handle.addObjectListener(type, key, (changes) => active && !realm.isClosed && callback(proxy, changes)),
    );
    return {
      remove: () => {
        active = false;
        subscription.remove();
      },
    };
  });
  return state.listeners;
}

const OBJECT_METHODS = {
  toJSON: (state) => () => withDates({ ...currentRow(state) }, state.info, state.realm),
  isValid: (state) => () => {
    if (state.realm.isClosed) return false;
    try {
      currentRow(state);
      return true;
    } catch {
      return false;
    }
  },
  objectSchema: (state) => () => state.realm.schema.find((s) => s.name === state.type),
  addListener: (state, proxy) => (callback) => objectListeners(state, proxy).add(callback),
  removeListener: (state, proxy) => (callback) => objectListeners(state, proxy).remove(callback),
  removeAllListeners: (state, proxy) => () => objectListeners(state, proxy).removeAll(),
};

/** An object's properties read current values and, inside realm.write(),
 * assignments write; one handler for every object. */
const objectHandler = {
  get(state, property, proxy) {
    if (property === OBJECT) return state;
    const known = state.info.properties.get(property);
    if (known !== undefined) return known.collection ? makeCollection(state, property, known) : readProperty(state, property, known);
    const backlink = state.info.backlinks.get(property);
    if (backlink !== undefined) {
      // Live Results of the objects whose link points here, as Realm JS's linkingObjects.
      const key = currentRow(state)[state.info.primaryKey];
      return state.realm.objects(backlink.objectType).filtered(`${backlink.property} == $0`, key);
    }
    const method = OBJECT_METHODS[property];
    // Then the model class's getters and methods, with the object as `this`.
    return method === undefined ? Reflect.get(state.proto, property, proxy) : method(state, proxy);
  },
  getPrototypeOf(state) {
    return state.proto;
  },
  set(state, property, value) {
    const { realm } = state;
    native(() => realm._handle.setProperty(state.type, state.key, String(property), plain(value)));
    realm._changed();
    return true;
  },
  has(state, property) {
    return state.info.properties.has(property);
  },
  ownKeys(state) {
    currentRow(state);
    return [...state.info.properties.keys()];
  },
  getOwnPropertyDescriptor(state, property) {
    const known = state.info.properties.get(property);
    if (known === undefined) return undefined;
    return { value: readProperty(state, property, known), enumerable: true, configurable: true, writable: true };
  },
};

/** A list property of an object, live as Realm JS's `Realm.List`: reads
 * see the list as it is now, and inside realm.write() its mutators edit
 * it element by element, so that edits other devices make to the same
 * list meanwhile merge with them instead of being overwritten. */
class List {
  constructor(object, property, known) {
    this.object = object;
    this.property = property;
    this.known = known;
  }
}

/** The list's elements now, as read values (Dates, linked objects; in a
 * list of embedded objects, live embedded objects, by index). */
function listItems(list) {
  const items = detachedItems(list);
  if (!list.known.embedded) return items;
  return items.map((_, i) => new Proxy(new EmbeddedObject(list.object, list.property, list.known, i), embeddedHandler));
}

/** The list's elements now, detached from it: what a removal returns (an
 * embedded object as a plain object, since its place in the list is gone). */
function detachedItems(list) {
  return readProperty(list.object, list.property, list.known);
}

/** One element edit; returns the removed value (as stored). */
function editList(list, op, index, to = 0, value = null) {
  const { realm, type, key } = list.object;
  const removed = native(() => realm._handle.listEdit(type, key, list.property, op, [index, to], plain(value)));
  realm._changed();
  return removed;
}

/** An index as Array.prototype.splice reads it: negative counts from the end; clamped to 0..len. */
function spliceIndex(index, len) {
  const i = Math.trunc(Number(index)) || 0;
  return i < 0 ? Math.max(len + i, 0) : Math.min(i, len);
}

// Items given to push, unshift and splice are copied (`plain`) before the
// first edit: an embedded object read from this list names its element by
// index, which the edits shift.
const LIST_METHODS = {
  push: (list) => (...items) => {
    let length = detachedItems(list).length;
    for (const item of items.map(plain)) editList(list, "insert", length++, 0, item);
    return length;
  },
  unshift: (list) => (...items) => {
    items.map(plain).forEach((item, i) => editList(list, "insert", i, 0, item));
    return detachedItems(list).length;
  },
  pop: (list) => () => {
    const items = detachedItems(list);
    if (items.length === 0) return undefined;
    editList(list, "remove", items.length - 1);
    return items[items.length - 1];
  },
  shift: (list) => () => {
    const items = detachedItems(list);
    if (items.length === 0) return undefined;
    editList(list, "remove", 0);
    return items[0];
  },
  splice: (list) => (start, deleteCount, ...items) => {
    const all = detachedItems(list);
    const from = start === undefined ? all.length : spliceIndex(start, all.length);
    const count = deleteCount === undefined ? all.length - from : Math.min(Math.max(Math.trunc(Number(deleteCount)) || 0, 0), all.length - from);
    const given = items.map(plain);
    for (let i = 0; i < count; i++) editList(list, "remove", from);
    given.forEach((item, i) => editList(list, "insert", from + i, 0, item));
    return all.slice(from, from + count);
  },
  /** Realm JS's `remove(index)` and `move(from, to)`. */
  remove: (list) => (index) => {
    editList(list, "remove", index);
  },
  move: (list) => (from, to) => {
    editList(list, "move", from, to);
  },
  isValid: (list) => () => OBJECT_METHODS.isValid(list.object)(),
  toJSON: (list) => () => {
    const stored = currentRow(list.object)[list.property];
    return list.object.info.dates.includes(list.property) ? stored.map((ms) => new Date(ms)) : stored.slice();
  },
};

/** Array methods that would change a copy, not the list: refused. */
const IN_PLACE = new Set(["sort", "reverse", "fill", "copyWithin"]);

/** Index reads, `length`, iteration and every read-only Array method see
 * the list now; the mutators above edit it. */
const listHandler = {
  get(list, property) {
    const method = LIST_METHODS[property];
    if (method !== undefined) return method(list);
    if (IN_PLACE.has(property)) {
      throw new HavenError("TypeError", `${list.object.type}.${list.property}.${property}() would change a copy, not the list: call it on a copy ([...list].${property}()), or use move() to reorder the list`);
    }
    const items = listItems(list);
    const value = items[property];
    return typeof value === "function" ? value.bind(items) : value;
  },
  set(list, property, value) {
    if (property === "length" && Number(value) === 0) {
      editList(list, "clear", 0);
      return true;
    }
    const index = typeof property === "string" && /^\d+$/.test(property) ? Number(property) : undefined;
    if (index === undefined) {
      throw new HavenError("TypeError", `${list.object.type}.${list.property}: only elements (list[i] = value) and length = 0 can be assigned`);
    }
    editList(list, index === listItems(list).length ? "insert" : "set", index, 0, value);
    return true;
  },
  has(list, property) {
    return property in listItems(list);
  },
  ownKeys(list) {
    return Reflect.ownKeys(listItems(list));
  },
  getOwnPropertyDescriptor(list, property) {
    const descriptor = Reflect.getOwnPropertyDescriptor(listItems(list), property);
    return descriptor && { ...descriptor, configurable: true };
  },
};

/** A set property of an object, live as Realm JS's `Realm.Set`: reads
 * see the set as it is now (each value once, in one order on every
 * device), and inside realm.write() `add`, `delete` and `clear` edit it
 * element by element. */
class HavenSet {
  constructor(object, property, known) {
    this.object = object;
    this.property = property;
    this.known = known;
  }
}

/** Adds or removes one element; whether the set changed. */
function editSet(set, op, value) {
  const { realm, type, key } = set.object;
  const changed = native(() => realm._handle.setEdit(type, key, set.property, op, plain(value)));
  realm._changed();
  return changed;
}

const SET_METHODS = {
  add: (set, proxy) => (value) => {
    editSet(set, "add", value);
    return proxy;
  },
  delete: (set) => (value) => editSet(set, "remove", value),
  has: (set) => (value) => {
    const wanted = plain(value);
    return currentRow(set.object)[set.property].some((v) => v === wanted);
  },
  clear: (set) => () => {
    objectHandler.set(set.object, set.property, []);
  },
  /** A value, not a method: Set's `size`. */
  size: (set) => listItems(set).length,
  isValid: (set) => () => OBJECT_METHODS.isValid(set.object)(),
  toJSON: LIST_METHODS.toJSON,
};

/** Index reads, `length`, `size`, iteration and the read-only Array
 * methods see the set now; `add`, `delete` and `clear` edit it. */
const setHandler = {
  get(set, property, proxy) {
    const method = SET_METHODS[property];
    if (method !== undefined) return method(set, proxy);
    const items = listItems(set);
    const value = items[property];
    return typeof value === "function" ? value.bind(items) : value;
  },
  set(set) {
    throw new HavenError("TypeError", `${set.object.type}.${set.property} is a set: change it with add(), delete() or clear()`);
  },
  has: (set, property) => listHandler.has(set, property),
  ownKeys: (set) => listHandler.ownKeys(set),
  getOwnPropertyDescriptor: (set, property) => listHandler.getOwnPropertyDescriptor(set, property),
};

/** A dictionary property of an object, live as Realm JS's
 * `Realm.Dictionary`: its keys read as properties, and inside
 * realm.write() assigning a key puts it, `remove` (or `delete`) removes
 * it, each entry by entry. */
class Dictionary {
  constructor(object, property, known) {
    this.object = object;
    this.property = property;
    this.known = known;
  }
}

/** Puts or removes one entry. */
function editDictionary(dictionary, op, entry, value = null) {
  const { realm, type, key } = dictionary.object;
  native(() => realm._handle.dictionaryEdit(type, key, dictionary.property, op, String(entry), plain(value)));
  realm._changed();
}

function dictionaryEntries(dictionary) {
  return readProperty(dictionary.object, dictionary.property, dictionary.known);
}

const DICTIONARY_METHODS = {
  /** Puts every entry of `entries`; Realm JS's `set`. */
  set: (dictionary, proxy) => (entries) => {
    for (const [k, v] of Object.entries(entries ?? {})) editDictionary(dictionary, "put", k, v);
    return proxy;
  },
  /** Removes a key or an array of keys; Realm JS's `remove`. */
  remove: (dictionary, proxy) => (keys) => {
    for (const k of Array.isArray(keys) ? keys : [keys]) editDictionary(dictionary, "remove", k);
    return proxy;
  },
  keys: (dictionary) => () => Object.keys(dictionaryEntries(dictionary))[Symbol.iterator](),
  values: (dictionary) => () => Object.values(dictionaryEntries(dictionary))[Symbol.iterator](),
  entries: (dictionary) => () => Object.entries(dictionaryEntries(dictionary))[Symbol.iterator](),
  isValid: (dictionary) => () => OBJECT_METHODS.isValid(dictionary.object)(),
  toJSON: (dictionary) => () => {
    const stored = { ...currentRow(dictionary.object)[dictionary.property] };
    if (!dictionary.object.info.dates.includes(dictionary.property)) return stored;
    return Object.fromEntries(Object.entries(stored).map(([k, ms]) => [k, ms === null ? null : new Date(ms)]));
  },
};

const dictionaryHandler = {
  get(dictionary, property, proxy) {
    const method = DICTIONARY_METHODS[property];
    if (method !== undefined) return method(dictionary, proxy);
    if (typeof property === "symbol") return undefined;
    return dictionaryEntries(dictionary)[property];
  },
  set(dictionary, property, value) {
    editDictionary(dictionary, "put", property, value);
    return true;
  },
  deleteProperty(dictionary, property) {
    editDictionary(dictionary, "remove", property);
    return true;
  },
  has(dictionary, property) {
    return Object.hasOwn(dictionaryEntries(dictionary), property);
  },
  ownKeys(dictionary) {
    return Object.keys(dictionaryEntries(dictionary));
  },
  getOwnPropertyDescriptor(dictionary, property) {
    const entries = dictionaryEntries(dictionary);
    if (!Object.hasOwn(entries, property)) return undefined;
    return { value: entries[property], enumerable: true, configurable: true, writable: true };
  },
};

/** An embedded object, live: its fields read as properties, and inside
 * realm.write() assigning one sets that field alone (`set_path`), so that
 * other devices' edits of its other fields merge with it. In a list, it is
 * the element at `index` (the element there now, if the list changes). */
class EmbeddedObject {
  constructor(object, property, known, index) {
    this.object = object;
    this.property = property;
    this.known = known;
    this.index = index;
  }
}

/** The embedded object's fields now; null when there is none (set to null,
 * or its index now past the list's end). */
function embeddedFields(embedded) {
  const value = dictionaryEntries(embedded);
  return embedded.index === undefined ? value : (value?.[embedded.index] ?? null);
}

const embeddedHandler = {
  get(embedded, property) {
    if (property === "toJSON") return () => ({ ...embeddedFields(embedded) });
    if (property === "isValid") return () => OBJECT_METHODS.isValid(embedded.object)() && embeddedFields(embedded) !== null;
    if (property === EMBEDDED) return embeddedFields(embedded);
    if (typeof property === "symbol") return undefined;
    return embeddedFields(embedded)?.[property];
  },
  set(embedded, property, value) {
    const { realm, type, key } = embedded.object;
    const at = embedded.index === undefined ? "" : `${embedded.index}.`;
    native(() => realm._handle.setPath(type, key, `${embedded.property}.${at}${String(property)}`, plain(value)));
    realm._changed();
    return true;
  },
  // An embedded object set to null since it was read has no fields.
  has: (embedded, property) => Object.hasOwn(embeddedFields(embedded) ?? {}, property),
  ownKeys: (embedded) => Object.keys(embeddedFields(embedded) ?? {}),
  getOwnPropertyDescriptor(embedded, property) {
    const fields = embeddedFields(embedded) ?? {};
    if (!Object.hasOwn(fields, property)) return undefined;
    return { value: fields[property], enumerable: true, configurable: true, writable: true };
  },
};

/** A collection property: a live List, Set or Dictionary; or an embedded
 * object (null when there is none). */
function makeCollection(state, property, known) {
  switch (known.collection) {
    case "embedded":
      return readProperty(state, property, known) === null ? null : new Proxy(new EmbeddedObject(state, property, known), embeddedHandler);
    case "set":
      return new Proxy(new HavenSet(state, property, known), setHandler);
    case "dictionary":
      return new Proxy(new Dictionary(state, property, known), dictionaryHandler);
    default:
      return new Proxy(new List(state, property, known), listHandler);
  }
}

/** An object of the realm: `entry`/`index` when it was read as part of a query's rows at `stamp`. */
function makeObject(realm, type, key, entry, index, stamp) {
  return new Proxy(new ObjectState(realm, type, key, entry, index, stamp), objectHandler);
}

/** The listeners of one object or collection, by callback: adding one
 * twice adds it once, as in Realm JS. */
function listenerSet(subscribe) {
  const active = new Map();
  return {
    add(callback) {
      if (typeof callback !== "function") throw new HavenError("TypeError", "a listener must be a function");
      if (!active.has(callback)) active.set(callback, subscribe(callback));
    },
    remove(callback) {
      const subscription = active.get(callback);
      if (subscription) subscription.remove();
      active.delete(callback);
    },
    removeAll() {
      for (const subscription of active.values()) subscription.remove();
      active.clear();
    },
  };
}

/** Live Results: each read sees the realm as it is now (read once per
 * stamp: iterating does not run the query again). */
function makeResults(realm, type, filters, sorts, limit) {
  const [query, args] = combine(filters);
  const sortedQuery = withSuffix(query, sorts, limit);
  const snapshot = () => realm._rows(type, sortedQuery, args);
  const objectAt = (entry, i) => {
    entry.handedOut = true;
    return makeObject(realm, type, undefined, entry, i, entry.stamp);
  };
  const objectsOf = (entry) => Array.from({ length: entry.length }, (_, i) => objectAt(entry, i));
  const known = (property, method) => {
    if (!realm._types.get(type).properties.has(property)) throw new HavenError("TypeError", `${method}(${JSON.stringify(property)}): ${type} has no such property`);
    return property;
  };
  const rowsOf = (entry) => entry.rows.all().map((row) => withDates(row, realm._types.get(type), realm));
  let proxy;
  const listeners = listenerSet((callback) => {
    // Realm JS's change sets are indices: of the old snapshot for
    // deletions, of the new one for insertions and modifications.
    const order = () => entryKeys(snapshot()).map((k) => JSON.stringify(k));
    let before = order();
    let active = true;
    const subscription = realm._subscribe(() => realm._handle.addListener(type, sortedQuery, args, (changes) => {
      // A call queued before the listener was removed, or its realm closed, is dropped.
      if (!active || realm.isClosed) return;
      const after = order();
      const at = (keys, wanted) => {
        const set = new Set(wanted.map((k) => JSON.stringify(k)));
        return keys.flatMap((k, i) => (set.has(k) ? [i] : []));
      };
      const set = {
        insertions: at(after, changes.insertions),
        deletions: at(before, changes.deletions),
        newModifications: at(after, changes.modifications),
        oldModifications: at(before, changes.modifications),
      };
      before = after;
      callback(proxy, set);
    }));
    // Realm JS calls a new listener once, with nothing changed, soon after adding it.
    const initial = setImmediate(() => {
      if (active && !realm.isClosed) callback(proxy, { insertions: [], deletions: [], newModifications: [], oldModifications: [] });
    });
    return {
      remove: () => {
        active = false;
        clearImmediate(initial);
        subscription.remove();
      },
    };
  });
  const results = {
    addListener(callback) {
      listeners.add(callback);
    },
    removeListener(callback) {
      listeners.remove(callback);
    },
    removeAllListeners() {
      listeners.removeAll();
    },
    get length() {
      return snapshot().length;
    },
    get type() {
      return type;
    },
    filtered(query, ...args) {
      if (typeof query !== "string") throw new HavenError("TypeError", "filtered takes a query string");
      // A SORT(…) in the query sorts as sorted() would; a LIMIT(…) applies on top of any other.
      const { predicate, sort, limit: more } = splitSuffix(query);
      const order = sort === undefined ? sorts : [sort, ...sorts];
      const least = more === undefined || (limit !== undefined && limit < more) ? limit : more;
      return makeResults(realm, type, [...filters, [predicate, args.map(plain)]], order, least);
    },
    sorted(property, reverse) {
      const order = Array.isArray(property) ? property : [[property, reverse === true]];
      const more = order.map((o) => (Array.isArray(o) ? `${o[0]} ${o[1] ? "DESC" : "ASC"}` : `${o} ASC`));
      // A later sort leads, earlier ones break its ties (as chained sorts do in Realm JS).
      return makeResults(realm, type, filters, [...more, ...sorts], limit);
    },
    toJSON() {
      return rowsOf(snapshot());
    },
    toArray() {
      return objectsOf(snapshot());
    },
    isEmpty() {
      return snapshot().length === 0;
    },
    min(property) {
      return aggregate(rowsOf(snapshot()), known(property, "min"), (a, b) => (b < a ? b : a));
    },
    max(property) {
      return aggregate(rowsOf(snapshot()), known(property, "max"), (a, b) => (b > a ? b : a));
    },
    sum(property) {
      return numbers(rowsOf(snapshot()), known(property, "sum")).reduce((a, b) => a + b, 0);
    },
    avg(property) {
      const all = numbers(rowsOf(snapshot()), known(property, "avg"));
      return all.length === 0 ? undefined : all.reduce((a, b) => a + b, 0) / all.length;
    },
    [Symbol.iterator]() {
      // One snapshot for the whole loop, as Realm JS iterates.
      const entry = snapshot();
      let i = 0;
      return {
        next: () => (i < entry.length ? { value: objectAt(entry, i++), done: false } : { value: undefined, done: true }),
        [Symbol.iterator]() {
          return this;
        },
      };
    },
  };
  for (const method of ["forEach", "map", "filter", "find", "findIndex", "some", "every", "reduce", "slice", "entries", "keys", "values"]) {
    results[method] = (...args) => Array.prototype[method].apply(objectsOf(snapshot()), args);
  }
  // Objects are proxies made afresh at each read: compared by primary key.
  results.indexOf = (object) => {
    if (!isObject(object) || object[OBJECT].type !== type) return -1;
    const wanted = JSON.stringify(object[OBJECT].key);
    return entryKeys(snapshot()).findIndex((k) => JSON.stringify(k) === wanted);
  };
  results.includes = (object) => results.indexOf(object) !== -1;
  proxy = new Proxy(results, {
    get(target, property, receiver) {
      if (typeof property === "string" && /^\d+$/.test(property)) {
        const entry = snapshot();
        const i = Number(property);
        return i < entry.length ? objectAt(entry, i) : undefined;
      }
      return Reflect.get(target, property, receiver);
    },
  });
  return proxy;
}

/** `query` with the sort order (clauses such as "age DESC", the leading
 * one first) and the limit as the query language's suffixes. */
function withSuffix(query, sorts, limit) {
  if (sorts.length === 0 && limit === undefined) return query;
  const sort = sorts.length === 0 ? "" : ` SORT(${sorts.join(", ")})`;
  return `${query === undefined ? "TRUEPREDICATE" : query}${sort}${limit === undefined ? "" : ` LIMIT(${limit})`}`;
}

/** A `filtered` query's predicate, and the sort keys and limit of the
 * SORT(…) and LIMIT(…) that may follow it (outside strings and parentheses).
 * A suffix it cannot read stays in the predicate, for the parser to report. */
function splitSuffix(query) {
  let depth = 0;
  let quote;
  for (let i = 0; i < query.length; i++) {
    const c = query[i];
    if (quote !== undefined) {
      if (c === "\\") i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === "(" || c === ")") {
      depth += c === "(" ? 1 : -1;
    } else if (depth === 0 && /\s/.test(query[i - 1] ?? " ") && /^(SORT|LIMIT)\s*\(/i.test(query.slice(i))) {
      const suffix = readSuffix(query.slice(i).trimEnd());
      if (suffix === undefined) break;
      return { predicate: query.slice(0, i).trim() || "TRUEPREDICATE", ...suffix };
    }
  }
  return { predicate: query, sort: undefined, limit: undefined };
}

function readSuffix(text) {
  const clause = /\s*(SORT|LIMIT)\s*\(([^()]*)\)/iy;
  let sort;
  let limit;
  let match;
  while (clause.lastIndex < text.length && (match = clause.exec(text)) !== null) {
    if (match[1].toUpperCase() === "SORT") sort = sort === undefined ? match[2].trim() : `${sort}, ${match[2].trim()}`;
    else if (/^\s*\d+\s*$/.test(match[2])) limit = Math.min(limit ?? Infinity, Number(match[2]));
    else return undefined;
  }
  return clause.lastIndex === text.length ? { sort, limit } : undefined;
}

/** One query from several `filtered` calls: each clause in parentheses,
 * its $n arguments renumbered. */
function combine(filters) {
  if (filters.length === 0) return [undefined, []];
  const clauses = [];
  const args = [];
  for (const [query, given] of filters) {
    const offset = args.length;
    clauses.push(`(${query.replace(/\$(\d+)/g, (_, n) => `$${Number(n) + offset}`)})`);
    args.push(...given);
  }
  return [clauses.join(" AND "), args];
}

function numbers(rows, property) {
  return rows.map((row) => row[property]).filter((v) => typeof v === "number");
}

function aggregate(rows, property, pick) {
  const values = rows.map((row) => row[property]).filter((v) => v !== null && v !== undefined);
  return values.length === 0 ? undefined : values.reduce(pick);
}

/** Opens a realm (Realm JS's `Realm.open`): `path`, `schema`, `readOnly`,
 * and `sync` for a realm that syncs. */
async function open(config = {}) {
  if (config === null || typeof config !== "object") throw new HavenError("TypeError", "Haven.open takes a configuration object");
  if (config.path !== undefined && typeof config.path !== "string") throw new HavenError("TypeError", "config.path must be a string");
  if (config.sync !== undefined) return openSynced(config);
  const path = config.path === undefined ? "default.haven" : config.path;
  const handle = native(() => NativeDatabase.open(path, schemaJson(config.schema), config.readOnly === true));
  return new Realm(handle, modelClasses(config.schema));
}

/** The default download wait of a first open: Haven.open never waits forever. */
const DEFAULT_OPEN_TIMEOUT_MS = 10_000;

const RESET_MODES = ["manual", "discardUnsyncedChanges", "recoverUnsyncedChanges", "recoverOrDiscardUnsyncedChanges", "discardLocal"];

async function openSynced(config) {
  const sync = config.sync;
  if (sync === null || typeof sync !== "object") throw new HavenError("TypeError", "config.sync must be an object");
  const user = sync.user;
  if (!(user instanceof User)) throw new HavenError("TypeError", "config.sync.user must be a logged-in user: await app.logIn(Haven.Credentials.jwt(token))");
  if (typeof sync.partitionValue !== "string") {
    throw new HavenError("TypeError", `config.sync.partitionValue must be a string (got ${sync.partitionValue === null ? "null" : typeof sync.partitionValue})`);
  }
  if (config.schema === undefined) throw new HavenError("SchemaError", "a realm that syncs needs config.schema");
  const reset = sync.clientReset || {};
  const mode = reset.mode === undefined ? "recoverUnsyncedChanges" : reset.mode;
  if (!RESET_MODES.includes(mode)) {
    throw new HavenError("TypeError", `unknown client reset mode '${String(mode)}': use "manual", "discardUnsyncedChanges", "recoverUnsyncedChanges" or "recoverOrDiscardUnsyncedChanges"`);
  }
  const onError = sync.onError || sync.error;
  if (mode === "manual" && typeof reset.onManual !== "function" && typeof onError !== "function") {
    throw new HavenError("SyncError", "client reset mode \"manual\" needs clientReset.onManual or sync.onError to report a reset to");
  }
  const path = config.path === undefined ? nodePath.join("haven-sync", `${encodeURIComponent(sync.partitionValue)}.haven`) : config.path;
  const existed = fs.existsSync(path);
  const behavior = (existed ? sync.existingRealmFileBehavior : sync.newRealmFileBehavior) || {
    type: existed ? "openImmediately" : "downloadBeforeOpen",
  };
  let realm;
  const reportError = (json) => {
    const error = new HavenError(json.name, json.message);
    if (json.code) error.code = json.code;
    if (json.name === "ClientReset") {
      error.config = { path: json.backupPath, readOnly: true, schema: config.schema };
      if (mode === "manual" && typeof reset.onManual === "function") return reset.onManual(realm && realm.syncSession, json.backupPath);
    }
    if (typeof onError === "function") onError(realm && realm.syncSession, error);
    else console.error(`Haven sync error (give sync.onError to handle it): ${error.name}: ${error.message}`);
  };
  const options = {
    url: user.app.baseUrl,
    partition: sync.partitionValue,
    token: user.credentials.token,
    clientResetMode: mode === "discardLocal" ? "discardUnsyncedChanges" : mode,
    tlsRootCertificates: sync.ssl && sync.ssl.certificate ? String(sync.ssl.certificate) : undefined,
    waitForDownload: false,
  };
  const callbacks = resetCallbacks(reset, () => realm, modelClasses(config.schema));
  const handle = await nativeAsync(
    binding.openSynced(path, schemaJson(config.schema), options, user.credentials.provider, reportError, ...callbacks),
  );
  realm = new Realm(handle, modelClasses(config.schema));
  realm.syncSession = new SyncSession(realm, user, sync.partitionValue);
  if (behavior.type === "downloadBeforeOpen") {
    const timeout = behavior.timeOut === undefined ? DEFAULT_OPEN_TIMEOUT_MS : behavior.timeOut;
    try {
      await realm.syncSession.downloadAllServerChanges(timeout);
    } catch (error) {
      if (error.name === "TimeoutError" && behavior.timeOutBehavior === "openLocalRealm") return realm;
      realm.close();
      throw error;
    }
  }
  return realm;
}

/** The client reset callbacks, as the native half calls them: on the
 * JavaScript thread, with handles on the frozen database before the reset
 * (and the live one after it, for onAfter); the reset waits until the
 * promise returned here settles, and a throw aborts that attempt. */
function resetCallbacks(reset, currentRealm, classes) {
  const wrap = (callback) => {
    if (callback === undefined) return undefined;
    if (typeof callback !== "function") throw new HavenError("TypeError", "client reset callbacks must be functions");
    return async (...args) => {
      // The native half passes the pair as one array.
      const [beforeNumber, afterNumber] = args.length === 1 && Array.isArray(args[0]) ? args[0] : args;
      const before = new Realm(native(() => NativeDatabase.handedOver(beforeNumber)), classes);
      const after = afterNumber === null || afterNumber === undefined ? undefined : new Realm(native(() => NativeDatabase.handedOver(afterNumber)), classes);
      try {
        await (after ? callback(before, after) : callback(before));
      } finally {
        before.close();
        if (after) after.close();
      }
      return true;
    };
  };
  const fallback = reset.onFallback === undefined ? undefined : (path) => {
    const realm = currentRealm();
    reset.onFallback(realm && realm.syncSession, path);
  };
  return [wrap(reset.onBefore), wrap(reset.onAfter), fallback];
}

/** A realm's sync session (`realm.syncSession`). */
class SyncSession {
  constructor(realm, user, partitionValue) {
    this._realm = realm;
    this.user = user;
    this.config = { user, partitionValue };
  }

  get connectionState() {
    return native(() => this._realm._handle.connectionState);
  }

  isConnected() {
    return this.connectionState === "connected";
  }

  pause() {
    native(() => this._realm._handle.pause());
  }

  resume() {
    native(() => this._realm._handle.resume());
  }

  /** Calls `callback(newState, oldState)` when the connection state changes. */
  addConnectionNotification(callback) {
    if (typeof callback !== "function") throw new HavenError("TypeError", "a connection notification must be a function");
    this._notifications().connection.add(callback);
  }

  removeConnectionNotification(callback) {
    this._notifications().connection.delete(callback);
  }

  /** Calls `callback(transferred, transferable)` as changes upload or
   * download ("upload" or "download"); counted in changesets for uploads
   * and server versions for downloads. "forCurrentlyOutstandingWork" stops
   * once what was outstanding when it was added has moved. */
  addProgressNotification(direction, mode, callback) {
    if (direction !== "upload" && direction !== "download") {
      throw new HavenError("TypeError", `progress direction '${String(direction)}': use "upload" or "download"`);
    }
    if (mode !== "reportIndefinitely" && mode !== "forCurrentlyOutstandingWork") {
      throw new HavenError("TypeError", `progress mode '${String(mode)}': use "reportIndefinitely" or "forCurrentlyOutstandingWork"`);
    }
    if (typeof callback !== "function") throw new HavenError("TypeError", "a progress notification must be a function");
    const notifications = this._notifications();
    const [transferred, transferable] = progressOf(notifications.last, direction);
    notifications.progress.set(callback, { direction, until: mode === "forCurrentlyOutstandingWork" ? transferable : Infinity, done: transferred });
  }

  removeProgressNotification(callback) {
    this._notifications().progress.delete(callback);
  }

  /** The session's status watch, started with the first notification. */
  _notifications() {
    if (this._watch) return this._watch;
    const handle = this._realm._handle;
    const watch = { connection: new Set(), progress: new Map(), last: { connection: handle.connectionState, uploaded: 0, uploadable: 0, downloaded: 0, downloadable: 0 } };
    this._watch = watch;
    this._realm._subscribe(() => handle.watchStatus((status) => {
      if (this._realm.isClosed) return;
      const before = watch.last;
      watch.last = status;
      if (status.connection !== before.connection) {
        for (const callback of [...watch.connection]) callback(status.connection, before.connection);
      }
      for (const [callback, wanted] of [...watch.progress]) {
        const [transferred, transferable] = progressOf(status, wanted.direction);
        if (transferred === wanted.done && transferable === progressOf(before, wanted.direction)[1]) continue;
        wanted.done = transferred;
        if (wanted.until !== Infinity) {
          callback(Math.min(transferred, wanted.until), wanted.until);
          if (transferred >= wanted.until) watch.progress.delete(callback);
        } else {
          callback(transferred, transferable);
        }
      }
    }));
    return watch;
  }

  /** Resolves once the server has every local change; a `TimeoutError` after `timeoutMs`. */
  uploadAllLocalChanges(timeoutMs) {
    return nativeAsync(this._realm._handle.uploadAllLocalChanges(timeoutMs));
  }

  /** Resolves once the realm has what the server had; a `TimeoutError` after `timeoutMs`. */
  downloadAllServerChanges(timeoutMs) {
    return nativeAsync(this._realm._handle.downloadAllServerChanges(timeoutMs));
  }
}

function progressOf(status, direction) {
  return direction === "upload" ? [status.uploaded, status.uploadable] : [status.downloaded, status.downloadable];
}

/** How a user proves who they are: a JWT (fixed, or from an async
 * provider) or, for a server in dev mode, anyone. */
const Credentials = {
  jwt(token) {
    // async: a provider that throws rejects instead of throwing across the native call.
    if (typeof token === "function") return { type: "jwt", token: undefined, provider: async () => token() };
    if (typeof token !== "string") throw new HavenError("TypeError", "Credentials.jwt takes a token string or an async function returning one");
    return { type: "jwt", token, provider: undefined };
  },
  anonymous() {
    return { type: "anonymous", token: "anonymous", provider: undefined };
  },
};

class User {
  constructor(app, credentials) {
    this.app = app;
    this.credentials = credentials;
    this.id = credentials.type === "anonymous" ? "anonymous" : "jwt";
  }

  async logOut() {
    if (this.app.currentUser === this) this.app.currentUser = null;
  }
}

/** Where the server is: `new Haven.App({ baseUrl: "wss://…" })`. */
class App {
  constructor(config) {
    const baseUrl = typeof config === "string" ? config : config && config.baseUrl;
    if (typeof baseUrl !== "string" || !/^wss?:\/\//.test(baseUrl)) {
      throw new HavenError("TypeError", "new Haven.App({ baseUrl }) needs the server's ws:// or wss:// URL");
    }
    this.baseUrl = baseUrl;
    this.currentUser = null;
  }

  async logIn(credentials) {
    if (!credentials || (credentials.type !== "jwt" && credentials.type !== "anonymous")) {
      throw new HavenError("TypeError", "app.logIn takes Haven.Credentials.jwt(…) or Haven.Credentials.anonymous()");
    }
    this.currentUser = new User(this, credentials);
    return this.currentUser;
  }
}

App.Sync = {
  /** Moves a closed realm's file aside so that its next open starts again
   * from the server (a manual client reset). True if a file was moved;
   * throws if the realm is still open. */
  initiateClientReset(app, path) {
    if (!(app instanceof App)) throw new HavenError("TypeError", "initiateClientReset(app, path) takes the App first");
    if (typeof path !== "string") throw new HavenError("TypeError", "initiateClientReset(app, path): path must be the realm's file path, a string");
    return native(() => binding.initiateClientReset(path));
  },
};

const Haven = { open, Realm, Object: RealmObject, App, Credentials, User, SyncSession, UpdateMode, HavenError };
Realm.open = open;
Realm.Object = RealmObject;
Realm.List = List;
Realm.Set = HavenSet;
Realm.Dictionary = Dictionary;
Realm.UpdateMode = UpdateMode;
Realm.App = App;
Realm.Credentials = Credentials;

module.exports = Haven;
module.exports.default = Haven;
