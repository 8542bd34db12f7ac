import t from "tap";
import { pointTimeNs, type Sample } from "../../src/telemetry/sample.js";
import { pointLine } from "../../src/telemetry/influx-store.js";

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

// The InfluxDB store's line protocol (InfluxDB 1.x "Line protocol syntax"): what must be
// escaped where, tags sorted with the sender's device tag, every number a float.
t.test("pointLine: escapes per element, sorted tags, the device tag the sender's", async (t) => {
  const line = pointLine({
    device: "t1", type: "x", measurement: "air quality,v2", time: 1, pointNs: "1000042",
    tags: { zone: "b=2", device: "forged", room: "lab 1,east" },
    fields: { "co 2": 400, ok: true, note: 'say "hi" \\ there', n: 5 },
  });
  t.equal(line, 'air\\ quality\\,v2,device=t1,room=lab\\ 1\\,east,zone=b\\=2 co\\ 2=400,ok=true,note="say \\"hi\\" \\\\ there",n=5 1000042');
  t.equal(pointLine({ device: "d", type: "thermostat", measurement: "thermostat", time: 1_700_000_000_000, tags: {}, fields: { temperature: 21.5 }, pointNs: "1700000000000000007" }),
    "thermostat,device=d temperature=21.5 1700000000000000007", "no type tags: the device tag alone");
});
