// The thermostat samples the MQTT load generator publishes, which carry their own
// send time, and a cheap list of the latencies measured from them.
//
// Every sample is thermostat telemetry that Switchboard accepts:
//   {"temperature":21.37,"humidity":40.123,"ts":1732186000123}
// `ts` is the send time in epoch milliseconds (an integer, as the schema
// wants); the sub-millisecond part of the send time rides in the decimals of
// `humidity` (40 + fraction of a millisecond), so latency is measured to the
// microsecond without a field the schema would refuse.
import { nowMs } from './timing.js';

let sampleNo = 0;

/** A sample sent at `t` (epoch ms, fractional). */
export function sample(t = nowMs()): Buffer {
  const ts = Math.floor(t);
  // The temperature walks through 1,000 values so that no two samples of a
  // device in one millisecond are equal: Switchboard gives equal samples the
  // same point (src/telemetry/sample.ts), which would count as one.
  const temperature = (15 + (sampleNo++ % 1000) / 100).toFixed(2);
  return Buffer.from(`{"temperature":${temperature},"humidity":${(40 + (t - ts)).toFixed(3)},"ts":${ts}}`);
}

/** Send time (epoch ms, fractional) carried by a sample. */
export function sentAt(payload: Buffer): number {
  const o = JSON.parse(payload.toString('latin1')) as { ts: number; humidity: number };
  return o.ts + (o.humidity - 40);
}

/** Growable list of doubles (latencies), cheaper than a JS array of 500k numbers. */
export class Samples {
  private a = new Float64Array(1 << 16);
  n = 0;
  push(x: number): void {
    if (this.n === this.a.length) { const b = new Float64Array(this.a.length * 2); b.set(this.a); this.a = b; }
    this.a[this.n++] = x;
  }
  view(): Float64Array { return this.a.subarray(0, this.n); }
}
