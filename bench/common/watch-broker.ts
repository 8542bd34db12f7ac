// Watches a running Switchboard from outside while a bench drives it: every
// --every seconds, the CPU of each of its threads (from /proc/PID/task) and the process's
// memory as the broker itself reports it on /metrics (RSS, V8 heap size and use,
// external memory). "waiting" is the share of time a thread was ready to run but
// had no CPU: running + waiting near 100 % means the thread is CPU-bound on this
// machine even when its own CPU figure is lower.
// Usage: --help.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArgs } from './cli.js';
import { threadCpuSeconds, threadWaitSeconds } from './proc.js';
import { sleep } from './timing.js';

const USAGE = `Watches a running Switchboard: CPU and run-queue wait of each thread, RSS and heap.

  node --import tsx bench/common/watch-broker.ts [--log FILE] [--every S] [--count N]

  --log FILE  the broker's log (pid and HTTP port come from its "listening" line);
              default: the newest switchboard.log of a running bench or profile-run under the temp dir
  --every S   seconds between lines (default 5)
  --count N   lines, then exit (default 0: until the broker exits or Ctrl-C)`;

const args = benchArgs(USAGE, { log: { type: 'string' }, every: { type: 'string', default: '5' }, count: { type: 'string', default: '0' } });

function newestBenchLog(): string {
  const logs: Array<[string, number]> = [];
  for (const d of readdirSync(tmpdir())) {
    if (!/^switchboard-.*(bench|prof)-/.test(d)) continue; // bench runs and profile-run.ts
    for (const sub of readdirSync(join(tmpdir(), d), { withFileTypes: true })) {
      const f = join(tmpdir(), d, sub.name, 'switchboard.log');
      if (sub.isDirectory()) try { logs.push([f, statSync(f).mtimeMs]); } catch { /* none in this one */ }
    }
  }
  const newest = logs.sort((a, b) => b[1] - a[1])[0];
  if (!newest) throw new Error(`no switchboard.log of a bench under ${tmpdir()}`);
  return newest[0];
}

const logFile = args.log ?? newestBenchLog();
const listening = readFileSync(logFile, 'utf8').split('\n').reverse().map((l) => { try { return JSON.parse(l); } catch { return null; } })
  .find((l) => l?.msg === 'listening');
if (!listening) throw new Error(`no "listening" line in ${logFile}`);
const { pid, http } = listening as { pid: number; http: number };

const MEMORY = ['process_resident_memory_bytes', 'nodejs_heap_size_total_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_external_memory_bytes'];
async function memory(): Promise<string> {
  const text = await (await fetch(`http://127.0.0.1:${http}/metrics`)).text();
  return MEMORY.map((m) => {
    const v = Number(new RegExp(`^switchboard_${m} (\\S+)`, 'm').exec(text)?.[1]);
    return `${m.replace(/_bytes$/, '')} ${(v / 2 ** 20).toFixed(1)} MiB`;
  }).join(', ');
}

console.log(`watching pid ${pid} (HTTP ${http}) from ${logFile}`);
const everyMs = Number(args.every) * 1000;
// Thread ids: the main thread's is the pid. (`top -H` is no help here: on this
// machine it shows the whole process's CPU on the main thread's line.)
let before = threadCpuSeconds(pid);
let waitedBefore = threadWaitSeconds(pid);
const pct = (now: number, then: number | undefined) => ((now - (then ?? now)) / (everyMs / 1000)) * 100;
for (let i = 1; Number(args.count) === 0 || i <= Number(args.count); i++) {
  await sleep(everyMs);
  let now: Map<number, number>;
  let waited: Map<number, number>;
  try {
    now = threadCpuSeconds(pid);
    waited = threadWaitSeconds(pid);
  } catch { console.log('broker gone'); break; }
  const busy = [...now].map(([tid, s]) => [tid, pct(s, before.get(tid)), pct(waited.get(tid) ?? 0, waitedBefore.get(tid))] as const)
    .filter(([, run]) => run >= 1).sort((a, b) => b[1] - a[1]);
  before = now;
  waitedBefore = waited;
  const name = (tid: number) => (tid === pid ? 'main' : `thread ${tid}`);
  console.log(`${new Date().toISOString()} CPU: ${busy.map(([tid, run, wait]) => `${name(tid)} ${run.toFixed(0)} % (waiting ${wait.toFixed(0)} %)`).join(', ')}; ${await memory().catch((e) => `metrics: ${e.message}`)}`);
}
