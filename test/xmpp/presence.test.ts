// Presence and roster (RFC 6121 §2, §4; docs/xmpp.md, Presence and roster): operators and services see
// every device; devices see no device; changes made by another process (the CLI)
// reach the roster; last activity is stored and answered (XEP-0012).
import t from "tap";
import { passwordOf, testAccounts } from "../helpers/accounts.js";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { RawClient } from "../helpers/raw.js";
import { openSqliteRegistry } from "../../src/registry/sqlite.js";
import { createCredentials } from "../../src/auth/credentials.js";

const accounts = testAccounts({ op1: "operator", svc: "service", dev1: "thermostat", dev2: "power-meter" });

let broker: TestBroker;
t.before(async () => void (broker = await startTestBroker({}, accounts)));
t.teardown(() => broker.close());

async function login(user: string, resource?: string): Promise<RawClient> {
  const c = await RawClient.connect(broker.ports.xmpp);
  await c.login(user, passwordOf(accounts, user), { resource });
  return c;
}

t.test("operator sees devices come and go; devices see no device", async (t) => {
  const op = await login("op1", "console");
  op.send("<presence/>");
  // RFC 6121 §4.2.2: the sending resource gets its own initial presence back.
  await op.expect(/<presence from="op1@localhost\/console" to="op1@localhost\/console"\/>/);
  // Initial presence: one unavailable presence per device that is offline (RFC 6121 §4.3.2).
  await op.expect(/<presence type="unavailable" from="dev1@localhost" to="op1@localhost\/console"\/>/);
  await op.expect(/<presence type="unavailable" from="dev2@localhost" to="op1@localhost\/console"\/>/);

  const d1 = await login("dev1", "fw");
  d1.send("<presence><status>warming up</status></presence>");
  const p = await op.expect(/<presence[^>]*from="dev1@localhost\/fw"[^>]*>.*?<\/presence>/s);
  t.match(p[0], /<status>warming up<\/status>/);
  t.notMatch(p[0], /type=/, "available");

  const d2 = await login("dev2", "fw");
  d2.send("<presence/>");
  await op.expect(/<presence[^>]*from="dev2@localhost\/fw"/);
  await d1.sync();
  t.notMatch(d1.buffer, /dev2/, "dev1 never sees dev2");

  // The operator's own presence reaches no device.
  await d2.sync();
  t.notMatch(d2.buffer, /op1@localhost/);

  // Clean close, then socket loss: both end in unavailable.
  d1.send("</stream:stream>");
  await op.expect(/<presence type="unavailable" from="dev1@localhost\/fw" to="op1@localhost\/console"\/>/);
  d2.socket.destroy();
  await op.expect(/<presence type="unavailable" from="dev2@localhost\/fw" to="op1@localhost\/console"\/>/);

  // A second operator login now gets the devices' last presence, dated (XEP-0203).
  const op2 = await login("op1", "second");
  op2.send("<presence/>");
  await op2.expect(/<presence type="unavailable" from="dev2@localhost"[^>]*>.*?<\/presence>/s);
  t.match(op2.log, /<presence type="unavailable" from="dev1@localhost" to="op1@localhost\/second"><delay xmlns="urn:xmpp:delay" from="localhost" stamp="\d{4}-\d\d-\d\dT[^"]+Z"\/><\/presence>/);
  // ... and the presence of the owner's other resource, which learns of the new one.
  t.match(op2.log, /<presence[^>]*from="op1@localhost\/console"/);
  await op.expect(/<presence[^>]*from="op1@localhost\/second"/);
  op.close();
  op2.close();
});

t.test("a service sees device presence too, and probes are answered", async (t) => {
  const s = await login("svc");
  s.send("<presence/>");
  await s.sync();
  const d1 = await login("dev1", "fw");
  d1.send("<presence/>");
  await s.expect(/<presence[^>]*from="dev1@localhost\/fw"/);
  s.send("<presence type='probe' to='dev1@localhost'/>");
  await s.expect(/<presence[^>]*from="dev1@localhost\/fw"/);
  s.send("<presence type='subscribe' to='dev1@localhost'/>");
  await s.expect(/<presence type="subscribed"[^>]*from="dev1@localhost"|<presence[^>]*from="dev1@localhost"[^>]*type="subscribed"/);
  d1.close();
  s.close();
});

