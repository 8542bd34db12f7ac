// Password hashing on threads of its own, at a lower scheduling priority.
//
// A first-time login costs one PBKDF2 (RFC 8018 §5.2) at 4,096 iterations: ~0.4 ms of
// a core natively, ~0.9 ms through OpenSSL. On libuv's pool those runs compete with
// the event loop for the same cores on equal terms, so a connect storm either takes
// the CPU the connected sessions need or, capped at one run at a time, leaves the
// other core idle. Here each hashing thread lowers its own priority (Linux:
// setpriority on its thread id), so the kernel runs it on whatever CPU the event loop
// and the rest of the machine leave, and preempts it as soon as they want the core
// back.
//
// SHA-256 runs in native/pbkdf2.c (same result, about twice as fast as OpenSSL 3's
// PBKDF2; see there) when it is built (`npm run build:native`, part of `npm install`);
// otherwise, and for other digests, in pbkdf2Sync.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";

export type Pbkdf2 = (password: string, salt: Buffer, iterations: number, keyLength: number, digest: string) => Promise<Buffer>;

export interface HashPool {
  pbkdf2: Pbkdf2;
  /** Whether the threads run at the lower priority (false where the OS refused). */
  readonly niced: boolean;
  /** Whether SHA-256 runs in the native PBKDF2 (false where it is not built). */
  readonly native: boolean;
  close(): Promise<void>;
}

/** The built native PBKDF2, seen from src/auth (tests) or dist/src/auth. */
export const NATIVE_PBKDF2 =
  ["native/build/Release/pbkdf2.node", "../../../src/auth/native/build/Release/pbkdf2.node"].map((p) => fileURLToPath(new URL(p, import.meta.url))).find((p) => existsSync(p)) ?? null;

const THREAD = `
const { parentPort, workerData } = require("node:worker_threads");
const { pbkdf2Sync } = require("node:crypto");
const { readlinkSync } = require("node:fs");
const { setPriority } = require("node:os");
let pbkdf2Sha256 = null;
try {
  if (workerData.addon) pbkdf2Sha256 = require(workerData.addon).pbkdf2Sha256;
} catch {}
/** The native PBKDF2 takes bytes; they are wiped after use (a small Buffer shares a pool). */
const nativeSha256 = (m) => {
  const password = Buffer.from(m.password, "utf8");
  try {
    return pbkdf2Sha256(password, m.salt, m.iterations, m.keyLength);
  } finally {
    password.fill(0);
  }
};
let niced = false;
try {
  // /proc/thread-self -> <pid>/task/<tid>: this thread's id, which setpriority(2) takes on Linux.
  const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
  setPriority(tid, workerData.nice);
  niced = true;
} catch {}
parentPort.postMessage({ niced, native: pbkdf2Sha256 !== null });
parentPort.on("message", (m) => {
  try {
    const key = pbkdf2Sha256 && m.digest === "sha256" ? nativeSha256(m) : pbkdf2Sync(m.password, m.salt, m.iterations, m.keyLength, m.digest);
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
 * job and is replaced. `native: false` keeps SHA-256 in pbkdf2Sync too.
 */
export async function startHashPool(opts: { threads: number; nice: number; native?: boolean }): Promise<HashPool> {
  const addon = opts.native === false ? null : NATIVE_PBKDF2;
  const queue: Job[] = [];
  const running = new Map<Worker, Job>();
  const idle: Worker[] = [];
  let closed = false;
  let niced = true;
  let native = addon !== null;

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
      const worker = new Worker(THREAD, { eval: true, workerData: { nice: opts.nice, addon } });
      worker.unref();
      let started = false;
      worker.on("message", (m: { niced?: boolean; native?: boolean; key?: Uint8Array; error?: string }) => {
        if (!started) {
          started = true;
          niced &&= m.niced === true;
          native &&= m.native === true;
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
    get native() {
      return native;
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
