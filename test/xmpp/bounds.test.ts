// Input that never ends, over real sockets: a stream header with a huge attribute, a
// start tag, an attribute value or a text node that never closes, before and after
// authentication, and 8,000 nested elements. Each stream ends with policy-violation
// as soon as it passes its limit, the broker's memory stays bounded while ten such
// streams push megabytes, ill-formed UTF-8 ends the stream with unsupported-encoding,
// and a logged-in witness keeps working throughout.
import t, { type Test } from "tap";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { RawClient, STREAM_OPEN, witness as startWitness } from "../helpers/raw.js";

const accounts = [
  { name: "op1", role: "operator" as const, password: "pw1" },
  { name: "op2", role: "operator" as const, password: "pw2" },
  { name: "watch", role: "operator" as const, password: "pw3" },
];

let broker: TestBroker;
let witness: Awaited<ReturnType<typeof startWitness>>;
t.before(async () => {
  broker = await startTestBroker({ xmpp: { requireTls: false }, auth: { maxFailures: 1000, maxAccountFailures: 1000 } }, accounts);
  witness = await startWitness(broker.ports.xmpp, "watch", "pw3", { tls: false });
});
t.teardown(async () => {
  witness.client.close();
  await broker.close();
});

const witnessAlive = (t: Test) => witness.alive(t);

/**
 * Sends `start`, then `filler` repeatedly (up to `maxBytes`) until the server closes
 * the connection; returns how much was written and what the server said.
 */
async function pushUntilClosed(c: RawClient, start: string, filler: string, maxBytes = 8 * 1024 * 1024): Promise<{ sent: number; log: string }> {
  let sent = 0;
  c.send(start);
  while (!c.closed && sent < maxBytes) {
    const ok = c.socket.write(filler);
    sent += filler.length;
    if (!ok) await new Promise((r) => setTimeout(r, 5));
    else if (sent % (256 * 1024) < filler.length) await new Promise((r) => setImmediate(r));
  }
  await c.waitClosed(5000).catch(() => {});
  return { sent, log: c.log };
}

const filler = "x".repeat(16 * 1024);
const policyViolation = /<stream:error><policy-violation xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/;

const unauthenticated: Array<[string, string]> = [
  ["a stream header with an attribute that never ends", `<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' a='`],
  ["a stream header that never closes", `<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' `],
  ["a start tag that never closes", `${STREAM_OPEN()}<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' `],
  ["an attribute value that never closes", `${STREAM_OPEN()}<auth mechanism='`],
  ["a text node that never ends", `${STREAM_OPEN()}<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>`],
];

for (const [what, start] of unauthenticated) {
  t.test(`before authentication: ${what}`, async (t) => {
    const c = await RawClient.connect(broker.ports.xmpp);
    const { sent, log } = await pushUntilClosed(c, start, filler);
    t.match(log, policyViolation, "policy-violation");
    t.ok(c.closed, "connection closed");
    t.ok(sent < 2 * 1024 * 1024, `closed after ${Math.round(sent / 1024)} KiB were sent (limit 10 KB before authentication)`);
    await witnessAlive(t);
  });
}

const authenticated: Array<[string, string]> = [
  ["a start tag that never closes", "<message to='op2@localhost' "],
  ["an attribute value that never closes", "<message to='"],
  ["a text node that never ends", "<message to='op2@localhost'><body>"],
];
for (const [what, start] of authenticated) {
  t.test(`after authentication: ${what}`, async (t) => {
    const c = await RawClient.connect(broker.ports.xmpp);
    await c.login("op1", "pw1", { tls: false });
    const { sent, log } = await pushUntilClosed(c, start, filler);
    t.match(log, policyViolation, "policy-violation");
    t.ok(sent < 4 * 1024 * 1024, `closed after ${Math.round(sent / 1024)} KiB (limit 64 KiB)`);
    await witnessAlive(t);
  });
}

t.test("ten never-ending streams at once: the broker's memory stays bounded", async (t) => {
  globalThis.gc?.();
  const before = process.memoryUsage();
  const clients = await Promise.all(Array.from({ length: 10 }, () => RawClient.connect(broker.ports.xmpp)));
  const results = await Promise.all(clients.map((c, i) => pushUntilClosed(c, unauthenticated[i % unauthenticated.length]![1], filler)));
  const after = process.memoryUsage();
  for (const r of results) t.match(r.log, policyViolation);
  const grownMiB = (after.rss - before.rss) / 1024 / 1024;
  t.ok(grownMiB < 64, `RSS grew ${grownMiB.toFixed(1)} MiB while ten streams pushed ${(results.reduce((n, r) => n + r.sent, 0) / 1024 / 1024).toFixed(1)} MiB`);
  await witnessAlive(t);
});

t.test("8,000 nested elements inside both size limits end with policy-violation; the message is not half-delivered", async (t) => {
  const sender = await RawClient.connect(broker.ports.xmpp);
  await sender.login("op1", "pw1", { tls: false });
  const receiver = await RawClient.connect(broker.ports.xmpp);
  await receiver.login("op2", "pw2", { tls: false, resource: "r" });
  const body = "<a>".repeat(8000) + "</a>".repeat(8000);
  t.ok(body.length < 65536, `${body.length} characters: under maxStanzaBytes`);
  sender.send(`<message to='op2@localhost/r' type='chat'>${body}</message>`);
  await sender.expect(policyViolation);
  await sender.waitClosed();
  t.pass("the sender's stream ended with policy-violation");
  receiver.send("<iq type='get' id='r1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  await receiver.expect(/id="r1"/);
  t.notMatch(receiver.log, /<message/, "nothing reached the receiver");
  receiver.close();
  await witnessAlive(t);
});

t.test("ill-formed UTF-8 ends the stream with unsupported-encoding (RFC 6120 §11.6), before and after login", async (t) => {
  const bad = [Buffer.from([0xc0, 0xaf]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf4, 0x90, 0x80, 0x80]), Buffer.from([0xff])];
  for (const bytes of bad) {
    const c = await RawClient.connect(broker.ports.xmpp);
    await c.login("op1", "pw1", { tls: false });
    c.send(Buffer.concat([Buffer.from("<message to='op2@localhost' type='chat'><body>"), bytes, Buffer.from("</body></message>")]));
    await c.expect(/<stream:error><unsupported-encoding xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/);
    await c.waitClosed();
    t.pass(`bytes ${bytes.toString("hex")}: unsupported-encoding`);
  }
  const pre = await RawClient.connect(broker.ports.xmpp);
  pre.send(Buffer.concat([Buffer.from(STREAM_OPEN()), Buffer.from([0xc3])]));
  pre.send(Buffer.from([0x28]));
  await pre.expect(/unsupported-encoding/);
  t.pass("a sequence split across two reads is still checked");
  // A character split between reads is fine.
  const ok = await RawClient.connect(broker.ports.xmpp);
  await ok.login("op1", "pw1", { tls: false, resource: "split" });
  const text = Buffer.from("<message to='op1@localhost/split' type='chat'><body>é€😀</body></message>");
  for (const byte of text) ok.send(Buffer.from([byte]));
  await ok.expect(/<body>é€😀<\/body>/);
  t.pass("valid UTF-8 sent one byte at a time is delivered");
  ok.close();
  const metrics = await (await fetch(`http://127.0.0.1:${broker.ports.http}/metrics`)).text();
  t.match(metrics, /switchboard_xmpp_stream_errors_total\{condition="unsupported-encoding"\} [1-9]/);
  t.match(metrics, /switchboard_xmpp_stream_errors_total\{condition="policy-violation"\} [1-9]/);
  await witnessAlive(t);
});
