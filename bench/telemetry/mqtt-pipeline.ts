// The part of the switchboard, peer and embedded pipelines that is the same: 50
// devices publish closed loop at QoS 1 into an MQTT broker, and what lands at the
// end is polled; the figures of one run (landed/s, publish → landed latency, CPU
// of each of the pipeline's processes, RSS, optionally system calls).
import { execFile } from 'node:child_process';
import type { Worker } from '../common/ipc.js';
import { Landed } from '../common/landed.js';
import type { ClosedResult } from '../common/mqtt-loadgen.js';
import { cpuSeconds, rssKiB } from '../common/proc.js';
import { sleep, windowTimes } from '../common/timing.js';
import { ForeignCpu, fmt, latencySummary, load1, log, settle } from '../common/util.js';
import { P, args, publishers } from './options.js';

export interface PipeResult {
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

export type MemoryResult = PipeResult & { rssSeries?: Array<[number, number]> };

/** The device load generator, the work dir, and the template of Switchboard's registry. */
export interface Ctx { gen: Worker; dir: string; template: string }

/** A phase's times: 300 ms from now, P.warmupMs of warm-up, then `measureMs` measured. */
export const times = (measureMs = P.measureMs) => windowTimes(P.warmupMs, measureMs, 300);

/** CPU seconds of each of a set of processes, by name. */
const cpuEach = (procs: Record<string, number>) => Object.fromEntries(Object.entries(procs).map(([name, pid]) => [name, cpuSeconds(pid)]));
const sum = (byName: Record<string, number>) => Object.values(byName).reduce((a, b) => a + b, 0);

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
export async function mqttPipeline(c: Ctx, o: {
  /** The pipeline's processes by name; its CPU is theirs together, and each one's is logged. */
  name: string; mqttPort: number; procs: Record<string, number>; rssPid?: number;
  landedCount: () => Promise<number>; pollMs?: number; backlog?: () => Promise<number>;
  /** The pipeline measures publish → landed itself (the peer writer). */
  exactLatency?: { window(w: { from: number; to: number }): Promise<unknown>; get(): Promise<ReturnType<typeof latencySummary>> };
  measureMs?: number; rssEveryMs?: number;
}): Promise<MemoryResult> {
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
  const lastLanding = landed.firstAtLeast(r.sent);
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
