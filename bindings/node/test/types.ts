// Checked by `tsc` (npm test): the types describe the API as used.
import Haven from "haven";

interface Dog {
  _id: number;
  name: string;
  age?: number | null;
  lastUpdated: number;
}

const DogSchema: Haven.ObjectSchema = {
  name: "Dog",
  primaryKey: "_id",
  properties: { _id: "int", name: "string", age: "int?", lastUpdated: { type: "int", indexed: true } },
};

class Cat extends Haven.Realm.Object<Cat> {
  _id!: number;
  name!: string;
  born?: Date | null;
  static schema: Haven.ObjectSchema = { name: "Cat", primaryKey: "_id", properties: { _id: "int", name: "string", born: "date?" } };
  get greeting(): string {
    return `hello, ${this.name}`;
  }
}

class Walker extends Haven.Realm.Object<Walker> {
  _id!: number;
  tags!: Haven.List<string>;
  static schema: Haven.ObjectSchema = { name: "Walker", primaryKey: "_id", properties: { _id: "int", tags: "string[]" } };
}

export async function useLists(): Promise<string[]> {
  const realm = await Haven.open({ path: "walkers.haven", schema: [Walker] });
  const walker = realm.write(() => realm.create(Walker, { _id: 1 }));
  realm.write(() => {
    const length: number = walker.tags.push("park", "beach");
    walker.tags.move(0, length - 1);
    const removed: string[] = walker.tags.splice(0, 1);
    walker.tags[0] = removed[0] ?? "none";
  });
  const first: string = walker.tags[0];
  return [first, ...walker.tags, ...walker.tags.map((t) => t.toUpperCase())];
}

class Owner extends Haven.Realm.Object<Owner> {
  _id!: number;
  colors!: Haven.Set<string>;
  scores!: Haven.Dictionary<number>;
  static schema: Haven.ObjectSchema = {
    name: "Owner",
    primaryKey: "_id",
    properties: { _id: "int", colors: "string<>", scores: "int{}" },
  };
}

export async function useSetsAndDictionaries(): Promise<number> {
  const realm = await Haven.open({ path: "owners.haven", schema: [Owner] });
  const owner = realm.write(() => realm.create(Owner, { _id: 1 }));
  realm.write(() => {
    owner.colors.add("red").add("blue");
    const removed: boolean = owner.colors.delete("red");
    owner.scores.speed = removed ? 1 : 0;
    owner.scores.set({ agility: 2 }).remove("speed");
  });
  const keys: string[] = [...owner.scores.keys()];
  const backlink: Haven.ObjectSchema = {
    name: "Walk",
    primaryKey: "_id",
    properties: { _id: "int", owners: { type: "linkingObjects", objectType: "Owner", property: "walk" } },
  };
  void backlink;
  return owner.colors.size + keys.length + (owner.scores.agility ?? 0);
}

export async function useClasses(): Promise<string> {
  const realm = await Haven.open({ path: "cats.haven", schema: [Cat] });
  realm.write(() => realm.create(Cat, { _id: 1, name: "Tom", born: new Date() }));
  const tom: Cat | undefined = realm.objects(Cat)[0];
  const born: Date | null | undefined = tom?.born;
  console.log(born, tom instanceof Haven.Realm.Object);
  return tom ? tom.greeting : "";
}

export async function use(): Promise<string[]> {
  const realm: Haven.Realm = await Haven.open({ path: "dogs.haven", schema: [DogSchema] });
  const rex = realm.write(() => realm.create<Dog>("Dog", { _id: 1, name: "Rex", lastUpdated: Date.now() }, Haven.UpdateMode.Modified));
  realm.write(() => {
    rex.name = "Rexy";
  });
  const recent: Haven.Results<Dog> = realm.objects<Dog>("Dog").filtered("lastUpdated > $0", 0).sorted("name");
  const first: Dog | undefined = recent[0];
  const average: number | undefined = recent.avg("lastUpdated");
  const onChange = (collection: Haven.Results<Dog>, changes: Haven.CollectionChangeSet) => {
    console.log(collection.length, changes.insertions.length, changes.oldModifications);
  };
  recent.addListener(onChange);
  recent.removeListener(onChange);
  rex.addListener((dog, changes) => console.log(dog.name, changes.changedProperties, changes.deleted));
  realm.close();

  const app = new Haven.App({ baseUrl: "wss://sync.example.com" });
  const user = await app.logIn(Haven.Credentials.jwt(async () => "a token"));
  const synced = await Haven.open({
    schema: [DogSchema],
    sync: {
      user,
      partitionValue: "p",
      clientReset: { mode: "manual" },
      onError: (_session, error) => {
        if (error.name === "ClientReset") Haven.App.Sync.initiateClientReset(app, error.config.path);
      },
      newRealmFileBehavior: { type: "downloadBeforeOpen", timeOut: 5000, timeOutBehavior: "openLocalRealm" },
    },
  });
  const state: Haven.ConnectionState | undefined = synced.syncSession?.connectionState;
  await synced.syncSession?.uploadAllLocalChanges(1000);
  synced.syncSession?.addConnectionNotification((now, before) => console.log(before, "->", now));
  synced.syncSession?.addProgressNotification("upload", "reportIndefinitely", (done, total) => console.log(done / total));
  console.log(state);
  return [...recent].map((d) => d.name).concat(first ? [first.name, String(average)] : []);
}
