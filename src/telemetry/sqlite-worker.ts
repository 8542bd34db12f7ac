// A SQLite connection on its own thread. better-sqlite3 is synchronous: a commit or
// an insert of a few thousand rows run on the main thread stalls every MQTT and XMPP
// session for its duration. The spool and the embedded store therefore do their
// writes on a thread (sqlite-thread.ts), on the second core, and the main thread only
// posts rows and awaits the reply. Messages are handled strictly in the order they
// were sent, so an insert posted before a delete is committed before it.
import { privateDatabase } from "../private-files.js";
import { siblingModule, startModuleWorker } from "../worker-module.js";
import type { OpArg, OpName, OpResult, OpsByName, OpsName, Reply, Request, ThreadDataOf } from "./sqlite-messages.js";

export interface SqliteWorker<O> {
  /** Runs `op` on the thread; resolves with its result, rejects with its error. */
  call<K extends OpName<O>>(op: K, arg: OpArg<O, K>): Promise<OpResult<O, K>>;
  /** Runs `op` without waiting; a failure is reported to `onError`. */
  send<K extends OpName<O>>(op: K, arg: OpArg<O, K>): void;
  /** Runs what was already sent, closes the database and ends the thread. */
  close(): Promise<void>;
}

const THREAD = siblingModule(import.meta.url, "sqlite-thread");

/** Starts a thread on `data.file` serving the operation set `data.ops`. */
export function startSqliteWorker<N extends OpsName>(data: ThreadDataOf<N>, onError: (err: Error) => void): SqliteWorker<OpsByName[N]> {
  type O = OpsByName[N];
  // Made here, on this thread, so the thread's connection finds it private (owner only).
  privateDatabase(data.file);
  const worker = startModuleWorker(THREAD, { workerData: data });
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let dead: Error | null = null;
  let closed: Promise<void> | null = null;
  const post = (m: Request<O>) => worker.postMessage(m);

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
  const exited = new Promise<void>((resolve) =>
    worker.once("exit", (code) => {
      fail(new Error(`SQLite worker for ${data.file} exited (code ${code})`));
      resolve();
    }),
  );

  /** Posts `op` under a fresh id; settles with its reply. */
  function request<T>(op: OpName<O> | "close", arg?: unknown): Promise<T> {
    if (dead) return Promise.reject(dead);
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      post({ id, op, arg } as Request<O>);
    });
  }

  return {
    call: (op, arg) => request(op, arg),
    send(op, arg) {
      if (dead) return onError(dead);
      post({ id: 0, op, arg } as Request<O>);
    },
    close() {
      closed ??= request<void>("close")
        .catch(() => {})
        .then(() => {
          // Closing its port ends the thread; terminate covers one that does not end.
          const timer = setTimeout(() => worker.terminate().catch(() => {}), 1_000);
          return exited.finally(() => clearTimeout(timer));
        });
      return closed;
    },
  };
}
