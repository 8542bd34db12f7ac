// The spool's reading connection, on the main thread. At start-up it finds what the
// store has not confirmed; afterwards it reads back only what the in-memory tail
// (spool-tail.ts) no longer holds: a replay after a restart, and the count of samples
// confirmed from before the tail. Every write goes through the spool's thread.
import Database from "better-sqlite3";
import { lineBytes, rowLines, SPOOL_SCHEMA, type BatchRow } from "./spool-rows.js";

export interface SpoolReader {
  /** The highest seq the store confirmed, as stored when the spool was opened. */
  readonly ackedThrough: number;
  /** The highest seq committed when the spool was opened (ackedThrough if higher). */
  readonly lastSeq: number;
  /** Visits each stored sample line with a seq in (from, to], in order, until `visit` returns false. */
  lines(from: number, to: number, visit: (line: string, seq: number) => boolean | void): void;
  /** How many stored samples have a seq in (from, to], and their bytes. */
  measure(from: number, to: number): { n: number; b: number };
  close(): void;
}

/** Opens the spool at `file` to read, creating its tables (spool-rows.ts) if it is new. */
export function openSpoolReader(file: string): SpoolReader {
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.exec(SPOOL_SCHEMA);
  const rowsAfter = db.prepare<[number], BatchRow>("SELECT first_seq, rows FROM spool_batches WHERE last_seq > ? ORDER BY first_seq");
  // Rows wholly inside a range are summed in SQL; only the (at most two) rows across
  // its ends are split into lines. Within a row, seqs are consecutive.
  const wholeRows = db.prepare<[number, number], { n: number; b: number }>(
    "SELECT coalesce(sum(last_seq - first_seq + 1), 0) AS n, coalesce(sum(bytes), 0) AS b FROM spool_batches WHERE first_seq > ? AND last_seq <= ?",
  );
  const edgeRows = db.prepare<[{ from: number; to: number }], BatchRow>(
    "SELECT first_seq, rows FROM spool_batches WHERE (first_seq <= @from AND last_seq > @from) OR (first_seq <= @to AND last_seq > @to)",
  );
  const ackedThrough = db.prepare<[], { seq: number }>("SELECT seq FROM spool_acked WHERE id = 0").get()?.seq ?? 0;
  const last = db.prepare<[], { last: number | null }>("SELECT max(last_seq) AS last FROM spool_batches").get()!.last ?? 0;

  return {
    ackedThrough,
    lastSeq: Math.max(last, ackedThrough),
    lines(from, to, visit) {
      for (const row of rowsAfter.iterate(from)) {
        if (row.first_seq > to || !rowLines(row, from, to, visit)) return;
      }
    },
    measure(from, to) {
      let { n, b } = wholeRows.get(from, to)!;
      for (const row of edgeRows.all({ from, to })) {
        rowLines(row, from, to, (line) => {
          n++;
          b += lineBytes(line);
        });
      }
      return { n, b };
    },
    close: () => db.close(),
  };
}
