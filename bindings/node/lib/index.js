"use strict";
// Haven for Node.js, in Realm JS's shape: Haven.open gives a Realm whose
// objects read current values and write inside realm.write(), and whose
// Results are live and array-like. The native half (crates/haven-node)
// is a database handle; everything Realm-shaped is here.

const { NativeDatabase } = require("../native/index.js");

/** An error whose `name` says what went wrong (Realm JS users test it). */
class HavenError extends Error {
  constructor(name, message) {
    super(message);
    this.name = name;
  }
}

/** Calls into the native half, turning "[Kind] message" into a named error. */
function native(call) {
  try {
    return call();
  } catch (error) {
    const match = /^\[(\w+)\] ([\s\S]*)$/.exec(error && error.message);
    if (match) throw new HavenError(match[1], match[2]);
    throw error;
  }
}

const UpdateMode = Object.freeze({ Never: "never", Modified: "modified", All: "all" });

function updateMode(mode) {
  if (mode === undefined || mode === false) return UpdateMode.Never;
  if (mode === true) return UpdateMode.All;
  if (Object.values(UpdateMode).includes(mode)) return mode;
  throw new HavenError("TypeError", `unknown update mode '${String(mode)}': use "never", "modified", "all" or Haven.UpdateMode`);
}

/** Realm's schema forms: an array of object schemas, or of classes with a static `schema`. */
function schemaJson(schema) {
  if (schema === undefined) return undefined;
  if (!Array.isArray(schema)) throw new HavenError("SchemaError", "config.schema must be an array of object schemas");
  return JSON.stringify(schema.map((s) => (typeof s === "function" ? s.schema : s)));
}

/** A Realm: one open database. */
class Realm {
  constructor(handle) {
    this._handle = handle;
    /** Every native subscription of this realm: removed when it closes. */
    this._subscriptions = new Set();
    this._schema = JSON.parse(handle.schemaJson);
    this._primaryKeys = new Map(this._schema.map((s) => [s.name, s.primaryKey]));
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
    native(() => this._handle.write(() => {
      result = callback();
    }));
    if (this._subscriptions.size > 0) {
      // Keeps the process alive until this commit's listeners have run.
      this._handle.listenersSettled().catch(() => {});
    }
    return result;
  }

  /** Creates an object (or updates one, with "modified" or "all") and returns it. */
  create(type, values, mode) {
    const key = this._primaryKey(type);
    if (values === null || typeof values !== "object") {
      throw new HavenError("TypeError", `${type}: realm.create needs an object of property values`);
    }
    native(() => this._handle.create(type, plain(values), updateMode(mode)));
    return this._object(type, values[key]);
  }

  /** The object with this primary key, or undefined (as Realm JS). */
  objectForPrimaryKey(type, primaryKey) {
    this._primaryKey(type);
    const found = native(() => this._handle.object(type, primaryKey));
    return found === null ? undefined : this._object(type, primaryKey);
  }

  /** Every object of a type, as live Results. */
  objects(type) {
    this._primaryKey(type);
    return makeResults(this, type, [], []);
  }

  /** Deletes an object, an array of objects, or Results. */
  delete(target) {
    if (target === null || target === undefined) return;
    if (isObject(target)) {
      const { type, key } = target[OBJECT];
      native(() => this._handle.deleteObject(type, key));
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
    for (const subscription of this._subscriptions) subscription.remove();
    this._subscriptions.clear();
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

  _primaryKey(type) {
    if (typeof type !== "string") throw new HavenError("TypeError", "an object type is given by its name, a string");
    const key = this._primaryKeys.get(type);
    if (key === undefined) throw new HavenError("TypeError", `unknown object type '${type}'; the schema has ${[...this._primaryKeys.keys()].join(", ")}`);
    return key;
  }

  _object(type, primaryKey) {
    return makeObject(this, type, primaryKey);
  }
}

const OBJECT = Symbol("haven.object");

function isObject(value) {
  return value !== null && typeof value === "object" && value[OBJECT] !== undefined;
}

/** Plain JSON of values that may hold Haven objects (a link is written as its primary key). */
function plain(values) {
  if (isObject(values)) return values[OBJECT].key;
  if (Array.isArray(values)) return values.map(plain);
  if (values instanceof Date) return values.getTime();
  if (values !== null && typeof values === "object") {
    return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, plain(v)]));
  }
  return values;
}

/** An object of the realm: reads return current values; assignments
 * inside realm.write() write. */
