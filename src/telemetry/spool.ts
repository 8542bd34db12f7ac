// The write-ahead spool (docs/telemetry.md, "Nothing accepted is lost"): accepted
// samples are committed here before the sender is acknowledged, drained to the store
// in order, and deleted only after the store confirmed them. SQLite in WAL mode: a
// committed transaction survives the process being killed. Appends that arrive in the
// same event-loop turn share one transaction (group commit), so durability costs one
// commit per burst, not per sample. A commit is one row (spool-rows.ts), written on
// the spool's thread (sqlite-worker.ts, spool-ops.ts); the committed samples stay in
// memory (spool-tail.ts) for the drainer, and the table is read back (spool-reader.ts)
// only after a restart or when the store has fallen far behind.
import { join } from "node:path";
import { privateDatabase, privateDir } from "../private-files.js";
import { serialised, type Sample, type SpooledSample } from "./sample.js";
import { lineBytes, lineHead, parseSampleLine, rowText, sampleLine } from "./spool-rows.js";
import { openSpoolReader } from "./spool-reader.js";
import { createSpoolTail } from "./spool-tail.js";
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

/** Committed samples kept in memory for the drainer, so it rarely reads the spool back. */
const TAIL_MAX_BYTES = 32 * 1024 * 1024;

/** Called once a sample is durable (or refused): the hot path's form of a promise. */
export type Appended = (err: Error | null, sample: SpooledSample | null) => void;

type Pending = { sample: Sample; line: string; size: number; done: Appended };

/** Where the spool of a data directory lives (the embedded store reads it too). */
export const spoolFile = (dataDir: string): string => join(dataDir, "spool.sqlite");

export function openSpool(opts: { dataDir: string; maxBytes: number; onError?: (err: Error) => void }): Spool {
  privateDir(opts.dataDir);
  const file = spoolFile(opts.dataDir);
  privateDatabase(file);
  const reader = openSpoolReader(file);
  let ackedThrough = reader.ackedThrough;
  let lastCommitted = reader.lastSeq;
  const stored = reader.measure(ackedThrough, lastCommitted);
  /** Samples accepted (committed or being committed) and not yet acknowledged by the store. */
  let depth = stored.n;
  let bytes = stored.b;
  /** Committed and not yet acknowledged. */
  let committed = stored.n;
  /** Given by the spool, in append order, so a commit's samples are consecutive. */
  let nextSeq = lastCommitted + 1;
  const worker = startSqliteWorker({ ops: "spool", file }, opts.onError ?? (() => {}));
  const tail = createSpoolTail(TAIL_MAX_BYTES);

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
    const last = first + batch.length - 1;
    nextSeq = last + 1;
    let size = 0;
    const lines: string[] = [];
    for (const p of batch) {
      size += p.size;
      lines.push(p.line);
    }
    // Replies come back in the order the batches were sent, so the tail stays in seq order.
    worker.call("insert", [first, last, size, rowText(lines)]).then(
      () => {
        committed += batch.length;
        lastCommitted = last;
        batch.forEach((p, i) => {
          // Numbered in place: the ingest made the sample with a `seq` (one object shape).
          const sample = p.sample as SpooledSample;
          sample.seq = first + i;
          tail.push(sample, p.size);
        });
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
      if (tail.length === committed) return tail.slice(limit);
      const out: SpooledSample[] = [];
      reader.lines(ackedThrough, lastCommitted, (line, seq) => {
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
      const tailStart = tail.oldest()?.seq ?? lastCommitted + 1;
      if (ackedThrough < tailStart - 1) ({ n, b } = reader.measure(ackedThrough, Math.min(seq, tailStart - 1)));
      while (tail.length && tail.oldest()!.seq <= seq) {
        b += tail.shift();
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
      reader.close();
    },
  };
}
