// The embedded store's reads and writes, run on its SQLite thread (sqlite-thread.ts).
// With the spool's file attached, a batch the drainer hands over is copied from the
// spool's rows by seq range (spool-rows.ts) inside SQLite, so no sample crosses threads.
import type Database from "better-sqlite3";
import { rowLines, splitLine, type BatchRow } from "./spool-rows.js";

/**
 * One B-tree, keyed (device, point time): a device's samples are contiguous and in
 * time order, so a read-out is one range scan and no second index is written per
 * sample (a key led by the measurement plus an index on (device, time) was two
 * B-tree inserts per sample, half the thread's time).
 */
export const POINTS_SCHEMA = `CREATE TABLE IF NOT EXISTS points (
  device TEXT NOT NULL, time_ns INTEGER NOT NULL, time INTEGER NOT NULL, type TEXT NOT NULL,
  measurement TEXT NOT NULL, tags TEXT NOT NULL, fields TEXT NOT NULL,
  PRIMARY KEY (device, time_ns)) WITHOUT ROWID`;

/** A point as written: its point time in ns is a BigInt, beyond a JavaScript number's precision. */
export type PointRow = [device: string, timeNs: bigint, time: number, type: string, measurement: string, tagsJson: string, fieldsJson: string];

/** A point as read back (the device is the one asked for). */
export interface StoredPoint {
  time: number;
  type: string;
  measurement: string;
  tags: string;
  fields: string;
}

/** A read-out: a device's points with a time in [from, to] ms, oldest first, at most `limit`. */
export type PointQuery = [device: string, fromMs: number, toMs: number, limit: number];

export interface StoreOps {
  write(rows: PointRow[]): void;
  /** Copies the spool's samples first..last; returns how many, fewer when the spool no longer has them all, -1 when one has no point time. */
  copy(range: [first: number, last: number]): number;
  query(query: PointQuery): StoredPoint[];
}

export interface StoreOptions {
  /** The spool's database file, attached to copy batches from. */
  spoolFile?: string;
}

export function storeOps(db: Database.Database, options: StoreOptions): StoreOps {
  const upsert = db.prepare<PointRow>("INSERT OR REPLACE INTO points (device, time_ns, time, type, measurement, tags, fields) VALUES (?, ?, ?, ?, ?, ?, ?)");
  // Times in ms are multiplied in SQL: ns since 1970 do not fit a JavaScript number.
  const select = db.prepare<PointQuery, StoredPoint>(
    "SELECT time, type, measurement, tags, fields FROM points WHERE device = ? AND time_ns >= ? * 1000000 AND time_ns < (? + 1) * 1000000 ORDER BY time_ns LIMIT ?",
  );
  const writeAll = db.transaction((rows: PointRow[]) => {
    for (const r of rows) upsert.run(...r);
  });
  let copy = (_first: number, _last: number): number => {
    throw new Error("no spool attached to this store");
  };
  if (options.spoolFile) {
    db.prepare("ATTACH DATABASE ? AS spool").run(options.spoolFile);
    const rowsOf = db.prepare<[number, number], BatchRow>("SELECT first_seq, rows FROM spool.spool_batches WHERE last_seq >= ? AND first_seq <= ? ORDER BY first_seq");
    copy = db.transaction((first: number, last: number) => {
      let copied = 0;
      for (const row of rowsOf.all(first, last)) {
        const whole = rowLines(row, first - 1, last, (line) => {
          const [[device, type, measurement, time, pointNs], tags, fields] = splitLine(line);
          if (pointNs === null) return false;
          upsert.run(device, BigInt(pointNs), time, type, measurement, tags, fields);
          copied++;
        });
        // A sample spooled without a point time: the caller sends the batch as values.
        if (!whole) return -1;
      }
      return copied;
    });
  }
  return {
    write: (rows) => writeAll(rows),
    copy: ([first, last]) => copy(first, last),
    query: (query) => select.all(...query),
  };
}
