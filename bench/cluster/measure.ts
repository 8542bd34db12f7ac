// What every phase of the cluster bench reads over its measured window [from, to):
// CPU seconds of each process it names (the node processes, Redis, influxd,
// PostgreSQL, the load generators; /proc, whole process trees), Redis' counters
// (INFO: commands by name, network bytes, memory), and the CPU other processes on the
// machine used meanwhile (disturbance, reported).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { processTree } from '../common/proc.js';
import { windowTimes } from '../common/timing.js';
import { ForeignCpu } from '../common/util.js';
import { commandDelta, type RedisInfo, type RedisServer } from './infra.js';

export interface Window { startAt: number; from: number; to: number }

export interface RedisDelta {
  calls: number;
  netIn: number;
  netOut: number;
  usedMemory: number;
  byCommand: Record<string, number>;
}

export interface Metered<T> {
  result: T;
  secs: number;
  /** CPU seconds each named process used in the window. */
  cpu: Record<string, number>;
  redis?: RedisDelta;
  foreignCpuPct: number;
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** utime + stime of one process, s; undefined once it is gone. */
function ownCpu(pid: number, path = `/proc/${pid}/stat`): number | undefined {
  try {
    const text = readFileSync(path, 'latin1');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/**
 * CPU of a process tree over a window, process by process: PostgreSQL's backends and
 * autovacuum workers come and go, and a tree's sum read twice would lose the CPU of
 * those that exited in between (or go negative). Sampled every 250 ms; a process that
 * starts in the window counts from 0.
 */
class TreeCpu {
  private seen = new Map<number, { first: number; last: number }>();
  /** `mainThread`: the root's main thread only (/proc/PID/task/PID), not the tree. */
  constructor(private readonly root: number, private readonly mainThread = false) {
    this.sample(false);
  }
  sample(fromZero = true): void {
    for (const pid of this.mainThread ? [this.root] : processTree(this.root)) {
      const cpu = ownCpu(pid, this.mainThread ? `/proc/${pid}/task/${pid}/stat` : undefined);
      if (cpu === undefined) continue;
      const e = this.seen.get(pid);
      if (e) e.last = cpu;
      else this.seen.set(pid, { first: fromZero ? 0 : cpu, last: cpu });
    }
  }
  seconds(): number {
    let s = 0;
    for (const e of this.seen.values()) s += e.last - e.first;
    return s;
  }
}

/**
 * CPU seconds each named process tree uses from now until stop(); and for each of
 * `mains`, its main thread alone, as `NAME main` (a Node process does its work on one
 * thread: what a node can take is bounded by that thread's core).
 */
export function cpuMeter(procs: Record<string, number>, mains: Record<string, number> = {}): { stop(): Record<string, number> } {
  const trees = [
    ...Object.entries(procs).map(([n, pid]) => [n, new TreeCpu(pid)] as const),
    ...Object.entries(mains).map(([n, pid]) => [`${n} main`, new TreeCpu(pid, true)] as const),
  ];
  const timer = setInterval(() => { for (const [, t] of trees) t.sample(); }, 250);
  return {
    stop() {
      clearInterval(timer);
      for (const [, t] of trees) t.sample();
      return Object.fromEntries(trees.map(([n, t]) => [n, t.seconds()]));
    },
  };
}

export const times = (warmupMs: number, measureMs: number): Window => windowTimes(warmupMs, measureMs, 300);

/** Runs `run` (which works over `w`) and reads CPU and Redis at w.from and w.to. */
export async function metered<T>(w: Window, procs: Record<string, number>, redis: RedisServer | null, run: () => Promise<T>, mains: Record<string, number> = {}): Promise<Metered<T>> {
  const foreign = new ForeignCpu();
  let meter: ReturnType<typeof cpuMeter> | undefined;
  let cpu: Record<string, number> = {};
  const at = <T>(t: number, read: () => Promise<T>) => new Promise<T>((resolve, reject) => {
    setTimeout(() => read().then(resolve, reject), Math.max(0, t - Date.now()));
  });
  const first = at(w.from, async () => {
    meter = cpuMeter(procs, mains);
    return redis ? redis.info() : undefined;
  });
  const last = at(w.to, async () => {
    cpu = meter!.stop();
    return redis ? redis.info() : undefined;
  });
  const [result, i0, i1] = await Promise.all([run(), first, last]);
  return { result, secs: (w.to - w.from) / 1000, cpu, redis: i0 && i1 ? redisDelta(i0, i1) : undefined, foreignCpuPct: foreign.pct() };
}

export function redisDelta(a: RedisInfo, b: RedisInfo): RedisDelta {
  return { calls: b.calls - a.calls, netIn: b.netIn - a.netIn, netOut: b.netOut - a.netOut, usedMemory: b.usedMemory - a.usedMemory, byCommand: commandDelta(a, b) };
}

/** Redis' counters per message: commands, bytes in (to Redis), bytes out (from Redis). */
export function perMessage(d: RedisDelta | undefined, n: number): { cmds: number; bytesIn: number; bytesOut: number; byCommand: Record<string, number> } | undefined {
  if (!d || !(n > 0)) return undefined;
  return {
    cmds: d.calls / n, bytesIn: d.netIn / n, bytesOut: d.netOut / n,
    byCommand: Object.fromEntries(Object.entries(d.byCommand).map(([k, v]) => [k, Math.round((v / n) * 1000) / 1000])),
  };
}

/** µs of CPU per message for each named process. */
export function usPer(cpu: Record<string, number>, n: number): Record<string, number> {
  return Object.fromEntries(Object.entries(cpu).map(([k, s]) => [k, n > 0 ? (s / n) * 1e6 : NaN]));
}
