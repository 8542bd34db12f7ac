// The spool alone: samples appended in one turn share a commit, stored as one row with
// a line per sample; each sample must get its own seq, in order, and a row the store
// has only partly confirmed must be replayed from the first unconfirmed sample.
import t from "tap";
import { openSpool, SpoolFullError } from "../../src/telemetry/spool.js";
import type { Sample, SpooledSample } from "../../src/telemetry/sample.js";
import { tempDir } from "../helpers/temp-dir.js";

const sample = (n: number): Sample => ({ device: `d${n % 7}`, type: "thermostat", measurement: "thermostat", time: 1_700_000_000_000 + n, tags: {}, fields: { n } });

t.test("a commit of 85 + 3 samples: consecutive seqs, replayed in order after reopening from the first unconfirmed one", async (t) => {
  const dir = tempDir(t, "sb-spool-");
  const spool = openSpool({ dataDir: dir, maxBytes: 1 << 30 });
  const first = await Promise.all(Array.from({ length: 85 }, (_, i) => spool.append(sample(i))));
  const second = await Promise.all(Array.from({ length: 3 }, (_, i) => spool.append(sample(85 + i))));
  const all: SpooledSample[] = [...first, ...second];
  t.same(all.map((s) => s.seq), all.map((_, i) => all[0]!.seq + i), "seqs are consecutive in append order");
  t.same(all.map((s) => s.fields.n), all.map((_, i) => i), "each resolved sample is the one appended");
  // Ten of the first commit's 85 confirmed: its row stays, for the other 75.
  spool.ack(all[9]!.seq);
  const bytes = spool.bytes;
  t.equal(spool.depth, 78);
  await spool.close();

  const again = openSpool({ dataDir: dir, maxBytes: 1 << 30 });
  t.teardown(() => again.close());
  t.equal(again.depth, 78, "the unacknowledged samples are still there");
  t.equal(again.bytes, bytes, "and counted with the same size");
  const replayed = again.peek(100);
  t.same(replayed.map((s) => s.seq), all.slice(10).map((s) => s.seq), "replayed with their seqs, in order");
  t.same(replayed.map((s) => [s.device, s.time, s.fields.n]), all.slice(10).map((s) => [s.device, s.time, s.fields.n]), "each line holds its own sample");
  t.same(again.peek(5).map((s) => s.seq), all.slice(10, 15).map((s) => s.seq), "a peek stops at its limit");
  // Confirming part of the replayed backlog (read from the table, not the tail).
  again.ack(all[50]!.seq);
  t.equal(again.depth, 37);
  t.same(again.peek(100).map((s) => s.seq), all.slice(51).map((s) => s.seq));
  again.ack(all[87]!.seq);
  t.equal(again.depth, 0);
  t.equal(again.bytes, 0, "nothing left, no bytes left");
});

t.test("a spool confirmed to its end: reopened empty, and new samples numbered after the old ones", async (t) => {
  const dir = tempDir(t, "sb-spool-");
  const spool = openSpool({ dataDir: dir, maxBytes: 1 << 30 });
  const old = await Promise.all(Array.from({ length: 5 }, (_, i) => spool.append(sample(i))));
  spool.ack(old[4]!.seq);
  await spool.close();
  const again = openSpool({ dataDir: dir, maxBytes: 1 << 30 });
  t.teardown(() => again.close());
  t.equal(again.depth, 0);
  t.same(again.peek(10), []);
  const next = await again.append(sample(5));
  t.ok(next.seq > old[4]!.seq, `seq ${next.seq} after the confirmed ${old[4]!.seq}: not taken for confirmed already`);
  t.same(again.peek(10).map((s) => s.seq), [next.seq]);
});

t.test("tabs and line breaks in values, and a sample without a point time, survive a reopen", async (t) => {
  const dir = tempDir(t, "sb-spool-");
  const spool = openSpool({ dataDir: dir, maxBytes: 1 << 30 });
  const odd: Sample = { device: "d\t1", type: "thermostat", measurement: "thermostat", time: 1_700_000_000_000, tags: { site: "a\tb" }, fields: { note: "x\ny" }, pointNs: "1700000000000000042" };
  const [a, b] = await Promise.all([spool.append(odd), spool.append(sample(2))]);
  await spool.close();
  const again = openSpool({ dataDir: dir, maxBytes: 1 << 30 });
  t.teardown(() => again.close());
  const [ra, rb] = again.peek(10);
  t.match(ra, { seq: a.seq, device: "d\t1", time: 1_700_000_000_000, tags: { site: "a\tb" }, fields: { note: "x\ny" }, pointNs: "1700000000000000042" });
  t.match(rb, { seq: b.seq, device: "d2", fields: { n: 2 }, pointNs: undefined });
});

t.test("appendThen: answers in commit order; a callback that throws does not keep the rest of its commit from theirs", async (t) => {
  const dir = tempDir(t, "sb-spool-");
  const errors: Error[] = [];
  const spool = openSpool({ dataDir: dir, maxBytes: 1 << 30, onError: (e) => errors.push(e) });
  t.teardown(() => spool.close());
  const answered: number[] = [];
  await new Promise<void>((resolve) => {
    for (let i = 0; i < 5; i++) {
      spool.appendThen(sample(i), (err, s) => {
        t.equal(err, null);
        answered.push(s!.fields.n as number);
        if (i === 1) throw new Error("a broken callback");
        if (i === 4) resolve();
      });
    }
  });
  t.same(answered, [0, 1, 2, 3, 4], "all five answered, in order");
  t.match(errors.map((e) => e.message), ["a broken callback"], "the throw reported to onError");
  t.equal(spool.committed, 5, "all five committed");
});

t.test("appendThen at the disk cap: refused at once, with the reason", async (t) => {
  const dir = tempDir(t, "sb-spool-");
  const spool = openSpool({ dataDir: dir, maxBytes: 10 });
  t.teardown(() => spool.close());
  let answer: [Error | null, unknown] | null = null;
  spool.appendThen(sample(1), (err, s) => void (answer = [err, s]));
  t.ok(answer![0] instanceof SpoolFullError, "answered synchronously, refused");
  t.match(answer![0]!.message, /telemetry spool full \(10 bytes\)/);
  t.equal(answer![1], null);
  t.equal(spool.depth, 0);
});
