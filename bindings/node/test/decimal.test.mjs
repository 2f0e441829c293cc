// decimal128 properties from JavaScript: written as strings or numbers,
// read as the string of the decimal as written.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Haven from "haven";

test("a decimal128 reads as written and compares by value", async () => {
  const schema = [{ name: "Item", primaryKey: "_id", properties: { _id: "int", price: "decimal128" } }];
  const realm = await Haven.open({ path: join(mkdtempSync(join(tmpdir(), "haven-decimal-")), "d.haven"), schema });
  realm.write(() => {
    realm.create("Item", { _id: 1, price: "12.50" });
    realm.create("Item", { _id: 2, price: 3 });
  });
  assert.equal(realm.objectForPrimaryKey("Item", 1).price, "12.50");
  assert.deepEqual(realm.objects("Item").filtered("price == $0", "12.5").map((i) => i._id), [1]);
  assert.deepEqual(realm.objects("Item").sorted("price").map((i) => i.price), ["3", "12.50"]);
  assert.throws(() => realm.write(() => realm.create("Item", { _id: 3, price: "twelve" })), { message: /Item\.price.*'twelve' is not a decimal128/ });
  realm.close();
});
