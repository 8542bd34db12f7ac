// Commands benchmark: a service commanding 100 MQTT devices (usage: --help).
//
// Targets, one at a time on a fresh broker, interleaved over runs; figures
// are medians over runs:
//   switchboard       the service speaks XMPP: XEP-0050 execute with the
//                     submit form inline → Switchboard validates, publishes
//                     on MQTT, waits for the device's reply, answers the IQ
//   switchboard-mqtt  the service publishes on devices/<id>/commands/… and
//                     reads devices/+/replies itself (allowed for services),
//                     through Switchboard's MQTT side
//   mosquitto, aedes  the same plain MQTT request/reply through a bare broker:
//                     the floor of what one round trip costs on this machine
//                     with these clients
// Per run: 200 commands in flight for the throughput (commands/s, round-trip
// p50/p99), then 1,000 commands/s on a clock for latency, where each
// command's device time (measured at the device) is subtracted from its round
// trip: the added latency. See docs/benchmarks.md.
import { join } from 'node:path';
import { COMMON_OPTIONS, benchArgs, list, runMain } from '../common/cli.js';
import { withWorkers, type Worker } from '../common/ipc.js';
import { beginBench, finishBench, runInterleaved } from '../common/interleave.js';
import { cpuSeconds } from '../common/proc.js';
import {
  killAll, mosquittoVersion, prepareSwitchboard, startAedes, startMosquitto, startSwitchboard, type Server,
} from '../common/servers.js';
import { median } from '../common/stats.js';
import { readingsAt, windowTimes } from '../common/timing.js';
import { Budget, ForeignCpu, fmt, latencySummary, load1, log, settle } from '../common/util.js';

const USAGE = `Commands benchmark: a service commanding 100 MQTT devices, through Switchboard
(XMPP XEP-0050 or MQTT) and through bare brokers.

  node --import tsx bench/commands/run.ts [--quick] [--targets switchboard,switchboard-mqtt,mosquitto,aedes]
       [--runs N] [--json FILE] [--keep] [--no-build] [--nodelay]

  --quick      1 short run
  --runs N     runs per target (default 3; 1 with --quick)
  --json FILE  all per-run figures
  --keep       keep the work dir (configs, logs)
  --no-build   do not rebuild dist/
  --nodelay    Nagle's algorithm off in the bare brokers`;

const args = benchArgs(USAGE, {
  ...COMMON_OPTIONS,
  targets: { type: 'string', default: 'switchboard,switchboard-mqtt,mosquitto,aedes' },
  nodelay: { type: 'boolean', default: false },
});

const quick = args.quick;
const P = {
  runs: Number(args.runs ?? (quick ? 1 : 3)),
  devices: 100,
  inflight: 200,
  rate: 1_000,
  warmupMs: quick ? 500 : 1_000,
  measureMs: quick ? 2_000 : 5_000,
  budgetMs: (quick ? 115 : 590) * 1000,
};
const PASSWORD = 'bench-pw-1';
const deviceCreds = Array.from({ length: P.devices }, (_, i) => ({ clientId: `t${i}`, username: `t${i}`, password: PASSWORD }));
const SERVICE = { clientId: 'svc', username: 'svc', password: PASSWORD };
const budget = new Budget(P.budgetMs);

type Summary = ReturnType<typeof latencySummary>;
interface ClosedLoop { completed: number; errors: number; lost: number; firstError?: string; seconds: number; rtt: Summary }
interface OpenLoop { sent: number; errors: number; lost: number; firstError?: string; seconds: number; rtts: Array<[number, number]> }

interface RunResult {
  perSec: number; rtt: Summary;
  atRate: Summary; added: Summary; deviceUs: Summary; rateAchieved: number;
  errors: number; firstError?: string;
  cpu: { server: number; devices: number; service: number };
  foreignCpuPct: number; load1: number;
}

interface Ctx { name: string; srv: Server; dev: Worker; svc: Worker }

const times = () => windowTimes(P.warmupMs, P.measureMs);

