// `npm run bench`: the local workloads of `haven bench local`, written in
// JavaScript against this package, each next to the same workload through
// the Rust API (the native module's `rustBench`, built with the `bench`
// feature) in the same process, on the same files. Medians of the repeats
// and their ratio; each run checks what it read or wrote.
//
//   npm run bench                 full sizes, 5 repeats
//   npm run bench -- --quick      smaller sizes
//   npm run bench -- --repeats 3 --json

import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import Haven from "../lib/index.mjs";

const { rustBench } = createRequire(import.meta.url)("../native/index.js");
if (typeof rustBench !== "function") {
  console.error("the native module was built without the bench feature: run `npm run bench`, which builds it");
  process.exit(1);
}

const { values: flags } = parseArgs({
  options: { quick: { type: "boolean" }, repeats: { type: "string" }, json: { type: "boolean" } },
});
const repeats = Math.max(1, Number(flags.repeats ?? 5));
const sizes = flags.quick
  ? { bulk: 20_000, commits: 200, lookups: 20_000, queryObjects: 100_000 }
  : { bulk: 100_000, commits: 1_000, lookups: 100_000, queryObjects: 1_000_000 };

/** The Dog type as a Realm JS app declares it; the Rust half's schema is the same. */
const Dog = {
  name: "Dog",
  primaryKey: "_id",
  properties: { _id: "int", name: "string", age: "int?", lastUpdated: { type: "int", indexed: true } },
};

const dir = mkdtempSync(join(tmpdir(), "haven-node-bench-"));
const open = (file) => Haven.open({ path: join(dir, file), schema: [Dog] });

function check(ok, what) {
  if (!ok) throw new Error(`benchmark self-check failed: ${what}`);
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

function time(f) {
  const start = performance.now();
  const objects = f();
  return { ms: performance.now() - start, objects };
}

/** Deterministic keys in 0..of, drawn before the timed loop. */
function randomKeys(count, of, seed) {
  let state = seed >>> 0 || 1;
  return Array.from({ length: count }, () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % of;
  });
}

const dogValues = (i) => ({ _id: i, name: `dog ${i}`, age: i % 20, lastUpdated: i });

const rows = [];

/** Runs `js(rep)` then `rust(rep)`, `repeats` times; records the medians. */
async function measure(workload, target, js, rust) {
  process.stderr.write(`${workload}…\n`);
  const jsMs = [];
  const rustMs = [];
  for (let rep = 0; rep < repeats; rep++) {
    jsMs.push((await js(rep)).ms);
    rustMs.push(rust(rep).ms);
  }
  const [j, r] = [median(jsMs), median(rustMs)];
  rows.push({ workload, js_ms: j, rust_ms: r, ratio: j / r, target });
}

await measure(
  "bulk_insert",
  2.0,
  async (rep) => {
    const realm = await open(`bulk-js-${rep}.haven`);
    const run = time(() => {
      realm.write(() => {
        for (let i = 0; i < sizes.bulk; i++) realm.create("Dog", dogValues(i));
      });
      return sizes.bulk;
    });
    check(realm.objects("Dog").length === sizes.bulk, "bulk_insert: every Dog written");
    realm.close();
    return run;
  },
  (rep) => rustBench({ name: "bulk_insert", path: join(dir, `bulk-rust-${rep}.haven`), count: sizes.bulk }),
);

await measure(
  "single_commits",
  1.5,
  async (rep) => {
    const realm = await open(`commits-js-${rep}.haven`);
    const run = time(() => {
      for (let i = 0; i < sizes.commits; i++) realm.write(() => realm.create("Dog", dogValues(i)));
      return sizes.commits;
    });
    check(realm.objects("Dog").length === sizes.commits, "single_commits: every Dog written");
    realm.close();
    return run;
  },
  (rep) => rustBench({ name: "single_commits", path: join(dir, `commits-rust-${rep}.haven`), count: sizes.commits }),
);

// The read workloads share one file: a JavaScript realm stays open on it,
// and the Rust half opening it with another schema would fail.
const lookupPath = join(dir, "lookup.haven");
const lookups = await open("lookup.haven");
rustBench({ name: "prepare", path: lookupPath, count: sizes.bulk });
await measure(
  "pk_lookup",
  undefined,
  async (rep) => {
    const keys = randomKeys(sizes.lookups, sizes.bulk, rep + 1);
    const run = time(() => {
      let found = 0;
      for (const key of keys) found += lookups.objectForPrimaryKey("Dog", key).name === `dog ${key}` ? 1 : 0;
      return found;
    });
    check(run.objects === sizes.lookups, "pk_lookup: every Dog found");
    return run;
  },
  () => rustBench({ name: "pk_lookup", path: lookupPath, count: sizes.lookups, of: sizes.bulk }),
);
lookups.close();

process.stderr.write(`preparing ${sizes.queryObjects} Dogs for the queries…\n`);
const queryPath = join(dir, "query.haven");
const queries = await open("query.haven");
rustBench({ name: "prepare", path: queryPath, count: sizes.queryObjects });
const threshold = sizes.queryObjects - sizes.queryObjects / 10;
const inRange = sizes.queryObjects / 10 - 1;
/** A query iterated in JavaScript (reading each Dog's name) against the
 * same query through Rust; both must find `expected` Dogs. */
function queryWorkload(name, query, arg, rustWorkload, expected) {
  return measure(
    name,
    2.0,
    async () => {
      // A realm of its own: a realm keeps what it read until the file changes.
      const realm = await open("query.haven");
      const run = time(() => {
        let n = 0;
        for (const dog of realm.objects("Dog").filtered(query, arg)) if (dog.name) n++;
        return n;
      });
      realm.close();
      check(run.objects === expected, `${name}: count`);
      return run;
    },
    () => {
      const run = rustBench({ name, path: queryPath, count: 0, ...rustWorkload });
      check(run.objects === expected, `${name} (Rust): count`);
      return run;
    },
  );
}

await queryWorkload("range_query", "lastUpdated > $0", threshold, { of: threshold }, inRange);
const beginsWith9 = Array.from({ length: sizes.queryObjects }, (_, i) => i).filter((i) => String(i).startsWith("9")).length;
await queryWorkload("scan_query", "name BEGINSWITH $0", "dog 9", { prefix: "dog 9" }, beginsWith9);
queries.close();
rmSync(dir, { recursive: true, force: true });

if (flags.json) {
  console.log(JSON.stringify(rows, null, 2));
} else {
  const pad = (s, n) => String(s).padStart(n);
  console.log(`${"workload".padEnd(16)}${pad("js ms", 12)}${pad("rust ms", 12)}${pad("js/rust", 10)}${pad("target", 9)}`);
  for (const r of rows) {
    const target = r.target === undefined ? "-" : `≤ ${r.target.toFixed(1)}`;
    console.log(`${r.workload.padEnd(16)}${pad(r.js_ms.toFixed(1), 12)}${pad(r.rust_ms.toFixed(1), 12)}${pad(r.ratio.toFixed(2), 10)}${pad(target, 9)}`);
  }
  console.log(`medians of ${repeats} runs; ${flags.quick ? "quick" : "full"} sizes: ${JSON.stringify(sizes)}`);
}
