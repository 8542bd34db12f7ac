// Console bench: 5,000 provisioned devices, about half of them online, 500 presence
// changes per second driven by real MQTT connects and disconnects, and the operator
// console open in headless Chromium (page.ts). Measures the time from an MQTT connect
// to the device's tile turning green (p50/p99), how long the console takes to show
// the whole fleet after login, and whether the page stays responsive
// (animation-frame gaps, long tasks); docs/benchmarks.md, "Operator console".
// Usage: --help.
//
// The broker (broker.ts) and Chromium are stopped when the bench ends, also on error
// or Ctrl-C.
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import type { BrowserContext } from "playwright-core";
import { benchArgs } from "../common/cli.js";
import { percentile } from "../common/stats.js";
import { sleep } from "../common/timing.js";
import { deviceId as id, ensureConsoleBuilt, startBroker } from "./broker.js";
import { launch, loginAndInstrument, probeLatencies, records, type Probe } from "./page.js";

const USAGE = `Console bench: the operator console in headless Chromium while devices come and go.

  node --import tsx bench/console/run.ts [--devices 5000] [--rate 500] [--seconds 30] [--probes 5] [--json FILE] [--keep]

  --devices N  provisioned devices (default 5,000), about half of them online
  --rate N     presence changes per second (connects + disconnects; default 500)
  --seconds N  length of the churn (default 30)
  --probes N   devices in view connected per second, timed until their tile turns green (default 5)
  --json FILE  the report
  --keep       keep the work dir`;

const opts = benchArgs(USAGE, {
  devices: { type: "string", default: "5000" },
  rate: { type: "string", default: "500" },
  seconds: { type: "string", default: "30" },
  probes: { type: "string", default: "5" },
  json: { type: "string" },
  keep: { type: "boolean", default: false },
});
const DEVICES = Number(opts.devices);
const RATE = Number(opts.rate); // presence changes per second (connects + disconnects)
const SECONDS = Number(opts.seconds);
const PROBES_PER_S = Number(opts.probes);
const PROBE_IDS = 40; // dev-0000…dev-0039: always in view (sorted by id), never churned
const PASSWORD = "bench device pw";
const OP_PASSWORD = "bench operator pw";

const log = (msg: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);
/** Nearest-rank percentile of an unsorted list. */
const pct = (xs: number[], p: number) => percentile([...xs].sort((a, b) => a - b), p);

// ---------------------------------------------------------------- cleanup

