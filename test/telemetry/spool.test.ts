// The spool alone: samples appended in one turn share a commit made of multi-row
// INSERTs (64, 16, 4, 1 rows); each sample must get the seq of its own row, in order.
import t from "tap";
import { openSpool } from "../../src/telemetry/spool.js";
import type { Sample, SpooledSample } from "../../src/telemetry/sample.js";
import { tempDir } from "../helpers/spool.js";

const sample = (n: number): Sample => ({ device: `d${n % 7}`, type: "thermostat", measurement: "thermostat", time: 1_700_000_000_000 + n, tags: {}, fields: { n } });

t.test("a commit of 85 + 3 samples: consecutive seqs, each on its own row, replayed in order after reopening", async (t) => {
  const dir = tempDir(t, "sb-spool-");
  const spool = openSpool({ dataDir: dir, maxBytes: 1 << 30 });
  // 85 = 64 + 16 + 4 + 1: every statement size in one transaction.
  const first = await Promise.all(Array.from({ length: 85 }, (_, i) => spool.append(sample(i))));
  const second = await Promise.all(Array.from({ length: 3 }, (_, i) => spool.append(sample(85 + i))));
  const all: SpooledSample[] = [...first, ...second];
  t.same(all.map((s) => s.seq), all.map((_, i) => all[0]!.seq + i), "seqs are consecutive in append order");
  t.same(all.map((s) => s.fields.n), all.map((_, i) => i), "each resolved sample is the one appended");
  spool.ack(all[9]!.seq);
  await spool.close();

  const again = openSpool({ dataDir: dir, maxBytes: 1 << 30 });
  t.teardown(() => again.close());
  t.equal(again.depth, 78, "the unacknowledged samples are still there");
  const replayed = again.peek(100);
  t.same(replayed.map((s) => s.seq), all.slice(10).map((s) => s.seq), "replayed with their seqs, in order");
  t.same(replayed.map((s) => [s.device, s.time, s.fields.n]), all.slice(10).map((s) => [s.device, s.time, s.fields.n]), "each row holds its own sample");
});
