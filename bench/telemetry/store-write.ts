// The InfluxDB store alone: batches of 5,000 thermostat points (50 devices, point
// times from the point clock) written through createInfluxStore one at a time, as the
// drainer does, to a private influxd. Reports points/s (over the time spent in
// write) and the client's CPU µs per point. Checkouts alternate, each run in its own
// process (--one) against one influxd, each run into a database of its own.
// Usage: --help.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { benchArgs } from '../common/cli.js';
import { installCleanup, startInflux } from '../common/servers.js';
import { median } from '../common/stats.js';

const USAGE = `The InfluxDB store alone: points/s and client CPU µs per point, 5,000-point batches.

  node --import tsx bench/telemetry/store-write.ts [--checkouts DIR,DIR] [--runs N] [--seconds S]

  --checkouts LIST  source trees to compare, alternating; each one's src/telemetry/influx-store.ts
                    is loaded through tsx (default: this one)
  --runs N          runs per checkout (default 5)
  --seconds S       length of each run (default 5)`;

const args = benchArgs(USAGE, {
  checkouts: { type: 'string' }, runs: { type: 'string', default: '5' }, seconds: { type: 'string', default: '5' }, one: { type: 'string' }, url: { type: 'string' }, db: { type: 'string' },
});
const BATCH = 5_000;
const DEVICES = 50;

interface Figures { pointsPerSecond: number; cpuUsPerPoint: number; points: number }

async function measure(root: string, url: string, database: string, seconds: number): Promise<Figures> {
  const { createInfluxStore } = await import(pathToFileURL(join(root, 'src/telemetry/influx-store.ts')).href);
  const store = createInfluxStore({ url, database });
  let seq = 0;
  const t0 = Date.now() - 3_600_000;
  const batch = () => Array.from({ length: BATCH }, () => {
    const s = seq++;
    const time = t0 + Math.floor(s / 1000);
    return { seq: s, device: `d${s % DEVICES}`, type: 'thermostat', measurement: 'thermostat', time, tags: {}, fields: { temperature: 20 + (s % 100) / 10, humidity: 40 + (s % 997) / 1000 }, pointNs: `${time}${String(s % 1000).padStart(6, '0')}` };
  });
  const write = async () => {
    const b = batch();
    const cpu = process.cpuUsage();
    const started = performance.now();
    await store.write(b);
    return { ms: performance.now() - started, cpuUs: (({ user, system }) => user + system)(process.cpuUsage(cpu)) };
  };
  const warmUntil = Date.now() + 1_000;
  while (Date.now() < warmUntil) await write();
  let ms = 0, cpuUs = 0, points = 0;
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    const w = await write();
    ms += w.ms;
    cpuUs += w.cpuUs;
    points += BATCH;
  }
  await store.close();
  return { pointsPerSecond: (points / ms) * 1000, cpuUsPerPoint: cpuUs / points, points };
}

if (args.one) {
  console.log(JSON.stringify(await measure(args.one, args.url!, args.db!, Number(args.seconds))));
} else {
  installCleanup();
  const here = resolve(fileURLToPath(new URL('../..', import.meta.url)));
  const checkouts = args.checkouts ? args.checkouts.split(',').map((c) => resolve(c)) : [here];
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-store-bench-'));
  const influx = await startInflux(join(dir, 'influx'));
  const figures = new Map<string, Figures[]>(checkouts.map((c) => [c, []]));
  try {
    for (let run = 1; run <= Number(args.runs); run++) {
      for (const [i, c] of checkouts.entries()) {
        const out = execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--one', c, '--url', influx.url, '--db', `bench_${run}_${i}`, '--seconds', args.seconds!], { encoding: 'utf8' });
        const f = JSON.parse(out.trim().split('\n').pop()!) as Figures;
        figures.get(c)!.push(f);
        console.log(`run ${run} ${c}: ${Math.round(f.pointsPerSecond)} points/s, ${f.cpuUsPerPoint.toFixed(2)} µs CPU per point (${f.points} points)`);
      }
    }
  } finally {
    await influx.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\nmedians of ${args.runs} runs, ${args.seconds} s each, batches of ${BATCH}, one write in flight:`);
  for (const [c, fs] of figures) console.log(`${c}: ${Math.round(median(fs.map((f) => f.pointsPerSecond)))} points/s, ${median(fs.map((f) => f.cpuUsPerPoint)).toFixed(2)} µs CPU per point`);
}
