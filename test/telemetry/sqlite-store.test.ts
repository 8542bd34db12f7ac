// The embedded store on its own: batches copied from the spool inside SQLite, the
// same batches sent as values (samples spooled without a point time), replays that
// overwrite, and read-outs by time range.
import t from "tap";
import Database from "better-sqlite3";
import { join } from "node:path";
import { spoolFile } from "../../src/telemetry/spool.js";
import { openSqliteStore } from "../../src/telemetry/sqlite-store.js";
import type { Sample } from "../../src/telemetry/sample.js";
import { spooled } from "../helpers/spool.js";
import { tempDir } from "../helpers/temp-dir.js";

const T0 = 1_700_000_000_000;

const sample = (device: string, i: number, pointNs?: string): Sample => ({
  device,
  type: "thermostat",
  measurement: "thermostat",
  time: T0 + i,
  tags: { room: "lab 1" },
  fields: { temperature: 20 + i / 10 },
  pointNs,
});

const count = (dir: string) => (new Database(join(dir, "telemetry.sqlite"), { readonly: true }).prepare("SELECT count(*) AS n FROM points").get() as { n: number }).n;

t.test("a batch of spool rows is copied by seq range; a replay overwrites; read-outs by range, oldest first", async (t) => {
  const dir = tempDir(t, "sb-store-");
  const { batch, close } = await spooled(dir, Array.from({ length: 30 }, (_, i) => sample(i % 2 ? "b" : "a", i, `${T0 + i}000${String(i).padStart(3, "0")}`)));
  const store = openSqliteStore({ dataDir: dir, spoolFile: spoolFile(dir) });
  t.teardown(async () => { await store.close(); await close(); });
  await store.write(batch);
  t.equal(count(dir), 30, "every row of the batch is in the store");
  await store.write(batch);
  await store.write(batch.slice(10, 20));
  t.equal(count(dir), 30, "written again (replay after a crash): overwritten, not doubled");
  const a = await store.query("a", "thermostat", T0, T0 + 9, 100);
  t.same(a.map((s) => s.time), [T0, T0 + 2, T0 + 4, T0 + 6, T0 + 8], "device a, [T0, T0+9]: its samples in that range, oldest first");
  t.same(a[0], { device: "a", type: "thermostat", measurement: "thermostat", time: T0, tags: { room: "lab 1" }, fields: { temperature: 20 } }, "tags and fields as spooled");
  t.equal((await store.query("b", "thermostat", T0, T0 + 29, 3)).length, 3, "the limit holds");
  t.same(await store.query("a", "thermostat", -Infinity, Infinity, 100).then((r) => r.length), 15, "an unbounded range: every sample of the device");
});

t.test("samples without a point time, or not a run of spool rows, are written as values with the same result", async (t) => {
  const dir = tempDir(t, "sb-store-");
  const { batch, close } = await spooled(dir, Array.from({ length: 10 }, (_, i) => sample("a", i)));
  const store = openSqliteStore({ dataDir: dir, spoolFile: spoolFile(dir) });
  t.teardown(async () => { await store.close(); await close(); });
  await store.write(batch);
  t.equal(count(dir), 10, "spooled before the point clock: stored under their content-hash times");
  await store.write(batch);
  t.equal(count(dir), 10, "a replay of them overwrites");
  const gap = [batch[0]!, batch[2]!].map((s) => ({ ...s, pointNs: `${s.time}000999` }));
  await store.write(gap);
  t.equal(count(dir), 12, "a batch with a gap in its seqs is written as values");
  const missing = [{ ...batch[0]!, seq: 10_000, pointNs: `${T0}000777` }];
  await store.write(missing);
  t.equal(count(dir), 13, "a sample whose spool row is gone is written as values");
});
