// The write-ahead spool (issue 4 §5): accepted samples are committed here before the
// sender is acknowledged, drained to the store in order, and deleted only after the
// store confirmed them. SQLite in WAL mode: a committed transaction survives the
// process being killed. Appends that arrive in the same event-loop turn share one
// transaction (group commit), so durability costs one commit per burst, not per sample.
// The commits run on a worker thread (sqlite-worker.ts); the committed samples stay in
// memory (up to TAIL_MAX_BYTES) for the drainer, so the table is read back only after
// a restart or when the store has fallen far behind.
import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { serialised, type Sample, type SpooledSample } from "./sample.js";
import { startSqliteWorker } from "./sqlite-worker.js";

export class SpoolFullError extends Error {
  readonly code = "SB_ERR_SPOOL_FULL";
}

export interface Spool {
  /**
   * Resolves once the sample is durable; rejects with SpoolFullError at the cap. The
   * spool takes the sample over: it resolves with the same object, its JSON and `seq`
   * set in place (no copy per sample), so a sample is appended once.
   */
  append(sample: Sample): Promise<SpooledSample>;
  /** The oldest samples, in order. */
  peek(limit: number): SpooledSample[];
  /** Forgets every sample up to and including `seq` (the store has them). */
  ack(seq: number): void;
  /** Samples accepted and not yet confirmed by the store (including those being committed). */
  readonly depth: number;
  /** Of those, the ones already committed: what peek() can return. */
  readonly committed: number;
  readonly bytes: number;
  /** Commits what was appended, then closes. */
  close(): Promise<void>;
}

interface Row {
  seq: number;
  device: string;
  type: string;
  measurement: string;
  time: number;
  tags: string;
  fields: string;
  point_ns: string | null;
}

/** Committed samples kept in memory for the drainer, so it rarely reads the spool back. */
const TAIL_MAX_BYTES = 32 * 1024 * 1024;

/** Values per sample in the rows posted to the worker (the spool table's columns but seq). */
const ROW_WIDTH = 8;

/** The worker's side (sqlite-worker.ts): plain JavaScript, run on the worker thread. */
const SPOOL_OPS = `(db) => {
  const COLUMNS = "INSERT INTO spool (device, type, measurement, time, tags, fields, bytes, point_ns) VALUES ";
  const ROW = "(" + Array(${ROW_WIDTH}).fill("?").join(", ") + ")";
  // Multi-row INSERTs of 64, 16, 4 and 1 rows: a statement run per row was most of
  // this thread's time. One writer (this thread) and AUTOINCREMENT: the rows of one
  // statement get consecutive seqs, the last of which lastInsertRowid gives.
  const SIZES = [64, 16, 4, 1];
  const inserts = new Map(SIZES.map((n) => [n, db.prepare(COLUMNS + Array(n).fill(ROW).join(", "))]));
  const remove = db.prepare("DELETE FROM spool WHERE seq <= ?");
  // rows: ${ROW_WIDTH} values per sample, one flat array (one object to clone, not one per row).
  const commit = db.transaction((rows) => {
    const count = rows.length / ${ROW_WIDTH};
    const seqs = [];
    let done = 0;
    for (const n of SIZES) {
      for (; count - done >= n; done += n) {
        const last = Number(inserts.get(n).run(rows.slice(done * ${ROW_WIDTH}, (done + n) * ${ROW_WIDTH})).lastInsertRowid);
        for (let k = n - 1; k >= 0; k--) seqs.push(last - k);
      }
    }
    return seqs;
  });
  return {
    insert: (rows) => commit(rows),
    remove: (seq) => void remove.run(seq),
  };
}`;

type Pending = { sample: Sample; size: number; resolve: (s: SpooledSample) => void; reject: (e: Error) => void };

/** Where the spool of a data directory lives (the embedded store reads it too). */
export const spoolFile = (dataDir: string): string => join(dataDir, "spool.sqlite");

