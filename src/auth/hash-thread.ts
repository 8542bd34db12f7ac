// One password-hashing thread of the hash pool (hash-pool.ts starts it as a worker).
// It lowers its own scheduling priority, says whether that worked, then runs each
// PBKDF2 (RFC 8018 §5.2) it is sent, one at a time, with node:crypto's pbkdf2Sync:
// synchronously, so the work stays on this niced thread instead of libuv's pool.
import { pbkdf2Sync } from "node:crypto";
import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";

/** What the pool hands each thread when it starts. */
export interface ThreadData {
  /** 0–19: higher yields more of the CPU to other threads. */
  nice: number;
}

export interface HashRequest {
  password: string;
  salt: Uint8Array;
  iterations: number;
  keyLength: number;
  digest: string;
}

export type HashReply = { kind: "ready"; niced: boolean } | { kind: "key"; key: Uint8Array } | { kind: "error"; message: string };

/** Linux: setpriority(2) on this thread's id (/proc/thread-self -> <pid>/task/<tid>); false where refused or elsewhere. */
function lowerPriority(nice: number): boolean {
  try {
    setPriority(Number(readlinkSync("/proc/thread-self").split("/").pop()), nice);
    return true;
  } catch {
    return false;
  }
}

function hash(m: HashRequest): HashReply {
  try {
    return { kind: "key", key: pbkdf2Sync(m.password, m.salt, m.iterations, m.keyLength, m.digest) };
  } catch (err) {
    return { kind: "error", message: err instanceof Error ? err.message : String(err) };
  }
}

if (!parentPort) throw new Error("hash-thread runs as a worker of the hash pool (hash-pool.ts)");
const port = parentPort;
const reply = (r: HashReply) => port.postMessage(r);
reply({ kind: "ready", niced: lowerPriority((workerData as ThreadData).nice) });
port.on("message", (m: HashRequest) => reply(hash(m)));
