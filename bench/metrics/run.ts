// What one Prometheus scrape per second costs (docs/benchmarks.md, "Metrics
// scraping"). Starts Switchboard with 5,000 provisioned devices (1,000 of them
// connected over MQTT) and compares its CPU over 60 s without scrapes and 60 s
// with one /metrics scrape per second. Usage: --help.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import { brokerNodeFlags } from "../common/broker-flags.js";
import { benchArgs } from "../common/cli.js";
import { sleep } from "../common/timing.js";

const USAGE = `What one /metrics scrape per second costs the broker.

  node --import tsx bench/metrics/run.ts [--seconds N]

  --seconds N  length of each of the two windows, without and with scrapes (default 60)`;
const args = benchArgs(USAGE, { seconds: { type: "string", default: "60" } });

const ROOT = new URL("../..", import.meta.url).pathname;
const seconds = Number(args.seconds) || 60;
const dir = mkdtempSync(join(tmpdir(), "sb-bench-metrics-"));
const config = join(dir, "config.yaml");
writeFileSync(config, `dataDir: ${dir}/data\nxmpp: { host: 127.0.0.1, port: 0, requireTls: false }\nmqtt: { host: 127.0.0.1, port: 0, tlsPort: null }\nhttp: { host: 127.0.0.1, port: 0 }\n`);
const devices = join(dir, "devices.csv");
writeFileSync(devices, Array.from({ length: 5000 }, (_, i) => `m${i},thermostat,pw`).join("\n"));
const bin = join(ROOT, "bin/switchboard.js");
await new Promise<void>((resolve, reject) => spawn(process.execPath, [bin, "device", "import", devices, "--config", config], { stdio: "ignore" }).on("exit", (c) => (c === 0 ? resolve() : reject(new Error(`import exited ${c}`)))));
const broker = spawn(process.execPath, [...brokerNodeFlags(bin), bin, "start", "--config", config], { stdio: ["ignore", "pipe", "ignore"] });
const cleanup = () => {
  broker.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
};
process.on("exit", cleanup);
let out = "";
broker.stdout!.on("data", (d) => (out += d));
while (!out.includes('"msg":"listening"')) await sleep(100);
const ports = JSON.parse(out.split("\n").find((l) => l.includes('"msg":"listening"'))!);
const clients = [];
for (let i = 0; i < 1000; i += 50)
  clients.push(...(await Promise.all(Array.from({ length: 50 }, (_, j) => mqtt.connectAsync(`mqtt://127.0.0.1:${ports.mqtt}`, { clientId: `m${i + j}`, username: `m${i + j}`, password: "pw", reconnectPeriod: 0 })))));

const cpu = () => {
  const f = readFileSync(`/proc/${broker.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, clock ticks of 10 ms
};
async function window(scrape: boolean): Promise<{ cpuPercent: number; scrapeMs: number[] }> {
  const start = cpu();
  const scrapeMs: number[] = [];
  for (let s = 0; s < seconds; s++) {
    if (scrape) {
      const t0 = performance.now();
      await (await fetch(`http://127.0.0.1:${ports.http}/metrics`)).text();
      scrapeMs.push(performance.now() - t0);
    }
    await sleep(1000);
  }
  return { cpuPercent: ((cpu() - start) / seconds) * 100, scrapeMs };
}
await sleep(3000);
const idle = await window(false);
const scraped = await window(true);
scraped.scrapeMs.sort((a, b) => a - b);
console.log(`| broker CPU, no scrapes | broker CPU, 1 scrape/s | added | scrape p50 / max ms |`);
console.log(`|---|---|---|---|`);
console.log(`| ${idle.cpuPercent.toFixed(2)} % | ${scraped.cpuPercent.toFixed(2)} % | ${(scraped.cpuPercent - idle.cpuPercent).toFixed(2)} % of a core | ${scraped.scrapeMs[scraped.scrapeMs.length >> 1]!.toFixed(1)} / ${scraped.scrapeMs.at(-1)!.toFixed(1)} |`);
for (const c of clients) c.end(true);
process.exit(0);
