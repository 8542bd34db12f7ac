// The phases of the cluster bench, each on nodes already started (run.ts starts and
// stops them): (a) XMPP routing, MQTT QoS 1, telemetry landed in InfluxDB and
// commands on one node, standalone or a cluster of one; (b) across two nodes, XMPP throughput and
// latency and XEP-0050 commands; (c) telemetry CPU per sample on 1, 2 or 3 nodes;
// and memory per idle MQTT device. The load generators are the other benches':
// bench/xmpp/loadgen.ts, bench/common/mqtt-loadgen.ts, bench/commands/loadgen.ts,
// and this bench's xmpp-gen.ts (bench/xmpp's pairs with the two ends on two nodes).
import type { Worker } from '../common/ipc.js';
import type { ClosedResult, ConnectResult } from '../common/mqtt-loadgen.js';
import type { Influx } from '../common/influxd.js';
import { Landed } from '../common/landed.js';
import { stableRssKiB } from '../common/proc.js';
import { sleep } from '../common/timing.js';
import { fmt, latencySummary, log, settle } from '../common/util.js';
import type { ThroughputResult } from '../xmpp/loadgen.js';
import type { PostgresServer, RedisServer } from './infra.js';
import { cpuMeter, metered, perMessage, times, usPer, type Metered } from './measure.js';
import type { NodeProc } from './nodes.js';
import { DOMAIN, P, PASSWORD, SERVICE, commandDevices, idleDevices, publishers, subscriber, users } from './options.js';

export interface Env {
  redis: RedisServer;
  pg: PostgresServer;
  influx: Influx;
  /** bench/xmpp/loadgen.ts (part a). */
  xmpp: Worker;
  /** xmpp-gen.ts (part b). */
  xgen: Worker;
  /** bench/common/mqtt-loadgen.ts, one per node of part c. */
  mq: Worker[];
  /** bench/commands/loadgen.ts: the devices, the service. */
  cmdDev: Worker;
  cmdSvc: Worker;
}

type Summary = ReturnType<typeof latencySummary>;
export type PerMessage = ReturnType<typeof perMessage>;

/** One measured figure: messages/s, CPU µs per message per process, Redis per message. */
export interface Fig {
  rate: number;
  n: number;
  us: Record<string, number>;
  redis?: PerMessage;
  foreignCpuPct: number;
}

const xt = (n: NodeProc) => ({ host: '127.0.0.1', port: n.ports.xmpp, domain: DOMAIN });
const mt = (n: NodeProc) => ({ host: '127.0.0.1', port: n.ports.mqtt });

/** Splits items into n nearly equal contiguous slices. */
function split<T>(items: T[], n: number): T[][] {
  const size = Math.ceil(items.length / n);
  return Array.from({ length: n }, (_, i) => items.slice(i * size, (i + 1) * size));
}

function pairsOf(offset: number): Array<[string, string]> {
  return Array.from({ length: P.pairs }, (_, i) => [users[offset + 2 * i]!, users[offset + 2 * i + 1]!]);
}

/** The processes whose CPU a phase reads: the nodes by name, Redis when clustered, the generators given. */
function procs(nodes: NodeProc[], e: Env | null, gens: Record<string, Worker>, extra: Record<string, number> = {}): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of nodes) out[n.name] = n.pid;
  if (e) out.redis = e.redis.pid;
  for (const [k, w] of Object.entries(gens)) out[k] = w.pid;
  return { ...out, ...extra };
}

function fig(m: Metered<unknown>, n: number): Fig {
  return { rate: n / m.secs, n, us: usPer(m.cpu, n), redis: perMessage(m.redis, n), foreignCpuPct: m.foreignCpuPct };
}

const usLine = (f: Fig) => Object.entries(f.us).map(([k, v]) => `${k} ${fmt(v, 1)}`).join(', ');
const redisLine = (f: Fig) => (f.redis ? `; Redis per message: ${fmt(f.redis.cmds, 2)} commands, ${fmt(f.redis.bytesIn)} B in / ${fmt(f.redis.bytesOut)} B out (${Object.entries(f.redis.byCommand).filter(([, v]) => v >= 0.005).map(([k, v]) => `${k} ${v}`).join(', ')})` : '');

