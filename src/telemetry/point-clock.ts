// Point identity (CONTRACT §6): a sample is stored at its millisecond time plus six
// sub-millisecond digits taken from a hash of its content, so that writing it again
// (a spool replay, an MQTT QoS 1 redelivery) lands on the same point. Six digits
// leave a one-in-a-million chance that two *different* samples of one device in the
// same millisecond get the same digits, and InfluxDB would keep only the second: at
// a few hundred samples per second per device that happens every few million
// samples (the telemetry benchmark saw it). The clock remembers, per device, which
// digits the current millisecond has given to which content, and moves a different
// sample on to the next free value. The result is stored with the sample in the
// spool, so a replay reuses it.
import { hash } from "node:crypto";
import { serialised, type Sample } from "./sample.js";

const SLOTS = 1_000_000;

/** The content hash's digits for samples spooled without a point time (before the clock existed). */
export function contentSlot(content: string): number {
  return parseInt(hash("sha1", content, "hex").slice(0, 8), 16) % SLOTS;
}

/**
 * The clock's first choice of digits: FNV-1a (32 bits) over the content, a few
 * hundred ns in JavaScript where SHA-1 through node:crypto cost a few µs per sample.
 * Any deterministic hash will do: the same content must get the same digits (a
 * redelivered sample with its own timestamp overwrites), and collisions are resolved
 * by the clock, not by the hash.
 */
export function fastSlot(...parts: string[]): number {
  let h = 0x811c9dc5;
  for (const part of parts) {
    for (let i = 0; i < part.length; i++) h = Math.imul(h ^ part.charCodeAt(i), 0x01000193);
    h = Math.imul(h ^ 0x1f, 0x01000193); // a separator, so ("ab","c") differs from ("a","bc")
  }
  return (h >>> 0) % SLOTS;
}

/** What identifies a sample's content: JSON of [device, tags, fields]. */
export function contentKey(device: string, tagsJson: string, fieldsJson: string): string {
  return `[${JSON.stringify(device)},${tagsJson},${fieldsJson}]`;
}

export interface PointClock {
  /** The sample's point time in nanoseconds, as a decimal string. */
  assign(sample: Sample): string;
}

export function createPointClock(): PointClock {
  // Per device: the millisecond last seen and which digits went to which content in
  // it; usually one or two entries, so arrays reused from one millisecond to the next.
  const current = new Map<string, { time: number; slots: number[]; tags: string[]; fields: string[] }>();
  return {
    assign(sample) {
      const [tags, fields] = serialised(sample);
      let slot = fastSlot(tags, fields);
      let ms = current.get(sample.device);
      if (!ms) current.set(sample.device, (ms = { time: sample.time, slots: [], tags: [], fields: [] }));
      else if (ms.time !== sample.time) {
        ms.time = sample.time;
        ms.slots.length = ms.tags.length = ms.fields.length = 0;
      }
      for (;;) {
        const i = ms.slots.indexOf(slot);
        if (i < 0) {
          ms.slots.push(slot);
          ms.tags.push(tags);
          ms.fields.push(fields);
          break;
        }
        if (ms.tags[i] === tags && ms.fields[i] === fields) break; // the same sample again: the same point
        slot = (slot + 1) % SLOTS;
      }
      return `${sample.time}${String(slot).padStart(6, "0")}`;
    },
  };
}
