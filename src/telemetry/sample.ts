import { createHash } from "node:crypto";

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
  const digest = createHash("sha1").update(JSON.stringify([sample.device, sample.tags, sample.fields])).digest();
  return `${sample.time}${String(digest.readUInt32BE(0) % 1_000_000).padStart(6, "0")}`;
}

/** The JSON a subscriber sees (XEP-0335 payload, MQTT fan-out of XMPP samples). */
export function sampleJson(sample: Sample): Record<string, unknown> {
  return { device: sample.device, ts: new Date(sample.time).toISOString(), ...sample.tags, ...sample.fields };
}
