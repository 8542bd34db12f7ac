// The stream reader alone, fed in-memory strings: no sockets.
import t from "tap";
import type { Element } from "@xmpp/xml";
import { XMLStreamReader } from "../../src/xmpp/xml-stream.js";
import type { StreamError } from "../../src/xmpp/errors.js";

function reader(limits = { maxStanzaBytes: 1000, maxChildren: 10, maxDepth: 8 }) {
  const got = { starts: [] as string[], stanzas: [] as Element[], ends: 0, errors: [] as StreamError[] };
  const r = new XMLStreamReader(limits, {
    streamStart: (name) => got.starts.push(name),
    stanza: (el) => got.stanzas.push(el),
    streamEnd: () => got.ends++,
    error: (e) => got.errors.push(e),
  });
  return { r, got };
}
const OPEN = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

t.test("stanzas are built whole, however the input is split", async (t) => {
  const text = `${OPEN}<message to='a@b'><body>h&amp;i</body></message> <presence/><iq id='1'><![CDATA[<x>]]></iq></stream:stream>`;
  for (const size of [1, 3, 7, text.length]) {
    const { r, got } = reader();
    for (let i = 0; i < text.length; i += size) r.write(text.slice(i, i + size));
    t.same(got.starts, ["stream:stream"]);
    t.same(got.stanzas.map((s) => s.toString()), ['<message to="a@b"><body>h&amp;i</body></message>', "<presence/>", '<iq id="1">&lt;x&gt;</iq>'], `chunks of ${size}`);
    t.equal(got.ends, 1);
    t.same(got.errors, []);
    t.equal(got.stanzas[0]!.parent, null, "stanzas are detached from the stream");
  }
});

t.test("restricted XML and malformed XML", async (t) => {
  const cases: Array<[string, string]> = [
    [`<!DOCTYPE x>${OPEN}`, "restricted-xml"],
    [`${OPEN}<!-- c -->`, "restricted-xml"],
    [`${OPEN}<?pi?>`, "restricted-xml"],
    [`${OPEN}<m>&nbsp;</m>`, "restricted-xml"],
    [`${OPEN}<m></n>`, "not-well-formed"],
    [`${OPEN}<m a='1' a='2'/>`, "not-well-formed"],
    [`${OPEN}</x>`, "not-well-formed"],
    [`${OPEN}text<m/>`, "bad-format"],
  ];
  for (const [input, condition] of cases) {
    const { r, got } = reader();
    r.write(input);
    t.equal(got.errors[0]?.condition, condition, input);
    t.equal(got.stanzas.length, 0, "nothing delivered from a bad stanza");
    r.write("<more/>");
    t.equal(got.errors.length, 1, "one error, then silence");
  }
});

t.test("size and fan-out limits", async (t) => {
  const big = reader();
  big.r.write(OPEN);
  big.r.write(`<m>${"x".repeat(999)}`);
  t.equal(big.got.errors[0]?.condition, "policy-violation", "an open stanza over the limit");
  const wide = reader();
  wide.r.write(`${OPEN}<m>${"<c/>".repeat(11)}</m>`);
  t.equal(wide.got.errors[0]?.condition, "policy-violation", "too many children");
  const ok = reader();
  ok.r.write(OPEN);
  for (let i = 0; i < 50; i++) ok.r.write(`<m>${"x".repeat(900)}</m>`);
  t.same(ok.got.errors, [], "many stanzas each under the limit are fine");
  t.equal(ok.got.stanzas.length, 50);
  const ws = reader();
  ws.r.write(OPEN);
  for (let i = 0; i < 2000; i++) ws.r.write(" ");
  ws.r.write("<m/>");
  t.same(ws.got.errors, [], "whitespace keepalives never add up to a stanza");
});

t.test("input that never ends is refused as it arrives, at any depth", async (t) => {
  const cases: Array<[string, string, string]> = [
    ["a stream header with a huge attribute", "", `<stream:stream xmlns='jabber:client' to='${"x".repeat(600)}`],
    ["a stream header that never closes", "", `<stream:stream xmlns='jabber:client' `],
    ["an open tag that never closes", OPEN, "<message to='a@b' "],
    ["an attribute value that never closes", OPEN, "<message to='"],
    ["a text node that never ends", OPEN, "<message><body>"],
    ["a top-level text run", OPEN, "<m/>   x"],
  ];
  for (const [what, prefix, start] of cases) {
    const { r, got } = reader();
    r.write(prefix + start);
    for (let i = 0; i < 200 && got.errors.length === 0; i++) r.write("y".repeat(64));
    t.equal(got.errors[0]?.condition, "policy-violation", what);
    t.ok(got.errors.length === 1, `${what}: one error`);
  }
  const header = reader();
  header.r.write(`<stream:stream xmlns='jabber:client' a='${"x".repeat(2000)}'>`);
  t.equal(header.got.errors[0]?.condition, "policy-violation", "a complete header over the limit");
  t.match(header.got.errors[0]?.text ?? "", /stream header/);
});

t.test("nesting deeper than the limit is refused before it is built", async (t) => {
  const deep = reader({ maxStanzaBytes: 1_000_000, maxChildren: 100_000, maxDepth: 64 });
  deep.r.write(OPEN + "<a>".repeat(8000));
  t.equal(deep.got.errors[0]?.condition, "policy-violation");
  t.match(deep.got.errors[0]?.text ?? "", /nested deeper than 64/);
  const ok = reader({ maxStanzaBytes: 1_000_000, maxChildren: 100_000, maxDepth: 64 });
  ok.r.write(OPEN + "<a>".repeat(64) + "</a>".repeat(64));
  t.same(ok.got.errors, [], "64 levels are fine");
  t.equal(ok.got.stanzas.length, 1);
});

t.test("whitespace keepalives alone, in their own chunks, cost nothing", async (t) => {
  const { r, got } = reader();
  r.write(OPEN);
  r.write("<m/>");
  for (let i = 0; i < 100_000; i++) r.write(" ");
  r.write("\n\n<m/>");
  t.same(got.errors, []);
  t.equal(got.stanzas.length, 2);
});
