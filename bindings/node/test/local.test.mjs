// The local database from JavaScript: open, write, read, query, delete,
// close, and the errors a Realm JS user meets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Haven from "haven";

const DogSchema = {
  name: "Dog",
  primaryKey: "_id",
  properties: { _id: "int", name: "string", age: "int?", lastUpdated: "int" },
};

function freshPath() {
  return join(mkdtempSync(join(tmpdir(), "haven-node-")), "dogs.haven");
}

async function dogs() {
  return Haven.open({ path: freshPath(), schema: [DogSchema] });
}

test("objects created in a write are read back, queried, sorted and deleted", async () => {
  const realm = await dogs();
  realm.write(() => {
    realm.create("Dog", { _id: 1, name: "Rex", age: 3, lastUpdated: 10 });
    realm.create("Dog", { _id: 2, name: "Ace", age: 5, lastUpdated: 20 });
    realm.create("Dog", { _id: 3, name: "Max", lastUpdated: 30 });
  });
  const all = realm.objects("Dog");
  assert.equal(all.length, 3);
  const recent = all.filtered("lastUpdated > $0", 15).sorted("lastUpdated", true);
  assert.deepEqual(recent.map((d) => d.name), ["Max", "Ace"]);
  assert.equal(recent[0].name, "Max");
  assert.equal(recent[5], undefined);
  assert.deepEqual([...all.sorted("name")].map((d) => d._id), [2, 3, 1]);
  realm.write(() => realm.create("Dog", { _id: 4, name: "Ace", age: 1, lastUpdated: 40 }));
  assert.deepEqual(all.sorted([["name", false], ["age", true]]).map((d) => d._id), [2, 4, 3, 1], "every sort key counts");
  assert.equal(all.indexOf(realm.objectForPrimaryKey("Dog", 3)), all.map((d) => d._id).indexOf(3));
  assert.equal(all.includes(realm.objectForPrimaryKey("Dog", 3)), true);
  realm.write(() => realm.delete(realm.objectForPrimaryKey("Dog", 4)));
  assert.equal(all.max("age"), 5);
  assert.equal(all.min("age"), 3);
  assert.equal(all.sum("age"), 8);
  assert.equal(all.avg("age"), 4);
  assert.deepEqual(realm.objectForPrimaryKey("Dog", 3).toJSON(), { _id: 3, name: "Max", age: null, lastUpdated: 30 });
  realm.write(() => realm.delete(realm.objectForPrimaryKey("Dog", 2)));
  assert.equal(all.length, 2, "Results are live");
  assert.equal(realm.objectForPrimaryKey("Dog", 2), undefined);
  realm.close();
});

test("assigning a property inside write() writes it; outside, it is refused", async () => {
  const realm = await dogs();
  const rex = realm.write(() => realm.create("Dog", { _id: 1, name: "Rex", lastUpdated: 1 }));
  realm.write(() => {
    rex.name = "Rexy";
  });
  assert.equal(rex.name, "Rexy");
  assert.equal(realm.objectForPrimaryKey("Dog", 1).name, "Rexy");
  assert.throws(() => {
    rex.name = "outside";
  }, { name: "InvalidStateError", message: /outside of a write transaction/ });
  assert.equal(rex.name, "Rexy", "nothing was written");
  realm.close();
});

test("an update mode upserts; an unknown one is refused by name", async () => {
  const realm = await dogs();
  realm.write(() => realm.create("Dog", { _id: 1, name: "Rex", age: 3, lastUpdated: 1 }));
  realm.write(() => realm.create("Dog", { _id: 1, age: 4 }, Haven.UpdateMode.Modified));
  assert.deepEqual(realm.objectForPrimaryKey("Dog", 1).toJSON(), { _id: 1, name: "Rex", age: 4, lastUpdated: 1 });
  realm.write(() => realm.create("Dog", { _id: 1, age: 5 }, true));
  assert.equal(realm.objectForPrimaryKey("Dog", 1).age, 5);
  assert.throws(() => realm.write(() => realm.create("Dog", { _id: 1, lastUpdated: 2, name: "x" })), { name: "DuplicatePrimaryKeyError" });
  assert.throws(() => realm.write(() => realm.create("Dog", { _id: 9, name: "x", lastUpdated: 2 }, "sometimes")), {
    name: "TypeError",
    message: /unknown update mode 'sometimes'/,
  });
  realm.close();
});

