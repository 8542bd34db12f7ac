// XMPP-connected devices as a device link: a command run at such a device's bare JID
// reaches its session as an XEP-0050 execute with a submitted form, and its completed
// result form completes the operator's command; an error or going offline fails it
// the way it fails for an MQTT device. Raw XMPP clients on both sides.
import t from "tap";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { RawClient } from "../helpers/raw.js";

const COMMANDS = "http://jabber.org/protocol/commands";
let broker: TestBroker;
let op: RawClient;
let n = 0;
t.before(async () => {
  broker = await startTestBroker({ xmpp: { requireTls: false }, commands: { timeoutMs: 2000 } }, [
    { name: "op1", role: "operator", password: "pw1" },
    { name: "xth", role: "device", type: "thermostat", password: "pw2" },
  ]);
  op = await RawClient.connect(broker.ports.xmpp);
  await op.login("op1", "pw1", { resource: "r", tls: false });
  // Initial presence: the operator then hears of every device's (RFC 6121 §4.2).
  op.send("<presence/>");
  await op.expect(/<presence[^>]*from="op1@localhost\/r"/);
});
t.teardown(async () => {
  op.close();
  await broker.close();
});

/** The device logged in over XMPP, available. */
async function xmppDevice(): Promise<RawClient> {
  const d = await RawClient.connect(broker.ports.xmpp);
  await d.login("xth", "pw2", { resource: "fw", tls: false });
  d.send("<presence/>");
  await op.expect(/<presence[^>]*from="xth@localhost\/fw"/);
  return d;
}

async function run(body: string): Promise<string> {
  const id = `c${++n}`;
  op.send(`<iq type='set' id='${id}' to='xth@localhost'>${body}</iq>`);
  return (await op.expect(new RegExp(`<iq[^>]*id="${id}".*?</iq>`, "s"), 8000))[0];
}
const setpoint = (value: number) =>
  `<command xmlns='${COMMANDS}' node='set_setpoint' action='execute'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:switchboard:command:thermostat:set_setpoint</value></field><field var='value'><value>${value}</value></field></x></command>`;

t.test("a command at the bare JID reaches the XMPP device as XEP-0050 and its result form completes it", async (t) => {
  const dev = await xmppDevice();
  t.teardown(() => dev.close());
  const answer = run(setpoint(22));
  const request = await dev.expect(/<iq[^>]*type="set".*?<\/iq>/s);
  t.match(request[0], /from="localhost"/, "from the broker");
  t.match(request[0], new RegExp(`<command xmlns="${COMMANDS}" node="set_setpoint" action="execute">`));
  t.match(request[0], /<x xmlns="jabber:x:data" type="submit">/);
  t.match(request[0], /<field var="value"[^>]*>.*?<value>22<\/value>/s, "the params as a submitted form");
  const id = /id="([^"]+)"/.exec(request[0])![1];
  dev.send(
    `<iq type='result' id='${id}' to='localhost'><command xmlns='${COMMANDS}' node='set_setpoint' status='completed'><x xmlns='jabber:x:data' type='result'><field var='setpoint'><value>22</value></field></x></command></iq>`,
  );
  const done = await answer;
  t.match(done, /status="completed"/);
  t.match(done, /<field var="setpoint"[^>]*>.*?<value>22<\/value>/s, "the device's result, as a form");
  t.ok(broker.logs.some((l) => /"msg":"command"/.test(l) && /"outcome":"completed"/.test(l) && /"device":"xth"/.test(l)), "audited like any command");
});

t.test("the device's IQ error fails the command; a device going offline fails it at once", async (t) => {
  const dev = await xmppDevice();
  const failing = run(setpoint(23));
  const request = await dev.expect(/<iq[^>]*type="set".*?<\/iq>/s);
  const id = /id="([^"]+)"/.exec(request[0])![1];
  dev.send(`<iq type='error' id='${id}' to='localhost'><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>valve stuck</text></error></iq>`);
  const failed = await failing;
  t.match(failed, /type="error"/);
  t.match(failed, /undefined-condition/);
  t.match(failed, /valve stuck/, "with the device's text");

  const pending = run(setpoint(24));
  await dev.expect(/<iq[^>]*type="set"/);
  const started = Date.now();
  dev.close();
  const offline = await pending;
  t.match(offline, /recipient-unavailable/, "the device left: recipient-unavailable");
  t.ok(Date.now() - started < 1500, "at once, not at the timeout");
  const again = await run(setpoint(25));
  t.match(again, /recipient-unavailable/, "no device, no command");
});
