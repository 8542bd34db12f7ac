// Telemetry benchmark (issue 4): samples landed in InfluxDB per second.
//
//   node --import tsx bench/telemetry/run.ts [--quick] [--soak] [--runs N]
//        [--pipelines switchboard,peer,raw,aedes-sub,aedes,embedded] [--memory-s N] [--memory-store influx|embedded]
//        (`switchboard@DIR` in --pipelines: Switchboard → InfluxDB from another built checkout, for an A/B)
//        [--raw-concurrency N] [--json FILE] [--keep] [--no-build] [--syscalls]
//
// --syscalls: also count each pipeline process's system calls in the measured
// window, in all and by call (Linux `perf stat` on the sys_enter tracepoints), and
// log them per sample accepted. The counting halves the rates: such a run gives
// counts, not rates.
//
// Pipelines, one at a time, each on fresh servers (and a fresh InfluxDB),
// interleaved over runs; figures are medians over runs:
//   switchboard  50 MQTT devices → Switchboard (tsdb influx, batch 5,000,
//                flush 1 s, spool on) → InfluxDB
//   peer         50 MQTT devices → Mosquitto → mqtt.js + `influx` writer
//                (batch 5,000, flush 1 s) → InfluxDB
//   raw          line protocol POSTed to InfluxDB in 5,000-point batches
//   aedes-sub    50 MQTT devices → bare aedes → one QoS 1 subscriber on
//                devices/+/telemetry, no store (msg/s delivered): the setup of
//                bench/mqtt, whose figure (~55–67k) the issue quotes; the target's base
//   aedes        50 MQTT devices → bare aedes, QoS 1, no subscriber, no store
//                (msg/s acknowledged): aedes routing to no one, for reference
//   embedded     50 MQTT devices → Switchboard with its embedded store
// Then one longer switchboard run for memory (60 s; 10 min with --soak).
// Devices publish closed loop at QoS 1: each keeps 10 samples not yet
// acknowledged (PUBACK). See docs/benchmarks.md.
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from '../common/ipc.js';
import {
  buildSwitchboard, gitDescribe, influxVersion, installCleanup, killAll, metric, mosquittoVersion, provisionSwitchboard,
  otherCheckout, startAedes, startInflux, startMosquitto, startSwitchboard, type Influx, type Server,
} from '../common/servers.js';
import { finishBench, runInterleaved } from '../common/interleave.js';
import { Budget, ForeignCpu, fmt, latencySummary, load1, log, machine, ratio, settle, sleep } from '../common/util.js';
import { cpuSeconds, rssKiB } from '../xmpp/proc.js';
import { median } from '../xmpp/stats.js';
import type { ClosedResult, Cred } from '../common/mqtt-loadgen.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    soak: { type: 'boolean', default: false },
    runs: { type: 'string' },
    pipelines: { type: 'string', default: 'switchboard,peer,raw,aedes-sub,aedes,embedded' },
    'memory-s': { type: 'string' },
    // The store of the memory run: InfluxDB (the issue's figure) or the embedded store (the default configuration).
    'memory-store': { type: 'string', default: 'influx' },
    'raw-concurrency': { type: 'string', default: '2' },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
    syscalls: { type: 'boolean', default: false },
  },
});

const quick = args.quick!;
const names = args.pipelines!.split(',').map((s) => s.trim()).filter(Boolean);
const P = {
  runs: Number(args.runs ?? (quick ? 1 : 3)),
  devices: 50,
  window: 10, // samples per device not yet acknowledged
  batchSize: 5_000,
  flushMs: 1_000,
  warmupMs: quick ? 1_000 : 2_000,
  measureMs: quick ? 4_000 : 8_000,
  drainMaxMs: 20_000,
  pollMs: 100,
  rawConcurrency: Number(args['raw-concurrency']),
  memoryS: Number(args['memory-s'] ?? (args.soak ? 600 : quick ? 15 : 60)),
  // Sized for the five pipelines before aedes-sub; grows with each one beyond.
  budgetMs: (args.soak ? 20 * 60 : quick ? 115 : 590) * 1000 * Math.max(1, names.length / 5),
};
const PASSWORD = 'bench-pw-1';
const publishers: Cred[] = Array.from({ length: P.devices }, (_, i) => ({ clientId: `p${i}`, username: `p${i}`, password: PASSWORD }));
const budget = new Budget(P.budgetMs);