function checkAlive(nodes: NodeProc[]): void {
  for (const n of nodes) if (!n.alive()) throw new Error(`${n.name} is no longer running (log: ${n.logFile})`);
}

// ------------------------------------------------------------------ part a

/** bench/xmpp's closed loop: 50 pairs, 50 in flight each, on one node. */
export async function aXmpp(e: Env, node: NodeProc, clustered: boolean): Promise<Fig & { lost: number }> {
  await e.xmpp.call('pairs', { target: xt(node), pairs: pairsOf(0), password: PASSWORD });
  try {
    const wu = times(0, 1_000);
    await e.xmpp.call<ThroughputResult>('throughput', { ...wu, window: P.xmppWindow });
    await settle([node.pid, e.xmpp.pid]);
    const w = times(P.warmupMs, P.measureMs);
    const m = await metered(w, procs([node], clustered ? e : null, { generator: e.xmpp }), clustered ? e.redis : null,
      () => e.xmpp.call<ThroughputResult>('throughput', { ...w, window: P.xmppWindow }), { [node.name]: node.pid });
    const f = { ...fig(m, m.result.delivered), lost: Math.max(0, m.result.sent - m.result.delivered) };
    log(`${node.name}${clustered ? ' (cluster of one)' : ''}: XMPP ${fmt(f.rate)} msgs/s; CPU µs/msg ${usLine(f)}${redisLine(f)}`);
    return f;
  } finally {
    await e.xmpp.call('closePairs');
    checkAlive([node]);
  }
}

/** bench/mqtt's QoS 1 closed loop: 48 devices → one QoS 1 subscriber (the service), 10 in flight each. */
export async function aMqtt(e: Env, node: NodeProc, clustered: boolean): Promise<Fig & { p50: number; p99: number; lost: number }> {
  const gen = e.mq[0]!;
  await gen.call('setup', { target: mt(node), publishers, subscriber: { ...subscriber, qos: 1 } });
  try {
    const wu = times(0, 1_000);
    await gen.call<ClosedResult>('closed', { qos: 1, window: P.mqttWindow, ...wu });
    await settle([node.pid, gen.pid, e.influx.pid]);
    const w = times(P.warmupMs, P.measureMs);
    const m = await metered(w, procs([node], clustered ? e : null, { generator: gen }), clustered ? e.redis : null,
      () => gen.call<ClosedResult>('closed', { qos: 1, window: P.mqttWindow, ...w }), { [node.name]: node.pid });
    const r = m.result;
    const f = { ...fig(m, r.delivered), p50: r.latency.p50, p99: r.latency.p99, lost: r.lost + r.stalls };
    log(`${node.name}${clustered ? ' (cluster of one)' : ''}: MQTT QoS 1 ${fmt(f.rate)} msg/s delivered, p99 ${fmt(f.p99, 2)} ms` +
      `${f.lost ? `, LOST ${f.lost}` : ''}; CPU µs/msg ${usLine(f)}${redisLine(f)}`);
    return f;
  } finally {
    await gen.call('teardown');
    checkAlive([node]);
  }
}

/** InfluxDB's count of points written to `db`, once it has not moved for 1.5 s (or after maxMs). */
async function stableLanded(influx: Influx, db: string, maxMs = 20_000): Promise<number> {
  const end = Date.now() + maxMs;
  let last = await influx.pointsWritten(db), since = Date.now();
  while (Date.now() < end) {
    await sleep(250);
    const n = await influx.pointsWritten(db);
    if (n !== last) { last = n; since = Date.now(); } else if (Date.now() - since >= 1_500) break;
  }
  return last;
}

export interface TelemetryFig extends Fig {
  accepted: number;
  /** Accepted (PUBACKed) in the window per node, in node order. */
  acceptedBy: number[];
  /** CPU µs per sample each node accepted itself; the same, its main thread only. */
  usOwn: Record<string, number>;
  usOwnMain: Record<string, number>;
  /** Each node's share of the samples accepted. */
  share: number[];
  /** Nodes with no devices of their own: CPU µs (and main thread) per sample the others accepted. */
  heard: Record<string, { us: number; usMain: number }>;
  /** CPU seconds of each process (and `NAME main`) in the window. */
  cpuS: Record<string, number>;
  /** Sent during the phase and not in InfluxDB 20 s after it. */
  missing: number;
  p99?: number;
}

