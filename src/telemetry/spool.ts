// The write-ahead spool (issue 4 §5): accepted samples are committed here before the
// sender is acknowledged, drained to the store in order, and deleted only after the
// store confirmed them. SQLite in WAL mode: a committed transaction survives the
// process being killed. Appends that arrive in the same event-loop turn share one
// transaction (group commit), so durability costs one commit per burst, not per sample.
// The commits run on a worker thread (sqlite-worker.ts); the committed samples stay in
// memory (up to TAIL_MAX_BYTES) for the drainer, so the table is read back only after
// a restart or when the store has fallen far behind.
import Database from "better-sqlite3";
import { join } from "node:path";
import { privateDatabase, privateDir } from "../private-files.js";
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
  /** append() with a callback, called synchronously when the sample is refused (the ingest's hot path). */
  appendThen(sample: Sample, done: Appended): void;
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

/**
 * One spooled sample as text: `[device, type, measurement, time, pointNs|null]`, its
 * tags JSON and its fields JSON, tab-separated. JSON never holds a raw tab or line
 * break, so a commit's samples are one text, a line each: one row and one string
 * to hand to the worker per commit, where a row per sample (eight bound values each)
 * cost the worker a B-tree insert per sample and the main thread a structured clone
 * of every value.
 */
export function sampleLine(s: Sample, head = lineHead(s)): string {
  const pointNs = s.pointNs === undefined ? "null" : `"${s.pointNs}"`;
  return `${head}${s.time},${pointNs}]\t${s.tagsJson}\t${s.fieldsJson}`;
}

/** The start of a sample's line, the same for every sample of a device: `[device,type,measurement,`. */
const lineHead = (s: Sample) => `[${JSON.stringify(s.device)},${JSON.stringify(s.type)},${JSON.stringify(s.measurement)},`;

/** The sample of a spooled line (sampleLine), numbered `seq`. */
export function parseSampleLine(line: string, seq: number): SpooledSample {
  const [head, tagsJson, fieldsJson] = line.split("\t") as [string, string, string];
  const [device, type, measurement, time, pointNs] = JSON.parse(head) as [string, string, string, number, string | null];
  return { seq, device, type, measurement, time, tags: JSON.parse(tagsJson), fields: JSON.parse(fieldsJson), pointNs: pointNs ?? undefined, tagsJson, fieldsJson };
}

/** A sample's share of the spool's byte count: its line and its line break. */
const lineBytes = (line: string) => line.length + 1;

/** What a reader needs of a spool row: its first seq and its lines. */
interface BatchRow {
  first_seq: number;
  rows: string;
}

/** Visits the lines of one row whose seq is in (from, to]; false once `visit` returned false. */
function rowLines(row: BatchRow, from: number, to: number, visit: (line: string, seq: number) => boolean | void): boolean {
  const lines = row.rows.split("\n");
  for (let i = Math.max(0, from + 1 - row.first_seq); i < lines.length && row.first_seq + i <= to; i++) {
    if (visit(lines[i]!, row.first_seq + i) === false) return false;
  }
  return true;
}

/** Committed samples kept in memory for the drainer, so it rarely reads the spool back. */
const TAIL_MAX_BYTES = 32 * 1024 * 1024;

/**
 * The worker's side (sqlite-worker.ts): plain JavaScript, run on the worker thread.
 * A commit is one row (its samples' lines, seqs first_seq..last_seq); the highest seq
 * the store confirmed is kept beside the rows, so a row the store has only partly
 * taken is replayed from the sample after it.
 */
const SPOOL_OPS = `(db) => {
  const insert = db.prepare("INSERT INTO spool_batches (first_seq, last_seq, bytes, rows) VALUES (?, ?, ?, ?)");
  const removeRows = db.prepare("DELETE FROM spool_batches WHERE last_seq <= ?");
  const setAcked = db.prepare("INSERT INTO spool_acked (id, seq) VALUES (0, ?) ON CONFLICT (id) DO UPDATE SET seq = max(seq, excluded.seq)");
  const remove = db.transaction((seq) => {
    removeRows.run(seq);
    setAcked.run(seq);
  });
  return {
    insert: (batch) => void insert.run(batch),
    remove: (seq) => remove(seq),
  };
}`;

/** Called once a sample is durable (or refused): the hot path's form of a promise. */
export type Appended = (err: Error | null, sample: SpooledSample | null) => void;