// ---------------------------------------------------------- measurement

/** Polls a "points landed so far" counter; times are epoch ms. */
class Landed {
  readonly polls: Array<[number, number]> = [[Date.now(), 0]];
  private running = true;
  private done: Promise<void>;
  constructor(read: () => Promise<number>, intervalMs: number) {
    this.done = (async () => {
      while (this.running) {
        const t0 = Date.now();
        try {
          const n = await read();
          this.polls.push([(t0 + Date.now()) / 2, n]);
        } catch { /* server busy or not up yet: next poll */ }
        await sleep(Math.max(0, intervalMs - (Date.now() - t0)));
      }
    })();
  }
  get last(): number { return this.polls[this.polls.length - 1]![1]; }
  /** Landed count at time t, interpolated between polls. */
  at(t: number): number {
    const p = this.polls;
    for (let i = 1; i < p.length; i++) {
      if (p[i]![0] >= t) {
        const [t0, n0] = p[i - 1]!, [t1, n1] = p[i]!;
        return t1 === t0 ? n1 : n0 + ((n1 - n0) * (t - t0)) / (t1 - t0);
      }
    }
    return this.last;
  }
  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

/**
 * Publish-to-landed latency, first in first out: the store receives samples
 * in the order they were accepted (Switchboard's spool is ordered), so the
 * k-th point to land is taken to be the k-th sample sent. The error is at
 * most the time a sample spends in flight before its PUBACK (10 per device,
 * a few ms) plus the poll interval.
 */
function fifoLatency(sendsPerMs: number[], startAt: number, landed: Landed, from: number, to: number) {
  const lat: number[] = [];
  let ms = 0, cum = sendsPerMs[0] ?? 0, prev = 0;
  for (const [t, n] of landed.polls) {
    for (let k = prev + 1; k <= n; k++) {
      while (cum < k && ms < sendsPerMs.length - 1) cum += sendsPerMs[++ms]!;
      if (cum < k) break; // more landed than sent: not ours
      const sent = startAt + ms + 0.5;
      if (sent >= from && sent < to) lat.push(t - sent);
    }
    prev = Math.max(prev, n);
  }
  return latencySummary(lat);
}

interface PipeResult {
  landedPerSec: number;
  acceptedPerSec?: number;
  p50?: number; p99?: number; p999?: number;
  sent?: number; stored?: number;
  backlogAtEnd?: number;
  drainMs?: number;
  cpuPct: number; // pipeline's processes, % of one core
  genCpuPct: number;
  rssStartMiB?: number; rssEndMiB?: number; rssMaxMiB?: number;
  foreignCpuPct: number;
  load1: number;
  note?: string;
}

interface Ctx { gen: Worker; dir: string; template: string }

function times(measureMs = P.measureMs) {
  const startAt = Date.now() + 300;
  const from = startAt + P.warmupMs;
  return { startAt, from, to: from + measureMs };
}

/** CPU seconds of each of a set of processes, by name. */
const cpuEach = (procs: Record<string, number>) => Object.fromEntries(Object.entries(procs).map(([name, pid]) => [name, cpuSeconds(pid)]));
const sum = (byName: Record<string, number>) => Object.values(byName).reduce((a, b) => a + b, 0);

/** A process's system calls over the next `ms`, in all and by name (perf stat; --syscalls). Rejects, naming perf, when it cannot count. */
function countSyscalls(pid: number, ms: number): Promise<{ total: number; byName: Array<[string, number]> }> {
  return new Promise((resolve, reject) => {
    const events = ['-e', 'raw_syscalls:sys_enter', '-e', 'syscalls:sys_enter_*'];
    execFile('perf', ['stat', '-x', ',', ...events, '-p', String(pid), '--', 'sleep', String(ms / 1000)], { maxBuffer: 4 << 20 }, (err, _out, errText) => {
      // CSV lines: count,unit,event,...
      const counts = [...String(errText).matchAll(/^(\d+),[^,]*,([^,]+),/gm)].map((m) => [m[2]!, Number(m[1])] as [string, number]);
      const total = counts.find(([name]) => name === 'raw_syscalls:sys_enter')?.[1];
      if (err || total === undefined) return reject(new Error(`--syscalls: perf stat on pid ${pid} failed (Debian's linux-perf, run as root): ${String(errText || err?.message).trim().slice(0, 300)}`));
      const byName = counts.filter(([name, n]) => name.startsWith('syscalls:sys_enter_') && n > 0)
        .map(([name, n]) => [name.slice('syscalls:sys_enter_'.length), n] as [string, number]).sort((a, b) => b[1] - a[1]);
      resolve({ total, byName });
    });
  });
}

/**
 * 50 devices publish closed loop into an MQTT broker whose samples land
 * somewhere `landedCount` can count; the common part of the switchboard,
 * peer and embedded pipelines.
 */
async function mqttPipeline(c: Ctx, o: {
  /** The pipeline's processes by name; its CPU is theirs together, and each one's is logged. */
  name: string; mqttPort: number; procs: Record<string, number>; rssPid?: number;
  landedCount: () => Promise<number>; pollMs?: number; backlog?: () => Promise<number>;
  /** The pipeline measures publish → landed itself (the peer writer). */
  exactLatency?: { window(w: { from: number; to: number }): Promise<unknown>; get(): Promise<ReturnType<typeof latencySummary>> };
  measureMs?: number; rssEveryMs?: number;
}): Promise<PipeResult & { rssSeries?: Array<[number, number]> }> {
  await c.gen.call('setup', { target: { host: '127.0.0.1', port: o.mqttPort }, publishers });
  await settle([...Object.values(o.procs), c.gen.pid]);
  const foreign = new ForeignCpu();
  const w = times(o.measureMs);
  const landed = new Landed(o.landedCount, o.pollMs ?? P.pollMs);
  const rssSeries: Array<[number, number]> = [];
  const rssTimer = o.rssPid ? setInterval(() => rssSeries.push([Date.now(), rssKiB(o.rssPid!) / 1024]), o.rssEveryMs ?? 1_000) : undefined;
  let cpu0: Record<string, number> = {}, gen0 = 0, rssStart = NaN, cpu1: Record<string, number> = {}, gen1 = 0, rssEnd = NaN, backlogAtEnd: number | undefined;
  let syscalls: Promise<Record<string, Awaited<ReturnType<typeof countSyscalls>>>> | undefined;
  const t0 = setTimeout(() => {
    cpu0 = cpuEach(o.procs); gen0 = c.gen.cpu(); if (o.rssPid) rssStart = rssKiB(o.rssPid) / 1024;
    if (args.syscalls) {
      const counts = Object.entries(o.procs).map(async ([name, pid]) => [name, await countSyscalls(pid, w.to - w.from)] as const);
      syscalls = Promise.all(counts).then(Object.fromEntries);
      syscalls.catch(() => {}); // awaited below
    }
  }, w.from - Date.now());
  const t1 = setTimeout(() => {
    cpu1 = cpuEach(o.procs); gen1 = c.gen.cpu(); if (o.rssPid) rssEnd = rssKiB(o.rssPid) / 1024;
    o.backlog?.().then((n) => { backlogAtEnd = n; }, () => {});
  }, w.to - Date.now());
  if (o.exactLatency) await o.exactLatency.window({ from: w.from, to: w.to });
  let r: ClosedResult;
  try {
    r = await c.gen.call<ClosedResult>('closed', { qos: 1, window: P.window, ...w, recordSends: true });
    // Everything accepted should land; wait for it (bounded).
    const end = Date.now() + P.drainMaxMs;
    while (landed.last < r.sent && Date.now() < end) await sleep(100);
  } finally {
    clearTimeout(t0); clearTimeout(t1);
    if (rssTimer) clearInterval(rssTimer);
    await landed.stop();
    await c.gen.call('teardown');
  }
  const secs = (w.to - w.from) / 1000;
  const syscallCounts = syscalls && (await syscalls);
  const lastLanding = landed.polls.find(([, n]) => n >= r.sent)?.[0];
  const lat = o.exactLatency ? await o.exactLatency.get() : fifoLatency(r.sendsPerMs!, w.startAt, landed, w.from, w.to);
  const res = {
    landedPerSec: (landed.at(w.to) - landed.at(w.from)) / secs,
    acceptedPerSec: r.acked / secs,
    p50: lat.p50, p99: lat.p99, p999: lat.p999,
    sent: r.sent,
    backlogAtEnd,
    drainMs: lastLanding !== undefined ? Math.max(0, lastLanding - w.to) : undefined,
    cpuPct: ((sum(cpu1) - sum(cpu0)) / secs) * 100, genCpuPct: ((gen1 - gen0) / secs) * 100,
    rssStartMiB: rssStart, rssEndMiB: rssEnd, rssMaxMiB: rssSeries.length ? Math.max(...rssSeries.map(([, m]) => m)) : undefined,
    foreignCpuPct: foreign.pct(), load1: load1(),
    rssSeries: o.measureMs ? rssSeries : undefined,
  };
  if (lastLanding === undefined) res.drainMs = undefined;
  log(`${o.name}: ${fmt(res.landedPerSec)} landed/s, ${fmt(res.acceptedPerSec)} accepted/s, publish→landed p50 ${fmt(res.p50)} ms, ` +
    `p99 ${fmt(res.p99)} ms; ${fmt(landed.last)} of ${fmt(r.sent)} sent landed` +
    (res.drainMs !== undefined ? ` ${fmt(res.drainMs)} ms after the window` : ` (NOT ALL within ${P.drainMaxMs / 1000} s)`) +
    (backlogAtEnd !== undefined ? `; spool backlog at window end ${fmt(backlogAtEnd)}` : '') +
    (o.rssPid ? `; RSS ${fmt(rssStart, 1)} → ${fmt(rssEnd, 1)} MiB` : '') +
    `; CPU ${fmt(res.cpuPct)}% (pipeline: ${Object.keys(o.procs).map((n) => `${n} ${fmt(((cpu1[n]! - cpu0[n]!) / secs) * 100)}`).join(', ')}) / ${fmt(res.genCpuPct)}% (devices) of a core` +
    (syscallCounts ? `; system calls per sample accepted: ${Object.entries(syscallCounts).map(([n, k]) =>
      `${n} ${fmt(k.total / r.acked, 2)} (${k.byName.slice(0, 5).map(([call, c]) => `${call} ${fmt(c / r.acked, 2)}`).join(', ')})`).join('; ')}` : ''));
  return res;
}

async function withServers<T>(servers: Array<() => Promise<Server>>, fn: (s: Server[]) => Promise<T>): Promise<T> {
  const started: Server[] = [];
  try {
    for (const s of servers) started.push(await s());
    return await fn(started);
  } finally {
    for (const s of started.reverse()) await s.stop();
  }
}

async function switchboardInflux(c: Ctx, tag: string, measureMs?: number, checkout?: string): Promise<PipeResult & { rssSeries?: Array<[number, number]> }> {
  let influx!: Influx;
  return withServers([
    async () => (influx = await startInflux(join(c.dir, `sb-influx-${tag}`))),
    () => startSwitchboard(join(c.dir, `sb-${tag}`), c.template,
      { kind: 'influx', url: influx.url, database: 'switchboard', batchSize: P.batchSize, flushMs: P.flushMs }, checkout),
  ], async ([, sb]) => {
    const r = await mqttPipeline(c, {
      name: 'switchboard → influx', mqttPort: sb!.ports.mqtt!, procs: { switchboard: sb!.pid, influxd: influx.pid }, rssPid: sb!.pid,
      landedCount: () => influx.pointsWritten('switchboard'),
      backlog: () => metric(sb!.ports.http!, 'switchboard_store_backlog_samples'),
      measureMs, rssEveryMs: measureMs ? 5_000 : 1_000,
    });
    r.stored = await influx.count('switchboard', 'thermostat');
    if (r.stored !== r.sent) log(`switchboard → influx: ${fmt(r.stored)} distinct points stored for ${fmt(r.sent)} samples sent`);
    return r;
  });
}

async function peer(c: Ctx, tag: string): Promise<PipeResult> {
  let influx!: Influx, mosq!: Server;
  const writer = new Worker(new URL('./peer-writer.ts', import.meta.url), 'peer writer');
  try {
    return await withServers([
      async () => (influx = await startInflux(join(c.dir, `peer-influx-${tag}`))),
      // max_inflight_messages 0: see bench/mqtt/run.ts (Debian 2.0.11 inflight-quota bug).
      async () => (mosq = await startMosquitto(join(c.dir, `peer-mosquitto-${tag}`), ['max_inflight_messages 0'])),
    ], async () => {
      await writer.call('start', { mqttPort: mosq.ports.mqtt, influxUrl: influx.url, database: 'peer', batchSize: P.batchSize, flushMs: P.flushMs });
      const r = await mqttPipeline(c, {
        name: 'mosquitto + mqtt.js/influx writer', mqttPort: mosq.ports.mqtt!, procs: { mosquitto: mosq.pid, writer: writer.pid, influxd: influx.pid },
        landedCount: () => influx.pointsWritten('peer'),
        exactLatency: {
          window: (w) => writer.call('setWindow', w),
          get: async () => (await writer.call<{ latency: ReturnType<typeof latencySummary> }>('stats')).latency,
        },
      });
      const st = await writer.call<{ failed: number; firstError: string }>('stats');
      if (st.failed) r.note = `writer: ${st.failed} points failed (${st.firstError})`;
      r.stored = await influx.count('peer', 'thermostat');
      if (r.stored !== r.sent) log(`peer: ${fmt(r.stored)} distinct points stored for ${fmt(r.sent)} samples sent`);
      return r;
    });
  } finally {
    writer.kill();
  }
}

async function raw(c: Ctx, tag: string): Promise<PipeResult> {
  const w = new Worker(new URL('./raw-writer.ts', import.meta.url), 'raw writer');
  try {
    return await withServers([() => startInflux(join(c.dir, `raw-influx-${tag}`))], async ([s]) => {
      const influx = s as Influx;
      await settle([influx.pid, w.pid]);
      const foreign = new ForeignCpu();
      const t = times();
      let cpu0 = 0, gen0 = 0, cpu1 = 0, gen1 = 0;
      const t0 = setTimeout(() => { cpu0 = cpuSeconds(influx.pid); gen0 = w.cpu(); }, t.from - Date.now());
      const t1 = setTimeout(() => { cpu1 = cpuSeconds(influx.pid); gen1 = w.cpu(); }, t.to - Date.now());
      const r = await w.call<{ pointsInWindow: number; seconds: number; errors: number; firstError: string; postMs: ReturnType<typeof latencySummary> }>(
        'run', { url: influx.url, database: 'raw', batchSize: P.batchSize, concurrency: P.rawConcurrency, devices: P.devices, ...t });
      clearTimeout(t0); clearTimeout(t1);
      if (r.errors) throw new Error(`raw writes failed: ${r.firstError}`);
      const secs = (t.to - t.from) / 1000;
      const res: PipeResult = {
        landedPerSec: r.pointsInWindow / r.seconds, p50: r.postMs.p50, p99: r.postMs.p99,
        cpuPct: ((cpu1 - cpu0) / secs) * 100, genCpuPct: ((gen1 - gen0) / secs) * 100,
        foreignCpuPct: foreign.pct(), load1: load1(),
      };
      log(`raw line protocol: ${fmt(res.landedPerSec)} points/s (${P.rawConcurrency} POSTs of ${fmt(P.batchSize)} in flight), ` +
        `POST p50 ${fmt(res.p50)} ms, p99 ${fmt(res.p99)} ms; CPU influxd ${fmt(res.cpuPct)}% / writer ${fmt(res.genCpuPct)}%`);
      return res;
    });
  } finally {
    w.kill();
  }
}

/**
 * Bare aedes at QoS 1, no store. With `subscribed`, one service subscribes to
 * devices/+/telemetry at QoS 1 and the closed loop is end to end (a device keeps 10
 * samples the subscriber has not yet received): bench/mqtt's QoS 1 setup, the one
 * the issue's figure for bare aedes (~55,000–67,000 msg/s) comes from. Without,
 * aedes acknowledges publishes it routes to no one.
 */
async function aedes(c: Ctx, tag: string, subscribed = false): Promise<PipeResult> {
  return withServers([() => startAedes(join(c.dir, `aedes-${tag}`))], async ([s]) => {
    const subscriber = subscribed ? { clientId: 'sub', filter: 'devices/+/telemetry', qos: 1 as const } : undefined;
    await c.gen.call('setup', { target: { host: '127.0.0.1', port: s!.ports.mqtt! }, publishers, subscriber });
    await settle([s!.pid, c.gen.pid]);
    const foreign = new ForeignCpu();
    const w = times();
    let cpu0 = 0, gen0 = 0, cpu1 = 0, gen1 = 0;
    const t0 = setTimeout(() => { cpu0 = cpuSeconds(s!.pid); gen0 = c.gen.cpu(); }, w.from - Date.now());
    const t1 = setTimeout(() => { cpu1 = cpuSeconds(s!.pid); gen1 = c.gen.cpu(); }, w.to - Date.now());
    const r = await c.gen.call<ClosedResult>('closed', { qos: 1, window: P.window, ...w });
    clearTimeout(t0); clearTimeout(t1);
    await c.gen.call('teardown');
    const secs = (w.to - w.from) / 1000;
    const res: PipeResult = {
      landedPerSec: (subscribed ? r.delivered : r.acked) / secs, acceptedPerSec: r.acked / secs,
      p50: subscribed ? r.latency.p50 : undefined, p99: subscribed ? r.latency.p99 : undefined,
      cpuPct: ((cpu1 - cpu0) / secs) * 100, genCpuPct: ((gen1 - gen0) / secs) * 100, foreignCpuPct: foreign.pct(), load1: load1(),
    };
    log(subscribed
      ? `bare aedes → subscriber: ${fmt(res.landedPerSec)} QoS 1 msg/s delivered, p50 ${fmt(res.p50, 2)} ms, p99 ${fmt(res.p99, 2)} ms; CPU ${fmt(res.cpuPct)}% / devices and subscriber ${fmt(res.genCpuPct)}%`
      : `bare aedes: ${fmt(res.acceptedPerSec)} QoS 1 msg/s acknowledged (no subscriber, no store); CPU ${fmt(res.cpuPct)}% / devices ${fmt(res.genCpuPct)}%`);
    return res;
  });
}

async function embedded(c: Ctx, tag: string, measureMs?: number): Promise<PipeResult & { rssSeries?: Array<[number, number]> }> {
  return withServers([() => startSwitchboard(join(c.dir, `emb-${tag}`), c.template, { kind: 'embedded', batchSize: P.batchSize, flushMs: P.flushMs })],
    async ([sb]) => mqttPipeline(c, {
      name: 'switchboard → embedded store', mqttPort: sb!.ports.mqtt!, procs: { switchboard: sb!.pid }, rssPid: sb!.pid,
      // /metrics is served by the broker itself: polled less often, to cost it little.
      landedCount: () => metric(sb!.ports.http!, 'switchboard_store_written_samples_total'), pollMs: 250,
      backlog: () => metric(sb!.ports.http!, 'switchboard_store_backlog_samples'),
      measureMs, rssEveryMs: measureMs ? 5_000 : 1_000,
    }));
}
const memoryEmbedded = args['memory-store'] === 'embedded';
const MEMORY_LABEL = memoryEmbedded ? 'Switchboard → embedded store' : 'Switchboard → InfluxDB';

// ---------------------------------------------------------------- report

const LABEL: Record<string, string> = {
  switchboard: 'Switchboard → InfluxDB (spool on)',
  peer: 'Mosquitto + mqtt.js → `influx` writer',
  raw: 'raw line protocol → InfluxDB',
  'aedes-sub': 'bare aedes → one QoS 1 subscriber, no store (delivered/s)',
  aedes: 'bare aedes, QoS 1, no subscriber, no store (acknowledged/s)',
  embedded: 'Switchboard → embedded store',
};

function report(results: Map<string, PipeResult[]>, mem: (PipeResult & { rssSeries?: Array<[number, number]> }) | undefined, errors: Map<string, string>): string {
  const m = (runs: PipeResult[], f: (r: PipeResult) => number | undefined) => median(runs.map((r) => f(r) ?? NaN));
  const head = ['pipeline', 'landed/s', 'accepted/s', 'publish → landed p50 / p99 ms', 'distinct points stored (per run)', 'spool backlog at end',
    'RSS MiB start → end', 'CPU % pipeline / devices'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const [name, runs] of results) {
    if (!runs.length) continue;
    const missing = runs.filter((r) => r.stored !== undefined).map((r) => r.sent! - r.stored!);
    lines.push(`| ${[LABEL[name] ?? name, fmt(m(runs, (r) => r.landedPerSec)), fmt(m(runs, (r) => r.acceptedPerSec)),
      name === 'raw' ? `POST ${fmt(m(runs, (r) => r.p50))} / ${fmt(m(runs, (r) => r.p99))}` : `${fmt(m(runs, (r) => r.p50))} / ${fmt(m(runs, (r) => r.p99))}`,
      missing.length ? (missing.every((x) => x === 0) ? 'all' : `${missing.map((x) => fmt(x)).join(', ')} missing`) : '–',
      fmt(m(runs, (r) => r.backlogAtEnd)),
      runs[0]!.rssStartMiB !== undefined ? `${fmt(m(runs, (r) => r.rssStartMiB), 1)} → ${fmt(m(runs, (r) => r.rssEndMiB), 1)}` : '–',
      `${fmt(m(runs, (r) => r.cpuPct))} / ${fmt(m(runs, (r) => r.genCpuPct))}`,
    ].join(' | ')} |`);
  }
  if (mem) {
    const s = mem.rssSeries ?? [];
    const slope = regressionSlope(s.slice(Math.min(2, s.length - 1)));
    const { first, last } = thirds(s);
    lines.push('', `Memory run (${MEMORY_LABEL}, ${fmt(P.memoryS)} s at full load): RSS ${fmt(mem.rssStartMiB, 1)} MiB at the start of the ` +
      `measured window, ${fmt(mem.rssEndMiB, 1)} MiB at its end, max ${fmt(mem.rssMaxMiB, 1)} MiB; trend ${fmt(slope * 60_000, 2)} MiB/min; ` +
      `median of the first third ${fmt(first, 1)} MiB, of the last third ${fmt(last, 1)} MiB; ` +
      `${fmt(mem.landedPerSec)} landed/s, publish → landed p99 ${fmt(mem.p99)} ms; samples (s, MiB): ` +
      s.map(([t, v]) => `${fmt((t - s[0]![0]) / 1000)}:${fmt(v, 0)}`).join(' '));
  }
  const sb = results.get('switchboard') ?? [], pe = results.get('peer') ?? [], ae = results.get('aedes-sub') ?? [], alone = results.get('aedes') ?? [];
  if (sb.length) {
    const l = m(sb, (r) => r.landedPerSec), p = m(pe, (r) => r.landedPerSec), a = m(ae, (r) => r.landedPerSec), p99 = m(sb, (r) => r.p99);
    const a0 = m(alone, (r) => r.landedPerSec);
    const yes = (b: boolean) => (b ? 'met' : '**missed**');
    lines.push('', '| target (Switchboard → InfluxDB) | measured | |', '|---|---|---|',
      `| landed/s ≥ 1.2 × peer pipeline | ${fmt(l)} vs ${fmt(p)} = ${ratio(l, p)} | ${pe.length ? yes(l >= 1.2 * p) : 'no peer run'} |`,
      `| landed/s ≥ 0.7 × bare aedes QoS 1 (delivering to one subscriber, the issue's setup) | ${fmt(l)} vs ${fmt(a)} = ${ratio(l, a)} | ${ae.length ? yes(l >= 0.7 * a) : 'no aedes-sub run'} |`,
      ...(alone.length ? [`| (for reference: bare aedes acknowledging QoS 1 with no subscriber) | ${fmt(l)} vs ${fmt(a0)} = ${ratio(l, a0)} | – |`] : []),
      `| p99 publish → landed < 2 s | ${fmt(p99)} ms | ${yes(p99 < 2000)} |`);
    if (mem) {
      // RSS saw-tooths with garbage collection; compared are the medians of
      // the first and the last third of the run, flat meaning within 10%.
      const { first, last } = thirds(mem.rssSeries ?? []);
      lines.push(`| memory flat over ${fmt(P.memoryS / 60, 1)} min${memoryEmbedded ? ' (embedded store, not the target)' : ''} | RSS median ${fmt(first, 1)} MiB (first third) → ${fmt(last, 1)} MiB (last third) | ` +
        `${yes(last <= first * 1.1)} (within 10%) |`);
    }
  }
  const all = [...results.values()].flat();
  lines.push('', `Load average (1 min) after each run: ${all.map((r) => fmt(r.load1, 2)).join(', ')}; CPU used by other processes ` +
    `during runs: up to ${fmt(Math.max(0, ...all.map((r) => r.foreignCpuPct)))}% of a core.`);
  for (const [name, runs] of results) for (const r of runs) if (r.note) lines.push('', `NOTE ${name}: ${r.note}`);
  for (const [name, e] of errors) lines.push('', `ERROR ${name}: ${e}`);
  return lines.join('\n');
}

/** Medians of the first and the last third of a series' values. */
function thirds(pts: Array<[number, number]>): { first: number; last: number } {
  const n = Math.floor(pts.length / 3);
  return { first: median(pts.slice(0, n).map(([, v]) => v)), last: median(pts.slice(pts.length - n).map(([, v]) => v)) };
}

/** Least-squares slope of (t ms, y) pairs, per ms. */
function regressionSlope(pts: Array<[number, number]>): number {
  if (pts.length < 2) return NaN;
  const n = pts.length;
  const mx = pts.reduce((a, [x]) => a + x, 0) / n, my = pts.reduce((a, [, y]) => a + y, 0) / n;
  let num = 0, den = 0;
  for (const [x, y] of pts) { num += (x - mx) * (y - my); den += (x - mx) ** 2; }
  return den ? num / den : NaN;
}

// ------------------------------------------------------------------ main

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-telemetry-bench-'));
  log(`work dir ${dir}; ${machine()}; load ${fmt(load1(), 2)}; ${P.runs} run(s); InfluxDB ${influxVersion()}; ` +
    `Mosquitto ${mosquittoVersion()}; switchboard ${gitDescribe()}`);
  const results = new Map<string, PipeResult[]>(names.map((n) => [n, []]));
  const errors = new Map<string, string>();
  const gen = new Worker(new URL('../common/mqtt-loadgen.ts', import.meta.url), 'devices');
  installCleanup(() => gen.kill());
  let mem: (PipeResult & { rssSeries?: Array<[number, number]> }) | undefined;
  const run: Record<string, (c: Ctx, tag: string) => Promise<PipeResult>> = {
    switchboard: switchboardInflux, peer, raw, 'aedes-sub': (c, tag) => aedes(c, `sub-${tag}`, true), aedes, embedded,
  };
  const ctx: Ctx = { gen, dir, template: join(dir, 'template') };
  try {
    if (names.some((n) => n.startsWith('switchboard') || n === 'embedded')) {
      log(`switchboard: ${buildSwitchboard(args['no-build']!)}`);
      provisionSwitchboard(ctx.template, { devices: publishers.map((p) => ({ id: p.clientId, password: PASSWORD })), accounts: [] });
    }
    const perRunMs = P.warmupMs + P.measureMs + (quick ? 8_000 : 12_000);
    const memoryPipeline = memoryEmbedded ? 'embedded' : 'switchboard';
    const memMs = names.includes(memoryPipeline) ? P.memoryS * 1000 + 15_000 : 0;
    // `switchboard@DIR`: Switchboard → InfluxDB from another built checkout. Each one
    // its own directories (numbered): two sharing them counted each other's points.
    names.forEach((name, n) => {
      const checkout = otherCheckout(name);
      if (checkout) run[name] = (c, tag) => switchboardInflux(c, `ab${n}-${tag}`, undefined, checkout);
    });
    for (const name of names) if (!run[name]) errors.set(name, 'unknown pipeline');
    await runInterleaved({
      names, runs: P.runs, budget, results, errors, quietWaitMs: quick ? 2_000 : 5_000, perRunMs, reserveMs: memMs,
      run: (name, i, attempt) => run[name]!(ctx, `${i}-${attempt}`),
    });
    if (memMs && !errors.has(memoryPipeline)) {
      log(`--- memory: ${MEMORY_LABEL} for ${fmt(P.memoryS)} s (load ${fmt(load1(), 2)})`);
      try {
        mem = memoryEmbedded ? await embedded(ctx, 'mem', P.memoryS * 1000) : await switchboardInflux(ctx, 'mem', P.memoryS * 1000);
      } catch (e) {
        errors.set('memory', (e as Error).message);
      }
    }
  } finally {
    gen.kill();
    killAll();
  }
  return finishBench({ report: report(results, mem, errors), budget, json: args.json, params: P, results, extra: { memory: mem }, errors, dir, keep: args.keep! });
}

main().then((code) => process.exit(code), (e: unknown) => {
  console.error(e);
  killAll();
  process.exit(1);
});
