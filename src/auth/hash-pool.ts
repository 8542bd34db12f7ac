// Password hashing on threads of its own, at a lower scheduling priority.
//
// A first-time login costs one PBKDF2 (RFC 8018 §5.2) of ~0.9 ms of a core at 4,096
// iterations. On libuv's pool those runs compete with the event loop for the same
// cores on equal terms, so a connect storm either takes the CPU the connected
// sessions need or, capped at one run at a time, leaves the other core idle. Here
// each hashing thread lowers its own priority (Linux: setpriority on its thread id),
// so the kernel runs it on whatever CPU the event loop and the rest of the machine
// leave, and preempts it as soon as they want the core back.
import { Worker } from "node:worker_threads";

export type Pbkdf2 = (password: string, salt: Buffer, iterations: number, keyLength: number, digest: string) => Promise<Buffer>;

export interface HashPool {
  pbkdf2: Pbkdf2;
  /** Whether the threads run at the lower priority (false where the OS refused). */
  readonly niced: boolean;
  close(): Promise<void>;
}

const THREAD = `
const { parentPort, workerData } = require("node:worker_threads");
const { pbkdf2Sync } = require("node:crypto");
const { readlinkSync } = require("node:fs");
const { setPriority } = require("node:os");
let niced = false;
try {
  // /proc/thread-self -> <pid>/task/<tid>: this thread's id, which setpriority(2) takes on Linux.
  const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
  setPriority(tid, workerData.nice);
  niced = true;
} catch {}
parentPort.postMessage({ niced });
parentPort.on("message", (m) => {
  try {
    const key = pbkdf2Sync(m.password, m.salt, m.iterations, m.keyLength, m.digest);
    parentPort.postMessage({ key });
  } catch (err) {
    parentPort.postMessage({ error: String((err && err.message) || err) });
  }
});
`;

interface Job {
  password: string;
  salt: Buffer;
  iterations: number;
  keyLength: number;
  digest: string;
  resolve: (key: Buffer) => void;
  reject: (err: Error) => void;
}

/**
 * `threads` hashing threads at `nice` (0–19, higher yields more). Each runs one
 * PBKDF2 at a time; further requests wait in order. A thread that dies fails its
 * job and is replaced.
 */
export async function startHashPool(opts: { threads: number; nice: number }): Promise<HashPool> {
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
      worker.postMessage({ password: job.password, salt: job.salt, iterations: job.iterations, keyLength: job.keyLength, digest: job.digest });
    }
  }

  /** Resolves once the thread has set its priority and is idle. */
  function spawn(): Promise<void> {
    return new Promise((ready, failed) => {
      const worker = new Worker(THREAD, { eval: true, workerData: { nice: opts.nice } });
      worker.unref();
      let started = false;
      worker.on("message", (m: { niced?: boolean; key?: Uint8Array; error?: string }) => {
        if (!started) {
          started = true;
          niced &&= m.niced === true;
          idle.push(worker);
          dispatch();
          return ready();
        }
        const job = running.get(worker)!;
        running.delete(worker);
        idle.push(worker);
        if (m.key) job.resolve(Buffer.from(m.key.buffer, m.key.byteOffset, m.key.byteLength));
        else job.reject(new Error(m.error));
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