/**
 * Telemetry into InfluxDB: 48 devices publish closed loop at QoS 1 (10 unacknowledged
 * each, no subscriber), shared out over `nodes` (one load generator each); landed/s
 * from InfluxDB's count of points written to `db`.
 */
export async function telemetry(e: Env, nodes: NodeProc[], db: string, clustered: boolean, label: string, hearing: NodeProc[] = []): Promise<TelemetryFig> {
  const gens = e.mq.slice(0, nodes.length);
  const shares = split(publishers, nodes.length);
  await Promise.all(nodes.map((n, i) => gens[i]!.call('setup', { target: mt(n), publishers: shares[i] })));
  try {
    const wu = times(0, 1_000);
    await Promise.all(gens.map((g) => g.call<ClosedResult>('closed', { qos: 1, window: P.mqttWindow, ...wu })));
    await stableLanded(e.influx, db);
    await settle([...nodes.map((n) => n.pid), e.influx.pid, ...gens.map((g) => g.pid)]);
    const base = await e.influx.pointsWritten(db);
    const landed = new Landed(() => e.influx.pointsWritten(db), 200);
    const w = times(P.warmupMs, P.measureMs);
    const gensCpu = Object.fromEntries(gens.map((g, i) => [`generator ${i + 1}`, g]));
    let m: Metered<ClosedResult[]>;
    try {
      m = await metered(w, procs([...nodes, ...hearing], clustered ? e : null, gensCpu, { influxd: e.influx.pid, ...(clustered ? { postgres: e.pg.pid } : {}) }), clustered ? e.redis : null,
        () => Promise.all(gens.map((g) => g.call<ClosedResult>('closed', { qos: 1, window: P.mqttWindow, ...w }))),
        Object.fromEntries([...nodes, ...hearing].map((n) => [n.name, n.pid])));
    } finally {
      await landed.stop();
    }
    const sent = m.result.reduce((a, r) => a + r.sent, 0);
    const final = await stableLanded(e.influx, db);
    const inWindow = landed.at(w.to) - landed.at(w.from);
    const acceptedBy = m.result.map((r) => r.acked);
    const accepted = acceptedBy.reduce((a, b) => a + b, 0);
    const f: TelemetryFig = {
      ...fig(m, inWindow), accepted: accepted / m.secs, acceptedBy,
      // Per process per sample accepted (the landed count lags by up to a flush).
      us: usPer(m.cpu, accepted),
      usOwn: Object.fromEntries(nodes.map((n, i) => [n.name, ((m.cpu[n.name] ?? 0) / acceptedBy[i]!) * 1e6])),
      usOwnMain: Object.fromEntries(nodes.map((n, i) => [n.name, ((m.cpu[`${n.name} main`] ?? 0) / acceptedBy[i]!) * 1e6])),
      share: acceptedBy.map((a) => a / accepted),
      heard: Object.fromEntries(hearing.map((n) => [n.name, { us: ((m.cpu[n.name] ?? 0) / accepted) * 1e6, usMain: ((m.cpu[`${n.name} main`] ?? 0) / accepted) * 1e6 }])),
      cpuS: m.cpu,
      redis: perMessage(m.redis, accepted),
      missing: Math.max(0, base + sent - final),
    };
    log(`${label}: ${fmt(f.rate)} landed/s, ${fmt(f.accepted)} accepted/s (by node ${acceptedBy.map((a) => fmt(a / m.secs)).join(' / ')})` +
      `${f.missing ? `, ${fmt(f.missing)} SENT AND NOT LANDED 20 s later` : ', every sample landed'}; CPU µs/sample ${usLine(f)}${redisLine(f)}` +
      Object.entries(f.heard).map(([n, h]) => `; ${n}, no devices of its own: ${fmt(h.us, 1)} µs (main thread ${fmt(h.usMain, 1)}) per sample heard`).join(''));
    return f;
  } finally {
    await Promise.all(gens.map((g) => g.call('teardown')));
    checkAlive(nodes);
  }
}

