// Every bad input of the XMPP edge (docs/xmpp.md, Limits and bad input), over a raw
// socket. After each case a second, logged-in client must still answer: one bad
// stream ends only itself.
import t, { type Test } from "tap";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { RawClient, STREAM_OPEN, witness as startWitness } from "../helpers/raw.js";
import { scramClient } from "../helpers/scram-client.js";

const SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const accounts = [
  { name: "op1", role: "operator" as const, password: "pw1" },
  { name: "op2", role: "operator" as const, password: "pw2" },
  { name: "watch", role: "operator" as const, password: "pw3" },
  { name: "dev1", role: "device" as const, type: "thermostat", password: "pw4" },
];

let broker: TestBroker;
let witness: Awaited<ReturnType<typeof startWitness>>;

t.before(async () => {
  broker = await startTestBroker({ xmpp: { negotiationTimeoutMs: 1500 }, auth: { maxFailures: 1000, maxAccountFailures: 1000 } }, accounts);
  witness = await startWitness(broker.ports.xmpp, "watch", "pw3");
});
t.teardown(async () => {
  witness.client.close();
  await broker.close();
});

const witnessAlive = (t: Test) => witness.alive(t);

async function opened(): Promise<RawClient> {
  const c = await RawClient.connect(broker.ports.xmpp);
  c.send(STREAM_OPEN());
  await c.expect(/<\/stream:features>/);
  return c;
}

async function loggedIn(user = "op1", password = "pw1"): Promise<RawClient> {
  const c = await RawClient.connect(broker.ports.xmpp);
  await c.login(user, password);
  return c;
}

/** op1 and op2 logged in, op2 available: a message from a to op2@localhost reaches b. */
async function messagePair(): Promise<{ a: RawClient; b: RawClient }> {
  const a = await loggedIn("op1", "pw1");
  const b = await loggedIn("op2", "pw2");
  b.send("<presence/>");
  await b.expect(/<presence[^>]*>/);
  return { a, b };
}

async function streamError(t: Test, c: RawClient, condition: string): Promise<void> {
  await c.expect(new RegExp(`<stream:error><${condition} xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>`));
  await c.waitClosed();
  t.pass(`stream error ${condition}, connection closed`);
  await witnessAlive(t);
}

t.test("malformed XML: not-well-formed", async (t) => {
  for (const bad of ["<message><body>hi</message>", "<message to='a@localhost' to='b@localhost'/>", "<a b=c/>", "</stream:features>"]) {
    const c = await loggedIn();
    c.send(bad);
    await streamError(t, c, "not-well-formed");
  }
});

t.test("restricted XML: DTD, entity declaration, entity reference, PI, comment", async (t) => {
  const cases: Array<[string, boolean]> = [
    ["<?xml version='1.0'?><!DOCTYPE stream:stream>", false],
    [`<?xml version='1.0'?><!DOCTYPE x [<!ENTITY boom 'aaaaaaaaaa'>]>`, false],
    ["<message to='op2@localhost'><body>&boom;</body></message>", true],
    ["<?php echo 1; ?>", true],
    ["<message to='op2@localhost'><!-- hidden --><body>x</body></message>", true],
    ["<!-- comment between stanzas -->", true],
  ];
  for (const [bad, afterOpen] of cases) {
    const c = afterOpen ? await loggedIn() : await RawClient.connect(broker.ports.xmpp);
    c.send(bad);
    await streamError(t, c, "restricted-xml");
  }
});