async function measure(c: Ctx): Promise<RunResult> {
  const target = { host: '127.0.0.1', port: c.srv.ports.mqtt! };
  const ids = deviceCreds.map((d) => d.clientId);
  await c.dev.call('startDevices', { target, creds: deviceCreds });
  if (c.name === 'switchboard') {
    await c.svc.call('xmppService', { target: { host: '127.0.0.1', port: c.srv.ports.xmpp!, domain: 'localhost' }, user: SERVICE.username, password: PASSWORD, devices: ids });
  } else {
    await c.svc.call('mqttService', { target, cred: SERVICE, devices: ids });
  }
  // Warm-up.
  const wu = Date.now();
  await c.svc.call<ClosedLoop>('closedLoop', { inflight: 50, startAt: wu, from: wu, to: wu + 1_000 });
  const pids = [c.srv.pid, c.dev.pid, c.svc.pid];
  await settle(pids);
  const foreign = new ForeignCpu();

  // Throughput: 200 in flight.
  let w = times();
  const [cl, [c0, c1]] = await Promise.all([
    c.svc.call<ClosedLoop>('closedLoop', { inflight: P.inflight, ...w }),
    readingsAt(w.from, w.to, () => ({ server: cpuSeconds(c.srv.pid), devices: c.dev.cpu(), service: c.svc.cpu() })),
  ]);
  const secs = P.measureMs / 1000;
  const cpu = { server: ((c1.server - c0.server) / secs) * 100, devices: ((c1.devices - c0.devices) / secs) * 100, service: ((c1.service - c0.service) / secs) * 100 };
  const perSec = cl.completed / cl.seconds;
  log(`${c.name}: ${fmt(perSec)} commands/s with ${P.inflight} in flight, round trip p50 ${fmt(cl.rtt.p50, 2)} ms, p99 ${fmt(cl.rtt.p99, 2)} ms ` +
    `(CPU % server ${fmt(cpu.server)} / devices ${fmt(cpu.devices)} / service ${fmt(cpu.service)})` +
    (cl.errors || cl.lost ? `; ERRORS ${cl.errors}, unanswered ${cl.lost}: ${cl.firstError ?? ''}` : ''));

  // Latency at a fixed rate, with each command's device time subtracted.
  await settle(pids);
  await c.dev.call('record', { on: true });
  w = times();
  const ol = await c.svc.call<OpenLoop>('openLoop', { rate: P.rate, ...w });
  await c.dev.call('record', { on: false });
  const dt = new Map(await c.dev.call<Array<[number, number]>>('takeDeviceTimes'));
  const added: number[] = [], devUs: number[] = [];
  for (const [key, ms] of ol.rtts) {
    const us = dt.get(key);
    if (us === undefined) continue;
    added.push(ms - us / 1000);
    devUs.push(us);
  }
  const r: RunResult = {
    perSec, rtt: cl.rtt, cpu,
    atRate: latencySummary(ol.rtts.map(([, ms]) => ms)), added: latencySummary(added), deviceUs: latencySummary(devUs),
    rateAchieved: ol.sent / ol.seconds,
    errors: cl.errors + cl.lost + ol.errors + ol.lost, firstError: cl.firstError ?? ol.firstError,
    foreignCpuPct: foreign.pct(), load1: load1(),
  };
  log(`${c.name}: at ${fmt(r.rateAchieved)} commands/s round trip p50 ${fmt(r.atRate.p50, 2)} ms, p99 ${fmt(r.atRate.p99, 2)} ms; ` +
    `added (minus device time, ${fmt(r.deviceUs.p50)} µs p50) p50 ${fmt(r.added.p50, 2)} ms, p99 ${fmt(r.added.p99, 2)} ms` +
    (ol.errors || ol.lost ? `; ERRORS ${ol.errors}, unanswered ${ol.lost}: ${ol.firstError ?? ''}` : '') +
    (added.length < ol.rtts.length ? `; ${ol.rtts.length - added.length} without device time` : ''));
  return r;
}

let work = '';
let template = '';

async function withTarget(name: string, tag: string, dev: Worker, svc: Worker): Promise<RunResult> {
  const dir = join(work, `${name}-${tag}`);
  // max_inflight_messages 0: see bench/mqtt/run.ts. --nodelay: Nagle's
  // algorithm off in the bare brokers (Switchboard's MQTT side cannot be told).
  const srv = name === 'mosquitto' ? await startMosquitto(dir, ['max_inflight_messages 0', ...(args.nodelay ? ['set_tcp_nodelay true'] : [])])
    : name === 'aedes' ? await startAedes(dir, { noDelay: args.nodelay })
      : await startSwitchboard(dir, template, { kind: 'embedded' });
  try {
    return await measure({ name, srv, dev, svc });
  } finally {
    await Promise.allSettled([svc.call('stopService'), dev.call('stopDevices')]);
    await srv.stop();
  }
}

