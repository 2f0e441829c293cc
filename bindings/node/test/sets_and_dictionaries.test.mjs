// Set and dictionary properties from JavaScript: live Realm.Set and
// Realm.Dictionary objects, which edit one entry at a time.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Haven from "haven";

const Schema = [
  {
    name: "Dog",
    primaryKey: "_id",
    properties: { _id: "int", colors: "string<>", scores: "int{}", visits: "date{}", pals: "Dog{}", friends: "Dog<>" },
  },
];

async function open(prefix = "haven-keyed-") {
  return Haven.open({ path: join(mkdtempSync(join(tmpdir(), prefix)), "dogs.haven"), schema: Schema });
}

test("a set reads like Realm.Set and add, delete and clear edit it", async () => {
  const realm = await open();
  const rex = realm.write(() => realm.create("Dog", { _id: 1, colors: ["white", "brown", "white"] }));
  const colors = rex.colors;
  assert.ok(colors instanceof Haven.Realm.Set);
  assert.deepEqual([...colors], ["brown", "white"], "each value once, in order");
  assert.equal(colors.size, 2);
  assert.equal(colors.length, 2);
  assert.ok(colors.has("brown") && !colors.has("black"));
  realm.write(() => {
    assert.equal(colors.add("black"), colors, "add returns the set");
    colors.add("white");
    assert.equal(colors.delete("brown"), true);
    assert.equal(colors.delete("green"), false);
  });
  assert.deepEqual([...colors], ["black", "white"]);
  assert.deepEqual(JSON.parse(JSON.stringify(rex)).colors, ["black", "white"]);
  realm.write(() => colors.clear());
  assert.equal(colors.size, 0);
  realm.close();
});

test("a dictionary reads like Realm.Dictionary and its keys are written one by one", async () => {
  const realm = await open();
  const rex = realm.write(() => realm.create("Dog", { _id: 1, scores: { agility: 5 } }));
  const scores = rex.scores;
  assert.ok(scores instanceof Haven.Realm.Dictionary);
  assert.equal(scores.agility, 5);
  realm.write(() => {
    scores.speed = 3;
    scores.set({ stamina: 2, agility: 7 });
    scores.remove("stamina");
  });
  assert.deepEqual({ ...scores }, { agility: 7, speed: 3 });
  assert.deepEqual(Object.keys(scores), ["agility", "speed"]);
  assert.deepEqual([...scores.entries()], [["agility", 7], ["speed", 3]]);
  assert.ok("speed" in scores && !("stamina" in scores));
  realm.write(() => {
    delete scores.speed;
  });
  assert.deepEqual(scores.toJSON(), { agility: 7 });
  realm.write(() => {
    rex.scores = {};
  });
  assert.deepEqual({ ...rex.scores }, {}, "a whole assignment replaces");
  realm.close();
});

test("sets and dictionaries of links and of dates hold objects and Dates", async () => {
  const realm = await open();
  realm.write(() => {
    const ace = realm.create("Dog", { _id: 2 });
    const rex = realm.create("Dog", { _id: 1, friends: [ace] });
    rex.pals.best = ace;
    rex.visits.vet = new Date(1_000);
    rex.friends.add(realm.create("Dog", { _id: 3 }));
  });
  const rex = realm.objectForPrimaryKey("Dog", 1);
  assert.equal(rex.pals.best._id, 2);
  assert.ok(rex.visits.vet instanceof Date);
  assert.deepEqual(rex.visits.toJSON(), { vet: new Date(1_000) });
  assert.deepEqual(rex.friends.map((d) => d._id), [2, 3]);
  assert.ok(rex.friends.has(realm.objectForPrimaryKey("Dog", 3)));
  assert.deepEqual(realm.objects("Dog").filtered("friends._id == 3").map((d) => d._id), [1]);
  assert.deepEqual(realm.objects("Dog").filtered("pals.@count == 1").map((d) => d._id), [1]);
  realm.close();
});

test("a set or dictionary edit outside a write, of the wrong type or with a bad key is refused and writes nothing", async () => {
  const realm = await open();
  const rex = realm.write(() => realm.create("Dog", { _id: 1, colors: ["brown"], scores: { a: 1 } }));
  assert.throws(() => rex.colors.add("x"), { name: "InvalidStateError", message: /change the set Dog\.colors outside of a write transaction/ });
  assert.throws(() => { rex.scores.b = 2; }, { name: "InvalidStateError", message: /change the dictionary Dog\.scores outside/ });
  const refusals = [
    [() => rex.colors.add(5), /Dog\.colors: expected string, got int/],
    [() => { rex.colors[0] = "x"; }, /is a set: change it with add\(\), delete\(\) or clear\(\)/],
    [() => { rex.scores.b = "two"; }, /Dog\.scores: at key "b": expected int, got string/],
    [() => { rex.scores["a.b"] = 1; }, /at key "a\.b": a dictionary key cannot contain '\.'/],
    [() => { rex.scores.$x = 1; }, /cannot start with '\$'/],
    [() => realm.create("Dog", { _id: 2, scores: [1] }), /Dog\.scores: expected a dictionary/],
  ];
  for (const [edit, message] of refusals) {
    assert.throws(() => realm.write(() => {
      rex.colors.add("written first");
      edit();
    }), { message });
  }
  assert.deepEqual([...rex.colors], ["brown"], "nothing was written");
  assert.deepEqual({ ...rex.scores }, { a: 1 });
  realm.close();
});

test("two devices' offline edits of one set and one dictionary merge entry by entry", async () => {
  const { startServer } = await import("./server.mjs");
  const server = await startServer();
  const dir = mkdtempSync(join(tmpdir(), "haven-keyed-sync-"));
  try {
    const device = async (name) => {
      const app = new Haven.App({ baseUrl: server.url });
      const user = await app.logIn(Haven.Credentials.anonymous());
      return Haven.open({ path: join(dir, `${name}.haven`), schema: Schema, sync: { user, partitionValue: "p" } });
    };
    const [a, b] = [await device("a"), await device("b")];
    a.write(() => a.create("Dog", { _id: 1, colors: ["brown"], scores: { agility: 5 } }));
    await a.syncSession.uploadAllLocalChanges(10_000);
    await b.syncSession.downloadAllServerChanges(10_000);
    a.syncSession.pause();
    b.syncSession.pause();
    a.write(() => {
      const dog = a.objectForPrimaryKey("Dog", 1);
      dog.colors.add("white");
      dog.scores.speed = 3;
    });
    b.write(() => {
      const dog = b.objectForPrimaryKey("Dog", 1);
      dog.colors.add("black");
      dog.scores.stamina = 4;
    });
    for (const realm of [a, b]) {
      realm.syncSession.resume();
      await realm.syncSession.uploadAllLocalChanges(10_000);
    }
    for (const realm of [a, b]) await realm.syncSession.downloadAllServerChanges(10_000);
    for (const realm of [a, b]) {
      const dog = realm.objectForPrimaryKey("Dog", 1);
      assert.deepEqual([...dog.colors], ["black", "brown", "white"]);
      assert.deepEqual({ ...dog.scores }, { agility: 5, speed: 3, stamina: 4 });
    }
    a.close();
    b.close();
  } finally {
    await server.stop();
  }
});
