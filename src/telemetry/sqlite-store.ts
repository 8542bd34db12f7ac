// The embedded store (CONTRACT §6, the default): samples in SQLite in dataDir, one
// row per point, keyed like an InfluxDB point so a replay overwrites. Reads and
// writes run on a worker thread (sqlite-worker.ts), off the event loop.
//
// The spool (spool.sqlite) is attached to the store's connection: a batch the
// drainer hands over is read from the spool's rows by seq range on this thread, so
// no sample crosses threads. Only samples without a point time (spooled before the
// point clock existed) are sent as rows.
import Database from "better-sqlite3";
import { join } from "node:path";
import { privateDatabase, privateDir } from "../private-files.js";
import { pointTimeNs, serialised, type Sample, type SpooledSample } from "./sample.js";
import type { TelemetryStore } from "./store.js";
import { startSqliteWorker } from "./sqlite-worker.js";

/**
 * One B-tree, keyed (device, point time): a device's samples are contiguous and in
 * time order, so a read-out is one range scan and no second index is written per
 * sample (the earlier `samples` table had a key led by the measurement plus an index
 * on (device, time): two B-tree inserts per sample, half the worker's time).
 */
const SCHEMA = `CREATE TABLE IF NOT EXISTS points (
  device TEXT NOT NULL, time_ns INTEGER NOT NULL, time INTEGER NOT NULL, type TEXT NOT NULL,
  measurement TEXT NOT NULL, tags TEXT NOT NULL, fields TEXT NOT NULL,
  PRIMARY KEY (device, time_ns)) WITHOUT ROWID`;

/** The worker's side: plain JavaScript, run on the worker thread. */
const STORE_OPS = `(db, options) => {
  const upsert = db.prepare("INSERT OR REPLACE INTO points (device, time_ns, time, type, measurement, tags, fields) VALUES (?, ?, ?, ?, ?, ?, ?)");
  // Times in ms are multiplied in SQL: ns since 1970 do not fit a JavaScript number.
  const select = db.prepare("SELECT time, type, measurement, tags, fields FROM points WHERE device = ? AND time_ns >= ? * 1000000 AND time_ns < (? + 1) * 1000000 ORDER BY time_ns LIMIT ?");
  let copy = null;
  if (options.spoolFile) {
    db.prepare("ATTACH DATABASE ? AS spool").run(options.spoolFile);
    // The spool's rows (spool.ts): a commit each, a sample per line, each line
    // [device, type, measurement, time, pointNs] TAB tags JSON TAB fields JSON.
    const rowsOf = db.prepare("SELECT first_seq, rows FROM spool.spool_batches WHERE last_seq >= ? AND first_seq <= ? ORDER BY first_seq");
    copy = db.transaction((first, last) => {
      let copied = 0;
      for (const row of rowsOf.all(first, last)) {
        const lines = row.rows.split("\\n");
        for (let i = Math.max(0, first - row.first_seq); i < lines.length && row.first_seq + i <= last; i++) {
          const [head, tags, fields] = lines[i].split("\\t");
          const [device, type, measurement, time, pointNs] = JSON.parse(head);
          if (pointNs === null) return -1; // spooled without a point time: sent as values
          upsert.run(device, BigInt(pointNs), time, type, measurement, tags, fields);
          copied++;
        }
      }
      return copied;
    });
  }
  // rows: [device, time_ns (BigInt), time, type, measurement, tagsJson, fieldsJson]
  const writeAll = db.transaction((rows) => { for (const r of rows) upsert.run(r); });
  return {
    write: (rows) => writeAll(rows),
    // Returns how many rows were copied: fewer than asked means the spool no longer has them.
    copy: ([first, last]) => copy(first, last),
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

/** Bounds for a read-out, in ms: beyond them ns since 1970 overflow SQLite's integers. */
const MAX_MS = 9_000_000_000_000;

/** A batch that is a run of spool rows which all carry their point time. */
function spoolRange(samples: SpooledSample[]): [number, number] | null {
  const first = samples[0]?.seq;
  if (first === undefined) return null;
  for (let i = 0; i < samples.length; i++) if (samples[i]!.seq !== first + i || samples[i]!.pointNs === undefined) return null;
  return [first, first + samples.length - 1];
}

export function openSqliteStore(opts: { dataDir: string; /** The spool's database file, to copy batches from. */ spoolFile?: string; onError?: (err: Error) => void }): TelemetryStore {
  privateDir(opts.dataDir);
  const file = join(opts.dataDir, "telemetry.sqlite");
  privateDatabase(file);
  // ATTACH creates the spool's file when it is missing.
  if (opts.spoolFile) privateDatabase(opts.spoolFile);
  // The schema is created here, synchronously, so a bad dataDir fails at start-up.
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.exec(SCHEMA);
  // A store written by an earlier version: its rows move to the new table once.
  if (db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'samples'").get()) {
    db.transaction(() => {
      db.exec(`INSERT OR REPLACE INTO points (device, time_ns, time, type, measurement, tags, fields)
        SELECT device, CAST(time_ns AS INTEGER), time, type, measurement, tags, fields FROM samples;
        DROP TABLE samples;`);
    })();
  }
  db.close();
  const worker = startSqliteWorker({ file, ops: STORE_OPS, options: { spoolFile: opts.spoolFile } }, opts.onError ?? (() => {}));
  return {
    kind: "embedded",
    async write(samples) {
      const range = opts.spoolFile ? spoolRange(samples) : null;
      // Rows the spool no longer has (it never deletes before this resolves) are sent as values.
      if (range && (await worker.call<number>("copy", range)) === samples.length) return;
      await worker.call("write", samples.map((s) => [s.device, BigInt(pointTimeNs(s)), s.time, s.type, s.measurement, ...serialised(s)]));
    },
    async query(device, _measurement, from, to, limit): Promise<Sample[]> {
      const clamp = (ms: number) => Math.max(-MAX_MS, Math.min(MAX_MS, Math.floor(ms)));
      const rows = await worker.call<Row[]>("query", [device, clamp(from), clamp(to), limit]);
      return rows.map((r) => ({ device, type: r.type, measurement: r.measurement, time: r.time, tags: JSON.parse(r.tags), fields: JSON.parse(r.fields) }));
    },
    close: () => worker.close(),
  };
}
