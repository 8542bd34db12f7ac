// MQTT benchmark (issue 3): Mosquitto, bare aedes and Switchboard side by side
// on loopback.
//
//   node --import tsx bench/mqtt/run.ts [--quick] [--brokers mosquitto,aedes,switchboard,switchboard-mqtt]
//        (`switchboard@DIR` or `switchboard-mqtt@DIR` in --brokers: another built checkout, for an interleaved A/B)
//        [--runs N] [--idle N] [--json FILE] [--keep] [--no-build]
//
// `switchboard` is the whole broker (its telemetry pipeline validates and spools
// every sample before the PUBACK); `switchboard-mqtt` is its MQTT layer alone
// (auth, ACL, presence, limits; samples accepted at once), what issue 3's QoS 1
// target names: bench/common/switchboard-mqtt-layer.mjs.
//
// One broker runs at a time; runs are interleaved (M A S, M A S, …) so slow
// drift of the machine favours none. Each figure is the median over runs.
// Per run, on a freshly started broker: QoS 1 and QoS 0 closed-loop
// throughput, QoS 0 latency at a fixed 20,000 msg/s, connect rate (one at a
// time, 50 at a time) with the latency of 50 connected devices during the
// 50-parallel storm, and last a QoS 0 flood (publishers limited only by TCP).
// RSS per idle device at 10,000 devices on another fresh broker, in run 1.
// See docs/benchmarks.md for what each number means.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from '../common/ipc.js';
import {
  buildSwitchboard, gitDescribe, installCleanup, killAll, mosquittoVersion, provisionSwitchboard,
  otherCheckout, startAedes, startMosquitto, startSwitchboard, startSwitchboardMqttLayer, type Server,
} from '../common/servers.js';
import { finishBench, runInterleaved } from '../common/interleave.js';
import { Budget, ForeignCpu, ensureOpenFiles, fmt, load1, log, machine, ratio, settle, sleep } from '../common/util.js';
import { cpuSeconds, rssKiB } from '../xmpp/proc.js';
import { median } from '../xmpp/stats.js';
import type { ClosedResult, CollectResult, ConnectResult, Cred, RateResult } from '../common/mqtt-loadgen.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    brokers: { type: 'string', default: 'mosquitto,aedes,switchboard,switchboard-mqtt' },
    runs: { type: 'string' },
    idle: { type: 'string' },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
    // Only the QoS 1 throughput phase (no memory, QoS 0, connect or flood phases): quick A/B comparisons.
    'qos1-only': { type: 'boolean', default: false },
    // Only the connect-rate phases (first-time and reconnect storms): an A/B of connect handling.
    'connects-only': { type: 'boolean', default: false },
  },
});
/** Only one group of phases is run: no memory phase, shorter runs. */
const onePhase = args['qos1-only']! || args['connects-only']!;

const quick = args.quick!;
const names = args.brokers!.split(',').map((s) => s.trim()).filter(Boolean);
const P = {
  runs: Number(args.runs ?? (quick ? 1 : 3)),
  devices: 50,
  window: 10, // closed loop: messages per publisher not yet received by the subscriber
  idle: Number(args.idle ?? (quick ? 1_000 : 10_000)),
  warmupMs: quick ? 500 : 1_000,
  measureMs: quick ? 1_500 : 3_000,
  fixedRate: 20_000,
  stallRate: 1_000, // QoS 1 msg/s of the 50 connected devices during the connect storm
  connectMs: quick ? 1_500 : 3_000,
  concurrency: 50,
  // ~10 min for the three brokers of the issue, more for each broker beyond them.
  budgetMs: (quick ? 115 : 590) * 1000 * Math.max(1, names.length / 3),
};
const PASSWORD = 'bench-pw-1';
const publishers: Cred[] = Array.from({ length: P.devices }, (_, i) => ({ clientId: `p${i}`, username: `p${i}`, password: PASSWORD }));
const pool: Cred[] = Array.from({ length: P.idle }, (_, i) => ({ clientId: `d${i}`, username: `d${i}`, password: PASSWORD }));
const subscriber = { clientId: 'sub', username: 'sub', password: PASSWORD, filter: 'devices/+/telemetry' };

