// The embedded store (docs/telemetry.md, "Stores"; the default): samples in SQLite in
// dataDir, one row per point, keyed like an InfluxDB point so a replay overwrites.
// Reads and writes run on a thread of their own (sqlite-worker.ts, store-ops.ts), off
// the event loop.
//
// The spool (spool.sqlite) is attached to the store's connection: a batch the
// drainer hands over is read from the spool's rows by seq range on that thread, so
// no sample crosses threads. Only samples without a point time are sent as values.
import Database from "better-sqlite3";
import { join } from "node:path";
import { privateDatabase, privateDir } from "../private-files.js";
import { pointTimeNs, serialised, type Sample, type SpooledSample } from "./sample.js";
import type { TelemetryStore } from "./store.js";
import { startSqliteWorker } from "./sqlite-worker.js";
import { POINTS_SCHEMA, type PointRow } from "./store-ops.js";

/** Bounds for a read-out, in ms: beyond them ns since 1970 overflow SQLite's integers. */
const MAX_MS = 9_000_000_000_000;

/** A batch that is a run of spool rows which all carry their point time. */
function spoolRange(samples: SpooledSample[]): [number, number] | null {
  const first = samples[0]?.seq;
  if (first === undefined) return null;
  for (let i = 0; i < samples.length; i++) if (samples[i]!.seq !== first + i || samples[i]!.pointNs === undefined) return null;
  return [first, first + samples.length - 1];
}

const pointRow = (s: Sample): PointRow => [s.device, BigInt(pointTimeNs(s)), s.time, s.type, s.measurement, ...serialised(s)];

export function openSqliteStore(opts: { dataDir: string; /** The spool's database file, to copy batches from. */ spoolFile?: string; onError?: (err: Error) => void }): TelemetryStore {
  privateDir(opts.dataDir);
  const file = join(opts.dataDir, "telemetry.sqlite");
  privateDatabase(file);
  // ATTACH creates the spool's file when it is missing.
  if (opts.spoolFile) privateDatabase(opts.spoolFile);
  // The schema is created here, synchronously, so a bad dataDir fails at start-up.
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.exec(POINTS_SCHEMA);
  db.close();
  const worker = startSqliteWorker({ ops: "store", file, spoolFile: opts.spoolFile }, opts.onError ?? (() => {}));
  return {
    kind: "embedded",
    async write(samples) {
      const range = opts.spoolFile ? spoolRange(samples) : null;
      // Rows the spool no longer has (it never deletes before this resolves) are sent as values.
      if (range && (await worker.call("copy", range)) === samples.length) return;
      await worker.call("write", samples.map(pointRow));
    },
    async query(device, _measurement, from, to, limit): Promise<Sample[]> {
      const clamp = (ms: number) => Math.max(-MAX_MS, Math.min(MAX_MS, Math.floor(ms)));
      const rows = await worker.call("query", [device, clamp(from), clamp(to), limit]);
      return rows.map((r) => ({ device, type: r.type, measurement: r.measurement, time: r.time, tags: JSON.parse(r.tags), fields: JSON.parse(r.fields) }));
    },
    close: () => worker.close(),
  };
}
