// The spool's row format (src/telemetry/spool-rows.ts), shared by the spool, its
// reader and the embedded store: a line per sample that survives any value, and a
// row's lines numbered from its first seq.
import t from "tap";
import { lineBytes, lineHead, parseSampleLine, rowLines, rowText, sampleLine, splitLine } from "../../src/telemetry/spool-rows.js";
import type { Sample } from "../../src/telemetry/sample.js";

const withJson = (s: Sample): Sample => ({ ...s, tagsJson: JSON.stringify(s.tags), fieldsJson: JSON.stringify(s.fields) });

t.test("a line holds its sample whole: tabs, line breaks and non-ASCII in values, with and without a point time", async (t) => {
  const odd = withJson({ device: "d\t1", type: "thermo\nstat", measurement: "é", time: 1_700_000_000_000, tags: { site: "a\tb" }, fields: { note: "x\ny", on: true, t: 21.5 }, pointNs: "1700000000000000042" });
  const plain = withJson({ device: "d2", type: "thermostat", measurement: "thermostat", time: 1_700_000_000_001, tags: {}, fields: { n: 1 } });
  for (const s of [odd, plain]) {
    const line = sampleLine(s);
    t.notOk(line.includes("\n"), "no raw line break in a line");
    t.equal(line.split("\t").length, 3, "exactly two tabs: head, tags, fields");
    t.ok(line.startsWith(lineHead(s)), "it starts with the device's head");
    t.same(parseSampleLine(line, 7), { ...s, seq: 7 }, "read back as the same sample, numbered");
  }
  t.equal(parseSampleLine(sampleLine(plain), 1).pointNs, undefined, "no point time is read back as none");
  const [head, tags, fields] = splitLine(sampleLine(odd));
  t.same(head, ["d\t1", "thermo\nstat", "é", 1_700_000_000_000, "1700000000000000042"]);
  t.equal(tags, odd.tagsJson, "the tags JSON is kept as text");
  t.equal(fields, odd.fieldsJson, "the fields JSON is kept as text");
  t.equal(lineBytes("abc"), 4, "a line counts with its line break");
});

t.test("a row's lines are its seqs in order from first_seq; a range (from, to] picks its lines", async (t) => {
  const row = { first_seq: 10, rows: rowText(["a", "b", "c", "d", "e"]) };
  const visit = (from: number, to: number, stopAt?: number) => {
    const seen: Array<[string, number]> = [];
    const whole = rowLines(row, from, to, (line, seq) => {
      seen.push([line, seq]);
      return seq !== stopAt;
    });
    return { seen, whole };
  };
  t.same(visit(0, 100).seen, [["a", 10], ["b", 11], ["c", 12], ["d", 13], ["e", 14]], "the whole row");
  t.same(visit(11, 13).seen, [["c", 12], ["d", 13]], "from is excluded, to included");
  t.same(visit(14, 100).seen, [], "a range after the row");
  t.same(visit(0, 9).seen, [], "a range before the row");
  t.same(visit(0, 100, 11), { seen: [["a", 10], ["b", 11]], whole: false }, "a visit that returns false stops the walk");
  t.same(visit(0, 100).whole, true);
});
