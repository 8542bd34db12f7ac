// What a SQLite worker (sqlite-worker.ts, on the main thread) and its thread
// (sqlite-thread.ts) say to each other. Both ends import these types, so tsc checks
// an operation's name, argument and result on each side of postMessage.
import type { SpoolOps } from "./spool-ops.js";
import type { StoreOps, StoreOptions } from "./store-ops.js";

/** The operation sets a thread can serve, by the name it is started with. */
export interface OpsByName {
  spool: SpoolOps;
  store: StoreOps;
}
export type OpsName = keyof OpsByName;

/** The thread's workerData: its database file and the operations it serves. */
export type ThreadData = { file: string; ops: "spool" } | ({ file: string; ops: "store" } & StoreOptions);
export type ThreadDataOf<N extends OpsName> = Extract<ThreadData, { ops: N }>;

/** An operation set's names; each operation takes one structured-cloneable argument and returns a cloneable result. */
export type OpName<O> = keyof O & string;
export type OpArg<O, K extends keyof O> = O[K] extends (arg: infer A) => unknown ? A : never;
export type OpResult<O, K extends keyof O> = O[K] extends (arg: never) => infer R ? R : never;

/**
 * One request, handled in the order sent. `id` 0 wants no reply unless the operation
 * fails. `close` closes the database, replies and ends the thread.
 */
export type Request<O> = { [K in OpName<O>]: { id: number; op: K; arg: OpArg<O, K> } }[OpName<O>] | { id: number; op: "close"; arg?: undefined };

export type Reply = { id: number; ok: true; result?: unknown } | { id: number; ok: false; error: string };
