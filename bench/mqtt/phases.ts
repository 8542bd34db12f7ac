// The phases of one bench/mqtt run on a freshly started broker, each returning its
// figures and logging them: QoS 1 and QoS 0 closed-loop throughput, QoS 0 latency
// at a fixed rate, connect rates with the latency of connected devices during the
// storms, a QoS 0 flood, and RSS per idle device. docs/benchmarks.md says what each
// figure means.
import type { Worker } from '../common/ipc.js';
import type { ClosedResult, CollectResult, ConnectResult, Cred, RateResult } from '../common/mqtt-loadgen.js';
import { cpuSeconds, rssKiB } from '../common/proc.js';
import type { Server } from '../common/servers.js';
import { readingsAt, sleep, windowTimes } from '../common/timing.js';
import { ForeignCpu, fmt, load1, log, settle } from '../common/util.js';
import { P, WARMUP_DEVICES, args, pool, publishers, quick, subscriber } from './options.js';

interface Tp { rate: number; p50: number; p99: number; cpuUsPerMsg: number; serverCpuPct: number; genCpuPct: number; lost: number }
export interface RunResult {
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

/** The broker under test and the two load generator processes. */
export interface Ctx { name: string; srv: Server; a: Worker; b: Worker }

const quiet = (c: Ctx, maxMs = 3_000) => settle([c.srv.pid, c.a.pid, c.b.pid], maxMs);
const times = () => windowTimes(P.warmupMs, P.measureMs);

async function throughput(c: Ctx, qos: 0 | 1): Promise<Tp> {
  await quiet(c);
  const w = times();
  const [r, [at0, at1]] = await Promise.all([
    c.a.call<ClosedResult>('closed', { qos, window: P.window, ...w }),
    // CPU of the server and of the generators over the window, in seconds.
    readingsAt(w.from, w.to, () => [cpuSeconds(c.srv.pid), c.a.cpu() + c.b.cpu()] as const),
  ]);
  const cpu = { server: at1[0] - at0[0], gens: at1[1] - at0[1] };
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
  const w = times();
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
  let w = times();
  const idle = await c.a.call<RateResult>('rate', { qos: 1, rate: P.stallRate, ...w });
  // ...then connects one at a time...
  await quiet(c);
  const seq = await c.b.call<ConnectResult>('connects', { creds: pool.slice(0, half), concurrency: 1, durationMs: P.connectMs });
  if (seq.errors) throw new Error(`connect errors: ${seq.firstError}`);
  const connSeq = seq.count / seq.seconds;
  // ...then 50 at a time while the 50 connected devices publish: first-time devices...
  const storm = async (creds: Cred[]) => {
    await quiet(c);
    w = times();
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
  const w = times();
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

/** RSS per idle device, on a broker of its own (its devices must not have connected before the connect-rate phases). */
export async function memory(c: Ctx): Promise<NonNullable<RunResult['memory']>> {
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

/** Every phase but memory (or the one group --qos1-only or --connects-only asks for), after a warm-up. */
export async function speedRun(c: Ctx): Promise<RunResult> {
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
