import t from "tap";
import { createRequire } from "node:module";
import { POINT_TIME_NS_JS, pointTimeNs, type Sample } from "../../src/telemetry/sample.js";

// The embedded store's worker computes point identity from a JavaScript copy of the
// function; a divergence would make a replay land on a new point instead of overwriting.
t.test("pointTimeNs and its worker-thread copy agree", async (t) => {
  const require = createRequire(import.meta.url);
  const workerCopy = new Function("require", `return (${POINT_TIME_NS_JS});`)(require) as (time: number, device: string, tags: string, fields: string) => string;
  const samples: Sample[] = [
    { device: "t1", type: "thermostat", measurement: "thermostat", time: 1_700_000_000_123, tags: {}, fields: { temperature: 21.5, humidity: 40 } },
    { device: "dev-ü", type: "x", measurement: "x", time: 1, tags: { room: "a\"b" }, fields: { on: true, label: "é\n" } },
  ];
  for (const s of samples) {
    const ns = pointTimeNs(s);
    t.equal(workerCopy(s.time, s.device, JSON.stringify(s.tags), JSON.stringify(s.fields)), ns);
    t.match(ns, new RegExp(`^${s.time}\\d{6}$`));
  }
  // Different content in the same millisecond: different points.
  t.not(pointTimeNs(samples[0]!), pointTimeNs({ ...samples[0]!, fields: { temperature: 21.6, humidity: 40 } }));
});