export function openSpool(opts: { dataDir: string; maxBytes: number; onError?: (err: Error) => void }): Spool {
  mkdirSync(opts.dataDir, { recursive: true });
  const file = spoolFile(opts.dataDir);
  // This connection only reads (recovery, and a backlog larger than the tail);
  // every write goes through the worker, off the event loop.
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.exec(`CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, device TEXT NOT NULL, type TEXT NOT NULL, measurement TEXT NOT NULL,
    time INTEGER NOT NULL, tags TEXT NOT NULL, fields TEXT NOT NULL, bytes INTEGER NOT NULL, point_ns TEXT)`);
  // Spools written before point_ns existed: their rows fall back to the content hash.
  if (!db.prepare<[], { name: string }>("PRAGMA table_info(spool)").all().some((c) => c.name === "point_ns")) db.exec("ALTER TABLE spool ADD COLUMN point_ns TEXT");
  const select = db.prepare<[number, number, number], Row>("SELECT seq, device, type, measurement, time, tags, fields, point_ns FROM spool WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?");
  const sizeOf = db.prepare<[number, number], { n: number; b: number | null }>("SELECT count(*) AS n, sum(bytes) AS b FROM spool WHERE seq > ? AND seq <= ?");
  const totals = db.prepare<[], { n: number; b: number | null; last: number | null }>("SELECT count(*) AS n, sum(bytes) AS b, max(seq) AS last FROM spool").get()!;
  const worker = startSqliteWorker({ file, ops: SPOOL_OPS }, opts.onError ?? (() => {}));

  /** Samples accepted (committed or being committed) and not yet acknowledged by the store. */
  let depth = totals.n;
  let bytes = totals.b ?? 0;
  /** Committed and not yet acknowledged. */
  let committed = totals.n;
  let lastCommitted = totals.last ?? 0;
  let ackedThrough = 0;
  // The newest committed samples and their sizes, oldest first (tail[head] is the oldest kept).
  let tail: SpooledSample[] = [];
  let tailSizes: number[] = [];
  let head = 0;
  let tailBytes = 0;
  const tailLength = () => tail.length - head;
  /** Forgets the oldest sample of the tail; returns its size. */
  const shiftTail = () => {
    const size = tailSizes[head]!;
    head++;
    tailBytes -= size;
    if (head > 4096 && head * 2 > tail.length) {
      tail = tail.slice(head);
      tailSizes = tailSizes.slice(head);
      head = 0;
    }
    return size;
  };

  let pending: Pending[] = [];
  // One commit in flight at a time: what arrives meanwhile goes in the next one, so
  // a busy broker makes fewer, larger transactions (and fewer thread hops).
  let committing = false;
  function flush(): void {
    if (committing || pending.length === 0) return;
    committing = true;
    const batch = pending;
    pending = [];
    const rows: unknown[] = [];
    for (const { sample: s, size } of batch) rows.push(s.device, s.type, s.measurement, s.time, s.tagsJson, s.fieldsJson, size, s.pointNs ?? null);
    // Replies come back in the order the batches were sent, so the tail stays in seq order.
    worker.call<number[]>("insert", rows).then(
      (seqs) => {
        committed += batch.length;
        lastCommitted = seqs[seqs.length - 1] ?? lastCommitted;
        batch.forEach((p, i) => {
          // Numbered in place: the ingest made the sample with a `seq` (one object shape).
          const sample = p.sample as SpooledSample;
          sample.seq = seqs[i]!;
          tail.push(sample);
          tailSizes.push(p.size);
          tailBytes += p.size;
          p.resolve(sample);
        });
        while (tailBytes > TAIL_MAX_BYTES) shiftTail();
        committing = false;
        flush();
      },
      (err: Error) => {
        for (const p of batch) {
          bytes -= p.size;
          depth--;
          p.reject(err);
        }
        committing = false;
        flush();
      },
    );
  }

  return {
    append(sample) {
      // Kept on the sample the spool now owns: its row and the store use them.
      const [tags, fields] = serialised(sample);
      sample.tagsJson = tags;
      sample.fieldsJson = fields;
      const size = tags.length + fields.length + sample.device.length + 48;
      // Refuse new samples at the cap; never drop an accepted one.
      if (bytes + size > opts.maxBytes) return Promise.reject(new SpoolFullError(`telemetry spool full (${opts.maxBytes} bytes); the store is not keeping up`));
      bytes += size;
      depth++;
      return new Promise((resolve, reject) => {
        if (pending.length === 0 && !committing) setImmediate(flush);
        pending.push({ sample, size, resolve, reject });
      });
    },
    peek(limit) {
      // Everything unacknowledged is in the tail: no read at all.
      if (tailLength() === committed) return tail.slice(head, head + limit);
      return select.all(ackedThrough, lastCommitted, limit).map((r) => ({ seq: r.seq, device: r.device, type: r.type, measurement: r.measurement, time: r.time, tags: JSON.parse(r.tags), fields: JSON.parse(r.fields), pointNs: r.point_ns ?? undefined }));
    },
    ack(seq) {
      if (seq <= ackedThrough) return;
      let n = 0;
      let b = 0;
      // Rows older than the tail are counted from the table.
      const tailStart = tailLength() ? tail[head]!.seq : lastCommitted + 1;
      if (ackedThrough < tailStart - 1) {
        const r = sizeOf.get(ackedThrough, Math.min(seq, tailStart - 1))!;
        n += r.n;
        b += r.b ?? 0;
      }
      while (tailLength() && tail[head]!.seq <= seq) {
        b += shiftTail();
        n++;
      }
      ackedThrough = seq;
      committed -= n;
      depth -= n;
      bytes -= b;
      worker.send("remove", seq);
    },
    get depth() {
      return depth;
    },
    get committed() {
      return committed;
    },
    get bytes() {
      return bytes;
    },
    async close() {
      // What is still pending goes in one last commit, after the one in flight.
      committing = false;
      flush();
      await worker.close();
      db.close();
    },
  };
}
