// Password hashing on threads of its own, at a lower scheduling priority.
//
// A first-time login costs one PBKDF2 (RFC 8018 §5.2) at the account's iteration
// count. On libuv's pool those runs compete with the event loop for the same cores on
// equal terms, so a connect storm either takes the CPU the connected sessions need
// or, capped at one run at a time, leaves the other core idle. Here each hashing
// thread (hash-thread.ts) lowers its own priority (Linux: setpriority on its thread
// id), so the kernel runs it on whatever CPU the event loop and the rest of the
// machine leave, and preempts it as soon as they want the core back. The PBKDF2 itself
// is node:crypto's (docs/operations.md, "Password hashing threads").
import type { Worker } from "node:worker_threads";
import type { Logger } from "../log.js";
import { siblingModule, startModuleWorker } from "../worker-module.js";
import type { HashReply, HashRequest, ThreadData } from "./hash-thread.js";

export type Pbkdf2 = (password: string, salt: Buffer, iterations: number, keyLength: number, digest: string) => Promise<Buffer>;

export interface HashPool {
  pbkdf2: Pbkdf2;
  /** Whether the threads run at the lower priority (false where the OS refused). */
  readonly niced: boolean;
  close(): Promise<void>;
}

/** The thread's module: its compiled .js in dist/, the .ts when run from source. */
const THREAD = siblingModule(import.meta.url, "hash-thread");

interface Job extends HashRequest {
  resolve: (key: Buffer) => void;
  reject: (err: Error) => void;
}

/**
 * `threads` hashing threads at `nice` (0–19, higher yields more). Each runs one
 * PBKDF2 at a time; further requests wait in order. A thread that dies fails its
 * job and is replaced. Where the OS refuses the priority, `log` gets one warning.
 */
export async function startHashPool(opts: { threads: number; nice: number; log?: Pick<Logger, "warn"> }): Promise<HashPool> {
  const queue: Job[] = [];
  const running = new Map<Worker, Job>();
  const idle: Worker[] = [];
  let closed = false;
  let niced = true;

  function dispatch(): void {
    while (idle.length && queue.length) {
      const worker = idle.pop()!;
      const job = queue.shift()!;
      running.set(worker, job);
      const request: HashRequest = { password: job.password, salt: job.salt, iterations: job.iterations, keyLength: job.keyLength, digest: job.digest };
      worker.postMessage(request);
    }
  }

  /** Resolves once the thread has set its priority and is idle. */
  function spawn(): Promise<void> {
    return new Promise((ready, failed) => {
      const workerData: ThreadData = { nice: opts.nice };
      const worker = startModuleWorker(THREAD, { workerData });
      worker.unref();
      let started = false;
      worker.on("message", (m: HashReply) => {
        if (m.kind === "ready") {
          started = true;
          niced &&= m.niced;
          idle.push(worker);
          dispatch();
          return ready();
        }
        const job = running.get(worker)!;
        running.delete(worker);
        idle.push(worker);
        if (m.kind === "key") job.resolve(Buffer.from(m.key.buffer, m.key.byteOffset, m.key.byteLength));
        else job.reject(new Error(m.message));
        dispatch();
      });
      worker.on("error", (err) => (started ? undefined : failed(err)));
      worker.on("exit", () => {
        running.get(worker)?.reject(new Error("password hashing thread exited"));
        running.delete(worker);
        const at = idle.indexOf(worker);
        if (at >= 0) idle.splice(at, 1);
        if (started && !closed) spawn().catch(() => {});
      });
    });
  }

  await Promise.all(Array.from({ length: opts.threads }, spawn));
  if (!niced) opts.log?.warn({ nice: opts.nice }, "password hashing threads could not lower their priority; a connect storm competes with connected sessions for the CPU");
  const all = () => [...idle, ...running.keys()];

  return {
    get niced() {
      return niced;
    },
    pbkdf2(password, salt, iterations, keyLength, digest) {
      if (closed) return Promise.reject(new Error("hash pool closed"));
      return new Promise((resolve, reject) => {
        queue.push({ password, salt, iterations, keyLength, digest, resolve, reject });
        dispatch();
      });
    },
    async close() {
      closed = true;
      for (const job of queue.splice(0)) job.reject(new Error("hash pool closed"));
      await Promise.all(all().map((w) => w.terminate()));
    },
  };
}
