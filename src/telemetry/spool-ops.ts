// The spool's writes, run on its SQLite thread (sqlite-thread.ts). A commit is one
// row (spool-rows.ts); a confirmation deletes the rows the store has whole and keeps
// the highest confirmed seq, so a row it has only partly taken is replayed from the
// sample after it.
import type Database from "better-sqlite3";
import type { SpoolBatch } from "./spool-rows.js";

export interface SpoolOps {
  /** Commits one row. */
  insert(batch: SpoolBatch): void;
  /** Forgets every sample up to and including `seq`: the store has them. */
  remove(seq: number): void;
}

export function spoolOps(db: Database.Database): SpoolOps {
  const insert = db.prepare<SpoolBatch>("INSERT INTO spool_batches (first_seq, last_seq, bytes, rows) VALUES (?, ?, ?, ?)");
  const removeRows = db.prepare<[number]>("DELETE FROM spool_batches WHERE last_seq <= ?");
  const setAcked = db.prepare<[number]>("INSERT INTO spool_acked (id, seq) VALUES (0, ?) ON CONFLICT (id) DO UPDATE SET seq = max(seq, excluded.seq)");
  const remove = db.transaction((seq: number) => {
    removeRows.run(seq);
    setAcked.run(seq);
  });
  return {
    insert: (batch) => void insert.run(...batch),
    remove: (seq) => remove(seq),
  };
}
