// Console bench (issue 6, Performance): 5,000 provisioned devices, about half of
// them online, 500 presence changes per second driven by real MQTT connects and
// disconnects, and the operator console open in headless Chromium. Measures the
// time from an MQTT connect to the device's tile turning green (p50/p99), how long
// the console takes to show the whole fleet after login, and whether the page stays
// responsive (animation-frame gaps, long tasks).
//
//   node --import tsx bench/console/run.ts [--devices 5000] [--rate 500] [--seconds 30] [--probes 5] [--json FILE] [--keep]
//
// The broker is `bin/switchboard.js start` (build first: `npm run build`) in its own
// process group on free loopback ports, with config and data in a temporary directory;
// it and Chromium are stopped when the bench ends, also on error or Ctrl-C.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import mqtt, { type MqttClient } from "mqtt";
import { brokerNodeFlags } from "../common/broker-flags.js";

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const { values: opts } = parseArgs({
  options: {
    devices: { type: "string", default: "5000" },
    rate: { type: "string", default: "500" },
    seconds: { type: "string", default: "30" },
    probes: { type: "string", default: "5" },
    json: { type: "string" },
    keep: { type: "boolean", default: false },
  },
});
const DEVICES = Number(opts.devices);
const RATE = Number(opts.rate); // presence changes per second (connects + disconnects)
const SECONDS = Number(opts.seconds);
const PROBES_PER_S = Number(opts.probes);
const PROBE_IDS = 40; // dev-0000…dev-0039: always in view (sorted by id), never churned
const PASSWORD = "bench device pw";
const OP_PASSWORD = "bench operator pw";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const id = (i: number) => `dev-${String(i).padStart(4, "0")}`;
const log = (msg: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);
function pct(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

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

// ---------------------------------------------------------------- broker

function cli(...args: string[]): string {
  return execFileSync(process.execPath, [join(REPO, "bin/switchboard.js"), ...args, "--config", join(work, "config.json")], { cwd: work, encoding: "utf8", timeout: 300_000 });
}

async function startBroker(): Promise<{ mqtt: number; http: number }> {
  writeFileSync(
    join(work, "config.json"),
    JSON.stringify({ dataDir: join(work, "data"), xmpp: { host: "127.0.0.1", port: 0 }, mqtt: { host: "127.0.0.1", port: 0, tlsPort: null }, http: { host: "127.0.0.1", port: 0 } }),
  );
  const t0 = Date.now();
  writeFileSync(join(work, "devices.csv"), ["id,type,password", ...Array.from({ length: DEVICES }, (_, i) => `${id(i)},${["thermostat", "power-meter", "door-sensor"][i % 3]},${PASSWORD}`)].join("\n") + "\n");
  cli("device", "import", join(work, "devices.csv"));
  cli("account", "add", "op", "--role", "operator", "--password", OP_PASSWORD);
  log(`provisioned ${DEVICES} devices in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  broker = spawn(process.execPath, [...brokerNodeFlags(join(REPO, "bin/switchboard.js")), join(REPO, "bin/switchboard.js"), "start", "--config", join(work, "config.json")], { cwd: work, detached: true, stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, LOG_LEVEL: "info" } });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the broker did not report its ports within 30 s")), 30_000);
    broker!.once("exit", (code) => reject(new Error(`the broker exited (${code})`)));
    createInterface({ input: broker!.stdout! }).on("line", (line) => {
      if (!line.includes('"listening"')) return;
      const l = JSON.parse(line) as { mqtt: number; http: number };
      clearTimeout(timer);
      resolve({ mqtt: l.mqtt, http: l.http });
    });
  });
}

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

// ---------------------------------------------------------------- console

function ensureConsoleBuilt(): void {
  const src = join(REPO, "src/console");
  const built = join(REPO, "dist/console/index.html");
  const newest = Math.max(...readdirSync(src).map((f) => statSync(join(src, f)).mtimeMs));
  if (!existsSync(built) || statSync(built).mtimeMs < newest) execFileSync(process.execPath, [join(src, "build.mjs")], { cwd: REPO, timeout: 60_000 });
}

/**
 * In the page: when each tile turns green, animation-frame gaps, long tasks. A string,
 * not a function: tsx would wrap the function's inner closures in a helper the page lacks.
 */
const INSTRUMENT = `(() => {
  const green = {}, frames = [], long = [];
  Object.assign(window, { __green: green, __frames: frames, __long: long });
  const seen = (node) => {
    if (!(node instanceof HTMLElement) || node.dataset.state !== "online" || !node.dataset.id) return;
    (green[node.dataset.id] ??= []).push(Date.now());
  };
  new MutationObserver((records) => {
    for (const r of records) { seen(r.target); r.addedNodes.forEach(seen); }
  }).observe(document.getElementById("grid-inner"), { subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"] });
  let last = performance.now();
  const frame = (now) => { frames.push(now - last); last = now; requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
  new PerformanceObserver((list) => { for (const e of list.getEntries()) long.push(e.duration); }).observe({ type: "longtask" });
})()`;

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  ensureConsoleBuilt();
  const ports = await startBroker();
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

  context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    timeout: 30_000,
    viewport: { width: 1600, height: 1000 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  const page: Page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(60_000);
  await page.goto(`http://127.0.0.1:${ports.http}/`);
  await page.fill("input[name=jid]", "op@localhost");
  await page.fill("input[name=password]", OP_PASSWORD);
  const loginAt = Date.now();
  await page.click("#login button[type=submit]");
  await page.waitForFunction(([total, up]) => document.querySelector("#counts")?.textContent?.includes(`${up} online${total - up} offline`), [DEVICES, online.size] as const, { polling: 50 });
  const loadMs = Date.now() - loginAt;
  log(`console shows ${DEVICES} devices (${online.size} online) ${loadMs} ms after login`);
  await page.evaluate(INSTRUMENT);

  // Churn: RATE presence changes per second, alternating connect and disconnect of
  // random devices; probes: devices in view connected PROBES_PER_S times per second.
  const probeFree = Array.from({ length: PROBE_IDS }, (_, i) => id(i));
  const probes: Array<{ id: string; start: number; connack?: number }> = [];
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
      const probe: { id: string; start: number; connack?: number } = { id: d, start: Date.now() };
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
  const result = (await page.evaluate(() => {
    const w = window as unknown as { __green: Record<string, number[]>; __frames: number[]; __long: number[] };
    return { green: w.__green, frames: w.__frames, long: w.__long };
  })) as { green: Record<string, number[]>; frames: number[]; long: number[] };

  // Each probe's latency: the first green of its id at or after its connect started.
  const used: Record<string, number> = {};
  const fromConnect: number[] = [];
  const fromConnack: number[] = [];
  const toConnack: number[] = [];
  let missed = 0;
  for (const p of probes) {
    const times = result.green[p.id] ?? [];
    const k = times.findIndex((t, i) => t >= p.start && i >= (used[p.id] ?? 0));
    if (k < 0 || !p.connack) {
      missed++;
      continue;
    }
    used[p.id] = k + 1;
    fromConnect.push(times[k]! - p.start);
    fromConnack.push(times[k]! - p.connack);
    toConnack.push(p.connack - p.start);
  }
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