test("a write whose callback throws writes nothing and rethrows", async () => {
  const realm = await dogs();
  const boom = new Error("boom");
  assert.throws(() => realm.write(() => {
    realm.create("Dog", { _id: 1, name: "Rex", lastUpdated: 1 });
    throw boom;
  }), (e) => e === boom);
  assert.equal(realm.objects("Dog").length, 0);
  assert.equal(realm.isInTransaction, false);
  realm.close();
});

test("bad input gets a named error that says what is wrong", async () => {
  const realm = await dogs();
  assert.throws(() => realm.write(() => realm.create("Dog", { _id: 1, name: 7, lastUpdated: 1 })), { name: "TypeError", message: /name/ });
  assert.throws(() => realm.write(() => realm.create("Dog", { _id: 1, lastUpdated: 1 })), { name: "TypeError", message: /name/ });
  assert.throws(() => realm.objects("Cat"), { name: "TypeError", message: /unknown object type 'Cat'/ });
  assert.throws(() => realm.create("Dog", { _id: 1, name: "Rex", lastUpdated: 1 }), { name: "InvalidStateError" });
  assert.throws(() => realm.objects("Dog").filtered("age >> 3").length, (e) => e.name === "QueryError" && /column/.test(e.message));
  assert.throws(() => realm.write(() => realm.write(() => {})), { name: "InvalidStateError", message: /already in a write/ });
  assert.equal(realm.objects("Dog").length, 0, "nothing was written");
  await assert.rejects(Haven.open({ path: "/proc/no/such/dir/x.haven", schema: [DogSchema] }), (e) => e.name === "HavenError" && /x\.haven/.test(e.message));
  await assert.rejects(Haven.open({ path: freshPath(), schema: [{ name: "Bad", properties: { a: "nonsense" } }] }), { name: "SchemaError" });
  realm.close();
});

test("a closed realm gets a clear error, never a crash", async () => {
  const realm = await dogs();
  const all = realm.objects("Dog");
  realm.close();
  assert.equal(realm.isClosed, true);
  assert.throws(() => all.length, { name: "ClosedError", message: /closed/ });
  assert.throws(() => realm.write(() => {}), { name: "ClosedError" });
  realm.close(); // twice is fine
});

test("two realms on one path share one database", async () => {
  const path = freshPath();
  const one = await Haven.open({ path, schema: [DogSchema] });
  const two = await Haven.open({ path, schema: [DogSchema] });
  one.write(() => one.create("Dog", { _id: 1, name: "Rex", lastUpdated: 1 }));
  assert.equal(two.objectForPrimaryKey("Dog", 1).name, "Rex");
  one.close();
  assert.equal(two.objects("Dog").length, 1, "closing one leaves the other open");
  two.close();
});

test("CommonJS and ESM give the same module", async () => {
  const { createRequire } = await import("node:module");
  const required = createRequire(import.meta.url)("haven");
  assert.equal(required.open, Haven.open);
});

test("dates read back as Dates and links as the linked objects", async () => {
  const Person = { name: "Person", primaryKey: "_id", properties: { _id: "int", name: "string", born: "date?", friend: "Person?", friends: "Person[]" } };
  const realm = await Haven.open({ path: freshPath(), schema: [Person] });
  const born = new Date("2020-02-29T12:00:00Z");
  realm.write(() => {
    const ann = realm.create("Person", { _id: 1, name: "Ann", born });
    const cy = realm.create("Person", { _id: 3, name: "Cy" });
    realm.create("Person", { _id: 2, name: "Bob", friend: ann, friends: [ann, cy] });
  });
  const bob = realm.objectForPrimaryKey("Person", 2);
  const ann = realm.objectForPrimaryKey("Person", 1);
  assert.ok(ann.born instanceof Date);
  assert.equal(ann.born.getTime(), born.getTime());
  assert.equal(bob.born, null);
  assert.equal(bob.friend.name, "Ann");
  assert.ok(bob.friend.born instanceof Date, "a linked object reads like any other");
  assert.deepEqual(bob.friends.map((p) => p.name), ["Ann", "Cy"]);
  assert.deepEqual(ann.toJSON(), { _id: 1, name: "Ann", born, friend: null, friends: [] });
  assert.equal(realm.objects("Person").filtered("born < $0", new Date("2021-01-01")).length, 1, "a Date is a query argument");
  assert.equal(realm.objects("Person").max("born").getTime(), born.getTime());
  realm.close();
});

