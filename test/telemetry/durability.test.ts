// Nothing accepted is lost (docs/telemetry.md): InfluxDB outages, a refused
// batch, the spool cap, and a broker killed with SIGKILL, all against a real influxd.
import t from "tap";
import mqtt from "mqtt";
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { startTestBroker } from "../helpers/broker.js";
import { startInflux, type TestInflux } from "../helpers/influx.js";
import { waitFor } from "../helpers/wait.js";
import { deviceTypes } from "../../devices/index.js";
import { defineDeviceType } from "../../devices/types.js";

const DB = "durable";
let influx: TestInflux;
t.before(async () => {
  influx = await startInflux();
});
t.teardown(() => influx.close());

// A type with strings, to check line-protocol escaping.
const labelled = defineDeviceType({
  name: "labelled",
  description: "test type with a string tag and field",
  telemetry: z.strictObject({ site: z.string().max(100), note: z.string().max(200), value: z.number() }),
  commands: {},
  measurement: "labelled",
  tags: ["site"],
  units: {},
});
const types = [...deviceTypes, labelled];
const accounts = [
  { name: "svc", role: "service" as const, password: "pw" },
  ...Array.from({ length: 5 }, (_, i) => ({ name: `t${i}`, role: "device" as const, type: "thermostat", password: "pw" })),
  { name: "lab", role: "device" as const, type: "labelled", password: "pw" },
];

async function devices(port: number, n = 5) {
  return Promise.all(Array.from({ length: n }, (_, i) => mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: `t${i}`, username: `t${i}`, password: "pw", reconnectPeriod: 0 })));
}
const sample = (i: number) => JSON.stringify({ temperature: 20 + (i % 10), humidity: 50, ts: 1_700_000_000_000 + i });

t.test("InfluxDB down during load: every accepted sample lands exactly once after it returns", async (t) => {
  const db = `${DB}_outage`;
  const broker = await startTestBroker({ tsdb: { kind: "influx", influx: { url: influx.url, database: db }, batchSize: 100, flushMs: 50 } }, accounts, { deviceTypes: types });
  t.teardown(() => broker.close());
  const clients = await devices(broker.ports.mqtt);
  let sent = 0;
  const burst = async (count: number) => {
    await Promise.all(clients.map(async (c) => {
      for (let i = 0; i < count; i++) await c.publishAsync(`devices/${c.options.clientId}/telemetry`, sample(sent++), { qos: 1 });
    }));
  };
  await burst(100);
  await influx.stop();
  await burst(200); // all acknowledged while InfluxDB is down: they wait in the spool
  await waitFor(() => broker.drainer.state.failing || undefined, 5_000, "the drainer to see the store down");
  t.match(broker.drainer.state, { failing: true, lastError: /127\.0\.0\.1/ }, "the drainer sees the store down");
  t.ok(broker.ingest.counters.accepted === sent, `all ${sent} accepted while down`);
  await influx.start();
  await burst(100);
  await waitFor(async () => (await influx.count("thermostat", db)) === sent || undefined, 30_000, "all samples in InfluxDB");
  t.equal(await influx.count("thermostat", db), sent, `exactly ${sent} points`);
  t.notOk(broker.drainer.state.failing);
  await Promise.all(clients.map((c) => c.endAsync()));
});

