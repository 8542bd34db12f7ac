// A broker killed with SIGKILL loses nothing it acknowledged and writes nothing twice:
// the spool is replayed on the next start (docs/telemetry.md, Nothing accepted is
// lost). Both stores.
import t, { type Test } from "tap";
import mqtt from "mqtt";
import { spawn, spawnSync, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startInflux, type TestInflux } from "../helpers/influx.js";
import { waitFor } from "../helpers/wait.js";

const ROOT = new URL("../..", import.meta.url).pathname;
// `--import tsx` keeps the broker in this one process (the tsx wrapper would fork a
// child that a SIGKILL of the wrapper leaves running).
const CLI = ["--import", "tsx", join(ROOT, "src/cli.ts")];
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("TAP") && k !== "NODE_OPTIONS"));

function cli(config: string, ...args: string[]): string {
  return execFileSync(process.execPath, [...CLI, ...args, "--config", config], { env, encoding: "utf8" });
}

async function start(config: string): Promise<{ child: ChildProcess; ports: { mqtt: number } }> {
  const child = spawn(process.execPath, [...CLI, "start", "--config", config], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  const line = await waitFor(() => out.split("\n").find((l) => l.includes('"msg":"listening"')), 20_000, "listening line");
  return { child, ports: JSON.parse(line) };
}

function setup(t: Test, tsdb: string) {
  const dir = mkdtempSync(join(tmpdir(), "sb-kill-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, "config.yaml");
  writeFileSync(config, `dataDir: ${dir}/data\nxmpp: { host: 127.0.0.1, port: 0 }\nmqtt: { host: 127.0.0.1, port: 0, tlsPort: null }\nhttp: { host: 127.0.0.1, port: 0 }\n${tsdb}\n`);
  cli(config, "device", "add", "k1", "--type", "thermostat", "--password", "pw");
  return config;
}

async function publishAcked(port: number, from: number, count: number): Promise<number> {
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: "k1", username: "k1", password: "pw", reconnectPeriod: 0 });
  for (let i = from; i < from + count; i++) await dev.publishAsync("devices/k1/telemetry", JSON.stringify({ temperature: 20, humidity: 40, ts: 1_700_000_000_000 + i }), { qos: 1 });
  await dev.endAsync(true);
  return count;
}


t.test("InfluxDB: SIGKILL with samples in the spool, restart, exactly the acknowledged samples land", async (t) => {
  const influx: TestInflux = await startInflux();
  t.teardown(() => influx.close());
  const config = setup(t, `tsdb: { kind: influx, influx: { url: "${influx.url}", database: killdb }, batchSize: 50, flushMs: 100 }`);
  let broker = await start(config);
  let acked = await publishAcked(broker.ports.mqtt, 0, 100);
  await waitFor(async () => (await influx.count("thermostat", "killdb")) === 100 || undefined, 15_000);
  await influx.stop();
  acked += await publishAcked(broker.ports.mqtt, 100, 150); // acknowledged, only in the spool
  broker.child.kill("SIGKILL");
  await new Promise((r) => broker.child.once("exit", r));
  await influx.start();
  broker = await start(config);
  t.teardown(() => broker.child.kill("SIGKILL"));
  acked += await publishAcked(broker.ports.mqtt, 250, 50);
  await waitFor(async () => (await influx.count("thermostat", "killdb")) === acked || undefined, 20_000, `${acked} points`);
  await new Promise((r) => setTimeout(r, 500));
  t.equal(await influx.count("thermostat", "killdb"), acked, `exactly ${acked}: none lost, none twice`);
});

t.test("embedded store: SIGKILL, restart, replay; `switchboard telemetry` shows every sample once", async (t) => {
  const config = setup(t, "tsdb: { kind: embedded, batchSize: 1000, flushMs: 60000 }");
  const none = spawnSync(process.execPath, [...CLI, "telemetry", "k1", "--config", config], { env, encoding: "utf8" });
  t.equal(none.stdout, "", "nothing stored yet: an empty listing");
  t.match(none.stderr, /^no samples of 'k1' since \S+ in the store \(an accepted sample reaches it within tsdb.flushMs, 60000 ms\)\n$/, "and a reason on stderr");
  t.equal(none.status, 0);
  let broker = await start(config);
  // flushMs is long: the samples are only in the spool when the broker dies.
  const acked = await publishAcked(broker.ports.mqtt, 0, 120);
  broker.child.kill("SIGKILL");
  await new Promise((r) => broker.child.once("exit", r));
  broker = await start(config);
  const rows = await waitFor(() => {
    const out = JSON.parse(cli(config, "telemetry", "k1", "--since", "2023-01-01T00:00:00Z", "--limit", "10000", "--json")) as unknown[];
    return out.length >= acked ? out : undefined;
  }, 15_000, "replayed samples");
  t.equal(rows.length, acked);
  t.match(rows[0], { ts: "2023-11-14T22:13:20.000Z", temperature: 20, humidity: 40 });
  broker.child.kill("SIGTERM");
  const code = await new Promise((r) => broker.child.once("exit", r));
  t.equal(code, 0, "SIGTERM exits 0");
  const text = cli(config, "telemetry", "k1", "--since", "2023-01-01T00:00:00Z", "--limit", "3");
  t.match(text, /^2023-11-14T22:13:20.000Z {2}temperature=20 humidity=40\n/);
});
