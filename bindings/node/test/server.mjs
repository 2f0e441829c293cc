// `haven serve` for the tests: the workspace's debug binary (built here if
// missing), on a free port, in a temporary folder.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const targetDir = process.env.CARGO_TARGET_DIR || join(root, "target");
export const havenBinary = join(targetDir, "debug", "haven");

/** A scripted Rust device (crates/haven-testkit/src/bin/haven-device.rs). */
export const deviceBinary = join(targetDir, "debug", "haven-device");

/** Builds the workspace's binaries if `binary` is not there yet: all of
 * them, with the features `cargo test --workspace` resolves (examples
 * bring in the dev-dependencies), so that after the workspace's own tests
 * nothing compiles again. */
export function ensureBinary(binary = havenBinary) {
  if (existsSync(binary)) return;
  const args = ["build", "--workspace", "--bins", "--examples"];
  const built = spawnSync("cargo", args, { cwd: root, stdio: "inherit" });
  if (built.status !== 0) throw new Error(`cargo ${args.join(" ")} failed`);
}

/** Starts `haven serve ARGS`; resolves to { url, addr, dir, stop }. */
export async function startServer(args = []) {
  ensureBinary();
  const dir = mkdtempSync(join(tmpdir(), "haven-serve-"));
  const child = spawn(havenBinary, ["serve", "--listen", "127.0.0.1:0", "--data-dir", join(dir, "data"), ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const url = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const match = /haven listening on (\S+)/.exec(out);
      if (match) resolve(match[1]);
    });
    child.on("exit", (code) => reject(new Error(`haven serve exited (${code}): ${stderr}`)));
  });
  return {
    url,
    addr: url.replace(/^wss?:\/\//, ""),
    dir,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.on("exit", resolve);
        child.kill("SIGTERM");
      }),
  };
}