t.test("the five predefined entities and character references are fine", async (t) => {
  const { a, b } = await messagePair();
  a.send("<message to='op2@localhost' type='chat'><body>&lt;&gt;&amp;&apos;&quot;&#65;&#x42;</body></message>");
  await b.expect(/<body>&lt;&gt;&amp;'"AB<\/body>/);
  a.close();
  b.close();
});

t.test("stanza over xmpp.maxStanzaBytes: policy-violation", async (t) => {
  const c = await loggedIn();
  c.send(`<message to='op2@localhost'><body>${"a".repeat(70_000)}</body></message>`);
  await streamError(t, c, "policy-violation");
});

t.test("a stanza that never closes is cut off at the limit, not buffered", async (t) => {
  const c = await loggedIn();
  c.send("<message to='op2@localhost'><body>");
  const before = process.memoryUsage().heapUsed;
  const chunk = "b".repeat(16 * 1024);
  // Offer 8 MB; the server must close long before taking it all.
  let sent = 0;
  while (!c.closed && sent < 8 * 1024 * 1024) {
    const ok = c.socket.write(chunk);
    sent += chunk.length;
    if (!ok) await new Promise((r) => c.socket.once("drain", r).once("close", r));
  }
  await streamError(t, c, "policy-violation");
  t.ok(sent < 8 * 1024 * 1024, `closed after ${sent} bytes offered`);
  const grown = process.memoryUsage().heapUsed - before;
  t.ok(grown < 4 * 1024 * 1024, `heap grew by ${Math.round(grown / 1024)} KiB only`);
});

t.test("more than 10,000 child elements: policy-violation", async (t) => {
  const c = await loggedIn();
  c.send(`<message to='op2@localhost'>${"<x/>".repeat(10_001)}</message>`);
  await streamError(t, c, "policy-violation");
});

t.test("before authentication: a stanza over 10,000 bytes is a policy-violation", async (t) => {
  const c = await opened();
  c.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>${"A".repeat(12_000)}</auth>`);
  await streamError(t, c, "policy-violation");
});

t.test("before authentication: idle in negotiation ends with connection-timeout", async (t) => {
  const c = await opened();
  const started = Date.now();
  await c.expect(/<stream:error><connection-timeout xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/, 5000);
  t.ok(Date.now() - started >= 1000, "not before the configured time");
  await c.waitClosed();
  await witnessAlive(t);
});

t.test("wrong stream namespace: invalid-namespace; unknown domain: host-unknown", async (t) => {
  const cases: Array<[string, string]> = [
    [`<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`, "invalid-namespace"],
    [`<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='urn:wrong' version='1.0'>`, "invalid-namespace"],
    [`<?xml version='1.0'?><stream to='localhost' xmlns='jabber:client' version='1.0'>`, "invalid-namespace"],
    [STREAM_OPEN("example.org"), "host-unknown"],
  ];
  for (const [open, condition] of cases) {
    const c = await RawClient.connect(broker.ports.xmpp);
    c.send(open);
    // The server answers with its own header first (RFC 6120 §4.9.1.1), then the error.
    await c.expect(/<stream:stream [^>]*>/);
    await streamError(t, c, condition);
  }
});

t.test("a stanza before authentication: not-authorized", async (t) => {
  for (const stanza of ["<message to='op2@localhost'><body>hi</body></message>", "<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>", "<presence/>"]) {
    const c = await opened();
    c.send(stanza);
    await streamError(t, c, "not-authorized");
  }
});

/** Opens a stream, upgrades to TLS and returns a client at the SASL step. */
async function atSasl(): Promise<RawClient> {
  const c = await opened();
  await c.startTls();
  c.send(STREAM_OPEN());
  const features = await c.expect(/<stream:features>.*<\/stream:features>/s);
  t.match(features[0], /<mechanism>SCRAM-SHA-256<\/mechanism><mechanism>SCRAM-SHA-1<\/mechanism><mechanism>PLAIN<\/mechanism>/);
  return c;
}
const plain = (authzid: string, user: string, pw: string) => Buffer.from(`${authzid}\0${user}\0${pw}`).toString("base64");
const saslFailure = (condition: string) => new RegExp(`<failure xmlns="${SASL}"><${condition}/>`);
/** PLAIN with these credentials on `c`, refused with `condition`. */
async function plainRefused(c: RawClient, authzid: string, user: string, pw: string, condition: string): Promise<void> {
  c.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>${plain(authzid, user, pw)}</auth>`);
  await c.expect(saslFailure(condition));
}

t.test("SASL failures: wrong password, unknown user, bad proof, bad base64", async (t) => {
  const c = await atSasl();
  await plainRefused(c, "", "op1", "wrong", "not-authorized");
  await plainRefused(c, "", "nobody", "pw1", "not-authorized");
  for (const hash of ["sha1", "sha256"] as const) {
    const scram = scramClient(hash, "op1", "pw1");
    c.send(`<auth xmlns='${SASL}' mechanism='SCRAM-SHA-${hash === "sha1" ? "1" : "256"}'>${scram.first}</auth>`);
    const challenge = await c.expect(/<challenge xmlns="[^"]+">([^<]+)<\/challenge>/);
    c.send(`<response xmlns='${SASL}'>${scram.final(challenge[1]!, { corruptProof: true })}</response>`);
    await c.expect(saslFailure("not-authorized"));
  }
  t.pass("four failures answered, the stream is still open");
  c.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>not*base64!</auth>`);
  await c.expect(saslFailure("malformed-request"));
  // The fifth failure on one stream closes it (RFC 6120 §6.4.5 allows 2 to 5 retries).
  await c.expect(/<stream:error><policy-violation/);
  await c.waitClosed();
  await witnessAlive(t);
});

t.test("SCRAM with an unknown user fails like a wrong password, after a normal-looking challenge", async (t) => {
  const c = await atSasl();
  const scram = scramClient("sha256", "nobody", "pw1");
  c.send(`<auth xmlns='${SASL}' mechanism='SCRAM-SHA-256'>${scram.first}</auth>`);
  const challenge = await c.expect(/<challenge xmlns="[^"]+">([^<]+)<\/challenge>/);
  t.match(Buffer.from(challenge[1]!, "base64").toString(), /^r=[^,]+,s=[^,]+,i=4096$/);
  c.send(`<response xmlns='${SASL}'>${scram.final(challenge[1]!)}</response>`);
  await c.expect(saslFailure("not-authorized"));
  c.close();
});

t.test("SCRAM succeeds with the right password and the server signature verifies", async (t) => {
  const c = await atSasl();
  const scram = scramClient("sha1", "op1", "pw1");
  c.send(`<auth xmlns='${SASL}' mechanism='SCRAM-SHA-1'>${scram.first}</auth>`);
  const challenge = await c.expect(/<challenge xmlns="[^"]+">([^<]+)<\/challenge>/);
  c.send(`<response xmlns='${SASL}'>${scram.final(challenge[1]!)}</response>`);
  const success = await c.expect(/<success xmlns="[^"]+">([^<]+)<\/success>/);
  t.match(Buffer.from(success[1]!, "base64").toString(), /^v=/);
  c.close();
});

t.test("an authzid naming another account: invalid-authzid, never a session as that account", async (t) => {
  const c = await atSasl();
  await plainRefused(c, "op2@localhost", "op1", "pw1", "invalid-authzid");
  await plainRefused(c, "op2", "op1", "pw1", "invalid-authzid");
  const scram = scramClient("sha256", "op1", "pw1", "op2@localhost");
  c.send(`<auth xmlns='${SASL}' mechanism='SCRAM-SHA-256'>${scram.first}</auth>`);
  await c.expect(saslFailure("invalid-authzid"));
  // An authzid naming oneself is fine, and the session is op1's.
  c.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>${plain("op1@localhost", "op1", "pw1")}</auth>`);
  await c.expect(/<success/);
  c.send(STREAM_OPEN());
  await c.expect(/<\/stream:features>/);
  c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
  const jid = await c.expect(/<jid>([^<]+)<\/jid>/);
  t.match(jid[1], /^op1@localhost\//);
  c.close();
  await witnessAlive(t);
});

t.test("TLS required: no mechanism offered before STARTTLS; forced PLAIN gets encryption-required", async (t) => {
  const c = await RawClient.connect(broker.ports.xmpp);
  c.send(STREAM_OPEN());
  const features = await c.expect(/<stream:features>.*<\/stream:features>/s);
  t.match(features[0], /<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"><required\/><\/starttls>/);
  t.notMatch(features[0], /mechanism/);
  await plainRefused(c, "", "op1", "pw1", "encryption-required");
  await c.waitClosed();
  await witnessAlive(t);
});

t.test("a spoofed from is replaced by the session's full JID", async (t) => {
  const { a, b } = await messagePair();
  a.send("<message to='op2@localhost' from='dev1@localhost/mqtt' type='chat'><body>who am I</body></message>");
  const m = await b.expect(/<message[^>]*>/);
  t.match(m[0], /from="op1@localhost\/[^"]+"/);
  t.notMatch(m[0], /dev1/);
  a.close();
  b.close();
});

t.test("repeated failures from one address are banned, whatever the password", async (t) => {
  const strict = await startTestBroker({ auth: { maxFailures: 4, banMs: 60_000 } }, accounts);
  t.teardown(() => strict.close());
  const other = await RawClient.connect(strict.ports.xmpp);
  await other.login("watch", "pw3");
  const attempt = async (password: string): Promise<string> => {
    const c = await RawClient.connect(strict.ports.xmpp);
    await c.secureStream();
    const started = Date.now();
    c.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>${plain("", "op1", password)}</auth>`);
    const m = await c.expect(/<success[^>]*\/>|<failure[^>]*>.*?<\/failure>/s);
    t.ok(Date.now() - started < 1000, "answered at once");
    c.close();
    return m[0];
  };
  for (let i = 0; i < 4; i++) t.match(await attempt(`wrong${i}`), /not-authorized/, `failure ${i + 1} is a plain failure`);
  const banned = await attempt("pw1");
  t.match(banned, /temporary-auth-failure/, "the right password is refused while the address is banned");
  t.match(banned, /try again after \d{4}-\d\d-\d\dT/, "the text says until when");
  t.ok(strict.logs.some((l) => /"msg":"login banned"/.test(l) && /"scope":"address"/.test(l)), "one log line for the ban");
  // Other sessions never stalled.
  other.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  await other.expect(/type="result"/);
  other.close();
});
