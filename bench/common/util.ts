// Small pieces every bench shares: logging, foreign-load accounting, the
// time budget, the machine description and the raised descriptor limit.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { readFileSync, readdirSync } from 'node:fs';
import { cpuSeconds, openFilesLimit, processTree } from './proc.js';
import { RAISE_NOFILE } from './server-process.js';
import { fmt, percentile } from './stats.js';
import { sleep } from './timing.js';

export function log(msg: string): void {
  console.error(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);
}

/**
 * CPU used on the machine by processes other than the bench's own (the
 * servers and load generators are all descendants of this process). On 2
 * cores a test suite running alongside distorts the figures, so it is
 * measured and reported, and runs where it was high are repeated.
 */
export class ForeignCpu {
  private t = Date.now();
  private machine0 = machineTaskSeconds();
  /** CPU seconds of each process of our tree when first and last seen. */
  private seen = new Map<number, { first: number; last: number }>();
  private timer: NodeJS.Timeout;
  constructor() {
    this.sample();
    // Sampled twice a second so that a process which exits meanwhile (a
    // server that crashed or was stopped) keeps its CPU on our side.
    this.timer = setInterval(() => this.sample(), 500);
    this.timer.unref();
  }
  private sample(): void {
    for (const pid of [...processTree(process.pid), ...SOFTIRQ_THREADS]) {
      const cpu = ownCpuSeconds(pid);
      if (cpu === undefined) continue;
      const e = this.seen.get(pid);
      if (e) e.last = cpu;
      else this.seen.set(pid, { first: cpu, last: cpu });
    }
  }
  /**
   * Percent of one core used by others since construction (or reset): busy
   * time of the machine minus that of our process tree and of the kernel's
   * ksoftirqd threads, which process the loopback traffic our processes
   * cause when it is not processed in their own context. (With tick-based
   * accounting a tick in softirq counts as softirq in /proc/stat and as
   * system time of the interrupted process, so the machine's figure must
   * include softirq for the two to match.)
   */
  pct(): number {
    this.stop(); // one reading per window; reset() starts sampling again
    this.sample();
    const dt = (Date.now() - this.t) / 1000;
    let own = 0;
    for (const e of this.seen.values()) own += e.last - e.first;
    return dt > 0 ? ((machineTaskSeconds() - this.machine0 - own) / dt) * 100 : 0;
  }
  reset(): void {
    this.t = Date.now();
    this.machine0 = machineTaskSeconds();
    this.seen.clear();
    this.sample();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.sample(), 500);
    this.timer.unref();
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

/** utime + stime of one process (all its threads), seconds; undefined if gone. */
function ownCpuSeconds(pid: number): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  } catch {
    return undefined;
  }
}

const CLK_TCK = (() => {
  try { return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100; } catch { return 100; }
})();

/** CPU seconds all CPUs spent busy: user, nice, system, irq, softirq (not idle, iowait, steal). */
export function machineTaskSeconds(): number {
  const f = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]!) / CLK_TCK;
}

/** The kernel's per-CPU softirq threads. */
const SOFTIRQ_THREADS: number[] = (() => {
  const out: number[] = [];
  try {
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        if (readFileSync(`/proc/${name}/comm`, 'latin1').startsWith('ksoftirqd')) out.push(Number(name));
      } catch { /* gone */ }
    }
  } catch { /* no /proc */ }
  return out;
})();

/**
 * Waits (up to maxMs) until processes other than ours use less than
 * `thresholdPct` of a core over one second; returns the last figure. Used
 * before each measured phase, since other developers' test runs share the
 * machine.
 */
export async function waitForeignQuiet(maxMs: number, thresholdPct = 15): Promise<number> {
  const end = Date.now() + maxMs;
  for (;;) {
    const f = new ForeignCpu();
    await sleep(1_000);
    const pct = f.pct();
    if (pct < thresholdPct || Date.now() >= end) return pct;
  }
}

/**
 * Waits until the given processes (server, generators) have worked off the
 * previous phase: less than 5% of a core over 250 ms, at most maxMs. Unlike
 * bench/xmpp's waitQuiet it does not wait for the whole machine, which other
 * developers' test runs may keep busy for minutes; their share is measured
 * instead (ForeignCpu).
 */
export async function settle(pids: number[], maxMs = 3_000): Promise<void> {
  await sleep(300);
  const end = Date.now() + maxMs;
  const cpu = () => pids.reduce((a, p) => a + cpuSeconds(p), 0);
  let prev = cpu();
  while (Date.now() < end) {
    await sleep(250);
    const now = cpu();
    if (now - prev < 0.0125) return;
    prev = now;
  }
}

/** The bench's overall time budget: phases ask before they start. */
export class Budget {
  readonly start = Date.now();
  constructor(readonly totalMs: number) {}
  get elapsedMs(): number { return Date.now() - this.start; }
  get leftMs(): number { return this.totalMs - this.elapsedMs; }
  /** True when something expected to take `ms` still fits. */
  fits(ms: number): boolean { return this.leftMs >= ms; }
}

/** One line describing the machine and its load, for the report. */
export function machine(): string {
  const cpu = cpus();
  let kernel = '';
  try { kernel = readFileSync('/proc/sys/kernel/osrelease', 'latin1').trim(); } catch { /* not Linux */ }
  return `${cpu.length} × ${cpu[0]?.model.trim() ?? '?'}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Linux ${kernel}, Node ${process.version}`;
}

export function load1(): number {
  return loadavg()[0]!;
}

/**
 * 10,000 client sockets need more descriptors than the usual soft limit;
 * restarts the bench once under a raised one (children inherit it). When even
 * that is too low, warns and goes on, or with `strict` exits.
 */
export function ensureOpenFiles(need: number, strict = false): void {
  if (openFilesLimit() >= need) return;
  if (process.env.SB_BENCH_REEXEC) {
    if (strict) {
      console.error(`open files limit is ${openFilesLimit()}, need ${need}: raise ulimit -n`);
      process.exit(1);
    }
    log(`WARNING: open files limit is ${openFilesLimit()}, wanted ${need}`);
    return;
  }
  const r = spawnSync('bash', ['-c', `${RAISE_NOFILE}; exec "$0" "$@"`, process.execPath, ...process.execArgv,
    ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, SB_BENCH_REEXEC: '1' } });
  process.exit(r.status ?? 1);
}

/** p50/p99/p99.9/max of a list of latencies (ms), sorting it in place. */
export function latencySummary(xs: number[] | Float64Array): { n: number; p50: number; p99: number; p999: number; max: number } {
  const a = Array.from(xs).sort((x, y) => x - y);
  return { n: a.length, p50: percentile(a, 50), p99: percentile(a, 99), p999: percentile(a, 99.9), max: a[a.length - 1] ?? NaN };
}

/** Formats a ratio a/b as "0.83×". */
export function ratio(a: number, b: number): string {
  return Number.isFinite(a / b) ? `${fmt(a / b, 2)}×` : '–';
}

export { fmt, sleep };
