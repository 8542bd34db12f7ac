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
 * The timestamp a sample is stored under, in nanoseconds. The sub-millisecond
 * digits come from the spool sequence, so two samples of one device in the same
 * millisecond stay distinct, and a replayed sample lands on the same point
 * (InfluxDB overwrites a point with the same series and time) instead of a new one.
 */
export function pointTimeNs(sample: SpooledSample): string {
  return `${sample.time}${String(sample.seq % 1_000_000).padStart(6, "0")}`;
}

/** The JSON a subscriber sees (XEP-0335 payload, MQTT fan-out of XMPP samples). */
export function sampleJson(sample: Sample): Record<string, unknown> {
  return { device: sample.device, ts: new Date(sample.time).toISOString(), ...sample.tags, ...sample.fields };
}
