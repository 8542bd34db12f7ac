// The embedded store (CONTRACT §6, the default): samples in SQLite in dataDir, one
// row per point, keyed like an InfluxDB point so a replay overwrites. Reads and
// writes run on a worker thread (sqlite-worker.ts), off the event loop.
import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { pointTimeNs, serialised, type Sample } from "./sample.js";
import type { TelemetryStore } from "./store.js";
import { startSqliteWorker } from "./sqlite-worker.js";

/** The worker's side: plain JavaScript, run on the worker thread. */
const STORE_OPS = `(db) => {
  const upsert = db.prepare("INSERT OR REPLACE INTO samples (measurement, device, time_ns, time, type, tags, fields) VALUES (?, ?, ?, ?, ?, ?, ?)");
  const select = db.prepare("SELECT time, type, measurement, tags, fields FROM samples WHERE device = ? AND time >= ? AND time <= ? ORDER BY time, time_ns LIMIT ?");
  // rows: [measurement, device, time_ns, time, type, tagsJson, fieldsJson]
  const writeAll = db.transaction((rows) => { for (const r of rows) upsert.run(r); });
  return {
    write: (rows) => writeAll(rows),
    query: (args) => select.all(args),
  };
}`;

interface Row {
  time: number;
  type: string;
  measurement: string;
  tags: string;
  fields: string;
}

export function openSqliteStore(opts: { dataDir: string; onError?: (err: Error) => void }): TelemetryStore {
  mkdirSync(opts.dataDir, { recursive: true });
  const file = join(opts.dataDir, "telemetry.sqlite");
  // The schema is created here, synchronously, so a bad dataDir fails at start-up.
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.exec(`CREATE TABLE IF NOT EXISTS samples (
    measurement TEXT NOT NULL, device TEXT NOT NULL, time_ns TEXT NOT NULL, time INTEGER NOT NULL, type TEXT NOT NULL,
    tags TEXT NOT NULL, fields TEXT NOT NULL, PRIMARY KEY (measurement, device, time_ns)) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS samples_by_device_time ON samples (device, time);`);
  db.close();
  const worker = startSqliteWorker({ file, ops: STORE_OPS }, opts.onError ?? (() => {}));
  return {
    kind: "embedded",
    async write(samples) {
      await worker.call("write", samples.map((s) => [s.measurement, s.device, pointTimeNs(s).padStart(22, "0"), s.time, s.type, ...serialised(s)]));
    },
    async query(device, _measurement, from, to, limit): Promise<Sample[]> {
      const rows = await worker.call<Row[]>("query", [device, from, to, limit]);
      return rows.map((r) => ({ device, type: r.type, measurement: r.measurement, time: r.time, tags: JSON.parse(r.tags), fields: JSON.parse(r.fields) }));
    },
    close: () => worker.close(),
  };
}
