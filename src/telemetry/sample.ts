import { hash } from "node:crypto";

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
}

/** A sample once it is in the spool: `seq` is its durable, ordered identity. */
export interface SpooledSample extends Sample {
  seq: number;
  /** tags and fields as JSON, when the spool already made them (saves a second stringify). */
  json?: { tags: string; fields: string };
}

/**
 * The timestamp a sample is stored under, in nanoseconds: its millisecond time plus
 * six sub-millisecond digits from a hash of its content. Point identity is thus
 * deterministic: a sample written again (a spool replay after a crash, or an MQTT
 * QoS 1 redelivery of the same message) lands on the same point, which InfluxDB
 * overwrites, while two different samples of one device in the same millisecond
 * stay distinct.
 */
export function pointTimeNs(sample: Sample): string {
  return pointTimeNsOfJson(sample.time, sample.device, JSON.stringify(sample.tags), JSON.stringify(sample.fields));
}

/**
 * pointTimeNs from the JSON of tags and fields. Mirrored in POINT_TIME_NS_JS for the
 * embedded store's worker thread; test/unit/sample.test.ts checks the two agree.
 */
export function pointTimeNsOfJson(time: number, device: string, tagsJson: string, fieldsJson: string): string {
  // JSON.stringify([device, tags, fields]) without re-serialising; one-shot hash.
  const digest = hash("sha1", `[${JSON.stringify(device)},${tagsJson},${fieldsJson}]`, "hex");
  return `${time}${String(parseInt(digest.slice(0, 8), 16) % 1_000_000).padStart(6, "0")}`;
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
