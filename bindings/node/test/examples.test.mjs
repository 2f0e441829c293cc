// The examples run as users run them, each against its own haven serve,
// and check their own outcome (a non-zero exit is a failure).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const examples = fileURLToPath(new URL("../examples/", import.meta.url));

for (const example of ["manual-client-reset.mjs", "recover-unsynced.mjs"]) {
  test(`examples/${example} recovers the unsynced writes`, () => {
    const run = spawnSync(process.execPath, [example], { cwd: examples, encoding: "utf8", timeout: 120_000 });
    assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /recovered .*\[\[1,"Rex",4\],\[3,"Max",null\]\]/);
  });
}
