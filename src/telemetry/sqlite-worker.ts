// A SQLite connection on its own thread. better-sqlite3 is synchronous: a commit or
// an insert of a few thousand rows run on the main thread stalls every MQTT and XMPP
// session for its duration. The spool and the embedded store therefore do their
// writes here, on the second core, and the main thread only posts rows and awaits
// the reply. Messages are handled strictly in the order they were sent, so an
// insert posted before a delete is committed before it.
//
// The worker runs a plain-JavaScript body given as a string (`new Worker(code, {
// eval: true })`), not a module file, so it runs the same from src/ under a
// TypeScript loader and from dist/ without one.
import { Worker } from "node:worker_threads";
import { createRequire } from "node:module";
import { privateDatabase } from "../private-files.js";

const DRIVER = createRequire(import.meta.url).resolve("better-sqlite3");

/**
 * `ops` is the source of a JavaScript function `(db, options) => ({ op(arg) {…}, … })`
 * returning the operations the worker serves; each returns a structured-cloneable
 * result.
 */
export interface SqliteWorkerSpec {
  file: string;
  ops: string;
  options?: unknown;
}

export interface SqliteWorker {
  /** Runs `op` on the worker; resolves with its result, rejects with its error. */
  call<T>(op: string, arg?: unknown): Promise<T>;
  /** Runs `op` without waiting; a failure is reported to `onError`. */
  send(op: string, arg?: unknown): void;
  /** Runs what was already sent, closes the database and ends the thread. */
  close(): Promise<void>;
}

const RUNTIME = (ops: string) => `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma("journal_mode = WAL");
db.pragma("synchronous = NORMAL");
const ops = (${ops})(db, workerData.options);
parentPort.on("message", (m) => {
  if (m.op === "close") {
    db.close();
    parentPort.postMessage({ id: m.id, ok: true });
    parentPort.close();
    return;
  }
  try {
    const result = ops[m.op](m.arg);
    if (m.id) parentPort.postMessage({ id: m.id, ok: true, result });
  } catch (err) {
    parentPort.postMessage({ id: m.id, ok: false, error: String((err && err.message) || err) });
  }
});
`;

interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

export function startSqliteWorker(spec: SqliteWorkerSpec, onError: (err: Error) => void): SqliteWorker {
  // Made here, on this thread, so the worker's connection finds it private (owner only).
  privateDatabase(spec.file);
  const worker = new Worker(RUNTIME(spec.ops), { eval: true, workerData: { driver: DRIVER, file: spec.file, options: spec.options } });
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let dead: Error | null = null;
  let closed: Promise<void> | null = null;

  worker.on("message", (m: Reply) => {
    const w = waiting.get(m.id);
    if (!w) {
      if (!m.ok) onError(new Error(m.error));
      return;
    }
    waiting.delete(m.id);
    if (m.ok) w.resolve(m.result);
    else w.reject(new Error(m.error));
  });
  const fail = (err: Error) => {
    dead ??= err;
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  };
  worker.on("error", (err) => {
    fail(err);
    onError(err);
  });
  const exited = new Promise<void>((resolve) => worker.once("exit", (code) => {
    fail(new Error(`SQLite worker for ${spec.file} exited (code ${code})`));
    resolve();
  }));

  function call<T>(op: string, arg?: unknown): Promise<T> {
    if (dead) return Promise.reject(dead);
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      worker.postMessage({ id, op, arg });
    });
  }

  return {
    call,
    send(op, arg) {
      if (dead) return onError(dead);
      worker.postMessage({ id: 0, op, arg });
    },
    close() {
      closed ??= call<void>("close").catch(() => {}).then(() => {
        // Closing its port ends the thread; terminate covers one that does not end.
        const timer = setTimeout(() => void worker.terminate(), 1_000);
        return exited.finally(() => clearTimeout(timer));
      });
      return closed;
    },
  };
}
