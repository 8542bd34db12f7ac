// Point identity (docs/telemetry.md): a sample is stored at its millisecond time plus six
// sub-millisecond digits taken from a hash of its content, so that writing it again
// (a spool replay, an MQTT QoS 1 redelivery) lands on the same point. Six digits
// leave a one-in-a-million chance that two *different* samples of one device in the
// same millisecond get the same digits, and InfluxDB would keep only the second: at
// a few hundred samples per second per device that happens every few million
// samples (the telemetry benchmark saw it). The clock remembers, per device, which
// digits the current millisecond has given to which content, and moves a different
// sample on to the next free value. The result is stored with the sample in the
// spool, so a replay reuses it.
import { serialised, type Sample } from "./sample.js";
import { SLOTS, pointTime } from "./point-time.js";

/**
 * The clock's first choice of digits: FNV-1a (32 bits) over the content, computed
 * in JavaScript, far cheaper per sample than a SHA-1 through node:crypto.
 * Any deterministic hash will do: the same content must get the same digits (a
 * redelivered sample with its own timestamp overwrites), and collisions are resolved
 * by the clock, not by the hash.
 */
export function fastSlot(tags: string, fields: string): number {
  // Two strings, not a rest array: this runs once per sample.
  let h = fnv(0x811c9dc5, tags);
  h = Math.imul(h ^ 0x1f, 0x01000193); // a separator, so ("ab","c") differs from ("a","bc")
  h = fnv(h, fields);
  h = Math.imul(h ^ 0x1f, 0x01000193);
  return (h >>> 0) % SLOTS;
}

function fnv(h: number, text: string): number {
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h;
}

export interface PointClock {
  /** The sample's point time in nanoseconds, as a decimal string. */
  assign(sample: Sample): string;
}

export function createPointClock(): PointClock {
  // Per device: the millisecond last seen and which digits went to which content in
  // it (the first `used` entries); usually one or two, so the arrays are reused from
  // one millisecond to the next, overwritten rather than truncated.
  const current = new Map<string, { time: number; used: number; slots: number[]; tags: string[]; fields: string[] }>();
  return {
    assign(sample) {
      const [tags, fields] = serialised(sample);
      let slot = fastSlot(tags, fields);
      let ms = current.get(sample.device);
      if (!ms) current.set(sample.device, (ms = { time: sample.time, used: 0, slots: [], tags: [], fields: [] }));
      else if (ms.time !== sample.time) {
        ms.time = sample.time;
        ms.used = 0;
      }
      for (let i = 0; i < ms.used; i++) {
        if (ms.slots[i] !== slot) continue;
        if (ms.tags[i] === tags && ms.fields[i] === fields) return pointTime(sample.time, slot); // the same sample again: the same point
        // Taken by other content: the next value, checked against every entry again.
        slot = (slot + 1) % SLOTS;
        i = -1;
      }
      ms.slots[ms.used] = slot;
      ms.tags[ms.used] = tags;
      ms.fields[ms.used] = fields;
      ms.used++;
      return pointTime(sample.time, slot);
    },
  };
}
