// The InfluxDB store on its own, against a real influxd: points as spooled (tags,
// fields, the point clock's time, or the content-hash time of samples spooled before
// it), replays that overwrite, a refused batch told apart from an unreachable or
// silent server, as the drainer needs, and the HTTP write's basic auth and answers.
import t from "tap";
import { createInfluxStore } from "../../src/telemetry/influx-store.js";
import { createLineWriter } from "../../src/telemetry/influx-write.js";
import { StoreError } from "../../src/telemetry/store.js";
import type { Sample } from "../../src/telemetry/sample.js";
import { spooled } from "../helpers/spool.js";
import { tempDir } from "../helpers/temp-dir.js";
import { startInflux, type TestInflux } from "../helpers/influx.js";

const T0 = 1_700_000_000_000;
let influx: TestInflux;
t.before(async () => {
  influx = await startInflux();
});
t.teardown(() => influx.close());

const sample = (i: number, fields: Sample["fields"], pointNs?: string): Sample => ({
  device: i % 2 ? "b" : "a",
  type: "thermostat",
  measurement: "thermostat",
  time: T0 + i,
  tags: { room: "lab 1" },
  fields,
  pointNs,
});

t.test("spooled samples land with their tags, fields and point times; a replay overwrites", async (t) => {
  const dir = tempDir(t, "sb-influx-store-");
  const db = "range";
  const { batch, close } = await spooled(dir, Array.from({ length: 40 }, (_, i) => sample(i, { temperature: 20 + i / 10, humidity: i }, `${T0 + i}000${String(i).padStart(3, "0")}`)));
  const store = createInfluxStore({ url: influx.url, database: db });
  t.teardown(async () => { await store.close(); await close(); });
  await store.write(batch);
  t.equal(await influx.count("thermostat", db), 40, "every sample landed");
  await store.write(batch);
  await store.write(batch.slice(5, 15));
  t.equal(await influx.count("thermostat", db), 40, "written again: the same points, not more");
  const r = await influx.query(`SELECT * FROM thermostat WHERE device = 'b' ORDER BY time ASC LIMIT 1`, db);
  const [columns, row] = [r.results[0].series[0].columns as string[], r.results[0].series[0].values[0] as unknown[]];
  const value = (c: string) => row[columns.indexOf(c)];
  t.equal(value("room"), "lab 1", "a tag with a space");
  t.equal(value("temperature"), 20.1, "a field");
  t.equal(value("device"), "b", "the device tag");
  const ns = await influx.query(`SELECT temperature FROM thermostat WHERE device = 'b' ORDER BY time ASC LIMIT 1`, db);
  t.equal(Math.floor(Number(ns.results[0].series[0].values[0][0]) / 1e6), T0 + 1, "the point's time is the sample's (ms, plus its sub-millisecond digits)");
});

t.test("samples spooled before the point clock land under their content-hash times, once", async (t) => {
  const dir = tempDir(t, "sb-influx-store-");
  const db = "legacy";
  const { batch, close } = await spooled(dir, Array.from({ length: 10 }, (_, i) => sample(i, { temperature: 20 + i })));
  const store = createInfluxStore({ url: influx.url, database: db });
  t.teardown(async () => { await store.close(); await close(); });
  await store.write(batch);
  await store.write(batch);
  t.equal(await influx.count("thermostat", db), 10, "all landed once, under their content-hash times");
});

