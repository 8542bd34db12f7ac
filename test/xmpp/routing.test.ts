// Routing rules of RFC 6120 §8/§10 and RFC 6121 §8 between real sessions, and the
// errors for everything that cannot be delivered.
import t from "tap";
import { passwordOf, testAccounts } from "../helpers/accounts.js";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { online as onlineClient, RawClient } from "../helpers/raw.js";

const accounts = testAccounts({ op1: "operator", op2: "operator", svc: "service", dev1: "thermostat", dev2: "door-sensor" });

let broker: TestBroker;
t.before(async () => void (broker = await startTestBroker({}, accounts)));
t.teardown(() => broker.close());

/** `user` logged in (with `resource`) and, unless `presence` is false, available. */
async function online(user: string, resource?: string, presence = true): Promise<{ c: RawClient; jid: string }> {
  const pw = passwordOf(accounts, user);
  if (presence) {
    const c = await onlineClient(broker.ports.xmpp, user, pw, { resource });
    return { c, jid: c.jid };
  }
  const c = await RawClient.connect(broker.ports.xmpp);
  return { c, jid: await c.login(user, pw, { resource }) };
}

const errorOf = (condition: string) => new RegExp(`type="error".*?<${condition} xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>`, "s");

t.test("messages to full and bare JIDs", async (t) => {
  const a = await online("op1", "a");
  const b = await online("op2", "b");
  a.c.send("<message to='op2@localhost/b' type='chat' id='m1'><body>full</body></message>");
  const m1 = await b.c.expect(/<message[^>]*id="m1"[^>]*>.*?<\/message>/s);
  t.match(m1[0], /from="op1@localhost\/a"/);
  t.match(m1[0], /<body>full<\/body>/);
  a.c.send("<message to='op2@localhost' type='chat' id='m2'><body>bare</body></message>");
  await b.c.expect(/<message[^>]*id="m2"/);
  // A full JID whose resource is gone: treated as the bare JID (RFC 6121 §8.5.3.2.1).
  a.c.send("<message to='op2@localhost/gone' type='chat' id='m3'><body>x</body></message>");
  await b.c.expect(/<message[^>]*id="m3"/);
  a.c.close();
  b.c.close();
});

