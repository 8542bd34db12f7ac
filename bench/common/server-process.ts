// A server under test as a process: started in its own process group under
// `bash -c 'ulimit -n …; exec …'` (10,000 connections need more than the usual
// 1,024 descriptors), its output in a log file, remembered until it exits so that
// killAll() (on exit, on signals, on errors) leaves nothing behind; waiting for it
// to listen, and stopping it.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { sleep } from './timing.js';

/** A started server, as the benches see it. */
export interface Server {
  readonly name: string;
  /** Root of the process tree to measure (bench/common/proc.ts). */
  readonly pid: number;
  readonly ports: { mqtt?: number; xmpp?: number; http?: number; influx?: number };
  readonly logFile: string;
  /** False once the process has exited (crashed, or stopped). */
  alive?(): boolean;
  stop(): Promise<void>;
}

/**
 * Shell prefix raising the open files limit: to 65536 where allowed, else
 * (e.g. in a container without CAP_SYS_RESOURCE) to the hard limit.
 */
export const RAISE_NOFILE = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"';

export { freePort } from '../../test/helpers/ports.js';

// Every server started, by process group id.
const live = new Set<number>();

/** SIGKILLs every server still running (their whole process groups). */
export function killAll(): void {
  for (const pgid of live) {
    try { process.kill(-pgid, 'SIGKILL'); } catch { /* gone */ }
  }
  live.clear();
}

/** Whatever happens to the bench, no server outlives it. */
export function installCleanup(extra: () => void = () => {}): void {
  process.on('exit', () => { extra(); killAll(); });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => { extra(); killAll(); process.exit(130); });
  }
}

export interface Spawned { child: ChildProcess; pid: number; exited: Promise<void> }

/**
 * Spawns `command` in its own process group (one kill reaches wrappers and
 * children) with a raised file limit. Output goes to logFile; onLine, if given,
 * sees each stdout line first.
 */
export function spawnServer(command: string, opts: { cwd: string; logFile: string; onLine?: (l: string) => void; env?: NodeJS.ProcessEnv }): Spawned {
  const child = spawn('bash', ['-c', `${RAISE_NOFILE}; exec ${command}`], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid!;
  live.add(pid);
  const log = createWriteStream(opts.logFile, { flags: 'a' });
  if (opts.onLine) {
    const onLine = opts.onLine;
    createInterface({ input: child.stdout! }).on('line', (l) => { log.write(l + '\n'); onLine(l); });
  } else {
    child.stdout!.pipe(log);
  }
  child.stderr!.pipe(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => { live.delete(pid); resolve(); }));
  return { child, pid, exited };
}

export const isAlive = (p: Spawned) => p.child.exitCode === null && p.child.signalCode === null;

/** SIGTERM, SIGKILL after `graceMs`; then whatever of its process group outlived it. */
export async function stopSpawned(p: Spawned, graceMs = 5_000): Promise<void> {
  if (!isAlive(p)) return;
  try { process.kill(-p.pid, 'SIGTERM'); } catch { /* gone */ }
  const timedOut = await Promise.race([p.exited.then(() => false), sleep(graceMs).then(() => true)]);
  if (timedOut) {
    try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ }
    await p.exited;
  }
  try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ }
}

/** Polls until something accepts on the port, failing early if the server died. */
export async function waitForPort(port: number, p: Spawned, what: string, timeoutMs = 30_000, pollMs = 100): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (!isAlive(p)) throw new Error(`${what} exited during startup`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`${what} did not open port ${port} within ${timeoutMs / 1000}s`);
    await sleep(pollMs);
  }
}

/** waitForPort; a server that never opens it is stopped, not leaked. */
export async function portOrStop(port: number, p: Spawned, what: string, o: { timeoutMs?: number; pollMs?: number; graceMs?: number } = {}): Promise<void> {
  try {
    await waitForPort(port, p, what, o.timeoutMs, o.pollMs);
  } catch (e) {
    await stopSpawned(p, o.graceMs);
    throw e;
  }
}

/** A stdout line watcher (spawnServer's onLine) and the first JSON line with msg "listening". */
export function onListening(): { onLine: (l: string) => void; line: Promise<Record<string, unknown>> } {
  let announce: (r: Record<string, unknown>) => void = () => {};
  const line = new Promise<Record<string, unknown>>((r) => { announce = r; });
  return {
    line,
    onLine: (l) => {
      if (!l.includes('"listening"')) return;
      try {
        const rec = JSON.parse(l) as Record<string, unknown>;
        if (rec.msg === 'listening') announce(rec);
      } catch { /* not JSON */ }
    },
  };
}

/** Waits for the "listening" line; a server that exits or stays silent first is stopped. */
export async function listeningLine(p: Spawned, waiter: Promise<Record<string, unknown>>, what: string, timeoutMs = 60_000): Promise<Record<string, unknown>> {
  try {
    return await Promise.race([
      waiter,
      p.exited.then((): never => { throw new Error(`${what} exited during startup`); }),
      sleep(timeoutMs).then((): never => { throw new Error(`${what} logged no "listening" line within ${timeoutMs / 1000}s`); }),
    ]);
  } catch (e) {
    await stopSpawned(p);
    throw e;
  }
}
