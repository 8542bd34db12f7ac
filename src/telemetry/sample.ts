// A validated, time-stamped measurement, as the core passes it around.
import { contentKey, contentSlot, pointTime } from "./point-time.js";

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
  /** tags and fields as JSON, made once at ingest for the point clock, spool and store. */
  tagsJson?: string;
  fieldsJson?: string;
}

/** A sample once it is in the spool: `seq` is its durable, ordered identity. */
export interface SpooledSample extends Sample {
  seq: number;
}

/**
 * The timestamp a sample is stored under, in nanoseconds: the one the ingest's point
 * clock gave it (point-clock.ts), or, for a sample spooled without one, its
 * millisecond time plus six digits from a hash of its content.
 */
export function pointTimeNs(sample: Sample): string {
  return sample.pointNs ?? pointTime(sample.time, contentSlot(contentKey(sample.device, ...serialised(sample))));
}

/** tags and fields as JSON: the ones made at ingest when there are, else made now. */
export function serialised(sample: Sample): [tags: string, fields: string] {
  return [sample.tagsJson ?? JSON.stringify(sample.tags), sample.fieldsJson ?? JSON.stringify(sample.fields)];
}

/** The JSON a subscriber sees (XEP-0335 payload, MQTT fan-out of XMPP samples). */
export function sampleJson(sample: Sample): Record<string, unknown> {
  return { device: sample.device, ts: new Date(sample.time).toISOString(), ...sample.tags, ...sample.fields };
}