type Pending = { sample: Sample; line: string; size: number; done: Appended };

/** Where the spool of a data directory lives (the embedded store reads it too). */
export const spoolFile = (dataDir: string): string => join(dataDir, "spool.sqlite");

/** The tables, and a spool of the earlier layout (a row per sample) moved into them. */
function prepareTables(db: Database.Database): void {
  db.exec(`CREATE TABLE IF NOT EXISTS spool_batches (first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, bytes INTEGER NOT NULL, rows TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS spool_acked (id INTEGER PRIMARY KEY CHECK (id = 0), seq INTEGER NOT NULL)`);
  if (!db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'spool'").get()) return;
  const columns = db.prepare<[], { name: string }>("PRAGMA table_info(spool)").all().map((c) => c.name);
  const old = db.prepare<[], { seq: number; device: string; type: string; measurement: string; time: number; tags: string; fields: string; point_ns?: string | null }>(
    `SELECT seq, device, type, measurement, time, tags, fields${columns.includes("point_ns") ? ", point_ns" : ""} FROM spool ORDER BY seq`,
  );
  const insert = db.prepare("INSERT INTO spool_batches (first_seq, last_seq, bytes, rows) VALUES (?, ?, ?, ?)");
  db.transaction(() => {
    // A row each: the old seqs need not be consecutive. Its `seq` kept, so nothing renumbers.
    for (const r of old.all()) {
      const line = sampleLine({ device: r.device, type: r.type, measurement: r.measurement, time: r.time, tags: {}, fields: {}, pointNs: r.point_ns ?? undefined, tagsJson: r.tags, fieldsJson: r.fields });
      insert.run(r.seq, r.seq, lineBytes(line), line);
    }
    db.exec("DROP TABLE spool");
  })();
}

export function openSpool(opts: { dataDir: string; maxBytes: number; onError?: (err: Error) => void }): Spool {
  privateDir(opts.dataDir);
  const file = spoolFile(opts.dataDir);
  privateDatabase(file);
  // This connection only reads (recovery, and a backlog larger than the tail);
  // every write goes through the worker, off the event loop.
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  prepareTables(db);
  /** The rows holding samples after `seq`, oldest first. */
  const rowsAfter = db.prepare<[number], BatchRow>("SELECT first_seq, rows FROM spool_batches WHERE last_seq > ? ORDER BY first_seq");
  let ackedThrough = db.prepare<[], { seq: number }>("SELECT seq FROM spool_acked WHERE id = 0").get()?.seq ?? 0;

  /** Visits each stored sample line with a seq in (from, to], in order, until `visit` returns false. */
  function storedLines(from: number, to: number, visit: (line: string, seq: number) => boolean | void): void {
    for (const row of rowsAfter.iterate(from)) {
      if (row.first_seq > to || !rowLines(row, from, to, visit)) return;
    }
  }
  // Rows wholly inside a range are summed in SQL; only the (at most two) rows across
  // its ends are split into lines. Within a row, seqs are consecutive.
  const wholeRows = db.prepare<[number, number], { n: number; b: number }>(
    "SELECT coalesce(sum(last_seq - first_seq + 1), 0) AS n, coalesce(sum(bytes), 0) AS b FROM spool_batches WHERE first_seq > ? AND last_seq <= ?",
  );
  const edgeRows = db.prepare<[{ from: number; to: number }], BatchRow>(
    "SELECT first_seq, rows FROM spool_batches WHERE (first_seq <= @from AND last_seq > @from) OR (first_seq <= @to AND last_seq > @to)",
  );
  /** How many stored samples have a seq in (from, to], and their bytes. */
  function measure(from: number, to: number): { n: number; b: number } {
    let { n, b } = wholeRows.get(from, to)!;
    for (const row of edgeRows.all({ from, to })) {
      rowLines(row, from, to, (line) => {
        n++;
        b += lineBytes(line);
      });
    }
    return { n, b };
  }

  const lastRow = db.prepare<[], { last: number | null }>("SELECT max(last_seq) AS last FROM spool_batches").get()!;
  let lastCommitted = Math.max(lastRow.last ?? 0, ackedThrough);
  const stored = measure(ackedThrough, lastCommitted);
  /** Samples accepted (committed or being committed) and not yet acknowledged by the store. */
  let depth = stored.n;
  let bytes = stored.b;
  /** Committed and not yet acknowledged. */
  let committed = stored.n;
  /** Given by the spool, in append order, so a commit's samples are consecutive. */
  let nextSeq = lastCommitted + 1;
  const worker = startSqliteWorker({ file, ops: SPOOL_OPS }, opts.onError ?? (() => {}));

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

  /** Each device's line head, made once (a device's type rarely changes). */
  const heads = new Map<string, { type: string; measurement: string; text: string }>();
  let pending: Pending[] = [];
  // One commit in flight at a time: what arrives meanwhile goes in the next one, so
  // a busy broker makes fewer, larger transactions (and fewer thread hops).
  let committing = false;
  function flush(): void {
    if (committing || pending.length === 0) return;
    committing = true;
    const batch = pending;
    pending = [];
    const first = nextSeq;
    nextSeq += batch.length;
    let size = 0;
    let rows = "";
    for (let i = 0; i < batch.length; i++) {
      size += batch[i]!.size;
      rows += i === 0 ? batch[i]!.line : `\n${batch[i]!.line}`;
    }
    // Replies come back in the order the batches were sent, so the tail stays in seq order.
    worker.call("insert", [first, first + batch.length - 1, size, rows]).then(
      () => {
        committed += batch.length;
        lastCommitted = first + batch.length - 1;
        batch.forEach((p, i) => {
          // Numbered in place: the ingest made the sample with a `seq` (one object shape).
          const sample = p.sample as SpooledSample;
          sample.seq = first + i;
          tail.push(sample);
          tailSizes.push(p.size);
          tailBytes += p.size;
        });
        while (tailBytes > TAIL_MAX_BYTES) shiftTail();
        committing = false;
        // Answered once the spool's state is whole: an answer may append or peek.
        for (const p of batch) answer(p, null, p.sample as SpooledSample);
        flush();
      },
      (err: Error) => {
        // Their seqs stay unused: a gap, which every reader allows.
        for (const p of batch) {
          bytes -= p.size;
          depth--;
        }
        committing = false;
        for (const p of batch) answer(p, err, null);
        flush();
      },
    );
  }

  /** One sample's answer; a callback that throws cannot keep the rest of its commit from theirs. */
  function answer(p: Pending, err: Error | null, sample: SpooledSample | null): void {
    try {
      p.done(err, sample);
    } catch (thrown) {
      opts.onError?.(thrown instanceof Error ? thrown : new Error(String(thrown)));
    }
  }

  function append(sample: Sample, done: Appended): void {
    // Kept on the sample the spool now owns: its line and the store use them.
    const [tags, fields] = serialised(sample);
    sample.tagsJson = tags;
    sample.fieldsJson = fields;
    let head = heads.get(sample.device);
    if (head?.type !== sample.type || head.measurement !== sample.measurement) {
      if (heads.size >= 100_000) heads.clear();
      heads.set(sample.device, (head = { type: sample.type, measurement: sample.measurement, text: lineHead(sample) }));
    }
    const line = sampleLine(sample, head.text);
    const size = lineBytes(line);
    // Refuse new samples at the cap; never drop an accepted one.
    if (bytes + size > opts.maxBytes) return done(new SpoolFullError(`telemetry spool full (${opts.maxBytes} bytes); the store is not keeping up`), null);
    bytes += size;
    depth++;
    if (pending.length === 0 && !committing) setImmediate(flush);
    pending.push({ sample, line, size, done });
  }

  return {
    append: (sample) => new Promise((resolve, reject) => append(sample, (err, spooled) => (err ? reject(err) : resolve(spooled!)))),
    appendThen: append,
    peek(limit) {
      // Everything unacknowledged is in the tail: no read at all.
      if (tailLength() === committed) return tail.slice(head, head + limit);
      const out: SpooledSample[] = [];
      storedLines(ackedThrough, lastCommitted, (line, seq) => {
        out.push(parseSampleLine(line, seq));
        return out.length < limit;
      });
      return out;
    },
    ack(seq) {
      if (seq <= ackedThrough) return;
      let n = 0;
      let b = 0;
      // Samples older than the tail are counted from the table.
      const tailStart = tailLength() ? tail[head]!.seq : lastCommitted + 1;
      if (ackedThrough < tailStart - 1) ({ n, b } = measure(ackedThrough, Math.min(seq, tailStart - 1)));
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
