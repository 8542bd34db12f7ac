// Load generator processes driven over IPC: each request is {id, op, ...args},
// each answer {id, result} or {id, error}. Separate processes rather than
// worker_threads, as in bench/xmpp: Node 20 does not apply the tsx loader
// inside workers, and processes keep descriptors and garbage collectors apart.
import { fork, type ChildProcess } from 'node:child_process';
import { cpuSeconds } from './proc.js';
import { installCleanup, killAll } from './server-process.js';

export class Worker {
  private seq = 0;
  private waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly proc: ChildProcess;
  private exited = false;

  /** `file`: a module that calls serve(); it inherits --import tsx. */
  constructor(file: URL | string, readonly name = 'worker') {
    const path = typeof file === 'string' ? file : file.pathname;
    this.proc = fork(path, [], {
      cwd: new URL('../..', import.meta.url).pathname,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      // Their own process group would outlive a crash of ours; they stay in ours.
    });
    this.proc.on('message', (m: { id: number; result?: unknown; error?: string }) => {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.error !== undefined) w?.reject(new Error(`${this.name}: ${m.error}`));
      else w?.resolve(m.result);
    });
    this.proc.on('exit', (code, signal) => {
      this.exited = true;
      for (const w of this.waiting.values()) w.reject(new Error(`${this.name} exited (${code ?? signal})`));
      this.waiting.clear();
    });
  }

  get pid(): number { return this.proc.pid!; }
  cpu(): number { return cpuSeconds(this.pid); }

  call<T>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`${this.name} is not running`));
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.proc.send({ id, op, ...args });
    });
  }

  kill(): void {
    if (!this.exited) this.proc.kill('SIGKILL');
  }
}

/** Child side: answers requests with the named handlers. Exits when the parent goes. */
export function serve(handlers: Record<string, (req: any) => unknown>): void {
  process.on('disconnect', () => process.exit(0));
  process.on('message', async (m: { id: number; op: string }) => {
    try {
      const h = handlers[m.op];
      if (!h) throw new Error(`unknown op ${m.op}`);
      const result = await h(m);
      process.send!({ id: m.id, result: result ?? null });
    } catch (e) {
      process.send!({ id: m.id, error: (e as Error)?.stack ?? String(e) });
    }
  });
}

/**
 * Forks one worker per [file, name], runs fn with them, then kills them and every
 * server the bench started, whatever happens (also on exit and on signals).
 */
export async function withWorkers<T>(specs: Array<[URL, string]>, fn: (workers: Worker[]) => Promise<T>): Promise<T> {
  const workers = specs.map(([file, name]) => new Worker(file, name));
  const killWorkers = () => { for (const w of workers) w.kill(); };
  installCleanup(killWorkers);
  try {
    return await fn(workers);
  } finally {
    killWorkers();
    killAll();
  }
}
