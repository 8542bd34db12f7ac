// The write-ahead spool (issue 4 §5): accepted samples are committed here before the
// sender is acknowledged, drained to the store in order, and deleted only after the
// store confirmed them. SQLite in WAL mode: a committed transaction survives the
// process being killed. Appends that arrive in the same event-loop turn share one
// transaction (group commit), so durability costs one commit per burst, not per sample.
import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Sample, SpooledSample } from "./sample.js";

export class SpoolFullError extends Error {
  readonly code = "SB_ERR_SPOOL_FULL";
}

export interface Spool {
  /** Resolves once the sample is durable; rejects with SpoolFullError at the cap. */
  append(sample: Sample): Promise<SpooledSample>;
  /** The oldest samples, in order. */
  peek(limit: number): SpooledSample[];
  /** Forgets every sample up to and including `seq` (the store has them). */
  ack(seq: number): void;
  readonly depth: number;
  readonly bytes: number;
  close(): void;
}

interface Row {
  seq: number;
  device: string;
  type: string;
  measurement: string;
  time: number;
  tags: string;
  fields: string;
}

export function openSpool(opts: { dataDir: string; maxBytes: number }): Spool {
  mkdirSync(opts.dataDir, { recursive: true });
  const db = new Database(join(opts.dataDir, "spool.sqlite"));
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.exec(`CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, device TEXT NOT NULL, type TEXT NOT NULL, measurement TEXT NOT NULL,
    time INTEGER NOT NULL, tags TEXT NOT NULL, fields TEXT NOT NULL, bytes INTEGER NOT NULL)`);
  const insert = db.prepare("INSERT INTO spool (device, type, measurement, time, tags, fields, bytes) VALUES (?, ?, ?, ?, ?, ?, ?)");
  const select = db.prepare<[number], Row>("SELECT seq, device, type, measurement, time, tags, fields FROM spool ORDER BY seq LIMIT ?");
  const remove = db.prepare<[number], { n: number | null; b: number | null }>("DELETE FROM spool WHERE seq <= ? RETURNING 1 AS n, bytes AS b");
  const totals = db.prepare<[], { n: number; b: number | null }>("SELECT count(*) AS n, sum(bytes) AS b FROM spool").get()!;
  let depth = totals.n;
  let bytes = totals.b ?? 0;

  let pending: Array<{ sample: Sample; tags: string; fields: string; size: number; resolve: (s: SpooledSample) => void; reject: (e: Error) => void }> = [];
  const commit = db.transaction((batch: typeof pending) => batch.map((p) => Number(insert.run(p.sample.device, p.sample.type, p.sample.measurement, p.sample.time, p.tags, p.fields, p.size).lastInsertRowid)));

  function flush(): void {
    const batch = pending;
    pending = [];
    let seqs: number[];
    try {
      seqs = commit(batch);
    } catch (err) {
      for (const p of batch) {
        bytes -= p.size;
        depth--;
        p.reject(err as Error);
      }
      return;
    }
    batch.forEach((p, i) => p.resolve({ ...p.sample, seq: seqs[i]! }));
  }

  return {
    append(sample) {
      const tags = JSON.stringify(sample.tags);
      const fields = JSON.stringify(sample.fields);
      const size = tags.length + fields.length + sample.device.length + 48;
      // Refuse new samples at the cap; never drop an accepted one.
      if (bytes + size > opts.maxBytes) return Promise.reject(new SpoolFullError(`telemetry spool full (${opts.maxBytes} bytes); the store is not keeping up`));
      bytes += size;
      depth++;
      return new Promise((resolve, reject) => {
        if (pending.length === 0) setImmediate(flush);
        pending.push({ sample, tags, fields, size, resolve, reject });
      });
    },
    peek(limit) {
      return select.all(limit).map((r) => ({ seq: r.seq, device: r.device, type: r.type, measurement: r.measurement, time: r.time, tags: JSON.parse(r.tags), fields: JSON.parse(r.fields) }));
    },
    ack(seq) {
      for (const row of remove.all(seq)) {
        depth -= 1;
        bytes -= row.b ?? 0;
      }
    },
    get depth() {
      return depth;
    },
    get bytes() {
      return bytes;
    },
    close() {
      if (pending.length) flush();
      db.close();
    },
  };
}