// ------------------------------------------------------------------ part b

export interface CrossXmpp {
  throughput: Record<'same' | 'cross', Fig[]>;
  latency: Record<'same' | 'cross', Summary & { lost: number; rate: number }>;
}

/** XMPP on two nodes: pairs with both ends on A ('same') and A → B ('cross'), alternating. */
export async function bXmpp(e: Env, a: NodeProc, b: NodeProc): Promise<CrossXmpp> {
  await e.xgen.call('pairs', { set: 'same', from: xt(a), to: xt(a), pairs: pairsOf(0), password: PASSWORD });
  await e.xgen.call('pairs', { set: 'cross', from: xt(a), to: xt(b), pairs: pairsOf(2 * P.pairs), password: PASSWORD });
  const out: CrossXmpp = { throughput: { same: [], cross: [] }, latency: {} as CrossXmpp['latency'] };
  try {
    await sleep(1_000); // node A learns of B's sessions (bound, presence)
    for (const set of ['cross', 'same']) await e.xgen.call('throughput', { set, ...times(0, 1_000), window: P.xmppWindow });
    const order: Array<'same' | 'cross'> = ['same', 'cross', 'cross', 'same'];
    for (const set of order) {
      await settle([a.pid, b.pid, e.xgen.pid, e.redis.pid]);
      const w = times(P.warmupMs, P.measureMs);
      const m = await metered(w, procs([a, b], e, { generator: e.xgen }), e.redis,
        () => e.xgen.call<{ delivered: number; sent: number; lost: number }>('throughput', { set, ...w, window: P.xmppWindow }), { [a.name]: a.pid, [b.name]: b.pid });
      const f = fig(m, m.result.delivered);
      out.throughput[set].push(f);
      log(`XMPP ${set === 'same' ? 'same node (A → A)' : 'cross-node (A → B)'}: ${fmt(f.rate)} msgs/s${m.result.lost ? `, ${m.result.lost} NOT DELIVERED` : ''}; CPU µs/msg ${usLine(f)}${redisLine(f)}`);
    }
    const lat: Record<'same' | 'cross', { ms: number[]; lost: number; sent: number; secs: number }> = {
      same: { ms: [], lost: 0, sent: 0, secs: 0 }, cross: { ms: [], lost: 0, sent: 0, secs: 0 },
    };
    for (const set of order) {
      await settle([a.pid, b.pid, e.xgen.pid]);
      const w = times(1_000, P.measureMs);
      const r = await e.xgen.call<{ latenciesMs: number[]; sent: number; lost: number; seconds: number }>('latency', { set, ...w, rate: P.xmppRate });
      lat[set].ms.push(...r.latenciesMs);
      lat[set].lost += r.lost;
      lat[set].sent += r.sent;
      lat[set].secs += r.seconds;
      const s = latencySummary(r.latenciesMs);
      log(`XMPP ${set} at ${fmt(r.sent / r.seconds)}/s: p50 ${fmt(s.p50, 2)} ms, p99 ${fmt(s.p99, 2)} ms, p99.9 ${fmt(s.p999, 2)} ms${r.lost ? `, LOST ${r.lost}` : ''}`);
    }
    for (const set of ['same', 'cross'] as const) out.latency[set] = { ...latencySummary(lat[set].ms), lost: lat[set].lost, rate: lat[set].sent / lat[set].secs };
    return out;
  } finally {
    await e.xgen.call('closePairs');
    checkAlive([a, b]);
  }
}

interface ClosedLoop { completed: number; errors: number; lost: number; firstError?: string; seconds: number; rtt: Summary }
interface OpenLoop { sent: number; errors: number; lost: number; firstError?: string; seconds: number; rtts: Array<[number, number]> }

export interface CommandsFig extends Fig {
  rtt: Summary;
  atRate: Summary;
  added: Summary;
  rateAchieved: number;
  errors: number;
  firstError?: string;
}

/**
 * bench/commands' XEP-0050 load: 100 MQTT thermostats (started on a node by
 * startCommandDevices) answer at once; the service's XMPP session is on `svcNode`
 * (part b: B, across nodes; or A, the devices' node). 200 in flight, then 1,000/s on
 * a clock; added latency = round trip − the device's time. CPU of `nodes`.
 */
