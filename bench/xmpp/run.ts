// XMPP benchmark: Prosody, ejabberd and Switchboard side by side on loopback
// (usage: --help, or options.ts).
//
// Servers run one at a time, never two at once. Runs are interleaved
// (P E S, P E S, …) so slow drift of the machine does not favour whichever
// server goes first. Each metric is the median over runs (phases.ts). See
// docs/benchmarks.md for what each number means.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { runMain } from '../common/cli.js';
import { Worker } from '../common/ipc.js';
import { installCleanup, killAll } from '../common/server-process.js';
import { ensureOpenFiles, log } from '../common/util.js';
import { Ejabberd } from './ejabberd.js';
import { P, PASSWORD, allUsers, args, maxIdle, names } from './options.js';
import { otherCheckout } from '../common/switchboard.js';
import type { Peer } from './peer.js';
import { memory, speed, withServer, type RunResult } from './phases.js';
import { Prosody } from './prosody.js';
import { report } from './report.js';
import { Switchboard } from './switchboard.js';

ensureOpenFiles(maxIdle + 1_000, true);

async function main(): Promise<number> {
  const started = Date.now();
  const work = mkdtempSync(join(tmpdir(), 'switchboard-xmpp-bench-'));
  chmodSync(work, 0o755); // the servers run as their own users and must reach their dirs
  log(`work dir ${work}; ${cpus().length} CPUs; ${P.runs} run(s), memory in ${Math.min(P.memRuns, P.runs)}; ` +
    `${P.procs} load generator process(es)`);
  const peers: Peer[] = [];
  const errors = new Map<string, string>();
  const results = new Map<string, RunResult[]>();
  for (const name of names) {
    const dir = join(work, name.replace(/[^\w.-]/g, '_'));
    mkdirSync(dir);
    const checkout = otherCheckout(name);
    const make = checkout ? () => new Switchboard(dir, name, checkout) : { prosody: () => new Prosody(dir), ejabberd: () => new Ejabberd(dir), switchboard: () => new Switchboard(dir) }[name];
    if (!make) { errors.set(name, 'unknown server name'); continue; }
    peers.push(make());
    results.set(name, []);
  }
  const gens = Array.from({ length: P.procs }, () => new Worker(new URL('./loadgen.ts', import.meta.url), 'load generator'));
  try {
    for (const peer of peers) {
      const t = Date.now();
      try {
        await peer.prepare(allUsers, PASSWORD);
        log(`${peer.name}: prepared ${allUsers.length} accounts in ${((Date.now() - t) / 1000).toFixed(1)}s`);
      } catch (e) {
        errors.set(peer.name, `prepare failed: ${(e as Error).message}`);
      }
    }
    for (let run = 1; run <= P.runs; run++) {
      for (const peer of peers) {
        if (errors.has(peer.name)) continue; // a server that failed once is not retried
        log(`--- run ${run}/${P.runs}: ${peer.name}`);
        try {
          const r: RunResult = await withServer(peer, gens, speed);
          if (run <= P.memRuns) r.memory = await withServer(peer, gens, memory);
          results.get(peer.name)!.push(r);
        } catch (e) {
          errors.set(peer.name, `run ${run}: ${(e as Error).message} (logs: ${peer.logFile})`);
          log(`${peer.name}: ERROR ${(e as Error).message}`);
        }
      }
    }
  } finally {
    for (const g of gens) g.kill();
    killAll();
  }
  console.log(report(results, errors));
  log(`total ${((Date.now() - started) / 60_000).toFixed(1)} min`);
  if (args.json) {
    writeFileSync(args.json, JSON.stringify({ params: P, date: new Date().toISOString(), cpus: cpus().length,
      results: Object.fromEntries(results), errors: Object.fromEntries(errors) }, null, 2));
  }
  if (args.keep || errors.size > 0) log(`kept ${work} (configs and logs)`);
  else rmSync(work, { recursive: true, force: true });
  return errors.size > 0 ? 1 : 0;
}

installCleanup();
runMain(main, killAll);
