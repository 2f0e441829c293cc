// A scripted Node.js device, run as its own process by test/devices.test.mjs
// (outside test/, which node --test would run):
// the same script as the Rust one (crates/haven-testkit/src/bin/haven-device.rs).
//   node device.mjs URL PARTITION PATH LABEL FROM TO DEVICES
import Haven from "haven";

const [url, partitionValue, path, label, from, to, devices] = process.argv.slice(2);
const MARKERS = 1_000_000;
const DogSchema = { name: "Dog", primaryKey: "_id", properties: { _id: "int", name: "string", age: "int?" } };

const app = new Haven.App({ baseUrl: url });
const user = await app.logIn(Haven.Credentials.anonymous());
const realm = await Haven.open({ path, schema: [DogSchema], sync: { user, partitionValue } });
for (let id = Number(from); id < Number(to); id++) realm.write(() => realm.create("Dog", { _id: id, name: `dog ${id}` }));
realm.write(() => realm.create("Dog", { _id: 0, name: label }, "modified"));
realm.write(() => realm.create("Dog", { _id: MARKERS + Number(from), name: "done" }));
await realm.syncSession.uploadAllLocalChanges(60_000);
const started = Date.now();
while (realm.objects("Dog").filtered("_id >= $0", MARKERS).length !== Number(devices)) {
  if (Date.now() - started > 60_000) throw new Error("not every device's writes arrived within 60 s");
  await realm.syncSession.downloadAllServerChanges(60_000);
  await new Promise((resolve) => setTimeout(resolve, 50));
}
console.log(JSON.stringify(realm.objects("Dog").sorted("_id").toJSON()));
realm.close();
