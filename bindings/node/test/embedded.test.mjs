// Embedded objects from JavaScript: nested objects that read live and
// write field by field.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Haven from "haven";

const Schema = [
  { name: "Person", primaryKey: "_id", properties: { _id: "string", address: "Address?", homes: "Address[]" } },
  { name: "Address", embedded: true, properties: { city: "string", street: "string?" } },
];

test("an embedded object reads as a live nested object and its fields are written one by one", async () => {
  const realm = await Haven.open({ path: join(mkdtempSync(join(tmpdir(), "haven-embedded-")), "e.haven"), schema: Schema });
  const ann = realm.write(() => realm.create("Person", { _id: "ann", address: { city: "Oslo" } }));
  const bob = realm.write(() => realm.create("Person", { _id: "bob" }));
  assert.equal(bob.address, null);
  assert.equal(ann.address.city, "Oslo");
  assert.deepEqual({ ...ann.address }, { city: "Oslo", street: null });
  realm.write(() => {
    ann.address.street = "Main 1";
    bob.address = { city: "Bergen" };
  });
  assert.deepEqual(ann.toJSON().address, { city: "Oslo", street: "Main 1" });
  assert.equal(bob.address.city, "Bergen");
  assert.deepEqual(realm.objects("Person").filtered("address.city == 'Bergen'").map((p) => p._id), ["bob"]);
  realm.write(() => ann.homes.push({ city: "Tromsø" }, { city: "Bodø" }));
  assert.deepEqual(ann.homes.map((h) => h.city), ["Tromsø", "Bodø"], "a list of embedded objects reads its objects' fields");
  assert.deepEqual(realm.objects("Person").filtered("homes.city == 'Bodø'").map((p) => p._id), ["ann"]);
  assert.throws(() => realm.write(() => { ann.address.city = 5; }), { message: /Person\.address: at field "city": expected string, got int/ });
  assert.throws(() => realm.objects("Address").length, { name: "TypeError", message: /Address is an embedded type/ });
  realm.close();
});

test("an embedded object in a list is live and its fields are written one by one", async () => {
  const realm = await Haven.open({ path: join(mkdtempSync(join(tmpdir(), "haven-embedded-")), "l.haven"), schema: Schema });
  const ann = realm.write(() => realm.create("Person", { _id: "ann", homes: [{ city: "Oslo" }, { city: "Rome" }] }));
  const rome = ann.homes[1];
  assert.deepEqual(rome.toJSON(), { city: "Rome", street: null });
  realm.write(() => {
    rome.street = "Via Appia";
    ann.homes[0].city = "Bergen";
  });
  assert.deepEqual(ann.toJSON().homes, [{ city: "Bergen", street: null }, { city: "Rome", street: "Via Appia" }]);
  assert.deepEqual({ ...ann.homes[1] }, { city: "Rome", street: "Via Appia" });
  assert.deepEqual(realm.objects("Person").filtered("homes.street == 'Via Appia'").map((p) => p._id), ["ann"]);
  assert.throws(() => realm.write(() => { rome.city = 5; }), { message: /Person\.homes: at index 1, field "city": expected string, got int/ });
  realm.write(() => ann.homes.unshift(ann.homes[0], ann.homes[1]));
  assert.deepEqual(ann.homes.map((h) => h.city), ["Bergen", "Rome", "Bergen", "Rome"], "elements are copied as they were when given");
  realm.write(() => ann.homes.splice(0, 2));
  const popped = realm.write(() => ann.homes.pop());
  assert.deepEqual(popped, { city: "Rome", street: "Via Appia" }, "a removed element comes back as a plain object");
  assert.equal(rome.isValid(), false, "its index is past the list's end now");
  realm.close();
});

test("a Realm schema with every property type opens and syncs", async () => {
  const schema = [
    {
      name: "Owner",
      primaryKey: "_id",
      properties: {
        _id: "objectId", flag: "bool", count: "int", ratio: "double", name: { type: "string", indexed: true },
        born: "date", uid: "uuid", price: "decimal128", anything: "mixed", best: "Dog?", dogs: "Dog[]",
        tags: "string<>", scores: "int{}", address: "Address?", ranks: { type: "list", objectType: "int" },
        walked: { type: "linkingObjects", objectType: "Dog", property: "walkers" },
      },
    },
    { name: "Dog", primaryKey: "_id", properties: { _id: "int", walkers: "Owner[]" } },
    { name: "Address", embedded: true, properties: { city: "string" } },
  ];
  const { startServer } = await import("./server.mjs");
  const server = await startServer();
  const dir = mkdtempSync(join(tmpdir(), "haven-every-type-"));
  try {
    const device = async (name) => {
      const app = new Haven.App({ baseUrl: server.url });
      const user = await app.logIn(Haven.Credentials.anonymous());
      return Haven.open({ path: join(dir, `${name}.haven`), schema, sync: { user, partitionValue: "p" } });
    };
    const a = await device("a");
    const oid = "5f1b2c3d4e5f6a7b8c9d0e1f";
    a.write(() => {
      const rex = a.create("Dog", { _id: 1 });
      const ann = a.create("Owner", {
        _id: oid, flag: true, count: 3, ratio: 0.5, name: "Ann", born: new Date(1_000),
        uid: "123e4567-e89b-12d3-a456-426614174000", price: "12.50", anything: "x", best: rex, dogs: [rex],
        tags: ["b", "a"], scores: { a: 1 }, address: { city: "Oslo" }, ranks: [3, 1],
      });
      rex.walkers.push(ann);
    });
    await a.syncSession.uploadAllLocalChanges(10_000);
    const b = await device("b");
    await b.syncSession.downloadAllServerChanges(10_000);
    const ann = b.objectForPrimaryKey("Owner", oid);
    assert.deepEqual(ann.toJSON(), a.objectForPrimaryKey("Owner", oid).toJSON());
    assert.equal(ann.price, "12.50");
    assert.equal(ann.address.city, "Oslo");
    assert.deepEqual([...ann.tags], ["a", "b"]);
    assert.equal(ann.walked.length, 1);
    assert.equal(ann.best._id, 1);
    a.close();
    b.close();
  } finally {
    await server.stop();
  }
});
