// Client reset from JavaScript, triggered by the operator (`haven admin
// reset-client`): each mode's outcome, its callbacks run on the
// JavaScript thread, in order, with the frozen realm before and the live
// realm after readable inside them; a throwing onBefore falls back as in
// Rust.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isMainThread } from "node:worker_threads";
import Haven from "haven";
import { startServer } from "./server.mjs";
import { connectedClients, resetClient } from "../examples/support.mjs";

const ADMIN_TOKEN = "test-admin-token";
const DogSchema = { name: "Dog", primaryKey: "_id", properties: { _id: "int", name: "string" } };

/** A device with Dog 1 synced and Dog 2 written offline, whose client
 * the operator then resets; resolves once `until` says the reset is over. */
async function resetWhileOffline(clientReset, until, extra = {}) {
  const server = await startServer(["--admin-token", ADMIN_TOKEN]);
  const dir = mkdtempSync(join(tmpdir(), "haven-node-reset-"));
  const app = new Haven.App({ baseUrl: server.url });
  const user = await app.logIn(Haven.Credentials.anonymous());
  const events = [];
  const config = {
    path: join(dir, "dogs.haven"),
    schema: [DogSchema],
    sync: { user, partitionValue: "p", clientReset, onError: (_, e) => events.push(["error", e]), ...extra },
  };
  const realm = await Haven.open(config);
  realm.write(() => realm.create("Dog", { _id: 1, name: "synced" }));
  await realm.syncSession.uploadAllLocalChanges(10_000);
  const [ident] = connectedClients(server, ADMIN_TOKEN, "p");
  realm.syncSession.pause();
  realm.write(() => realm.create("Dog", { _id: 2, name: "offline" }));
  resetClient(server, ADMIN_TOKEN, ident);
  realm.syncSession.resume();
  const deadline = Date.now() + 30_000;
  while (!until(events, realm) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return { server, realm, events, dir, app };
}

const names = (realm) => realm.objects("Dog").sorted("_id").map((d) => d.name);

for (const [mode, kept] of [
  ["recoverUnsyncedChanges", ["synced", "offline"]],
  ["discardUnsyncedChanges", ["synced"]],
  ["recoverOrDiscardUnsyncedChanges", ["synced", "offline"]],
]) {
  test(`${mode}: onBefore then onAfter, on the JavaScript thread, with both realms readable`, async () => {
    const seen = [];
    const clientReset = {
      mode,
      onBefore: async (before) => {
        await new Promise((r) => setTimeout(r, 20)); // the reset waits for the promise
        seen.push(["before", isMainThread, names(before)]);
      },
      onAfter: (before, after) => seen.push(["after", isMainThread, names(before), names(after)]),
    };
    const { server, realm, events } = await resetWhileOffline(clientReset, () => seen.length === 2);
    try {
      assert.deepEqual(seen, [
        ["before", true, ["synced", "offline"]],
        ["after", true, ["synced", "offline"], kept],
      ]);
      await realm.syncSession.uploadAllLocalChanges(10_000);
      assert.deepEqual(names(realm), kept);
      assert.deepEqual(events, [], "nothing reported");
    } finally {
      realm.close();
      await server.stop();
    }
  });
}

test("a throwing onBefore aborts the attempt, which falls back to the app", async () => {
  const clientReset = {
    mode: "recoverUnsyncedChanges",
    onBefore: () => {
      throw new Error("boom");
    },
  };
  const { server, realm, events, app } = await resetWhileOffline(clientReset, (events) => events.some(([, e]) => e.name === "ClientReset"));
  try {
    const errors = events.map(([, e]) => e);
    assert.match(errors[0].message, /boom/, "the failed attempt is reported with the callback's error");
    const reset = errors.find((e) => e.name === "ClientReset");
    assert.ok(reset, `then the manual fallback: ${errors.map((e) => e.message)}`);
    assert.deepEqual(names(realm), ["synced", "offline"], "nothing lost");
    const path = realm.path;
    realm.close();
    assert.equal(Haven.App.Sync.initiateClientReset(app, path), true);
    const backup = await Haven.open(reset.config);
    assert.deepEqual(names(backup), ["synced", "offline"], "error.config opens the backup");
    backup.close();
  } finally {
    await server.stop();
  }
});
