import t from "tap";
import { pointTimeNs, type Sample } from "../../src/telemetry/sample.js";

// Point identity of a sample spooled without a point time (the content hash), and
// the point clock's one taking precedence when there is.
t.test("pointTimeNs: content-hash digits, the same from the ingest's JSON, the clock's value first", async (t) => {
  const samples: Sample[] = [
    { device: "t1", type: "thermostat", measurement: "thermostat", time: 1_700_000_000_123, tags: {}, fields: { temperature: 21.5, humidity: 40 } },
    { device: "dev-ü", type: "x", measurement: "x", time: 1, tags: { room: "a\"b" }, fields: { on: true, label: "é\n" } },
  ];
  for (const s of samples) {
    const ns = pointTimeNs(s);
    t.equal(pointTimeNs({ ...s, tagsJson: JSON.stringify(s.tags), fieldsJson: JSON.stringify(s.fields) }), ns, "the JSON made at ingest gives the same point");
    t.match(ns, new RegExp(`^${s.time}\\d{6}$`));
  }
  // Different content in the same millisecond: different points.
  t.not(pointTimeNs(samples[0]!), pointTimeNs({ ...samples[0]!, fields: { temperature: 21.6, humidity: 40 } }));
  t.equal(pointTimeNs({ ...samples[0]!, pointNs: "1700000000123000042" }), "1700000000123000042", "a point time from the clock is used as is");
});