ensureOpenFiles(P.idle + 2_000);
/** The last devices of the pool serve the warm-up, so the first-time phases never see them. */
const WARMUP_DEVICES = 200;
const budget = new Budget(P.budgetMs);

// ------------------------------------------------------------ results

interface Tp { rate: number; p50: number; p99: number; cpuUsPerMsg: number; serverCpuPct: number; genCpuPct: number; lost: number }
interface RunResult {
  load1: number;
  foreignCpuPct: number;
  qos1?: Tp;
  qos0?: Tp;
  fixed?: { rate: number; p50: number; p99: number; p999: number; lost: number };
  flood?: { rate: number; p50: number; p99: number; lost: number; drainMs: number; rssGrowthMiB: number; serverCpuPct: number; crashed: boolean };
  connSeq?: number;
  connPar?: number;
  /** 50 parallel again, over devices that have connected once already (reconnects). */
  connParWarm?: number;
  stall?: { idleP99: number; stormP99: number; stormP50: number; warmStormP99: number; stormConnects: number; lost: number };
  memory?: { n: number; baselineMiB: number; rssMiB: number; kibPerDevice: number };
}

// ------------------------------------------------------------ phases

interface Ctx { name: string; srv: Server; a: Worker; b: Worker }

/** CPU of the server and of the generators over [from, to), in seconds. */
function cpuWindow(c: Ctx, from: number, to: number): Promise<{ server: number; gens: number }> {
  const read = () => [cpuSeconds(c.srv.pid), c.a.cpu() + c.b.cpu()] as const;
  return new Promise((resolve) => {
    let at0: readonly [number, number] = [0, 0];
    setTimeout(() => { at0 = read(); }, from - Date.now());
    setTimeout(() => { const at1 = read(); resolve({ server: at1[0] - at0[0], gens: at1[1] - at0[1] }); }, to - Date.now());
  });
}

const quiet = (c: Ctx, maxMs = 3_000) => settle([c.srv.pid, c.a.pid, c.b.pid], maxMs);

function windowTimes(): { startAt: number; from: number; to: number } {
  const startAt = Date.now() + 200;
  const from = startAt + P.warmupMs;
  return { startAt, from, to: from + P.measureMs };
}

async function throughput(c: Ctx, qos: 0 | 1): Promise<Tp> {
  await quiet(c);
  const w = windowTimes();
  const [r, cpu] = await Promise.all([c.a.call<ClosedResult>('closed', { qos, window: P.window, ...w }), cpuWindow(c, w.from, w.to)]);
  const secs = P.measureMs / 1000;
  const t: Tp = {
    rate: r.delivered / secs, p50: r.latency.p50, p99: r.latency.p99, lost: r.lost + r.stalls,
    cpuUsPerMsg: (cpu.server / r.delivered) * 1e6, serverCpuPct: (cpu.server / secs) * 100, genCpuPct: (cpu.gens / secs) * 100,
  };
  log(`${c.name}: QoS ${qos} ${fmt(t.rate)} msg/s delivered, p50 ${fmt(t.p50, 2)} ms, p99 ${fmt(t.p99, 2)} ms, ` +
    `${fmt(t.cpuUsPerMsg, 1)} µs server CPU/msg (server ${fmt(t.serverCpuPct)}% / generators ${fmt(t.genCpuPct)}% of a core)` +
    (r.lost || r.stalls ? `, LOST ${r.lost}, stalls ${r.stalls}` : ''));
  return t;
}

