// Sync from JavaScript against `haven serve`: realms converging, tokens
// from a provider, opening offline with a timeout, pause and resume, and
// the configuration errors a Realm JS user can make.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Haven from "haven";
import { startServer } from "./server.mjs";

const DogSchema = {
  name: "Dog",
  primaryKey: "_id",
  properties: { _id: "int", name: "string", age: "int?" },
};

const folder = () => mkdtempSync(join(tmpdir(), "haven-node-sync-"));

async function device(url, path, partitionValue = "p", extra = {}) {
  const app = new Haven.App({ baseUrl: url });
  const user = await app.logIn(Haven.Credentials.anonymous());
  return Haven.open({ path, schema: [DogSchema], sync: { user, partitionValue, ...extra } });
}

test("two realms converge through haven serve", async () => {
  const server = await startServer();
  const dir = folder();
  try {
    const a = await device(server.url, join(dir, "a.haven"));
    const b = await device(server.url, join(dir, "b.haven"));
    assert.equal(a.syncSession.isConnected(), true);
    a.write(() => a.create("Dog", { _id: 1, name: "Rex", age: 3 }));
    await a.syncSession.uploadAllLocalChanges(10_000);
    await b.syncSession.downloadAllServerChanges(10_000);
    assert.equal(b.objectForPrimaryKey("Dog", 1).name, "Rex");
    b.write(() => {
      b.objectForPrimaryKey("Dog", 1).age = 4;
    });
    await b.syncSession.uploadAllLocalChanges(10_000);
    await a.syncSession.downloadAllServerChanges(10_000);
    assert.equal(a.objectForPrimaryKey("Dog", 1).age, 4);
    a.close();
    b.close();
  } finally {
    await server.stop();
  }
});

