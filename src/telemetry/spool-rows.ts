// The spool's row format, the one definition both threads use: the spool makes rows
// (spool.ts) and its thread inserts them (spool-ops.ts); the spool's reader counts and
// replays them (spool-reader.ts); the embedded store copies them (store-ops.ts).
//
// A row is one commit: its samples as lines of text, in seq order, the first line
// numbered `first_seq` and each next line the next seq, through `last_seq`. A line is
// `[device,type,measurement,time,pointNs|null]`, a tab, the tags JSON, a tab, the
// fields JSON. JSON never holds a raw tab or line break, so neither separator occurs
// inside a value. One row and one string per commit: a row per sample (eight bound
// values each) cost the thread a B-tree insert per sample and the main thread a
// structured clone of every value.
import type { Sample, SpooledSample } from "./sample.js";

/**
 * The spool's tables: its rows, and the highest seq the store confirmed, kept beside
 * them so a row the store has only partly taken is replayed from the sample after it.
 */
export const SPOOL_SCHEMA = `CREATE TABLE IF NOT EXISTS spool_batches (first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, bytes INTEGER NOT NULL, rows TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS spool_acked (id INTEGER PRIMARY KEY CHECK (id = 0), seq INTEGER NOT NULL)`;

/** A commit as the spool's thread inserts it: the values of one spool_batches row. */
export type SpoolBatch = [firstSeq: number, lastSeq: number, bytes: number, rows: string];

/** What a reader needs of a stored row: its first seq and its lines. */
export interface BatchRow {
  first_seq: number;
  rows: string;
}

/** A line's first field, parsed. */
type LineHead = [device: string, type: string, measurement: string, time: number, pointNs: string | null];

/** The start of a sample's line, the same for every sample of a device and type: `[device,type,measurement,`. */
export const lineHead = (s: Sample): string => `[${JSON.stringify(s.device)},${JSON.stringify(s.type)},${JSON.stringify(s.measurement)},`;

/** One sample's line; `head` is its lineHead, when the caller keeps it. Its JSON must be set (serialised() at append). */
export function sampleLine(s: Sample, head = lineHead(s)): string {
  const pointNs = s.pointNs === undefined ? "null" : `"${s.pointNs}"`;
  return `${head}${s.time},${pointNs}]\t${s.tagsJson}\t${s.fieldsJson}`;
}

/** A sample's share of the spool's byte count: its line and its line break. */
export const lineBytes = (line: string): number => line.length + 1;

/** A commit's row text from its lines, in seq order. */
export const rowText = (lines: readonly string[]): string => lines.join("\n");

/** A line's head values and its tags and fields JSON, the JSON left as text (the store keeps it so). */
export function splitLine(line: string): [head: LineHead, tagsJson: string, fieldsJson: string] {
  const [head, tagsJson, fieldsJson] = line.split("\t") as [string, string, string];
  return [JSON.parse(head) as LineHead, tagsJson, fieldsJson];
}

/** The sample of a line, numbered `seq`. */
export function parseSampleLine(line: string, seq: number): SpooledSample {
  const [[device, type, measurement, time, pointNs], tagsJson, fieldsJson] = splitLine(line);
  return { seq, device, type, measurement, time, tags: JSON.parse(tagsJson), fields: JSON.parse(fieldsJson), pointNs: pointNs ?? undefined, tagsJson, fieldsJson };
}

/** Visits the lines of one row whose seq is in (from, to], in order; false once `visit` returned false. */
export function rowLines(row: BatchRow, from: number, to: number, visit: (line: string, seq: number) => boolean | void): boolean {
  const lines = row.rows.split("\n");
  for (let i = Math.max(0, from + 1 - row.first_seq); i < lines.length && row.first_seq + i <= to; i++) {
    if (visit(lines[i]!, row.first_seq + i) === false) return false;
  }
  return true;
}