async function fixedRate(c: Ctx): Promise<NonNullable<RunResult['fixed']>> {
  await quiet(c);
  const w = windowTimes();
  const r = await c.a.call<RateResult>('rate', { qos: 0, rate: P.fixedRate, ...w });
  const f = { rate: r.sent / r.seconds, p50: r.latency.p50, p99: r.latency.p99, p999: r.latency.p999, lost: r.lost };
  log(`${c.name}: QoS 0 at ${fmt(f.rate)} msg/s: p50 ${fmt(f.p50, 2)} ms, p99 ${fmt(f.p99, 2)} ms, p99.9 ${fmt(f.p999, 2)} ms, lost ${r.lost}`);
  return f;
}

async function connectRates(c: Ctx): Promise<Pick<RunResult, 'connSeq' | 'connPar' | 'connParWarm' | 'stall'>> {
  // Each device of the first half connects for the first time in the sequential
  // phase, each of the second half in the cold storm; the warm storm reconnects
  // devices of the first half (Switchboard remembers their verified passwords).
  const half = Math.floor(pool.length / 2);
  // The 50 publishers' latency at a modest QoS 1 rate, first alone...
  await quiet(c);
  let w = windowTimes();
  const idle = await c.a.call<RateResult>('rate', { qos: 1, rate: P.stallRate, ...w });
  // ...then connects one at a time...
  await quiet(c);
  const seq = await c.b.call<ConnectResult>('connects', { creds: pool.slice(0, half), concurrency: 1, durationMs: P.connectMs });
  if (seq.errors) throw new Error(`connect errors: ${seq.firstError}`);
  const connSeq = seq.count / seq.seconds;
  // ...then 50 at a time while the 50 connected devices publish: first-time devices...
  const storm = async (creds: Cred[]) => {
    await quiet(c);
    w = windowTimes();
    const [lat, conns] = await Promise.all([
      c.a.call<RateResult>('rate', { qos: 1, rate: P.stallRate, ...w }),
      c.b.call<ConnectResult>('connects', { creds, concurrency: P.concurrency, startAt: w.from, durationMs: P.measureMs }),
    ]);
    if (conns.errors) throw new Error(`connect errors: ${conns.firstError}`);
    return { lat, rate: conns.count / conns.seconds };
  };
  const cold = await storm(pool.slice(half, -WARMUP_DEVICES));
  // ...then devices reconnecting.
  const warm = await storm(pool.slice(0, Math.max(1, Math.min(seq.count, half))));
  const stall = { idleP99: idle.latency.p99, stormP99: cold.lat.latency.p99, stormP50: cold.lat.latency.p50, warmStormP99: warm.lat.latency.p99,
    stormConnects: cold.rate, lost: idle.lost + cold.lat.lost + warm.lat.lost };
  log(`${c.name}: connects/s sequential ${fmt(connSeq)}, ${P.concurrency} parallel ${fmt(cold.rate)} first-time, ${fmt(warm.rate)} reconnecting; ` +
    `QoS 1 p99 of ${P.devices} connected devices at ${fmt(P.stallRate)} msg/s: ${fmt(stall.idleP99, 2)} ms alone, ` +
    `${fmt(stall.stormP99, 2)} ms during the first-time storm, ${fmt(stall.warmStormP99, 2)} ms during the reconnect storm` + (stall.lost ? `, LOST ${stall.lost}` : ''));
  return { connSeq, connPar: cold.rate, connParWarm: warm.rate, stall };
}