export async function commands(e: Env, nodes: NodeProc[], svcNode: NodeProc, clustered: boolean, label: string): Promise<CommandsFig> {
  const ids = commandDevices.map((d) => d.clientId);
  await e.cmdSvc.call('xmppService', { target: xt(svcNode), user: SERVICE, password: PASSWORD, devices: ids });
  try {
    const wu = Date.now();
    await e.cmdSvc.call<ClosedLoop>('closedLoop', { inflight: 50, startAt: wu, from: wu, to: wu + 1_000 });
    const pids = [...nodes.map((n) => n.pid), e.cmdDev.pid, e.cmdSvc.pid, ...(clustered ? [e.redis.pid] : [])];
    await settle(pids);
    let w = times(P.warmupMs, P.measureMs);
    const m = await metered(w, procs(nodes, clustered ? e : null, { devices: e.cmdDev, service: e.cmdSvc }), clustered ? e.redis : null,
      () => e.cmdSvc.call<ClosedLoop>('closedLoop', { inflight: P.commandsInflight, ...w }), Object.fromEntries(nodes.map((n) => [n.name, n.pid])));
    const cl = m.result;
    await settle(pids);
    await e.cmdDev.call('record', { on: true });
    w = times(1_000, P.measureMs);
    const ol = await e.cmdSvc.call<OpenLoop>('openLoop', { rate: P.commandRate, ...w });
    await e.cmdDev.call('record', { on: false });
    const dt = new Map(await e.cmdDev.call<Array<[number, number]>>('takeDeviceTimes'));
    const added: number[] = [];
    for (const [key, ms] of ol.rtts) {
      const us = dt.get(key);
      if (us !== undefined) added.push(ms - us / 1000);
    }
    const f: CommandsFig = {
      ...fig(m, cl.completed), rtt: cl.rtt, atRate: latencySummary(ol.rtts.map(([, ms]) => ms)), added: latencySummary(added),
      rateAchieved: ol.sent / ol.seconds, errors: cl.errors + cl.lost + ol.errors + ol.lost, firstError: cl.firstError ?? ol.firstError,
    };
    log(`${label}: ${fmt(f.rate)} commands/s (${P.commandsInflight} in flight), round trip p99 ${fmt(f.rtt.p99, 2)} ms; ` +
      `at ${fmt(f.rateAchieved)}/s round trip p50 ${fmt(f.atRate.p50, 2)} / p99 ${fmt(f.atRate.p99, 2)} ms, added p99 ${fmt(f.added.p99, 2)} ms` +
      `${f.errors ? `; ERRORS ${f.errors}: ${f.firstError ?? ''}` : ''}; CPU µs/command ${usLine(f)}${redisLine(f)}`);
    return f;
  } finally {
    await e.cmdSvc.call('stopService');
    checkAlive(nodes);
  }
}

/** Part a: devices and service on one node. */
export async function aCommands(e: Env, node: NodeProc, clustered: boolean): Promise<CommandsFig> {
  await startCommandDevices(e, node);
  try {
    return await commands(e, [node], node, clustered, `${node.name}${clustered ? ' (cluster of one)' : ''}: commands`);
  } finally {
    await stopCommandDevices(e);
  }
}

export async function startCommandDevices(e: Env, a: NodeProc): Promise<void> {
  await e.cmdDev.call('startDevices', { target: mt(a), creds: commandDevices });
  await sleep(1_000); // the other nodes learn of the devices' presence
}

export const stopCommandDevices = (e: Env) => e.cmdDev.call('stopDevices');

// ------------------------------------------------------------------ memory

export interface MemoryFig {
  devices: number;
  connectSeconds: number;
  /** RSS growth per idle device on the node they are connected to, and on each other node (its copy of their sessions). */
  kibPerDevice: Record<string, number>;
  rssMiB: Record<string, [number, number]>;
  /** Growth of the V8 heap in use plus external memory (Buffers), after full collections, per device, each node. */
  heapKibPerDevice: Record<string, number>;
  /** Redis used_memory growth per device, bytes. */
  redisBytesPerDevice?: number;
  /** CPU ms per connect (a cold login each) on each process. */
  cpuMsPerConnect: Record<string, number>;
  redisPerConnect?: PerMessage;
}