t.test("a batch InfluxDB refuses: the bad points go to the dead-letter file, the rest is written", async (t) => {
  const db = `${DB}_dead`;
  // A field type conflict (within a shard, so at the current time) makes InfluxDB
  // answer 400 for those points only.
  await influx.query(`CREATE DATABASE ${db}`);
  await fetch(`${influx.url}/write?db=${db}`, { method: "POST", body: `labelled,device=lab,site=x value="text"` });
  const broker = await startTestBroker({ tsdb: { kind: "influx", influx: { url: influx.url, database: db }, batchSize: 1000, flushMs: 300 } }, accounts, { deviceTypes: types });
  t.teardown(() => broker.close());
  const [dev] = await devices(broker.ports.mqtt, 1);
  const lab = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: "lab", username: "lab", password: "pw", reconnectPeriod: 0 });
  for (let i = 0; i < 10; i++) await dev!.publishAsync("devices/t0/telemetry", sample(i), { qos: 1 });
  await lab.publishAsync("devices/lab/telemetry", JSON.stringify({ site: "a b", note: "n", value: 1 }), { qos: 1 });
  for (let i = 10; i < 20; i++) await dev!.publishAsync("devices/t0/telemetry", sample(i), { qos: 1 });
  await waitFor(async () => (await influx.count("thermostat", db)) === 20 || undefined, 15_000, "the good points");
  const deadLetter = join(broker.dataDir, "dead-letter.jsonl");
  await waitFor(() => existsSync(deadLetter) || undefined).catch((e) => {
    t.comment(broker.logs.filter((l) => /store|dead/.test(l)).join("\n"));
    throw e;
  });
  const dead = readFileSync(deadLetter, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  t.equal(dead.length, 1);
  t.match(dead[0], { sample: { device: "lab" }, reason: /field type conflict/ });
  t.equal(broker.drainer.state.deadLettered, 1);
  await dev!.endAsync();
  await lab.endAsync();
});

t.test("line protocol: spaces, commas, = and quotes are escaped; line breaks are refused", async (t) => {
  const db = `${DB}_escape`;
  const broker = await startTestBroker({ tsdb: { kind: "influx", influx: { url: influx.url, database: db }, batchSize: 10, flushMs: 50 } }, accounts, { deviceTypes: types });
  t.teardown(() => broker.close());
  const lab = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: "lab", username: "lab", password: "pw", reconnectPeriod: 0 });
  const errors: string[] = [];
  lab.on("message", (_t, p) => errors.push(p.toString()));
  await lab.subscribeAsync("devices/lab/errors");
  const tricky = { site: 'a b,c=d"e\\f', note: 'say "hi", x=1 \\ y', value: 2 };
  await lab.publishAsync("devices/lab/telemetry", JSON.stringify(tricky), { qos: 1 });
  await lab.publishAsync("devices/lab/telemetry", JSON.stringify({ site: "ok", note: "two\nlines", value: 3 }), { qos: 1 });
  await waitFor(() => errors.length === 1 || undefined);
  t.match(errors[0], /note/);
  t.match(errors[0], /line break/);
  await waitFor(async () => (await influx.count("labelled", db)) === 1 || undefined);
  const r = await influx.query(`SELECT * FROM labelled`, db);
  const s = r.results[0].series[0];
  const row = Object.fromEntries(s.columns.map((c: string, i: number) => [c, s.values[0][i]]));
  t.equal(row.site, tricky.site, "tag stored exactly");
  t.equal(row.note, tricky.note, "string field stored exactly");
  t.equal(row.value, 2);
  await lab.endAsync();
});

t.test("spool cap: new samples are refused with a reason, accepted ones are all written later", async (t) => {
  const db = `${DB}_cap`;
  const broker = await startTestBroker({ tsdb: { kind: "influx", influx: { url: influx.url, database: db }, batchSize: 10, flushMs: 50, spoolMaxBytes: 3000 } }, accounts, { deviceTypes: types });
  t.teardown(() => broker.close());
  await influx.stop();
  const [dev] = await devices(broker.ports.mqtt, 1);
  const errors: string[] = [];
  dev!.on("message", (_t, p) => errors.push(p.toString()));
  await dev!.subscribeAsync("devices/t0/errors");
  for (let i = 0; i < 60; i++) await dev!.publishAsync("devices/t0/telemetry", sample(i), { qos: 1 });
  await waitFor(() => broker.ingest.counters.accepted + errors.length === 60 || undefined);
  t.match(errors[0], /spool full/);
  const accepted = broker.ingest.counters.accepted;
  t.ok(accepted > 5 && accepted < 60, `${accepted} accepted before the cap`);
  t.equal(accepted + errors.length, 60, "every publish either accepted or told why not");
  await influx.start();
  await waitFor(async () => (await influx.count("thermostat", db)) === accepted || undefined, 20_000, "accepted samples");
  t.pass(`all ${accepted} accepted samples written`);
  await dev!.endAsync();
});
