// A SQLite connection on a thread of its own (started by sqlite-worker.ts): it serves
// the operation set named in its workerData (spool-ops.ts or store-ops.ts), one
// request at a time, in the order they arrive.
import Database from "better-sqlite3";
import { parentPort, workerData } from "node:worker_threads";
import type { OpsByName, Reply, Request, ThreadData } from "./sqlite-messages.js";
import { spoolOps } from "./spool-ops.js";
import { storeOps } from "./store-ops.js";

if (!parentPort) throw new Error("sqlite-thread runs as a worker (sqlite-worker.ts starts it)");
const port = parentPort;
const data = workerData as ThreadData;

const db = new Database(data.file);
db.pragma("journal_mode = WAL");
db.pragma("synchronous = NORMAL");

/** Serves `ops`: each request's result, or its error, goes back under its id. */
function serve<O extends OpsByName[keyof OpsByName]>(ops: O): void {
  const reply = (r: Reply) => port.postMessage(r);
  port.on("message", (m: Request<O>) => {
    if (m.op === "close") {
      db.close();
      reply({ id: m.id, ok: true });
      port.close();
      return;
    }
    try {
      // Looked up by name: the request's type ties `arg` to the operation it names.
      const op = ops[m.op] as (arg: unknown) => unknown;
      const result = op(m.arg);
      if (m.id) reply({ id: m.id, ok: true, result });
    } catch (err) {
      reply({ id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) });
    }
  });
}

if (data.ops === "spool") serve(spoolOps(db));
else serve(storeOps(db, data));
