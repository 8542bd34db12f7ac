// Point identity: two different samples of one device in one millisecond whose
// content hashes give the same sub-millisecond digits must both be stored (the
// point clock moves the second on), while the same sample sent twice still lands
// on one point. Unit-level with the clock itself, then end to end over MQTT into
// the embedded store of a real broker.
import t from "tap";
import mqtt from "mqtt";
import { createPointClock, fastSlot } from "../../src/telemetry/point-clock.js";
import { validateSample } from "../../src/telemetry/validate.js";
import { deviceTypes } from "../../devices/index.js";
import type { Sample } from "../../src/telemetry/sample.js";
import { startTestBroker } from "../helpers/broker.js";

const thermostat = deviceTypes.find((d) => d.name === "thermostat")!;
const TIME = 1_700_000_000_123;

/** Two thermostat payloads for `device` whose validated samples hash to the same digits. */
function collidingPayloads(device: string): [string, string] {
  const seen = new Map<number, string>();
  for (let i = 0; ; i++) {
    const payload = JSON.stringify({ temperature: Math.round(i / 10) / 100, humidity: (i % 10) * 10, ts: TIME });
    const v = validateSample(thermostat, device, payload, 0);
    if (!v.ok) throw new Error(v.reason);
    const slot = fastSlot(JSON.stringify(v.sample.tags), JSON.stringify(v.sample.fields));
    const other = seen.get(slot);
    if (other !== undefined) return [other, payload];
    seen.set(slot, payload);
  }
}

const sampleOf = (device: string, payload: string): Sample => {
  const v = validateSample(thermostat, device, payload, 0);
  if (!v.ok) throw new Error(v.reason);
  return v.sample;
};

t.test("the clock separates colliding samples and keeps a repeated one on its point", async (t) => {
  const [a, b] = collidingPayloads("dev1");
  const clock = createPointClock();
  const pa = clock.assign(sampleOf("dev1", a));
  const pb = clock.assign(sampleOf("dev1", b));
  t.not(pa, pb, `different samples, same digits from the hash: different points (${pa}, ${pb})`);
  t.equal(clock.assign(sampleOf("dev1", a)), pa, "the first sample again: its point");
  t.equal(clock.assign(sampleOf("dev1", b)), pb, "the second sample again: its point");
  t.match(pa, new RegExp(`^${TIME}\\d{6}$`));
  t.match(pb, new RegExp(`^${TIME}\\d{6}$`));
});

t.test("over MQTT into the embedded store: both colliding samples are stored, a repeat is not doubled", async (t) => {
  const b = await startTestBroker({ tsdb: { batchSize: 10, flushMs: 50 } }, [{ name: "dev1", role: "device", type: "thermostat", password: "pw" }]);
  t.teardown(() => b.close());
  const [first, second] = collidingPayloads("dev1");
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.ports.mqtt}`, { clientId: "dev1", username: "dev1", password: "pw", reconnectPeriod: 0 });
  t.teardown(() => dev.end(true));
  for (const p of [first, second, first]) await dev.publishAsync("devices/dev1/telemetry", p, { qos: 1 });
  let stored: Sample[] = [];
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    stored = await b.store.query("dev1", "thermostat", TIME, TIME, 100);
    if (stored.length >= 2 && b.drainer.state.written >= 3) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  t.equal(stored.length, 2, "two distinct samples stored, the repeat overwrote its own point");
  t.same(stored.map((s) => s.fields.temperature).sort(), [JSON.parse(first).temperature, JSON.parse(second).temperature].sort());
});

t.test("fastSlot is deterministic, in range, and sees where one part ends", async (t) => {
  t.equal(fastSlot('{"room":"a"}', '{"t":1}'), fastSlot('{"room":"a"}', '{"t":1}'), "same content, same digits");
  t.not(fastSlot("ab", "c"), fastSlot("a", "bc"), "the split between tags and fields counts");
  for (let i = 0; i < 1000; i++) {
    const s = fastSlot(`{"i":${i}}`, "{}");
    if (!(s >= 0 && s < 1_000_000 && Number.isInteger(s))) t.fail(`slot ${s} out of range`);
  }
});