/** RSS per idle MQTT device: `idle` devices connected to nodes[0], RSS of every node before and after. */
export async function memory(e: Env, nodes: NodeProc[], clustered: boolean): Promise<MemoryFig> {
  const gen = e.mq[0]!;
  await sleep(2_000);
  // The baseline after full collections (the inspector): start-up's garbage out of it.
  const heap0 = await Promise.all(nodes.map((n) => n.heapAfterGc()));
  const rss0 = await Promise.all(nodes.map((n) => stableRssKiB(n.pid, 4_000, 0.02, 15_000)));
  const info0 = clustered ? await e.redis.info() : undefined;
  const cpuProcs = procs(nodes, clustered ? e : null, {}, clustered ? { postgres: e.pg.pid } : {});
  const meter = cpuMeter(cpuProcs);
  await gen.call('setTarget', { target: mt(nodes[0]!) });
  const r = await gen.call<ConnectResult>('connectIdle', { creds: idleDevices, concurrency: 50 });
  try {
    if (r.errors) throw new Error(`idle connects failed (${r.errors}): ${r.firstError}`);
    await sleep(1_000);
    await settle(nodes.map((n) => n.pid), 10_000);
    const cpu = meter.stop();
    const info1 = clustered ? await e.redis.info() : undefined;
    // RSS as bench/mqtt reads it (what the devices hold, and what garbage their connects
    // left that no collection has taken yet), against the collected baseline; then the
    // live memory, after full collections.
    const rss1 = await Promise.all(nodes.map((n) => stableRssKiB(n.pid, 4_000, 0.02, 15_000)));
    const heap1 = await Promise.all(nodes.map((n) => n.heapAfterGc()));
    const f: MemoryFig = {
      devices: r.count, connectSeconds: r.seconds,
      kibPerDevice: Object.fromEntries(nodes.map((n, i) => [n.name, (rss1[i]! - rss0[i]!) / r.count])),
      rssMiB: Object.fromEntries(nodes.map((n, i) => [n.name, [rss0[i]! / 1024, rss1[i]! / 1024]])),
      heapKibPerDevice: Object.fromEntries(nodes.map((n, i) => [n.name, (heap1[i]! - heap0[i]!) / 1024 / r.count])),
      redisBytesPerDevice: info0 && info1 ? (info1.usedMemory - info0.usedMemory) / r.count : undefined,
      cpuMsPerConnect: Object.fromEntries(Object.keys(cpuProcs).map((k) => [k, (cpu[k]! / r.count) * 1000])),
      redisPerConnect: info0 && info1 ? perMessage({ calls: info1.calls - info0.calls, netIn: info1.netIn - info0.netIn, netOut: info1.netOut - info0.netOut, usedMemory: 0, byCommand: Object.fromEntries(Object.entries(info1.byCommand).map(([k, v]) => [k, v - (info0.byCommand[k] ?? 0)]).filter(([, v]) => (v as number) > 0)) }, r.count) : undefined,
    };
    log(`${clustered ? 'cluster' : 'standalone'}: ${fmt(r.count)} idle devices on ${nodes[0]!.name} (connected in ${fmt(r.seconds, 1)} s): ` +
      nodes.map((n) => `${n.name} RSS ${fmt(f.rssMiB[n.name]![0], 1)} → ${fmt(f.rssMiB[n.name]![1], 1)} MiB, ${fmt(f.kibPerDevice[n.name], 1)} KiB/device (heap + external after GC ${fmt(f.heapKibPerDevice[n.name], 2)} KiB/device)`).join('; ') +
      (f.redisBytesPerDevice !== undefined ? `; Redis ${fmt(f.redisBytesPerDevice)} B/device` : '') +
      `; CPU ms/connect ${Object.entries(f.cpuMsPerConnect).map(([k, v]) => `${k} ${fmt(v, 2)}`).join(', ')}`);
    return f;
  } finally {
    await gen.call('dropIdle');
    checkAlive(nodes);
  }
}
