// Reads CPU time and resident memory of a server from /proc.
//
// A server is measured as its whole process tree, because the process we
// spawn is not always the one doing the work: ejabberdctl stays as a shell
// parent of beam.smp, and a broker may fork helpers. Constant overhead of
// wrappers cancels out, since we only ever report deltas.
import { readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { sleep } from './timing.js';

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

interface Stat { pid: number; ppid: number; ticks: number }

/** `path`: a process's stat file, or one of its threads' (/proc/PID/task/TID/stat). */
function readStat(pid: number, path = `/proc/${pid}/stat`): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'latin1');
  } catch {
    return undefined; // process ended between listing and reading
  }
  // The command name (field 2) may contain spaces and parentheses, so fields
  // are counted from the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
  return { pid, ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) };
}

/** The pid itself and all its live descendants. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const st = readStat(pid);
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(pid);
    children.set(st.ppid, list);
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length > 0) {
    const pid = todo.pop()!;
    out.push(pid);
    todo.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** User + system CPU seconds consumed so far by the tree under root. */
export function cpuSeconds(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) ticks += readStat(pid)?.ticks ?? 0;
  return ticks / CLK_TCK;
}

/** CPU seconds consumed so far by each thread of one process, keyed by thread id. */
export function threadCpuSeconds(pid: number): Map<number, number> {
  return perThread(pid, (tid, dir) => {
    const st = readStat(tid, `${dir}/stat`);
    return st && st.ticks / CLK_TCK;
  });
}

/** `read(tid, dir)` for each thread of pid (dir: /proc/PID/task/TID); a thread that ended meanwhile is left out. */
function perThread(pid: number, read: (tid: number, dir: string) => number | undefined): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let value: number | undefined;
    try {
      value = read(Number(tid), `/proc/${pid}/task/${tid}`);
    } catch {
      // The thread ended between the listing and the read.
    }
    if (value !== undefined) out.set(Number(tid), value);
  }
  return out;
}

/**
 * Seconds each thread of pid has spent runnable but waiting for a CPU (the second
 * field of /proc/PID/task/TID/schedstat, in ns). Beside threadCpuSeconds it tells a
 * thread that is idle from one that is ready and crowded out by other threads.
 */
export function threadWaitSeconds(pid: number): Map<number, number> {
  return perThread(pid, (_tid, dir) => Number(readFileSync(`${dir}/schedstat`, 'latin1').split(' ')[1]) / 1e9);
}

/** Resident set size in KiB (VmRSS) summed over the tree under root. */
export function rssKiB(root: number): number {
  let kib = 0;
  for (const pid of processTree(root)) {
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
      if (m) kib += Number(m[1]);
    } catch {
      // ended meanwhile
    }
  }
  return kib;
}

/**
 * Waits until the whole machine is (nearly) idle: the server has worked off
 * the previous phase's backlog (tearing down sessions, garbage collection),
 * and nothing else, such as a build or a test suite, competes for the 2
 * cores. Gives up after maxMs so a busy-looping server or a long foreign
 * job cannot hang the bench; foreign load that remains is reported by the
 * caller.
 */
export async function waitQuiet(maxMs = 20_000): Promise<void> {
  // Waiting beyond the minimum draws on a budget for the whole bench, so a
  // machine that never gets quiet still lets it finish in bounded time.
  const end = Date.now() + Math.min(maxMs, 1_000 + quietBudgetMs);
  const t0 = Date.now();
  let quiet = 0;
  let prev = machineBusySeconds();
  while (Date.now() < end && quiet < 2) {
    await sleep(500);
    const now = machineBusySeconds();
    quiet = now - prev < 0.05 ? quiet + 1 : 0; // under 10% of one core
    prev = now;
  }
  quietBudgetMs = Math.max(0, quietBudgetMs - Math.max(0, Date.now() - t0 - 1_000));
}
let quietBudgetMs = 90_000;

/** Soft limit on open files of this process, from /proc/self/limits. */
export function openFilesLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'latin1'));
  if (!m || m[1] === 'unlimited') return Infinity;
  return Number(m[1]);
}

/** CPU seconds all CPUs of the machine have spent busy (not idle or iowait). */
export function machineBusySeconds(): number {
  const f = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const busy = f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + (f[7] ?? 0);
  return busy / CLK_TCK;
}

/**
 * Waits until RSS of the tree under root stays within `tolerance` over
 * `windowMs`, then returns it. Garbage-collected servers (V8, Lua, BEAM)
 * return freed memory to the OS some seconds after activity stops (V8's
 * memory reducer, for one); reading RSS before that makes the baseline,
 * and so every per-connection figure, depend on timing.
 */
export async function stableRssKiB(root: number, windowMs = 6_000, tolerance = 0.02, maxMs = 30_000): Promise<number> {
  const end = Date.now() + maxMs;
  const samples: number[] = [];
  for (;;) {
    samples.push(rssKiB(root));
    const recent = samples.slice(-Math.ceil(windowMs / 1_000) - 1);
    const lo = Math.min(...recent), hi = Math.max(...recent);
    if ((recent.length > windowMs / 1_000 && hi - lo <= tolerance * hi) || Date.now() >= end) return samples.at(-1)!;
    await sleep(1_000);
  }
}
