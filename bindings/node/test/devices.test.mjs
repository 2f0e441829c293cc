// Two Node.js processes and a Rust device on one `haven serve`, writing at
// the same time (their own objects, and the same object), converge.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { startServer, deviceBinary, ensureBinary } from "./server.mjs";

const run = promisify(execFile);
const nodeDevice = fileURLToPath(new URL("../testing/device.mjs", import.meta.url));

test("two Node.js processes and a Rust device converge through haven serve", async () => {
  ensureBinary(deviceBinary);
  const server = await startServer();
  const dir = mkdtempSync(join(tmpdir(), "haven-node-devices-"));
  try {
    const args = (name, label, from) => [server.url, "shared", join(dir, `${name}.haven`), label, String(from), String(from + 50), "3"];
    const outputs = await Promise.all([
      run(process.execPath, [nodeDevice, ...args("node-a", "node a", 1)]),
      run(process.execPath, [nodeDevice, ...args("node-b", "node b", 101)]),
      run(deviceBinary, args("rust", "rust", 201)),
    ]);
    const [a, b, rust] = outputs.map(({ stdout }) => JSON.parse(stdout.trim().split("\n").pop()));
    assert.equal(a.length, 1 + 150 + 3, "Dog 0, each device's 50 Dogs and 3 markers");
    assert.deepEqual(b, a, "the two Node.js devices converged");
    assert.deepEqual(rust, a, "the Rust device converged with them");
    for (const from of [1, 101, 201]) assert.equal(a.find((d) => d._id === from + 49).name, `dog ${from + 49}`);
    assert.ok(["node a", "node b", "rust"].includes(a[0].name), "the shared Dog has one device's name");
  } finally {
    await server.stop();
  }
});
