// Listeners: called once when added, then after each commit that changes
// what they watch, with Realm JS's index-based change sets; removed by
// removeListener or when their realm closes; never keeping the process
// alive.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import Haven from "haven";

const DogSchema = {
  name: "Dog",
  primaryKey: "_id",
  properties: { _id: "int", name: "string", age: "int?" },
};

async function dogs() {
  return Haven.open({ path: join(mkdtempSync(join(tmpdir(), "haven-node-")), "dogs.haven"), schema: [DogSchema] });
}

/** The next `count` calls of a listener, as [collection, changes] pairs. */
function calls(count) {
  const seen = [];
  let done;
  const all = new Promise((resolve) => (done = resolve));
  const listener = (collection, changes) => {
    seen.push([collection, changes]);
    if (seen.length === count) done(seen);
  };
  return { listener, all, seen };
}

test("a collection listener hears insertions, modifications and deletions by index", async () => {
  const realm = await dogs();
  realm.write(() => {
    realm.create("Dog", { _id: 1, name: "Ace", age: 1 });
    realm.create("Dog", { _id: 3, name: "Cid", age: 3 });
  });
  const sorted = realm.objects("Dog").sorted("_id");
  const { listener, all } = calls(4);
  sorted.addListener(listener);
  await new Promise((r) => setImmediate(r));
  realm.write(() => realm.create("Dog", { _id: 2, name: "Bo", age: 2 }));
  await new Promise((r) => setTimeout(r, 50));
  realm.write(() => {
    realm.objectForPrimaryKey("Dog", 3).age = 4;
  });
  await new Promise((r) => setTimeout(r, 50));
  realm.write(() => realm.delete(realm.objectForPrimaryKey("Dog", 1)));
  const seen = await all;
  const empty = { insertions: [], deletions: [], newModifications: [], oldModifications: [] };
  assert.deepEqual(seen[0][1], empty, "called once at once");
  assert.equal(seen[0][0], sorted, "with the collection");
  assert.deepEqual(seen[1][1], { ...empty, insertions: [1] });
  assert.deepEqual(seen[2][1], { ...empty, newModifications: [2], oldModifications: [2] });
  assert.deepEqual(seen[3][1], { ...empty, deletions: [0] });
  assert.deepEqual(seen[3][0].map((d) => d.name), ["Bo", "Cid"]);
  realm.close();
});

test("a filtered collection's listener hears objects entering and leaving it", async () => {
  const realm = await dogs();
  const old = realm.objects("Dog").filtered("age > $0", 5);
  const { listener, all } = calls(3);
  old.addListener(listener);
  realm.write(() => realm.create("Dog", { _id: 1, name: "Rex", age: 7 }));
  await new Promise((r) => setTimeout(r, 50));
  realm.write(() => {
    realm.objectForPrimaryKey("Dog", 1).age = 2;
  });
  const seen = await all;
  assert.deepEqual(seen[1][1].insertions, [0]);
  assert.deepEqual(seen[2][1].deletions, [0], "no longer matching is a deletion");
  realm.close();
});

test("an object listener hears the properties written and its deletion", async () => {
  const realm = await dogs();
  const rex = realm.write(() => realm.create("Dog", { _id: 1, name: "Rex", age: 1 }));
  const seen = [];
  let done;
  const finished = new Promise((r) => (done = r));
  rex.addListener((object, changes) => {
    seen.push(changes);
    if (changes.deleted) done();
  });
  realm.write(() => {
    rex.age = 2;
  });
  await new Promise((r) => setTimeout(r, 50));
  realm.write(() => realm.delete(rex));
  await finished;
  assert.deepEqual(seen, [
    { deleted: false, changedProperties: ["age"] },
    { deleted: true, changedProperties: [] },
  ]);
  realm.close();
});

test("a removed listener, or one whose realm closed, is not called again", async () => {
  const realm = await dogs();
  const all = realm.objects("Dog");
  let removedCalls = 0;
  const removed = () => removedCalls++;
  all.addListener(removed);
  all.addListener(removed); // twice is once
  await new Promise((r) => setImmediate(r));
  assert.equal(removedCalls, 1, "the initial call");
  all.removeListener(removed);
  realm.write(() => realm.create("Dog", { _id: 1, name: "Rex" }));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(removedCalls, 1);

  let kept = 0;
  all.addListener(() => kept++);
  await new Promise((r) => setImmediate(r));
  // A commit whose call is queued when the realm closes: dropped, not a crash.
  realm.write(() => realm.create("Dog", { _id: 2, name: "Ace" }));
  realm.close();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(kept, 1);
});

test("a listener does not keep the process alive", () => {
  const script = `
    import Haven from "haven";
    import { mkdtempSync } from "node:fs";
    import { tmpdir } from "node:os";
    import { join } from "node:path";
    const realm = await Haven.open({ path: join(mkdtempSync(join(tmpdir(), "haven-node-")), "d.haven"),
      schema: [{ name: "Dog", primaryKey: "_id", properties: { _id: "int" } }] });
    realm.objects("Dog").addListener(() => {});
    realm.objectForPrimaryKey("Dog", 1);
    console.log("done");
  `;
  const here = fileURLToPath(new URL(".", import.meta.url));
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { cwd: here, timeout: 20000, encoding: "utf8" });
  assert.equal(run.signal, null, "the script ended by itself, not by the timeout");
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout.trim(), "done");
});
