// linkingObjects properties from JavaScript: live Results of the objects
// whose link points here, usable in queries, never written.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Haven from "haven";

const Schema = [
  {
    name: "Person",
    primaryKey: "_id",
    properties: { _id: "string", name: "string?", dogs: { type: "linkingObjects", objectType: "Dog", property: "owner" } },
  },
  { name: "Dog", primaryKey: "_id", properties: { _id: "int", name: "string", owner: "Person?" } },
];

test("a linkingObjects property reads the objects that link here, live, and works in queries", async () => {
  const realm = await Haven.open({ path: join(mkdtempSync(join(tmpdir(), "haven-backlinks-")), "b.haven"), schema: Schema });
  realm.write(() => {
    const ann = realm.create("Person", { _id: "ann" });
    realm.create("Person", { _id: "bob" });
    realm.create("Dog", { _id: 1, name: "Rex", owner: ann });
    realm.create("Dog", { _id: 2, name: "Ace", owner: ann });
  });
  const ann = realm.objectForPrimaryKey("Person", "ann");
  assert.deepEqual(ann.dogs.map((d) => d.name), ["Rex", "Ace"]);
  realm.write(() => {
    realm.objectForPrimaryKey("Dog", 2).owner = realm.objectForPrimaryKey("Person", "bob");
  });
  assert.equal(ann.dogs.length, 1, "live");
  assert.deepEqual(realm.objects("Person").filtered("dogs.@count == 1 AND dogs.name == 'Ace'").map((p) => p._id), ["bob"]);
  assert.deepEqual(realm.objects("Person").filtered("@links.Dog.owner.@count > 0").map((p) => p._id), ["ann", "bob"]);
  assert.equal(realm.objects("Person")[0].dogs.length, 1, "read from a query's rows too");
  assert.ok(!("dogs" in ann.toJSON()), "computed, not stored");
  assert.throws(() => realm.write(() => { ann.dogs = []; }), { message: /Person\.dogs.*computed from Dog\.owner \(linkingObjects\)/ });
  realm.close();
});
