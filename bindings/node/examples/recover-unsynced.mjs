// The same recovery as manual-client-reset.mjs, left to Haven: with the
// default client reset mode, recoverUnsyncedChanges, the unsynced writes
// of a reset client are replayed on the server's state by themselves.
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
const dir = mkdtempSync(join(tmpdir(), "haven-recover-"));

const DogSchema = {
  name: "Dog",
  primaryKey: "_id",
  properties: { _id: "int", name: "string", age: "int?", lastUpdated: "int" },
};

const app = new Haven.App({ baseUrl: server.url });
await app.logIn(Haven.Credentials.anonymous());
const config = {
  path: join(dir, "dogs.haven"),
  schema: [DogSchema],
  sync: { user: app.currentUser, partitionValue: "MyPartitionValue" }, // clientReset: recoverUnsyncedChanges
};
const realm = await Haven.open(config);

realm.write(() => {
  realm.create("Dog", { _id: 1, name: "Rex", age: 3, lastUpdated: Date.now() });
  realm.create("Dog", { _id: 2, name: "Ace", age: 5, lastUpdated: Date.now() });
});
await realm.syncSession.uploadAllLocalChanges(10_000);
const [ident] = connectedClients(server, ADMIN_TOKEN, "MyPartitionValue");
realm.syncSession.pause();
realm.write(() => {
  realm.create("Dog", { _id: 3, name: "Max", lastUpdated: Date.now() });
  realm.create("Dog", { _id: 1, age: 4, lastUpdated: Date.now() }, "modified");
  realm.delete(realm.objectForPrimaryKey("Dog", 2));
});
resetClient(server, ADMIN_TOKEN, ident);
realm.syncSession.resume();
await realm.syncSession.uploadAllLocalChanges(30_000); // the reset, its recovery, and their upload

const other = await Haven.open({ ...config, path: join(dir, "other.haven") });
await other.syncSession.downloadAllServerChanges(10_000);
const state = other.objects("Dog").sorted("_id").map((d) => [d._id, d.name, d.age]);
assert.deepEqual(state, [
  [1, "Rex", 4],
  [3, "Max", null],
]);
console.log("recovered by recoverUnsyncedChanges:", JSON.stringify(state));
other.close();
realm.close();
await server.stop();