const work = mkdtempSync(join(tmpdir(), "sb-console-bench-"));
let broker: ChildProcess | undefined;
let context: BrowserContext | undefined;
const profile = join(work, "chromium-profile");
const clients = new Set<MqttClient>();
function cleanup(): void {
  for (const c of clients) c.end(true);
  try {
    const pid = Number(readlinkSync(join(profile, "SingletonLock")).split("-").pop());
    if (pid > 0) process.kill(pid, "SIGKILL");
  } catch {
    /* not running */
  }
  if (broker?.pid && broker.exitCode === null) {
    try {
      process.kill(-broker.pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  if (!opts.keep) {
    try {
      rmSync(work, { recursive: true, force: true, maxRetries: 5 });
    } catch {
      console.error(`could not remove ${work}`);
    }
  }
}
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => process.exit(130));

// ---------------------------------------------------------------- devices

let mqttPort = 0;
let connectErrors = 0;
function connect(device: string): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, { clientId: device, username: device, password: PASSWORD, reconnectPeriod: 0, connectTimeout: 30_000, keepalive: 120 });
    clients.add(c);
    c.once("connect", () => resolve(c));
    c.once("error", (err) => {
      connectErrors++;
      clients.delete(c);
      c.end(true);
      reject(err);
    });
  });
}
function disconnect(c: MqttClient): void {
  clients.delete(c);
  c.end();
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  ensureConsoleBuilt();
  const ports = await startBroker(work, { devices: DEVICES, password: PASSWORD, operatorPassword: OP_PASSWORD, log, onSpawn: (child) => (broker = child) });
  mqttPort = ports.mqtt;
  log(`broker up: mqtt ${ports.mqtt}, http ${ports.http}`);

  // Half of the churned devices online before the operator logs in.
  const churnIds = Array.from({ length: DEVICES - PROBE_IDS }, (_, i) => id(i + PROBE_IDS));
  const online = new Map<string, MqttClient>();
  const offline: string[] = [];
  const t0 = Date.now();
  const initial = churnIds.filter((_, i) => i % 2 === 0);
  for (let i = 0; i < initial.length; i += 100) {
    await Promise.all(initial.slice(i, i + 100).map(async (d) => online.set(d, await connect(d))));
  }
  for (const d of churnIds) if (!online.has(d)) offline.push(d);
  log(`${online.size} devices online in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const browser = await launch(profile);
  context = browser.context;
  const page = browser.page;
  const loadMs = await loginAndInstrument(page, { httpPort: ports.http, password: OP_PASSWORD, devices: DEVICES, online: online.size });
  log(`console shows ${DEVICES} devices (${online.size} online) ${loadMs} ms after login`);

  // Churn: RATE presence changes per second, alternating connect and disconnect of
  // random devices; probes: devices in view connected PROBES_PER_S times per second.
  const probeFree = Array.from({ length: PROBE_IDS }, (_, i) => id(i));
  const probes: Probe[] = [];
  let changes = 0;
  let pending = 0;
  const started = Date.now();
  const end = started + SECONDS * 1000;
  let nextProbe = started;
  const churnRate = Math.max(0, RATE - 2 * PROBES_PER_S);
  let debt = 0;
  let last = started;
  let flip = false;
  while (Date.now() < end) {
    const now = Date.now();
    debt += ((now - last) / 1000) * churnRate;
    last = now;
    for (; debt >= 1; debt--) {
      flip = !flip;
      if ((flip && offline.length) || !online.size) {
        const d = offline.splice(Math.floor(Math.random() * offline.length), 1)[0]!;
        pending++;
        connect(d).then(
          (c) => (online.set(d, c), changes++, pending--),
          () => (offline.push(d), pending--),
        );
      } else {
        const keys = [...online.keys()];
        const d = keys[Math.floor(Math.random() * keys.length)]!;
        disconnect(online.get(d)!);
        online.delete(d);
        offline.push(d);
        changes++;
      }
    }
    if (now >= nextProbe && probeFree.length) {
      nextProbe += 1000 / PROBES_PER_S;
      const d = probeFree.shift()!;
      const probe: Probe = { id: d, start: Date.now() };
      probes.push(probe);
      connect(d).then(
        (c) => {
          probe.connack = Date.now();
          // Back offline after 3 s, so the id can be probed again.
          setTimeout(() => {
            disconnect(c);
            setTimeout(() => probeFree.push(d), 1500);
          }, 3000);
        },
        () => setTimeout(() => probeFree.push(d), 1500),
      );
    }
    await sleep(10);
  }
  const elapsed = (Date.now() - started) / 1000;
  await sleep(3000); // let the last probes land
  const result = await records(page);
  const { fromConnect, fromConnack, toConnack, missed } = probeLatencies(probes, result.green);
  const report = {
    devices: DEVICES,
    presenceChangesPerSecond: Math.round(changes / elapsed),
    seconds: Math.round(elapsed),
    onlineAtEnd: online.size,
    connectErrors,
    loginToFleetMs: loadMs,
    probes: fromConnect.length,
    probesMissed: missed,
    connectToGreenMs: { p50: pct(fromConnect, 50), p99: pct(fromConnect, 99), max: pct(fromConnect, 100) },
    connackToGreenMs: { p50: pct(fromConnack, 50), p99: pct(fromConnack, 99), max: pct(fromConnack, 100) },
    connectToConnackMs: { p50: pct(toConnack, 50), p99: pct(toConnack, 99), max: pct(toConnack, 100) },
    // Other load on the machine skews every figure: the 1-minute load average at the end.
    loadAverage: Number(loadavg()[0]!.toFixed(2)),
    frameGapMs: { p50: Math.round(pct(result.frames, 50)), p99: Math.round(pct(result.frames, 99)), max: Math.round(pct(result.frames, 100)) },
    longTasks: { count: result.long.length, totalMs: Math.round(result.long.reduce((a, b) => a + b, 0)), maxMs: Math.round(Math.max(0, ...result.long)) },
  };
  console.log(JSON.stringify(report, null, 2));
  log(`connect → green: p50 ${report.connectToGreenMs.p50} ms, p99 ${report.connectToGreenMs.p99} ms over ${report.probes} probes at ${report.presenceChangesPerSecond} presence changes/s (${pending} connects still pending)`);
  if (opts.json) writeFileSync(opts.json, JSON.stringify(report, null, 2));
  await Promise.race([context.close(), sleep(5000)]);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