t.test("undeliverable messages: offline or unknown account, remote domain, malformed JID", async (t) => {
  const a = await online("op1");
  a.c.send("<message to='op2@localhost' type='chat' id='off'><body>x</body></message>");
  t.match((await a.c.expect(/<message[^>]*id="off".*?<\/message>/s))[0], errorOf("service-unavailable"));
  a.c.send("<message to='nobody@localhost' id='unk'><body>x</body></message>");
  t.match((await a.c.expect(/<message[^>]*id="unk".*?<\/message>/s))[0], errorOf("service-unavailable"));
  a.c.send("<message to='someone@example.org' id='rem'><body>x</body></message>");
  t.match((await a.c.expect(/<message[^>]*id="rem".*?<\/message>/s))[0], errorOf("remote-server-not-found"));
  for (const bad of ["a@b@localhost", "@localhost", "user@", "us er@localhost", "localhost/", "a@-bad-.com"]) {
    a.c.send(`<message to='${bad}' id='bad'><body>x</body></message>`);
    t.match((await a.c.expect(/<message[^>]*id="bad".*?<\/message>/s))[0], errorOf("jid-malformed"), bad);
  }
  // An error is never answered with an error (RFC 6120 §8.3.1).
  a.c.send("<message to='nobody@localhost' type='error' id='e'><body>x</body></message>");
  a.c.send("<iq type='get' id='after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  const next = await a.c.expect(/<(message|iq)[^>]*>/);
  t.match(next[0], /id="after"/, "no error bounced for an error");
  a.c.close();
});

t.test("IQ shape and routing errors", async (t) => {
  const a = await online("op1", "a");
  const b = await online("op2", "b");
  // Each IQ and the error it gets (RFC 6120 §8.2.3, §8.3.3); the first one has no id to match on.
  const ping = "<ping xmlns='urn:xmpp:ping'/>";
  const version = "<query xmlns='jabber:iq:version'/>";
  const cases: Array<{ what: string; iq: string; id?: string; condition: string }> = [
    { what: "no id", iq: `<iq type='get' to='localhost'>${ping}</iq>`, condition: "bad-request" },
    { what: "two children", id: "two", iq: `<iq type='get' id='two' to='localhost'>${ping}${ping}</iq>`, condition: "bad-request" },
    { what: "no child", id: "none", iq: "<iq type='get' id='none' to='localhost'/>", condition: "bad-request" },
    { what: "bad type", id: "type", iq: `<iq type='fetch' id='type' to='localhost'>${ping}</iq>`, condition: "bad-request" },
    { what: "unknown account", id: "unk", iq: `<iq type='get' id='unk' to='nobody@localhost'>${version}</iq>`, condition: "service-unavailable" },
    { what: "offline resource", id: "gone", iq: `<iq type='get' id='gone' to='op2@localhost/gone'>${version}</iq>`, condition: "service-unavailable" },
    { what: "unhandled namespace: the single fallback", id: "srv", iq: "<iq type='get' id='srv' to='localhost'><query xmlns='urn:example:nothing'/></iq>", condition: "service-unavailable" },
    { what: "malformed JID", id: "jm", iq: `<iq type='get' id='jm' to='a@b@localhost'>${ping}</iq>`, condition: "jid-malformed" },
  ];
  for (const c of cases) {
    a.c.send(c.iq);
    const answer = c.id ? new RegExp(`<iq[^>]*id="${c.id}".*?</iq>`, "s") : /<iq[^>]*>.*?<\/iq>/s;
    t.match((await a.c.expect(answer))[0], errorOf(c.condition), c.what);
  }
  // IQ between two resources, and its result back.
  a.c.send("<iq type='get' id='v1' to='op2@localhost/b'><query xmlns='jabber:iq:version'/></iq>");
  const got = await b.c.expect(/<iq[^>]*id="v1"[^>]*>/);
  t.match(got[0], /from="op1@localhost\/a"/);
  b.c.send("<iq type='result' id='v1' to='op1@localhost/a'><query xmlns='jabber:iq:version'><name>x</name></query></iq>");
  const res = await a.c.expect(/<iq[^>]*id="v1"[^>]*>.*?<\/iq>/s);
  t.match(res[0], /type="result"/);
  t.match(res[0], /from="op2@localhost\/b"/);
  a.c.close();
  b.c.close();
});

t.test("server features: ping, disco, session IQ, last activity of the server", async (t) => {
  const a = await online("op1");
  a.c.send("<iq type='set' id='s'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
  t.match((await a.c.expect(/<iq[^>]*id="s"[^>]*\/?>/))[0], /type="result"/);
  a.c.send("<iq type='get' id='d' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
  const info = (await a.c.expect(/<iq[^>]*id="d".*?<\/iq>/s))[0];
  t.match(info, /<identity category="server" type="im"/);
  for (const f of ["urn:xmpp:ping", "jabber:iq:last", "http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items"]) t.match(info, `var="${f}"`);
  a.c.send("<iq type='get' id='di' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
  t.match((await a.c.expect(/<iq[^>]*id="di".*?(<\/iq>|\/>)/s))[0], /type="result"/);
  a.c.send("<iq type='get' id='dn' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='nope'/></iq>");
  t.match((await a.c.expect(/<iq[^>]*id="dn".*?<\/iq>/s))[0], errorOf("item-not-found"));
  a.c.send("<iq type='get' id='up' to='localhost'><query xmlns='jabber:iq:last'/></iq>");
  t.match((await a.c.expect(/<iq[^>]*id="up".*?<\/iq>|<iq[^>]*id="up"[^>]*>.*?\/>/s))[0], /seconds="\d+"/);
  a.c.send("<iq type='get' id='db' to='dev1@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
  t.match((await a.c.expect(/<iq[^>]*id="db".*?<\/iq>/s))[0], /<identity category="account" type="registered"/);
  // Whitespace keepalives between stanzas are fine.
  a.c.send("   \n  ");
  a.c.send("<iq type='get' id='ka' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  await a.c.expect(/<iq[^>]*id="ka"[^>]*type="result"|<iq[^>]*type="result"[^>]*id="ka"/);
  a.c.close();
});

t.test("devices never address other devices; they may address services, operators and the server", async (t) => {
  const d1 = await online("dev1");
  const d2 = await online("dev2");
  const op = await online("op1");
  d1.c.send("<message to='dev2@localhost' id='x'><body>psst</body></message>");
  t.match((await d1.c.expect(/<message[^>]*id="x".*?<\/message>/s))[0], errorOf("forbidden"));
  d1.c.send(`<iq type='get' id='y' to='${d2.jid}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  t.match((await d1.c.expect(/<iq[^>]*id="y".*?<\/iq>/s))[0], errorOf("forbidden"));
  d1.c.send("<presence to='dev2@localhost' type='probe' id='z'/>");
  t.match((await d1.c.expect(/<presence[^>]*id="z".*?<\/presence>/s))[0], errorOf("forbidden"));
  d1.c.send("<iq type='get' id='l' to='dev2@localhost'><query xmlns='jabber:iq:last'/></iq>");
  t.match((await d1.c.expect(/<iq[^>]*id="l".*?<\/iq>/s))[0], errorOf("forbidden"));
  d1.c.send("<message to='op1@localhost' type='chat' id='ok'><body>hello operator</body></message>");
  await op.c.expect(/<message[^>]*id="ok"/);
  d1.c.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  await d1.c.expect(/<iq[^>]*id="p"/);
  // dev2's presence never reached dev1.
  t.notMatch(d1.c.buffer, /dev2@localhost/);
  t.notMatch(d2.c.buffer, /dev1@localhost/);
  for (const x of [d1, d2, op]) x.c.close();
});

t.test("resource conflict: the newer session wins, the older gets <conflict/>", async (t) => {
  const first = await online("op2", "same");
  const second = await online("op2", "same");
  t.equal(second.jid, "op2@localhost/same");
  await first.c.expect(/<stream:error><conflict xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/);
  await first.c.waitClosed();
  second.c.send("<iq type='get' id='alive' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  await second.c.expect(/id="alive"/);
  // A server-generated resource when none is asked for; `mqtt` is reserved for MQTT connections.
  const gen = await online("op2", undefined, false);
  t.match(gen.jid, /^op2@localhost\/sb-[0-9a-f]{12}$/);
  const mq = await online("dev1", "mqtt", false);
  t.not(mq.jid, "dev1@localhost/mqtt");
  for (const x of [second, gen, mq]) x.c.close();
});

t.test("clean </stream:stream>: the server closes its stream too", async (t) => {
  const a = await online("op1");
  a.c.send("</stream:stream>");
  await a.c.expect(/<\/stream:stream>/);
  await a.c.waitClosed();
  t.pass("closed");
});