async function flood(c: Ctx): Promise<NonNullable<RunResult['flood']>> {
  const target = { host: '127.0.0.1', port: c.srv.ports.mqtt! };
  await c.a.call('setup', { target, publishers });
  await c.b.call('subscribe', { ...subscriber, target, qos: 0 });
  await quiet(c);
  const w = windowTimes();
  const rss0 = rssKiB(c.srv.pid);
  let peak = rss0;
  const sampler = setInterval(() => { peak = Math.max(peak, rssKiB(c.srv.pid)); }, 100);
  const cpu0 = cpuSeconds(c.srv.pid);
  const t0 = Date.now();
  let s: { sent: number }, r: CollectResult;
  try {
    [s, r] = await Promise.all([
      c.a.call<{ sent: number }>('blast', { startAt: w.startAt, to: w.to }),
      c.b.call<CollectResult>('collect', { from: w.from, to: w.to, drainMaxMs: quick ? 2_000 : 5_000 }),
    ]);
  } finally {
    clearInterval(sampler);
  }
  const serverCpuPct = ((cpuSeconds(c.srv.pid) - cpu0) / ((Date.now() - t0) / 1000)) * 100;
  // What a broker left with a backlog does when its publishers and then its
  // subscriber go away (aedes' mqemitter drains its queue recursively).
  await c.a.call('teardown');
  await c.b.call('teardown');
  await sleep(2_000);
  const crashed = c.srv.alive?.() === false;
  if (crashed) log(`${c.name}: CRASHED after the flood when the subscriber disconnected (log: ${c.srv.logFile})`);
  const f = { rate: r.delivered / r.seconds, p50: r.latency.p50, p99: r.latency.p99, lost: Math.max(0, s.sent - r.received), drainMs: r.drainMs, rssGrowthMiB: (peak - rss0) / 1024, serverCpuPct, crashed };
  log(`${c.name}: QoS 0 flood: ${fmt(s.sent / ((w.to - w.startAt) / 1000))} msg/s offered, ${fmt(f.rate)} delivered, ` +
    `p50 ${fmt(f.p50, 1)} ms, p99 ${fmt(f.p99, 1)} ms, lost ${fmt(f.lost)}, delivery went on ${fmt(f.drainMs)} ms after publishers stopped, ` +
    `RSS +${fmt(f.rssGrowthMiB, 1)} MiB`);
  return f;
}

async function memory(c: Ctx): Promise<NonNullable<RunResult['memory']>> {
  await quiet(c, 10_000);
  const base = rssKiB(c.srv.pid);
  const r = await c.a.call<ConnectResult>('connectIdle', { creds: pool, concurrency: P.concurrency });
  try {
    if (r.errors) throw new Error(`idle connects failed (${r.errors}): ${r.firstError}`);
    await sleep(quick ? 1_000 : 2_000);
    await quiet(c, 10_000);
    const rss = rssKiB(c.srv.pid);
    const m = { n: r.count, baselineMiB: base / 1024, rssMiB: rss / 1024, kibPerDevice: (rss - base) / r.count };
    log(`${c.name}: ${fmt(m.n)} idle devices (connected in ${fmt(r.seconds, 1)} s): RSS ${fmt(m.rssMiB, 1)} MiB ` +
      `(baseline ${fmt(m.baselineMiB, 1)}), ${fmt(m.kibPerDevice, 1)} KiB/device`);
    return m;
  } finally {
    await c.a.call('dropIdle');
  }
}

// ------------------------------------------------------------ brokers

let work = '';
let template = '';

