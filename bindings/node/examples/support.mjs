// What the examples need around them: a `haven serve` of their own (the
// workspace's binary) and the operator's `haven admin reset-client`.
import { spawnSync } from "node:child_process";
import { startServer, havenBinary } from "../test/server.mjs";

export { startServer };

/** `haven admin ARGS` against `server`, parsed. */
function admin(server, adminToken, ...args) {
  const run = spawnSync(havenBinary, ["admin", "--server", `http://${server.addr}`, "--admin-token", adminToken, ...args], { encoding: "utf8" });
  if (run.status !== 0) throw new Error(`haven admin ${args.join(" ")}: ${run.stderr}`);
  return JSON.parse(run.stdout);
}

/** The idents of the clients connected to `partition` now. */
export function connectedClients(server, adminToken, partition) {
  const listed = admin(server, adminToken, "partitions").partitions.find((p) => p.partition === partition);
  return listed ? listed.connected_clients : [];
}

/** Resets one client, as an operator would with `haven admin reset-client IDENT`. */
export function resetClient(server, adminToken, ident) {
  admin(server, adminToken, "reset-client", String(ident));
}