function hs256(secret, claims) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const body = `${encode({ alg: "HS256", typ: "JWT" })}.${encode(claims)}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

test("a token provider's tokens are refreshed across their expiry", async () => {
  const secret = "a test secret of reasonable length";
  const withSecret = await startServer(["--jwt-leeway", "0", "--jwt-secret", secret]);
  const dir = folder();
  try {
    let calls = 0;
    const app = new Haven.App({ baseUrl: withSecret.url });
    const user = await app.logIn(Haven.Credentials.jwt(async () => {
      calls += 1;
      const now = Math.floor(Date.now() / 1000);
      return hs256(secret, { sub: "ann", iat: now, exp: now + 2, partitions: ["p"] });
    }));
    const errors = [];
    const realm = await Haven.open({
      path: join(dir, "a.haven"),
      schema: [DogSchema],
      sync: { user, partitionValue: "p", onError: (_, e) => errors.push(e) },
    });
    for (let i = 1; i <= 30; i++) {
      realm.write(() => realm.create("Dog", { _id: i, name: `dog ${i}` }));
      await new Promise((r) => setTimeout(r, 100));
    }
    await realm.syncSession.uploadAllLocalChanges(20_000);
    assert.ok(calls >= 2, `the provider was asked again (${calls} calls)`);
    assert.deepEqual(errors, []);
    realm.close();
  } finally {
    await withSecret.stop();
  }
});

test("opening offline rejects with a TimeoutError, or opens the local realm if asked", async () => {
  const dir = folder();
  const offline = "ws://127.0.0.1:9"; // nothing listens there
  await assert.rejects(
    device(offline, join(dir, "a.haven"), "p", { newRealmFileBehavior: { type: "downloadBeforeOpen", timeOut: 300 } }),
    { name: "TimeoutError" },
  );
  const local = await device(offline, join(dir, "b.haven"), "p", {
    newRealmFileBehavior: { type: "downloadBeforeOpen", timeOut: 300, timeOutBehavior: "openLocalRealm" },
  });
  local.write(() => local.create("Dog", { _id: 1, name: "offline" }));
  assert.equal(local.objects("Dog").length, 1);
  assert.equal(local.syncSession.connectionState === "connected", false);
  local.close();
});

test("pause stops syncing and resume catches up", async () => {
  const server = await startServer();
  const dir = folder();
  try {
    const a = await device(server.url, join(dir, "a.haven"));
    const b = await device(server.url, join(dir, "b.haven"));
    a.syncSession.pause();
    for (let i = 1; i <= 50; i++) a.write(() => a.create("Dog", { _id: i, name: `dog ${i}` }));
    await assert.rejects(a.syncSession.uploadAllLocalChanges(300), { name: "TimeoutError" });
    a.syncSession.resume();
    a.syncSession.resume(); // twice is fine
    await a.syncSession.uploadAllLocalChanges(10_000);
    await b.syncSession.downloadAllServerChanges(10_000);
    assert.equal(b.objects("Dog").length, 50);
    a.close();
    b.close();
  } finally {
    await server.stop();
  }
});

test("pausing and resuming while both devices write loses nothing and crashes nothing", async () => {
  const server = await startServer();
  const dir = folder();
  try {
    const a = await device(server.url, join(dir, "a.haven"));
    const b = await device(server.url, join(dir, "b.haven"));
    const states = [];
    a.syncSession.addConnectionNotification((state) => states.push(state));
    const writer = (realm, from) => (async () => {
      for (let i = from; i < from + 300; i++) {
        realm.write(() => realm.create("Dog", { _id: i, name: `dog ${i}`, age: i % 7 }));
        if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const toggling = (async () => {
      for (let round = 0; round < 40; round++) {
        a.syncSession.pause();
        await new Promise((resolve) => setTimeout(resolve, round % 3));
        a.syncSession.resume();
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();
    await Promise.all([writer(a, 1), writer(b, 1001), toggling]);
    a.syncSession.resume();
    for (const realm of [a, b]) await realm.syncSession.uploadAllLocalChanges(30_000);
    for (const realm of [a, b]) await realm.syncSession.downloadAllServerChanges(30_000);
    assert.equal(a.objects("Dog").length, 600);
    assert.equal(b.objects("Dog").length, 600);
    assert.deepEqual(a.objects("Dog").sorted("_id").toJSON(), b.objects("Dog").sorted("_id").toJSON());
    assert.ok(states.includes("disconnected"), "pausing disconnected the session");
    assert.equal(a.syncSession.isConnected(), true);
    a.close();
    b.close();
  } finally {
    await server.stop();
  }
});

test("configuration mistakes are refused by name before anything opens", async () => {
  const app = new Haven.App({ baseUrl: "ws://127.0.0.1:9" });
  const user = await app.logIn(Haven.Credentials.anonymous());
  const path = join(folder(), "x.haven");
  const open = (sync) => Haven.open({ path, schema: [DogSchema], sync: { user, partitionValue: "p", ...sync } });
  await assert.rejects(open({ partitionValue: 7 }), { name: "TypeError", message: /partitionValue must be a string \(got number\)/ });
  await assert.rejects(open({ clientReset: { mode: "sometimes" } }), { name: "TypeError", message: /unknown client reset mode 'sometimes'/ });
  await assert.rejects(open({ clientReset: { mode: "manual" } }), { name: "SyncError", message: /needs clientReset.onManual or sync.onError/ });
  await assert.rejects(open({ user: {} }), { name: "TypeError", message: /logged-in user/ });
  assert.throws(() => new Haven.App({ baseUrl: "http://x" }), { name: "TypeError" });
});

test("a token function that throws is reported as a sync error, not a crash", async () => {
  const server = await startServer();
  const dir = folder();
  try {
    const app = new Haven.App({ baseUrl: server.url });
    const user = await app.logIn(Haven.Credentials.jwt(() => {
      throw new Error("signed out");
    }));
    const errors = [];
    const realm = await Haven.open({
      path: join(dir, "a.haven"),
      schema: [DogSchema],
      sync: { user, partitionValue: "p", onError: (_, e) => errors.push(e), newRealmFileBehavior: { type: "openImmediately" } },
    });
    const deadline = Date.now() + 10_000;
    while (errors.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(errors[0].name, "SyncError");
    assert.match(errors[0].message, /cannot get a token: .*signed out/);
    realm.close();
  } finally {
    await server.stop();
  }
});

test("connection and progress notifications report the session as it goes", async () => {
  const server = await startServer();
  const dir = folder();
  try {
    const realm = await device(server.url, join(dir, "a.haven"));
    const states = [];
    const progress = [];
    const outstanding = [];
    realm.syncSession.addConnectionNotification((now, before) => states.push([before, now]));
    realm.syncSession.addProgressNotification("upload", "reportIndefinitely", (done, total) => progress.push([done, total]));
    realm.syncSession.pause();
    for (let i = 1; i <= 3; i++) realm.write(() => realm.create("Dog", { _id: i, name: `dog ${i}` }));
    await new Promise((r) => setTimeout(r, 100));
    realm.syncSession.addProgressNotification("upload", "forCurrentlyOutstandingWork", (done, total) => outstanding.push([done, total]));
    realm.syncSession.resume();
    await realm.syncSession.uploadAllLocalChanges(10_000);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(states.slice(0, 1), [["connected", "disconnected"]], `${JSON.stringify(states)}`);
    assert.deepEqual(states.at(-1), ["connecting", "connected"]);
    const last = progress.at(-1);
    assert.equal(last[0], last[1], `everything uploaded: ${JSON.stringify(progress)}`);
    assert.ok(last[1] >= 3);
    assert.deepEqual(outstanding.at(-1), [last[1], last[1]], "reported up to what was outstanding, then stopped");
    realm.close();
  } finally {
    await server.stop();
  }
});