async function startBroker(name: string, dir: string): Promise<Server> {
  // Debian's 2.0.11 has the inflight-quota bug fixed in 2.0.13: QoS 1
  // messages queued beyond max_inflight_messages (20) to a subscriber are
  // sometimes never sent. Unlimited inflight avoids it (aedes has no limit).
  if (name === 'mosquitto') return startMosquitto(dir, ['max_inflight_messages 0']);
  if (name === 'aedes') return startAedes(dir);
  if (name.startsWith('switchboard-mqtt')) return startSwitchboardMqttLayer(dir, template, otherCheckout(name));
  return startSwitchboard(dir, template, { kind: 'embedded' }, otherCheckout(name));
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

async function speedRun(c: Ctx): Promise<RunResult> {
  const target = { host: '127.0.0.1', port: c.srv.ports.mqtt! };
  await c.a.call('setup', { target, publishers, subscriber: { ...subscriber, qos: 1 } });
  // Warm-up: code loaded and optimised before anything is measured.
  await c.a.call<ClosedResult>('closed', { qos: 1, window: P.window, startAt: Date.now(), from: Date.now(), to: Date.now() + 1_000 });
  await c.b.call<ConnectResult>('connects', { creds: pool.slice(-WARMUP_DEVICES), concurrency: 10, durationMs: 500 });
  const r: RunResult = { load1: load1(), foreignCpuPct: 0 };
  const foreign = new ForeignCpu();
  const finish = () => ((r.foreignCpuPct = foreign.pct()), r);
  if (args['connects-only']) return (Object.assign(r, await connectRates(c)), finish());
  r.qos1 = await throughput(c, 1);
  if (args['qos1-only']) return finish();
  // QoS 0 publishers and subscriber: a fresh session, so no QoS 1 state lingers.
  await c.a.call('setup', { target, publishers, subscriber: { ...subscriber, qos: 0 } });
  r.qos0 = await throughput(c, 0);
  r.fixed = await fixedRate(c);
  await c.a.call('setup', { target, publishers, subscriber: { ...subscriber, qos: 1 } });
  Object.assign(r, await connectRates(c));
  r.flood = await flood(c);
  return finish();
}

// ------------------------------------------------------------ report

function report(results: Map<string, RunResult[]>, errors: Map<string, string>): string {
  const m = (runs: RunResult[], f: (r: RunResult) => number | undefined) => median(runs.map((r) => f(r) ?? NaN));
  const lines: string[] = [];
  const head1 = ['broker', 'QoS 1 msg/s', 'QoS 1 p50 / p99 ms', 'QoS 1 µs CPU/msg', 'QoS 0 msg/s', 'QoS 0 p50 / p99 ms',
    `QoS 0 @${fmt(P.fixedRate)}/s p50 / p99 / p99.9 ms`, 'QoS 0 flood: delivered/s, p99 ms, RSS +MiB, delivery after stop s', 'CPU % server / gen (QoS 1)'];
  lines.push(`| ${head1.join(' | ')} |`, `|${head1.map(() => '---').join('|')}|`);
  for (const [name, runs] of results) {
    if (!runs.length) continue;
    lines.push(`| ${[name,
      fmt(m(runs, (r) => r.qos1?.rate)), `${fmt(m(runs, (r) => r.qos1?.p50), 2)} / ${fmt(m(runs, (r) => r.qos1?.p99), 2)}`,
      fmt(m(runs, (r) => r.qos1?.cpuUsPerMsg), 1),
      fmt(m(runs, (r) => r.qos0?.rate)), `${fmt(m(runs, (r) => r.qos0?.p50), 2)} / ${fmt(m(runs, (r) => r.qos0?.p99), 2)}`,
      `${fmt(m(runs, (r) => r.fixed?.p50), 2)} / ${fmt(m(runs, (r) => r.fixed?.p99), 2)} / ${fmt(m(runs, (r) => r.fixed?.p999), 2)}` +
        (m(runs, (r) => r.fixed?.lost) ? ` (lost ${fmt(m(runs, (r) => r.fixed?.lost))})` : ''),
      `${fmt(m(runs, (r) => r.flood?.rate))}, ${fmt(m(runs, (r) => r.flood?.p99))}, ${fmt(m(runs, (r) => r.flood?.rssGrowthMiB))}, ` +
        `${fmt(m(runs, (r) => (r.flood?.drainMs ?? NaN) / 1000), 1)}` +
        (m(runs, (r) => r.flood?.lost) ? `, ${fmt(m(runs, (r) => r.flood?.lost))} not delivered` : '') +
        (runs.some((r) => r.flood?.crashed) ? `; **crashed ${runs.filter((r) => r.flood?.crashed).length}/${runs.length}** afterwards` : ''),
      `${fmt(m(runs, (r) => r.qos1?.serverCpuPct))} / ${fmt(m(runs, (r) => r.qos1?.genCpuPct))}`,
    ].join(' | ')} |`);
  }
  const head2 = ['broker', 'connects/s sequential (first time)', `connects/s ${P.concurrency} parallel: first time / reconnecting`,
    `p99 ms of ${P.devices} connected devices (QoS 1, ${fmt(P.stallRate)} msg/s): alone → first-time storm → reconnect storm`,
    `KiB per idle device @${fmt(P.idle)}`, 'RSS MiB before → with idle devices'];
  lines.push('', `| ${head2.join(' | ')} |`, `|${head2.map(() => '---').join('|')}|`);
  for (const [name, runs] of results) {
    if (!runs.length) continue;
    lines.push(`| ${[name, fmt(m(runs, (r) => r.connSeq)), `${fmt(m(runs, (r) => r.connPar))} / ${fmt(m(runs, (r) => r.connParWarm))}`,
      `${fmt(m(runs, (r) => r.stall?.idleP99), 2)} → ${fmt(m(runs, (r) => r.stall?.stormP99), 2)} → ${fmt(m(runs, (r) => r.stall?.warmStormP99), 2)}`,
      fmt(m(runs, (r) => r.memory?.kibPerDevice), 1),
      `${fmt(m(runs, (r) => r.memory?.baselineMiB), 1)} → ${fmt(m(runs, (r) => r.memory?.rssMiB), 1)}`,
    ].join(' | ')} |`);
  }
  const sb = results.get('switchboard') ?? [];
  const ae = results.get('aedes') ?? [];
  const layer = results.get('switchboard-mqtt') ?? [];
  const a1 = m(ae, (r) => r.qos1?.rate);
  const yes = (b: boolean) => (b ? 'met' : '**missed**');
  if (layer.length || sb.length) lines.push('', '| QoS 1 target (≥ 0.8 × bare aedes) | measured | |', '|---|---|---|');
  if (layer.length) {
    const l1 = m(layer, (r) => r.qos1?.rate);
    lines.push(`| Switchboard's MQTT layer: auth, ACL, presence (switchboard-mqtt) | ${fmt(l1)} vs ${fmt(a1)} msg/s = ${ratio(l1, a1)} | ${ae.length ? yes(l1 >= 0.8 * a1) : 'no aedes run'} |`);
  }
  if (sb.length) {
    const q1 = m(sb, (r) => r.qos1?.rate);
    lines.push(`| the whole broker: each sample also validated and committed to the spool before its PUBACK, and stored (switchboard) | ` +
      `${fmt(q1)} vs ${fmt(a1)} msg/s = ${ratio(q1, a1)} | ${ae.length ? (q1 >= 0.8 * a1 ? 'at or above 0.8×' : 'below 0.8×') : 'no aedes run'} |`);
    const p99 = m(sb, (r) => r.fixed?.p99);
    const cp = m(sb, (r) => r.connPar), sp = m(sb, (r) => r.stall?.stormP99);
    const cw = m(sb, (r) => r.connParWarm), sw = m(sb, (r) => r.stall?.warmStormP99);
    const kib = m(sb, (r) => r.memory?.kibPerDevice);
    // Phases not run (--qos1-only, --connects-only) leave no row.
    const rows = [
      [p99, `| QoS 0 p99 < 50 ms at ${fmt(P.fixedRate)} msg/s | ${fmt(p99, 2)} ms | ${yes(p99 < 50)} |`],
      [cp, `| ≥ 1,000 new authenticated connects/s, first-time devices | ${fmt(cp)}/s (${P.concurrency} parallel) | ${yes(cp >= 1000)} |`],
      [sp, `| … while connected devices keep p99 < 20 ms | ${fmt(sp, 2)} ms | ${yes(sp < 20)} |`],
      [cw, `| ≥ 1,000 authenticated connects/s, reconnecting devices | ${fmt(cw)}/s (${P.concurrency} parallel) | ${yes(cw >= 1000)} |`],
      [sw, `| … while connected devices keep p99 < 20 ms | ${fmt(sw, 2)} ms | ${yes(sw < 20)} |`],
      [kib, `| idle device < 30 KiB at ${fmt(P.idle)} | ${fmt(kib, 1)} KiB | ${yes(kib < 30)} |`],
    ] as const;
    const measured = rows.filter(([v]) => !Number.isNaN(v)).map(([, line]) => line);
    if (measured.length) lines.push('', '| target (Switchboard, the whole broker) | measured | |', '|---|---|---|', ...measured);
  }
  const loads = [...results.values()].flat();
  lines.push('', `Load average (1 min) at the start of each run: ${loads.map((r) => fmt(r.load1, 2)).join(', ')}; ` +
    `CPU used by other processes during runs: up to ${fmt(Math.max(0, ...loads.map((r) => r.foreignCpuPct)))}% of a core.`);
  for (const [name, e] of errors) lines.push('', `ERROR ${name}: ${e}`);
  return lines.join('\n');
}

// ------------------------------------------------------------ main

async function main(): Promise<number> {
  work = mkdtempSync(join(tmpdir(), 'switchboard-mqtt-bench-'));
  log(`work dir ${work}; ${machine()}; load ${fmt(load1(), 2)}; ${P.runs} run(s); Mosquitto ${mosquittoVersion()}; switchboard ${gitDescribe()}`);
  const results = new Map<string, RunResult[]>(names.map((n) => [n, []]));
  const errors = new Map<string, string>();
  const a = new Worker(new URL('../common/mqtt-loadgen.ts', import.meta.url), 'generator A');
  const b = new Worker(new URL('../common/mqtt-loadgen.ts', import.meta.url), 'generator B');
  installCleanup(() => { a.kill(); b.kill(); });
  try {
    if (names.some((n) => n.startsWith('switchboard'))) {
      try {
        log(`switchboard: ${buildSwitchboard(args['no-build']!)}`);
        template = join(work, 'template');
        const ms = provisionSwitchboard(template, {
          devices: [...publishers, ...pool].map((d) => ({ id: d.clientId, password: PASSWORD })),
          accounts: [{ name: subscriber.username, role: 'service', password: PASSWORD }],
        });
        log(`switchboard: provisioned ${fmt(publishers.length + pool.length)} devices and 1 service in ${fmt(ms / 1000, 1)} s`);
      } catch (e) {
        errors.set('switchboard', (e as Error).message);
      }
    }
    const memories = new Map<string, RunResult['memory']>();
    await runInterleaved({
      names, runs: P.runs, budget, results, errors, quietWaitMs: quick ? 2_000 : 5_000,
      perRunMs: args['qos1-only'] ? 15_000 : args['connects-only'] ? 35_000 : quick ? 25_000 : 55_000,
      firstRunExtraMs: quick ? 5_000 : 20_000,
      run: async (name, run, attempt) => {
        // Memory on a fresh broker of its own in run 1 (its devices must not have
        // connected before the connect-rate phases), then the speed tests on another.
        if (run === 1 && !memories.has(name) && !onePhase) memories.set(name, await withBroker(name, `mem-${attempt}`, a, b, memory));
        const r = await withBroker(name, `${run}-${attempt}`, a, b, speedRun);
        if (results.get(name)!.length === 0) r.memory = memories.get(name);
        return r;
      },
    });
  } finally {
    a.kill();
    b.kill();
    killAll();
  }
  return finishBench({ report: report(results, errors), budget, json: args.json, params: P, results, errors, dir: work, keep: args.keep! });
}

main().then((code) => process.exit(code), (e: unknown) => {
  console.error(e);
  killAll();
  process.exit(1);
});
