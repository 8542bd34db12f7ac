import { contentKey, contentSlot } from "./point-clock.js";

// A validated, time-stamped measurement, as the core passes it around.
export type FieldValue = number | boolean | string;

export interface Sample {
  device: string;
  type: string;
  measurement: string;
  /** Sample time, epoch milliseconds. */
  time: number;
  tags: Record<string, string>;
  fields: Record<string, FieldValue>;
  /** Point time in ns (decimal), given by the ingest's point clock; see pointTimeNs. */
  pointNs?: string;
}

/** A sample once it is in the spool: `seq` is its durable, ordered identity. */
export interface SpooledSample extends Sample {
  seq: number;
  /** tags and fields as JSON, when the spool already made them (saves a second stringify). */
  json?: { tags: string; fields: string };
}

/**
 * The timestamp a sample is stored under, in nanoseconds: the one the ingest's point
 * clock gave it (point-clock.ts), or, for a sample spooled without one, its
 * millisecond time plus six digits from a hash of its content.
 */
export function pointTimeNs(sample: Sample): string {
  return sample.pointNs ?? pointTimeNsOfJson(sample.time, sample.device, JSON.stringify(sample.tags), JSON.stringify(sample.fields));
}

/**
 * The content-hash point time from the JSON of tags and fields. Mirrored in
 * POINT_TIME_NS_JS for the embedded store's worker thread; test/unit/sample.test.ts
 * checks the two agree.
 */
export function pointTimeNsOfJson(time: number, device: string, tagsJson: string, fieldsJson: string): string {
  return `${time}${String(contentSlot(contentKey(device, tagsJson, fieldsJson))).padStart(6, "0")}`;
}

/** pointTimeNsOfJson as plain JavaScript source, for code run on a worker thread. */
export const POINT_TIME_NS_JS = `(time, device, tagsJson, fieldsJson) => {
  const digest = require("node:crypto").hash("sha1", "[" + JSON.stringify(device) + "," + tagsJson + "," + fieldsJson + "]", "hex");
  return String(time) + String(parseInt(digest.slice(0, 8), 16) % 1000000).padStart(6, "0");
}`;

/** The JSON a subscriber sees (XEP-0335 payload, MQTT fan-out of XMPP samples). */
export function sampleJson(sample: Sample): Record<string, unknown> {
  return { device: sample.device, ts: new Date(sample.time).toISOString(), ...sample.tags, ...sample.fields };
}