const LABEL: Record<string, string> = {
  switchboard: 'Switchboard, XMPP service (XEP-0050)',
  'switchboard-mqtt': 'Switchboard, MQTT service (raw request/reply)',
  mosquitto: 'Mosquitto, MQTT request/reply',
  aedes: 'bare aedes, MQTT request/reply',
};

function report(results: Map<string, RunResult[]>, errors: Map<string, string>): string {
  const m = (runs: RunResult[], f: (r: RunResult) => number) => median(runs.map(f));
  const head = ['target', `commands/s (${P.inflight} in flight)`, 'round trip p50 / p99 ms', `@${fmt(P.rate)}/s round trip p50 / p99 ms`,
    `@${fmt(P.rate)}/s added (− device time) p50 / p99 ms`, 'device time p50 / p99 µs', 'CPU % server / devices / service (200 in flight)'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const [name, runs] of results) {
    if (!runs.length) continue;
    lines.push(`| ${[LABEL[name] ?? name, fmt(m(runs, (r) => r.perSec)),
      `${fmt(m(runs, (r) => r.rtt.p50), 2)} / ${fmt(m(runs, (r) => r.rtt.p99), 2)}`,
      `${fmt(m(runs, (r) => r.atRate.p50), 2)} / ${fmt(m(runs, (r) => r.atRate.p99), 2)}`,
      `${fmt(m(runs, (r) => r.added.p50), 2)} / ${fmt(m(runs, (r) => r.added.p99), 2)}`,
      `${fmt(m(runs, (r) => r.deviceUs.p50))} / ${fmt(m(runs, (r) => r.deviceUs.p99))}`,
      `${fmt(m(runs, (r) => r.cpu.server))} / ${fmt(m(runs, (r) => r.cpu.devices))} / ${fmt(m(runs, (r) => r.cpu.service))}`,
    ].join(' | ')} |`);
  }
  const sb = results.get('switchboard') ?? [];
  if (sb.length) {
    const rate = m(sb, (r) => r.perSec), p99 = m(sb, (r) => r.added.p99);
    const yes = (b: boolean) => (b ? 'met' : '**missed**');
    lines.push('', '| target (Switchboard, XMPP service) | measured | |', '|---|---|---|',
      `| ≥ 5,000 commands/s | ${fmt(rate)}/s | ${yes(rate >= 5000)} |`,
      `| p99 added latency < 5 ms at ${fmt(P.rate)}/s | ${fmt(p99, 2)} ms | ${yes(p99 < 5)} |`);
  }
  const all = [...results.values()].flat();
  const errs = all.filter((r) => r.errors > 0);
  for (const r of errs) lines.push('', `Errors in a run: ${r.errors} (${r.firstError ?? ''})`);
  lines.push('', `Load average (1 min) after each run: ${all.map((r) => fmt(r.load1, 2)).join(', ')}; CPU used by other processes ` +
    `during runs: up to ${fmt(Math.max(0, ...all.map((r) => r.foreignCpuPct)))}% of a core.`);
  for (const [name, e] of errors) lines.push('', `ERROR ${name}: ${e}`);
  return lines.join('\n');
}

async function main(): Promise<number> {
  const names = list(args.targets);
  const bench = beginBench<RunResult>({ bench: 'commands', names, runs: P.runs, versions: `Mosquitto ${mosquittoVersion()}` });
  const { results, errors } = bench;
  work = bench.work;
  template = join(work, 'template');
  const loadgen = new URL('./loadgen.ts', import.meta.url);
  await withWorkers([[loadgen, 'devices'], [loadgen, 'service']], async ([dev, svc]) => {
    prepareSwitchboard({
      names, noBuild: args['no-build'], template, errors,
      accounts: {
        devices: deviceCreds.map((d) => ({ id: d.clientId, password: PASSWORD })),
        accounts: [{ name: SERVICE.username, role: 'service', password: PASSWORD }],
      },
    });
    await runInterleaved({
      names, runs: P.runs, budget, results, errors, quietWaitMs: quick ? 2_000 : 5_000,
      perRunMs: 2 * (P.warmupMs + P.measureMs) + (quick ? 8_000 : 12_000),
      run: (name, i, attempt) => withTarget(name, `${i}-${attempt}`, dev!, svc!),
    });
  });
  return finishBench({ report: report(results, errors), budget, json: args.json, params: P, results, errors, dir: work, keep: args.keep });
}

runMain(main, killAll);