function makeObject(realm, type, key) {
  const read = () => {
    const json = native(() => realm._handle.object(type, key));
    if (json === null) throw new HavenError("InvalidStateError", `${type} ${JSON.stringify(key)} was deleted or is not there`);
    return json;
  };
  const target = Object.create(null);
  let proxy;
  const listeners = listenerSet((callback) =>
    realm._subscribe(() => realm._handle.addObjectListener(type, key, (changes) => callback(proxy, changes))),
  );
  proxy = new Proxy(target, {
    get(_, property) {
      if (property === OBJECT) return { realm, type, key };
      if (property === "toJSON") return () => read();
      if (property === "isValid") return () => native(() => realm._handle.object(type, key)) !== null;
      if (property === "objectSchema") return () => realm.schema.find((s) => s.name === type);
      if (property === "addListener") return (callback) => listeners.add(callback);
      if (property === "removeListener") return (callback) => listeners.remove(callback);
      if (property === "removeAllListeners") return () => listeners.removeAll();
      if (typeof property === "symbol") return undefined;
      return read()[property];
    },
    set(_, property, value) {
      native(() => realm._handle.setProperty(type, key, String(property), plain(value)));
      return true;
    },
    has(_, property) {
      return property in read();
    },
    ownKeys() {
      return Reflect.ownKeys(read());
    },
    getOwnPropertyDescriptor(_, property) {
      const json = read();
      if (!(property in json)) return undefined;
      return { value: json[property], enumerable: true, configurable: true, writable: true };
    },
  });
  return proxy;
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

/** Live Results: each read runs the query on the realm as it is now. */
function makeResults(realm, type, filters, sorts) {
  const rows = () => {
    const [query, args] = combine(filters);
    return native(() => realm._handle.query(type, query, args, sorts));
  };
  const key = realm._primaryKey(type);
  const objectsOf = (all) => all.map((row) => makeObject(realm, type, row[key]));
  let proxy;
  const listeners = listenerSet((callback) => {
    // Realm JS's change sets are indices: of the old snapshot for
    // deletions, of the new one for insertions and modifications.
    let before = rows().map((row) => JSON.stringify(row[key]));
    const [query, args] = combine(filters);
    const subscription = realm._subscribe(() => realm._handle.addListener(type, query, args, (changes) => {
      const after = rows().map((row) => JSON.stringify(row[key]));
      const at = (order, keys) => {
        const wanted = new Set(keys.map((k) => JSON.stringify(k)));
        return order.flatMap((k, i) => (wanted.has(k) ? [i] : []));
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
    const initial = setImmediate(() => callback(proxy, { insertions: [], deletions: [], newModifications: [], oldModifications: [] }));
    return {
      remove: () => {
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
      return rows().length;
    },
    get type() {
      return type;
    },
    filtered(query, ...args) {
      if (typeof query !== "string") throw new HavenError("TypeError", "filtered takes a query string");
      return makeResults(realm, type, [...filters, [query, args.map(plain)]], sorts);
    },
    sorted(property, reverse) {
      const order = Array.isArray(property) ? property : [[property, reverse === true]];
      const more = order.map((o) => (Array.isArray(o) ? [o[0], !o[1]] : [o, true]));
      return makeResults(realm, type, filters, [...sorts, ...more]);
    },
    toJSON() {
      return rows();
    },
    toArray() {
      return objectsOf(rows());
    },
    isEmpty() {
      return rows().length === 0;
    },
    min(property) {
      return aggregate(rows(), property, (a, b) => (b < a ? b : a));
    },
    max(property) {
      return aggregate(rows(), property, (a, b) => (b > a ? b : a));
    },
    sum(property) {
      return numbers(rows(), property).reduce((a, b) => a + b, 0);
    },
    avg(property) {
      const all = numbers(rows(), property);
      return all.length === 0 ? undefined : all.reduce((a, b) => a + b, 0) / all.length;
    },
    [Symbol.iterator]() {
      return objectsOf(rows())[Symbol.iterator]();
    },
  };
  for (const method of ["forEach", "map", "filter", "find", "findIndex", "some", "every", "reduce", "slice", "indexOf", "includes", "entries", "keys", "values"]) {
    results[method] = (...args) => Array.prototype[method].apply(objectsOf(rows()), args);
  }
  proxy = new Proxy(results, {
    get(target, property, receiver) {
      if (typeof property === "string" && /^\d+$/.test(property)) {
        const row = rows()[Number(property)];
        return row === undefined ? undefined : makeObject(realm, type, row[key]);
      }
      return Reflect.get(target, property, receiver);
    },
  });
  return proxy;
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

/** Opens a realm (Realm JS's `Realm.open`): `config.path` and `config.schema`. */
async function open(config = {}) {
  if (config === null || typeof config !== "object") throw new HavenError("TypeError", "Haven.open takes a configuration object");
  if (config.sync !== undefined) {
    throw new HavenError("NotSupportedError", "sync from Node.js is not in this build yet: open the realm without `sync`");
  }
  const path = config.path === undefined ? "default.haven" : config.path;
  if (typeof path !== "string") throw new HavenError("TypeError", "config.path must be a string");
  const handle = native(() => NativeDatabase.open(path, schemaJson(config.schema), config.readOnly === true));
  return new Realm(handle);
}

const Haven = { open, Realm, UpdateMode, HavenError };
Realm.open = open;
Realm.UpdateMode = UpdateMode;

module.exports = Haven;
module.exports.default = Haven;
