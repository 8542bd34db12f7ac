// The ingest pipeline alone (parse → validate → stamp → spool commit), without MQTT,
// sockets or a load generator: CPU per accepted sample on the main thread and on the
// spool's thread. A whole-broker bench on a shared 2-core machine is too noisy to see
// a small change; this one isolates what a change to src/telemetry costs. Checkouts
// alternate, each run in its own process (--one). Usage: --help.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { benchArgs } from '../common/cli.js';
import { threadCpuSeconds } from '../common/proc.js';
import { median } from '../common/stats.js';

const USAGE = `The ingest pipeline alone: CPU µs per accepted sample, main thread and other threads.

  node --import tsx bench/telemetry/ingest.ts [--checkouts DIR,DIR] [--runs N] [--rounds N]

  --checkouts LIST  built trees (npm run build) to compare, alternating (default: this one)
  --runs N          runs per checkout (default 5)
  --rounds N        rounds of 200 samples per run (default 1000)`;

const args = benchArgs(USAGE, { checkouts: { type: 'string' }, runs: { type: 'string', default: '5' }, rounds: { type: 'string', default: '1000' }, one: { type: 'string' } });
const BATCH = 200; // samples appended per turn, about one spool commit of a busy broker
const DEVICES = 50;

interface Figures { main: number; others: number; wall: number }

async function measure(root: string, rounds: number): Promise<Figures> {
  const load = (path: string) => import(pathToFileURL(join(root, 'dist', path)).href);
  const { openSpool } = await load('src/telemetry/spool.js');
  const { createIngest } = await load('src/telemetry/ingest.js');
  const { deviceTypes } = await load('devices/index.js');
  const types = new Map((deviceTypes as Array<{ name: string }>).map((t) => [t.name, t]));
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-ingest-bench-'));
  const spool = openSpool({ dataDir: dir, maxBytes: 2 ** 40 });
  const accounts = new Map(Array.from({ length: DEVICES }, (_, i) => [`d${i}`, { name: `d${i}`, role: 'device', type: 'thermostat' }]));
  // links: none (newer checkouts take the telemetry of each link; older ones ignore it).
  const ingest = createIngest({ registry: { get: (name: string) => accounts.get(name) }, deviceType: (name: string) => types.get(name), spool, links: [] });
  let n = 0;
  // What bench/mqtt's devices send: thermostat samples with their own ts.
  const payload = () => Buffer.from(`{"temperature":${(20 + (n % 100) / 10).toFixed(1)},"humidity":${(40 + (n % 997) / 1000).toFixed(3)},"ts":${1_763_000_000_000 + n++}}`);
  async function round(): Promise<void> {
    const results: Array<{ ok: boolean; sample?: { seq: number } }> = await Promise.all(Array.from({ length: BATCH }, (_, i) => ingest.ingest(`d${i % DEVICES}`, payload(), 'mqtt')));
    const refused = results.find((r) => !r.ok);
    if (refused) throw new Error(`sample refused: ${JSON.stringify(refused)}`);
    spool.ack(results[results.length - 1]!.sample!.seq); // as the drainer would
  }
  for (let i = 0; i < rounds / 5; i++) await round(); // warm-up
  const before = threadCpuSeconds(process.pid);
  const started = performance.now();
  for (let i = 0; i < rounds; i++) await round();
  const wall = performance.now() - started;
  const after = threadCpuSeconds(process.pid);
  await spool.close();
  rmSync(dir, { recursive: true, force: true });
  const samples = rounds * BATCH;
  const perSample = (s: number) => (s * 1e6) / samples;
  let others = 0;
  for (const [tid, s] of after) if (tid !== process.pid) others += s - (before.get(tid) ?? 0);
  return { main: perSample(after.get(process.pid)! - before.get(process.pid)!), others: perSample(others), wall: (wall * 1000) / samples };
}

if (args.one) {
  console.log(JSON.stringify(await measure(args.one, Number(args.rounds))));
} else {
  const here = resolve(fileURLToPath(new URL('../..', import.meta.url)));
  const checkouts = args.checkouts ? args.checkouts.split(',').map((c) => resolve(c)) : [here];
  const figures = new Map<string, Figures[]>(checkouts.map((c) => [c, []]));
  for (let run = 1; run <= Number(args.runs); run++) {
    for (const c of checkouts) {
      const out = execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--one', c, '--rounds', args.rounds!], { encoding: 'utf8' });
      const f = JSON.parse(out.trim().split('\n').pop()!) as Figures;
      figures.get(c)!.push(f);
      console.log(`run ${run} ${c}: main thread ${f.main.toFixed(2)} µs/sample, other threads ${f.others.toFixed(2)}, wall ${f.wall.toFixed(2)}`);
    }
  }
  console.log(`\nmedians of ${args.runs} runs, ${Number(args.rounds) * BATCH} samples each (CPU µs per sample):`);
  for (const [c, fs] of figures) {
    const m = (k: keyof Figures) => median(fs.map((f) => f[k])).toFixed(2);
    console.log(`${c}: main ${m('main')}, other threads (spool, GC) ${m('others')}, wall ${m('wall')}`);
  }
}
