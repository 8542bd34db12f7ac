// The ingest's two forms: ingestThen (MQTT's hot path, a callback) and ingest (a
// promise on top of it). A refusal is answered at once; an accepted sample once it
// is durable; a failing step after the spool is an error, and the sample stays stored.
import t from "tap";
import { createIngest, type IngestResult } from "../../src/telemetry/ingest.js";
import { openSpool } from "../../src/telemetry/spool.js";
import { deviceType } from "../../devices/index.js";
import type { Registry } from "../../src/registry/registry.js";
import { tempDir } from "../helpers/temp-dir.js";
import { linkReporter, type DeviceLink, type Protocol } from "../../src/links/device-link.js";

const registry = { get: (name: string) => (name.startsWith("th") ? { name, role: "device", type: "thermostat" } : undefined) } as unknown as Registry;

t.test("ingestThen: a refusal at once, an accepted sample when durable; a listener that throws is an error, the sample stored", async (t) => {
  const spool = openSpool({ dataDir: tempDir(t, "sb-ingest-"), maxBytes: 1 << 30 });
  t.teardown(() => spool.close());
  const ingest = createIngest({ registry, deviceType, spool, links: [] });
  let refused: IngestResult | null = null;
  ingest.ingestThen("th1", Buffer.from("{"), "mqtt", (r) => void (refused = r));
  t.match(refused, { ok: false, reason: "payload is not JSON" }, "answered synchronously");
  ingest.ingestThen("nobody", Buffer.from("{}"), "mqtt", (r) => void (refused = r));
  t.match(refused, { ok: false, reason: "not a device with a known type" });

  const ok = await new Promise<IngestResult | null>((resolve) => ingest.ingestThen("th1", Buffer.from('{"temperature":20,"humidity":40}'), "mqtt", resolve));
  t.match(ok, { ok: true, sample: { device: "th1", fields: { temperature: 20, humidity: 40 } } });
  t.equal(ingest.lastSample("th1")?.fields.temperature, 20);

  ingest.onSample((s) => {
    if (s.fields.temperature === 99) throw new Error("listener broke");
  });
  const [broken, next] = await Promise.all([
    new Promise<[IngestResult | null, unknown]>((resolve) => ingest.ingestThen("th2", Buffer.from('{"temperature":99,"humidity":40}'), "mqtt", (r, e) => resolve([r, e]))),
    ingest.ingest("th3", '{"temperature":21,"humidity":40}', "xmpp"),
  ]);
  t.equal(broken[0], null, "no result");
  t.match(broken[1], { message: "listener broke" }, "the error instead");
  t.match(next, { ok: true }, "the next sample of the same commit is answered");
  t.equal(spool.committed, 3, "all three accepted samples are in the spool, the one whose listener broke included");
  await t.rejects(
    (async () => {
      ingest.onSample((s) => {
        if (s.fields.temperature === 98) throw new Error("again");
      });
      return ingest.ingest("th4", '{"temperature":98,"humidity":40}', "xmpp");
    })(),
    { message: "again" },
    "the promise form rejects with it",
  );
});

t.test("links: the ingest takes every link's telemetry and hands each accepted sample to every link", async (t) => {
  const spool = openSpool({ dataDir: tempDir(t, "sb-ingest-links-"), maxBytes: 1 << 30 });
  t.teardown(() => spool.close());
  const fake = (name: string, protocol: Protocol) => {
    const reporter = linkReporter(name);
    const seen: Array<[string, string]> = [];
    const link: DeviceLink = {
      name,
      protocol,
      resource: name,
      reaches: () => true,
      deliver: async () => {},
      disconnect: () => {},
      accepted: (sample, from) => void seen.push([sample.device, from]),
      listen: reporter.listen,
    };
    return { link, reporter, seen };
  };
  const a = fake("a", "mqtt");
  const b = fake("b", "bridge");
  createIngest({ registry, deviceType, spool, links: [a.link, b.link] });
  const result = await new Promise<IngestResult | null>((resolve) => b.reporter.emit.telemetry("th9", Buffer.from('{"temperature":19,"humidity":40}'), resolve));
  t.match(result, { ok: true, sample: { device: "th9" } }, "a link's telemetry went through the ingest");
  t.same(a.seen, [["th9", "bridge"]], "every link hears of the sample, with where it came from");
  t.same(b.seen, [["th9", "bridge"]]);
  t.throws(() => createIngest({ registry, deviceType, spool, links: [a.link] }), /already has a consumer/, "telemetry has one consumer");
});