test("reads are never stale: a write, another realm's commit and a delete are seen at once", async () => {
  const path = freshPath();
  const realm = await Haven.open({ path, schema: [DogSchema] });
  const other = await Haven.open({ path, schema: [DogSchema] });
  realm.write(() => {
    for (let i = 0; i < 100; i++) realm.create("Dog", { _id: i, name: `dog ${i}`, lastUpdated: i });
  });
  const all = realm.objects("Dog").sorted("_id");
  // Enough reads that the loop reads whole columns at once.
  const names = all.map((d) => d.name);
  assert.equal(names[99], "dog 99");
  const first = all[0];
  other.write(() => {
    other.objectForPrimaryKey("Dog", 0).name = "renamed";
    other.delete(other.objectForPrimaryKey("Dog", 99));
  });
  assert.equal(first.name, "renamed", "an object read from query rows sees another realm's commit");
  assert.equal(all.length, 99);
  assert.equal(all.map((d) => d.name)[0], "renamed");
  realm.write(() => {
    first.name = "again";
    assert.equal(first.name, "again", "inside a write, a read sees the write");
    assert.equal(realm.objectForPrimaryKey("Dog", 0).name, "again");
  });
  const gone = all[98];
  realm.write(() => realm.delete(realm.objectForPrimaryKey("Dog", 98)));
  assert.throws(() => gone.name, { name: "InvalidStateError", message: /deleted/ });
  assert.equal(gone.isValid(), false);
  let n = 0;
  for (const dog of all) n += dog.name ? 1 : 0;
  assert.equal(n, 98);
  other.close();
  realm.close();
});

test("bad input is refused with a named error that names the type, property or argument, and writes nothing", async () => {
  const realm = await dogs();
  realm.write(() => realm.create("Dog", { _id: 1, name: "Rex", lastUpdated: 1 }));
  const rex = realm.objectForPrimaryKey("Dog", 1);
  const refusals = [
    [() => { rex.name = "x"; }, "InvalidStateError", /set Dog\.name outside of a write/],
    [() => realm.create("Dog", { _id: 2, name: "x", lastUpdated: 1 }), "InvalidStateError", /create a Dog outside/],
    [() => realm.delete(rex), "InvalidStateError", /delete Dog 1 outside/],
    [() => realm.write(() => realm.create("Dog", { _id: 2, name: "x", lastUpdated: 1, nme: 1 })), "TypeError", /Dog has no property 'nme'/],
    [() => realm.write(() => { rex.age = "old"; }), "TypeError", /Dog\.age: expected int/],
    [() => realm.write(() => { rex._id = 5; }), "InvalidStateError", /Dog\._id: a primary key cannot change/],
    [() => realm.write(() => realm.create("Dog", { _id: 2, lastUpdated: 1 })), "TypeError", /Dog\.name is required/],
    [() => realm.objectForPrimaryKey("Dog", "one"), "TypeError", /Dog\._id: expected int/],
    [() => realm.objectForPrimaryKey("Dog"), "TypeError", /needs the _id/],
    [() => realm.objects("Dog").filtered("age > $0").length, "QueryError", /column 8: the query uses \$0/],
    [() => realm.objects("Dog").sorted("nope").length, "QueryError", /no property 'nope'/],
    [() => realm.objects("Dog").filtered("age > $0", {}).length, "TypeError", /\$0/],
    [() => realm.objects("Dog").min("nope"), "TypeError", /min\("nope"\): Dog has no such property/],
    [() => Haven.App.Sync.initiateClientReset(new Haven.App({ baseUrl: "ws://localhost:1" }), 5), "TypeError", /path must be/],
  ];
  for (const [attempt, name, message] of refusals) assert.throws(attempt, { name, message }, `${name} ${message}`);
  assert.deepEqual(realm.objects("Dog").toJSON(), [{ _id: 1, name: "Rex", age: null, lastUpdated: 1 }], "nothing was written");
  realm.close();
});

