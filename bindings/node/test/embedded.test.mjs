// Embedded objects from JavaScript: nested objects that read live and
// write field by field.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Haven from "haven";

const Schema = [
  { name: "Person", primaryKey: "_id", properties: { _id: "string", address: "Address?" } },
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
  assert.throws(() => realm.write(() => { ann.address.city = 5; }), { message: /Person\.address: at field "city": expected string, got int/ });
  assert.throws(() => realm.objects("Address").length, { name: "TypeError", message: /Address is an embedded type/ });
  realm.close();
});
