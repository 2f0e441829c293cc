// Manual client reset data recovery, as Realm's documentation does it:
// a local LastSynced realm remembers when the Dogs were last uploaded;
// when the server resets this client, handleSyncError closes the realm,
// initiates the reset, reopens it, and copies from the backup
// (error.config) the Dogs changed since the last sync, deleting those the
// backup no longer has.
//
// Runs against a `haven serve` it starts, makes the operator reset the
// client, and exits non-zero unless the recovered state is right.
import Haven from "haven";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectedClients, resetClient, startServer } from "./support.mjs";

const ADMIN_TOKEN = "example-admin-token";
const server = await startServer(["--admin-token", ADMIN_TOKEN]);
const dir = mkdtempSync(join(tmpdir(), "haven-manual-reset-"));

const DogSchema = {
  name: "Dog",
  primaryKey: "_id",
  properties: { _id: "int", name: "string", age: "int?", lastUpdated: "int" },
};
const LastSyncedSchema = {
  name: "LastSynced",
  primaryKey: "realmTracked",
  properties: { realmTracked: "string", timestamp: "int?" },
};

// The one line that differs from Realm JS: the App knows the server's URL.
const app = new Haven.App({ baseUrl: server.url });
await app.logIn(Haven.Credentials.anonymous());

const lastSyncedRealm = await Haven.open({ path: join(dir, "lastSynced.haven"), schema: [LastSyncedSchema] });
lastSyncedRealm.write(() => {
  lastSyncedRealm.create("LastSynced", { realmTracked: "Dog" }, "modified");
});

let recovered;
const recoveryDone = new Promise((resolve) => (recovered = resolve));

const config = {
  path: join(dir, "dogs.haven"),
  schema: [DogSchema],
  sync: {
    user: app.currentUser,
    partitionValue: "MyPartitionValue",
    clientReset: { mode: "manual" },
    onError: handleSyncError,
  },
};
let realm = await Haven.open(config);
trackUploads(realm);

// After each change is uploaded, remember when.
function trackUploads(realm) {
  realm.objects("Dog").addListener(async () => {
    try {
      await realm.syncSession.uploadAllLocalChanges();
    } catch {
      return; // cut short (by the client reset): not synced
    }
    lastSyncedRealm.write(() => {
      lastSyncedRealm.create("LastSynced", { realmTracked: "Dog", timestamp: Date.now() }, "modified");
    });
  });
}

async function handleSyncError(_session, error) {
  if (error.name !== "ClientReset") {
    console.error(error);
    return;
  }
  const realmPath = realm.path;
  realm.close();
  Haven.App.Sync.initiateClientReset(app, realmPath);
  realm = await Haven.open(config); // starts again from the server's state
  const oldRealm = await Haven.open(error.config); // the backup, read-only
  const lastSyncedTime = lastSyncedRealm.objectForPrimaryKey("LastSynced", "Dog").timestamp;
  const unsyncedDogs = oldRealm.objects("Dog").filtered("lastUpdated > $0", lastSyncedTime);
  realm.write(() => {
    unsyncedDogs.forEach((dog) => realm.create("Dog", dog, "modified"));
  });
  // Dogs deleted while offline: those the backup no longer has.
  const syncedDogs = realm.objects("Dog");
  realm.write(() => {
    for (const dog of [...syncedDogs]) {
      if (oldRealm.objectForPrimaryKey("Dog", dog._id) === undefined) realm.delete(dog);
    }
  });
  oldRealm.close();
  trackUploads(realm);
  recovered();
}

// Two Dogs reach the server.
realm.write(() => {
  realm.create("Dog", { _id: 1, name: "Rex", age: 3, lastUpdated: Date.now() });
  realm.create("Dog", { _id: 2, name: "Ace", age: 5, lastUpdated: Date.now() });
});
await realm.syncSession.uploadAllLocalChanges(10_000);
// The listener records the upload.
while (lastSyncedRealm.objectForPrimaryKey("LastSynced", "Dog").timestamp === null) {
  await new Promise((resolve) => setTimeout(resolve, 10));
}
const [ident] = connectedClients(server, ADMIN_TOKEN, "MyPartitionValue");
// Offline: a new Dog, a changed one, a deleted one.
realm.syncSession.pause();
await new Promise((resolve) => setTimeout(resolve, 5));
realm.write(() => {
  realm.create("Dog", { _id: 3, name: "Max", lastUpdated: Date.now() });
  realm.create("Dog", { _id: 1, age: 4, lastUpdated: Date.now() }, "modified");
  realm.delete(realm.objectForPrimaryKey("Dog", 2));
});
// The operator resets this client; when it reconnects, the reset reaches it.
resetClient(server, ADMIN_TOKEN, ident);
realm.syncSession.resume();
await Promise.race([
  recoveryDone,
  new Promise((_, reject) => setTimeout(() => reject(new Error("no client reset within 30 s")), 30_000)),
]);
await realm.syncSession.uploadAllLocalChanges(10_000);

// A new device sees what the first had before the reset.
const other = await Haven.open({ ...config, path: join(dir, "other.haven"), sync: { ...config.sync, onError: undefined, clientReset: undefined } });
await other.syncSession.downloadAllServerChanges(10_000);
const state = other.objects("Dog").sorted("_id").map((d) => [d._id, d.name, d.age]);
assert.deepEqual(state, [
  [1, "Rex", 4],
  [3, "Max", null],
]);
console.log("recovered after a manual client reset:", JSON.stringify(state));
other.close();
realm.close();
lastSyncedRealm.close();
await server.stop();
