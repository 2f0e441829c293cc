// No leak over long loops: opening, writing and closing a realm, and
// adding and removing listeners, thousands of times. Memory after the
// loop is compared with memory after a warm-up of the same loop.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const script = `
  import Haven from "haven";
  import { mkdtempSync } from "node:fs";
  import { tmpdir } from "node:os";
  import { join } from "node:path";
  const path = join(mkdtempSync(join(tmpdir(), "haven-leak-")), "dogs.haven");
  const schema = [{ name: "Dog", primaryKey: "_id", properties: { _id: "int", name: "string" } }];
  async function round(i) {
    const realm = await Haven.open({ path, schema });
    const dogs = realm.objects("Dog");
    const listener = () => {};
    dogs.addListener(listener);
    realm.write(() => realm.create("Dog", { _id: i % 100, name: "dog " + i }, "modified"));
    dogs.removeListener(listener);
    dogs.addListener(listener); // released by close
    realm.close();
  }
  async function rounds(n, from) {
    for (let i = from; i < from + n; i++) await round(i);
    await new Promise((r) => setTimeout(r, 50));
    globalThis.gc();
    await new Promise((r) => setImmediate(r));
    globalThis.gc();
    return { heap: process.memoryUsage().heapUsed, rss: process.memoryUsage().rss };
  }
  // Warm-up: the file, its page cache and the allocator's arenas reach their size.
  const warm = await rounds(4000, 0);
  const after = await rounds(3000, 4000);
  console.log(JSON.stringify({ warm, after }));
`;

test("open/write/close and add/remove listener loops do not grow memory", () => {
  const cwd = fileURLToPath(new URL(".", import.meta.url));
  const run = spawnSync(process.execPath, ["--expose-gc", "--input-type=module", "-e", script], { cwd, encoding: "utf8", timeout: 300_000 });
  assert.equal(run.status, 0, run.stderr);
  const { warm, after } = JSON.parse(run.stdout);
  const mib = (bytes) => bytes / (1 << 20);
  console.log(`heap ${mib(warm.heap).toFixed(1)} -> ${mib(after.heap).toFixed(1)} MiB, RSS ${mib(warm.rss).toFixed(1)} -> ${mib(after.rss).toFixed(1)} MiB over 3000 rounds`);
  // 3,000 rounds after the warm-up: a leak of 1 KiB a round would show
  // as 3 MiB of heap, of 5 KiB a round as 15 MiB of RSS.
  assert.ok(after.heap - warm.heap < 3 * (1 << 20), `the heap grew by ${mib(after.heap - warm.heap).toFixed(1)} MiB`);
  assert.ok(after.rss - warm.rss < 15 * (1 << 20), `RSS grew by ${mib(after.rss - warm.rss).toFixed(1)} MiB`);
});
