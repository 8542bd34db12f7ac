// MQTT benchmark: Mosquitto, bare aedes and Switchboard side by side on loopback
// (usage: --help, or options.ts).
//
// `switchboard` is the whole broker, started by its own command (its composition
// root): each device logs in with its own credentials, every sample passes the ACL
// and the schema and is committed to the spool before its PUBACK, then stored.
//
// One broker runs at a time; runs are interleaved (M A S, M A S, …) so slow
// drift of the machine favours none. Each figure is the median over runs.
// Per run, on a freshly started broker (phases.ts): QoS 1 and QoS 0 closed-loop
// throughput, QoS 0 latency at a fixed 20,000 msg/s, connect rate (one at a
// time, 50 at a time) with the latency of 50 connected devices during the
// 50-parallel storm, and last a QoS 0 flood (publishers limited only by TCP).
// RSS per idle device at 10,000 devices on another fresh broker, in run 1.
// See docs/benchmarks.md for what each number means.
import { join } from 'node:path';
import { runMain } from '../common/cli.js';
import { withWorkers, type Worker } from '../common/ipc.js';
import { beginBench, finishBench, runInterleaved } from '../common/interleave.js';
import {
  killAll, mosquittoVersion, otherCheckout, prepareSwitchboard,
  startAedes, startMosquitto, startSwitchboard, type Server,
} from '../common/servers.js';
import { Budget, ensureOpenFiles, fmt, log } from '../common/util.js';
import { P, PASSWORD, args, names, onePhase, pool, publishers, quick, subscriber } from './options.js';
import { memory, speedRun, type Ctx, type RunResult } from './phases.js';
import { report } from './report.js';

ensureOpenFiles(P.idle + 2_000);
const budget = new Budget(P.budgetMs);

let work = '';
let template = '';

async function startBroker(name: string, dir: string): Promise<Server> {
  // Debian's 2.0.11 has the inflight-quota bug fixed in 2.0.13: QoS 1
  // messages queued beyond max_inflight_messages (20) to a subscriber are
  // sometimes never sent. Unlimited inflight avoids it (aedes has no limit).
  if (name === 'mosquitto') return startMosquitto(dir, ['max_inflight_messages 0']);
  if (name === 'aedes') return startAedes(dir);
  return startSwitchboard(dir, template, { kind: 'embedded' }, { checkout: otherCheckout(name) });
}

async function withBroker<T>(name: string, tag: string, a: Worker, b: Worker, fn: (c: Ctx) => Promise<T>): Promise<T> {
  const srv = await startBroker(name, join(work, `${name}-${tag}`));
  try {
    const target = { host: '127.0.0.1', port: srv.ports.mqtt! };
    await Promise.all([a.call('setTarget', { target }), b.call('setTarget', { target })]);
    return await fn({ name, srv, a, b });
  } finally {
    await Promise.allSettled([a.call('teardown'), a.call('dropIdle')]);
    await srv.stop();
  }
}

async function main(): Promise<number> {
  const bench = beginBench<RunResult>({ bench: 'mqtt', names, runs: P.runs, versions: `Mosquitto ${mosquittoVersion()}` });
  const { results, errors } = bench;
  work = bench.work;
  template = join(work, 'template');
  const gen = new URL('../common/mqtt-loadgen.ts', import.meta.url);
  await withWorkers([[gen, 'generator A'], [gen, 'generator B']], async ([a, b]) => {
    const ms = prepareSwitchboard({
      names, noBuild: args['no-build'], template, errors,
      accounts: {
        devices: [...publishers, ...pool].map((d) => ({ id: d.clientId, password: PASSWORD })),
        accounts: [{ name: subscriber.username, role: 'service', password: PASSWORD }],
      },
    });
    if (ms !== undefined) log(`switchboard: provisioned ${fmt(publishers.length + pool.length)} devices and 1 service in ${fmt(ms / 1000, 1)} s`);
    const memories = new Map<string, RunResult['memory']>();
    await runInterleaved({
      names, runs: P.runs, budget, results, errors, quietWaitMs: quick ? 2_000 : 5_000,
      perRunMs: args['qos1-only'] ? 15_000 : args['connects-only'] ? 35_000 : quick ? 25_000 : 55_000,
      firstRunExtraMs: quick ? 5_000 : 20_000,
      run: async (name, run, attempt) => {
        // Memory on a fresh broker of its own in run 1 (its devices must not have
        // connected before the connect-rate phases), then the speed tests on another.
        if (run === 1 && !memories.has(name) && !onePhase) memories.set(name, await withBroker(name, `mem-${attempt}`, a!, b!, memory));
        const r = await withBroker(name, `${run}-${attempt}`, a!, b!, speedRun);
        if (results.get(name)!.length === 0) r.memory = memories.get(name);
        return r;
      },
    });
  });
  return finishBench({ report: report(results, errors), budget, json: args.json, params: P, results, errors, dir: work, keep: args.keep });
}

runMain(main, killAll);