test("class-based models: objects are instances of their class, with its getters and methods", async () => {
  class Dog extends Haven.Realm.Object {
    static schema = DogSchema;
    get title() {
      return `${this.name} (${this.age ?? "?"})`;
    }
    birthday() {
      this.age = (this.age ?? 0) + 1;
    }
  }
  const realm = await Haven.open({ path: freshPath(), schema: [Dog] });
  const rex = realm.write(() => realm.create(Dog, { _id: 1, name: "Rex", age: 3, lastUpdated: 1 }));
  assert.ok(rex instanceof Dog);
  assert.ok(rex instanceof Haven.Realm.Object);
  assert.equal(rex.title, "Rex (3)");
  realm.write(() => rex.birthday());
  assert.equal(realm.objects(Dog)[0].title, "Rex (4)", "a method's assignment wrote through the object");
  assert.equal(realm.objectForPrimaryKey(Dog, 1).age, 4);
  assert.equal(await Promise.resolve(rex), rex, "an object is not mistaken for a promise");
  realm.close();
});

test("inside write(), queries see that write's own creates, changes and deletes", async () => {
  const realm = await dogs();
  realm.write(() => realm.create("Dog", { _id: 1, name: "Rex", age: 3, lastUpdated: 1 }));
  const all = realm.objects("Dog");
  const old = all.filtered("age > $0", 2).sorted("age", true);
  realm.write(() => {
    realm.create("Dog", { _id: 2, name: "Ace", age: 9, lastUpdated: 2 });
    assert.equal(all.length, 2);
    assert.deepEqual(old.map((d) => d.name), ["Ace", "Rex"]);
    realm.objectForPrimaryKey("Dog", 1).age = 1;
    assert.deepEqual(old.map((d) => d._id), [2]);
    assert.equal(all.max("age"), 9);
    realm.delete(old);
    assert.equal(all.length, 1);
    assert.equal(all[0].name, "Rex");
  });
  assert.deepEqual(all.toJSON(), [{ _id: 1, name: "Rex", age: 1, lastUpdated: 1 }]);
  assert.throws(() => realm.write(() => {
    realm.create("Dog", { _id: 3, name: "Max", lastUpdated: 3 });
    assert.equal(all.length, 2);
    throw new Error("changed my mind");
  }), { message: "changed my mind" });
  assert.equal(all.length, 1, "a write that threw wrote nothing");
  realm.close();
});

test("filtered() takes SORT(…) and LIMIT(…) after its predicate, with sorted() and other filters", async () => {
  const realm = await dogs();
  realm.write(() => {
    for (const [i, name, age] of [[1, "Rex", 3], [2, "Ace", 7], [3, "Max", 5], [4, "Bo", 7], [5, "Cy", 1]]) {
      realm.create("Dog", { _id: i, name, age, lastUpdated: i });
    }
  });
  const all = realm.objects("Dog");
  const ids = (results) => results.map((d) => d._id);
  assert.deepEqual(ids(all.filtered("age > $0 SORT(age DESC, name ASC)", 2)), [2, 4, 3, 1]);
  assert.deepEqual(ids(all.filtered("age > 2 SORT(age DESC, _id DESC) LIMIT(2)")), [4, 2]);
  assert.deepEqual(ids(all.filtered("TRUEPREDICATE SORT(_id DESC) LIMIT(3)").filtered("age > 2")), [4, 3, 2], "the limit applies after every filter");
  assert.deepEqual(ids(all.filtered("SORT(age ASC, _id ASC)").sorted("name")), [2, 4, 5, 3, 1], "a later sorted() leads");
  assert.deepEqual(ids(all.filtered("name == 'LIMIT(1)' OR age == 1 SORT(_id ASC)")), [5], "a suffix inside a string is not one");
  assert.equal(all.filtered("age > 0 LIMIT(2)").filtered("age > 0 LIMIT(4)").length, 2, "the smaller limit holds");
  assert.throws(() => all.filtered("age > 0 SORT(age DESC) junk").length, { name: "QueryError" });
  realm.close();
});