t.test("a batch InfluxDB refuses is reported as invalid; an unreachable server as a failure to retry", async (t) => {
  const dir = tempDir(t, "sb-influx-store-");
  const db = "refused";
  // The same field once as a number, then as a string: InfluxDB answers 400 (field type conflict).
  const { batch, close } = await spooled(dir, [sample(0, { temperature: 20 }, `${T0}000001`), sample(1, { temperature: "warm" }, `${T0 + 1}000001`)]);
  const store = createInfluxStore({ url: influx.url, database: db });
  t.teardown(async () => { await store.close(); await close(); });
  await store.write(batch.slice(0, 1));
  const refused = await store.write(batch.slice(1)).then(() => null, (e: unknown) => e);
  t.ok(refused instanceof StoreError && refused.invalidPoints, `a 400 is invalid points: ${(refused as Error)?.message}`);
  t.match(refused, { status: 400, reason: /field type conflict/ }, "with InfluxDB's status and reason");

  const nowhere = createInfluxStore({ url: "http://127.0.0.1:9", database: db, timeoutMs: 2_000 });
  t.teardown(() => nowhere.close());
  const down = await nowhere.write(batch.slice(0, 1)).then(() => null, (e: unknown) => e);
  t.ok(down instanceof StoreError && !down.invalidPoints, `no server: a failure to retry (${(down as Error)?.message})`);
});

t.test("a server that stops answering: the write fails at the deadline, as one to retry", async (t) => {
  const dir = tempDir(t, "sb-influx-store-");
  const db = "silent";
  const { batch, close } = await spooled(dir, [sample(0, { temperature: 20 }), sample(1, { temperature: 21 })]);
  const store = createInfluxStore({ url: influx.url, database: db, timeoutMs: 500 });
  t.teardown(async () => { influx.resume(); await store.close(); await close(); });
  await store.write(batch.slice(0, 1));
  influx.pause();
  const started = Date.now();
  const silent = await store.write(batch.slice(1)).then(() => null, (e: unknown) => e);
  const waited = Date.now() - started;
  influx.resume();
  t.ok(silent instanceof StoreError && !silent.invalidPoints && silent.status === undefined, `a failure to retry (${(silent as Error)?.message})`);
  t.ok(waited >= 450 && waited < 3_000, `after the 500 ms deadline (${waited} ms)`);
  await store.write(batch.slice(1));
  t.equal(await influx.count("thermostat", db), 2, "written once the server answers again");
});

t.test("a database dropped under the store is made again by the write after the one that failed", async (t) => {
  const dir = tempDir(t, "sb-influx-store-");
  const db = "dropped";
  const { batch, close } = await spooled(dir, [sample(0, { temperature: 20 }), sample(1, { temperature: 21 })]);
  const store = createInfluxStore({ url: influx.url, database: db });
  t.teardown(async () => { await store.close(); await close(); });
  await store.write(batch.slice(0, 1));
  await influx.query(`DROP DATABASE ${db}`);
  const missing = await store.write(batch.slice(1)).then(() => null, (e: unknown) => e);
  t.match(missing, { status: 404, reason: /database not found/, invalidPoints: false }, "not found: a failure to retry");
  await store.write(batch.slice(1));
  t.equal(await influx.count("thermostat", db), 1, "the retry made the database and wrote");
});

t.test("basic auth from the URL; a wrong password is InfluxDB's 401, a failure to retry", async (t) => {
  const admin = { username: "admin", password: "p@ss:word" };
  const secured = await startInflux({ admin });
  t.teardown(() => secured.close());
  const dir = tempDir(t, "sb-influx-store-");
  const db = "secured";
  const { batch, close } = await spooled(dir, [sample(0, { temperature: 20 })]);
  const at = new URL(secured.url);
  at.username = admin.username;
  at.password = encodeURIComponent(admin.password);
  const store = createInfluxStore({ url: at.href, database: db });
  t.teardown(async () => { await store.close(); await close(); });
  await store.write(batch);
  t.equal(await secured.count("thermostat", db), 1, "written with the URL's user and password");

  at.password = "wrong";
  const writer = createLineWriter({ url: at, database: db, timeoutMs: 2_000 });
  t.teardown(() => writer.close());
  const denied = await writer.write("thermostat,device=a temperature=1 1").then(() => null, (e: unknown) => e);
  t.match(denied, { status: 401, reason: /authorization failed/, invalidPoints: false });
});
