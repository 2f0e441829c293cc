// ESM entry: the same module as the CommonJS one.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const Haven = require("./index.js");

export default Haven;
export const { open, Realm, App, Credentials, User, SyncSession, UpdateMode, HavenError } = Haven;