t.test("roster: every device with subscription 'to' and its type as group; pushes for CLI changes", async (t) => {
  const op = await login("op1");
  op.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>");
  const roster = (await op.expect(/<iq[^>]*id="r1".*?<\/iq>/s))[0];
  t.match(roster, /<item jid="dev1@localhost" name="dev1" subscription="to"><group>thermostat<\/group><\/item>/);
  t.match(roster, /<item jid="dev2@localhost" name="dev2" subscription="to"><group>power-meter<\/group><\/item>/);
  t.notMatch(roster, /jid="(svc|op1)@localhost/, "only devices");

  const dev = await login("dev1");
  dev.send("<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>");
  t.match((await dev.expect(/<iq[^>]*id="r2".*?(<\/iq>|\/>)/s))[0], /<query xmlns="jabber:iq:roster"\/>/, "a device's roster is empty");

  op.send("<iq type='set' id='r3'><query xmlns='jabber:iq:roster'><item jid='x@localhost'/></query></iq>");
  t.match((await op.expect(/<iq[^>]*id="r3".*?<\/iq>/s))[0], /<not-allowed /);

  // Another process (the CLI) adds and removes a device on the same data dir.
  const cli = openSqliteRegistry({ dataDir: broker.dataDir });
  t.teardown(() => cli.close());
  await cli.add({ name: "dev3", role: "device", type: "door-sensor", credentials: await createCredentials("pw", 4096) });
  const push = (await op.expect(/<iq type="set"[^>]*>.*?<\/iq>/s, 3000))[0];
  t.match(push, /<item jid="dev3@localhost" name="dev3" subscription="to"><group>door-sensor<\/group><\/item>/);
  t.notMatch(dev.buffer, /dev3/, "no push to devices");

  await cli.remove("dev1");
  const removal = (await op.expect(/<iq type="set"[^>]*>.*?<\/iq>/s, 3000))[0];
  t.match(removal, /<item jid="dev1@localhost" name="dev1" subscription="remove">/);
  // The removed device's session is closed.
  await dev.expect(/<stream:error><not-authorized/, 3000);
  await dev.waitClosed();
  op.close();
  await broker.add(accounts[2]!);
});

t.test("last activity (XEP-0012): seconds since last seen, 0 while online, only for subscribers", async (t) => {
  const op = await login("op1");
  const d2 = await login("dev2");
  d2.send("<presence/>");
  await d2.sync();
  op.send("<iq type='get' id='l1' to='dev2@localhost'><query xmlns='jabber:iq:last'/></iq>");
  t.match((await op.expect(/<iq[^>]*id="l1".*?(<\/iq>|\/>)/s))[0], /seconds="0"/);
  d2.send("<presence type='unavailable'><status>battery low</status></presence>");
  d2.send("</stream:stream>");
  await d2.waitClosed();
  await new Promise((r) => setTimeout(r, 1100));
  op.send("<iq type='get' id='l2' to='dev2@localhost'><query xmlns='jabber:iq:last'/></iq>");
  const last = (await op.expect(/<iq[^>]*id="l2".*?<\/iq>/s))[0];
  t.match(last, /seconds="[1-9]\d*"/);
  op.send("<iq type='get' id='l3' to='svc@localhost'><query xmlns='jabber:iq:last'/></iq>");
  t.match((await op.expect(/<iq[^>]*id="l3".*?<\/iq>/s))[0], /<forbidden /);
  op.send("<iq type='get' id='l4' to='nobody@localhost'><query xmlns='jabber:iq:last'/></iq>");
  t.match((await op.expect(/<iq[^>]*id="l4".*?<\/iq>/s))[0], /<service-unavailable /);
  // Stored in the registry, so it outlives the session (and the broker).
  t.ok(broker.registry.lastSeen("dev2")!.at <= Date.now());
  op.close();
});
