// The broker of the console bench: `bin/switchboard.js start` (build first: `npm run
// build`) in its own process group on free loopback ports, with config and data in
// the bench's work dir, its devices and an operator provisioned through the CLI; and
// the console's bundle, rebuilt when its sources are newer.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { brokerNodeFlags } from "../common/broker-flags.js";
import { REPO, SWITCHBOARD_BIN } from "../common/switchboard.js";

export const deviceId = (i: number) => `dev-${String(i).padStart(4, "0")}`;

export interface Broker {
  child: ChildProcess;
  mqtt: number;
  http: number;
}

/**
 * Provisions `devices` devices (thermostats, power meters and door sensors in turn,
 * all with `password`) and the operator `op`, then starts the broker and waits for
 * the ports it reports; `onSpawn` sees the child at once, for cleanup.
 */
export async function startBroker(
  work: string,
  o: { devices: number; password: string; operatorPassword: string; log(msg: string): void; onSpawn(child: ChildProcess): void },
): Promise<Broker> {
  const config = join(work, "config.json");
  const cli = (...args: string[]) => execFileSync(process.execPath, [SWITCHBOARD_BIN, ...args, "--config", config], { cwd: work, encoding: "utf8", timeout: 300_000 });
  writeFileSync(
    config,
    JSON.stringify({ dataDir: join(work, "data"), xmpp: { host: "127.0.0.1", port: 0 }, mqtt: { host: "127.0.0.1", port: 0, tlsPort: null }, http: { host: "127.0.0.1", port: 0 } }),
  );
  const t0 = Date.now();
  writeFileSync(join(work, "devices.csv"), ["id,type,password", ...Array.from({ length: o.devices }, (_, i) => `${deviceId(i)},${["thermostat", "power-meter", "door-sensor"][i % 3]},${o.password}`)].join("\n") + "\n");
  cli("device", "import", join(work, "devices.csv"));
  cli("account", "add", "op", "--role", "operator", "--password", o.operatorPassword);
  o.log(`provisioned ${o.devices} devices in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const child = spawn(process.execPath, [...brokerNodeFlags(SWITCHBOARD_BIN), SWITCHBOARD_BIN, "start", "--config", config], { cwd: work, detached: true, stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, LOG_LEVEL: "info" } });
  o.onSpawn(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the broker did not report its ports within 30 s")), 30_000);
    child.once("exit", (code) => reject(new Error(`the broker exited (${code})`)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (!line.includes('"listening"')) return;
      const l = JSON.parse(line) as { mqtt: number; http: number };
      clearTimeout(timer);
      resolve({ child, mqtt: l.mqtt, http: l.http });
    });
  });
}

/** Builds dist/console when a source of src/console is newer. */
export function ensureConsoleBuilt(): void {
  const src = join(REPO, "src/console");
  const built = join(REPO, "dist/console/index.html");
  const newest = Math.max(...readdirSync(src).map((f) => statSync(join(src, f)).mtimeMs));
  if (!existsSync(built) || statSync(built).mtimeMs < newest) execFileSync(process.execPath, [join(src, "build.mjs")], { cwd: REPO, timeout: 60_000 });
}
