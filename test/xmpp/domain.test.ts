// What the domain answers for the account that asks: pings without `to` and to one's
// own bare JID (RFC 6120 §10.3.3, XEP-0199 §4.2), the ad-hoc commands feature in its
// disco#info (XEP-0050 §2.1), and the broker's own command `list-online-devices`
// (§2.2 listing, §2.4.1 one-stage execution) for operators and services only. The
// online devices are an MQTT thermostat (the `mqtt` package) and an XMPP door sensor.
import t from "tap";
import mqtt, { type MqttClient } from "mqtt";
import { passwordOf, testAccounts } from "../helpers/accounts.js";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { NS_DISCO_INFO, NS_DISCO_ITEMS } from "../../src/xmpp/modules/disco.js";
import { NS_COMMANDS } from "../../src/xmpp/modules/adhoc.js";
import { NS_PING } from "../../src/xmpp/modules/ping.js";
import { online as onlineClient, type RawClient } from "../helpers/raw.js";
import { waitFor } from "../helpers/wait.js";

const accounts = testAccounts({ op1: "operator", svc: "service", th1: "thermostat", th2: "thermostat", door1: "door-sensor" });
const pw = (name: string) => passwordOf(accounts, name);

let broker: TestBroker;
let op: RawClient;
let svc: RawClient;
let door: RawClient;
let th1: MqttClient;

const online = (name: string) => onlineClient(broker.ports.xmpp, name, pw(name), { resource: "r" });

t.before(async () => {
  broker = await startTestBroker({}, accounts);
  [op, svc, door] = await Promise.all([online("op1"), online("svc"), online("door1")]);
  th1 = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: "th1", username: "th1", password: pw("th1"), reconnectPeriod: 0 });
  th1.on("error", () => {});
  await waitFor(() => [...broker.xmpp.sessions.all()].some((s) => s.full === "th1@localhost/mqtt" && s.presence), 10_000, "th1 online on MQTT");
});
t.teardown(async () => {
  for (const c of [op, svc, door]) c?.close();
  await th1?.endAsync(true);
  await broker.close();
});

/** The whole stanza answering `id`. */
async function reply(c: RawClient, id: string): Promise<string> {
  return (await c.expect(new RegExp(`<iq\\b[^>]*\\bid="${id}"[^>]*?(/>|>.*?</iq>)`, "s")))[0];
}

let seq = 0;
async function iq(c: RawClient, type: "get" | "set", to: string | null, payload: string): Promise<string> {
  const id = `d${++seq}`;
  c.send(`<iq type='${type}' id='${id}'${to === null ? "" : ` to='${to}'`}>${payload}</iq>`);
  return reply(c, id);
}

const execute = (node: string, extra = "") => `<command xmlns='${NS_COMMANDS}' node='${node}'${extra}/>`;

t.test("ping without `to` and to one's own bare JID: an empty result, for every role", async (t) => {
  for (const [who, c] of [["operator", op], ["service", svc], ["device", door]] as const) {
    const bare = `${who === "operator" ? "op1" : who === "service" ? "svc" : "door1"}@localhost`;
    const noTo = await iq(c, "get", null, `<ping xmlns='${NS_PING}'/>`);
    t.match(noTo, /type="result"/, `${who}: no to`);
    t.notMatch(noTo, /<ping|<error/, `${who}: empty`);
    // RFC 6120 §8.1.2.1: an answer on the account's behalf comes from its bare JID (or none).
    t.match(noTo, new RegExp(`from="${bare}"`));
    t.match(await iq(c, "get", bare, `<ping xmlns='${NS_PING}'/>`), /type="result"/, `${who}: own bare JID`);
  }
  // Another account's bare JID is still not answered, and a device still may not address another device.
  t.match(await iq(op, "get", "svc@localhost", `<ping xmlns='${NS_PING}'/>`), /<service-unavailable /);
  t.match(await iq(door, "get", "th1@localhost", `<ping xmlns='${NS_PING}'/>`), /<forbidden /);
  t.match(await iq(door, "get", "th1@localhost/mqtt", `<ping xmlns='${NS_PING}'/>`), /<forbidden /);
});

t.test("the domain's disco#info advertises ping and ad-hoc commands", async (t) => {
  const info = await iq(op, "get", "localhost", `<query xmlns='${NS_DISCO_INFO}'/>`);
  for (const feature of [NS_PING, NS_COMMANDS]) t.match(info, `<feature var="${feature}"/>`);
  const list = await iq(op, "get", "localhost", `<query xmlns='${NS_DISCO_INFO}' node='${NS_COMMANDS}'/>`);
  t.match(list, /<identity category="automation" type="command-list"\/>/);
});

t.test("the command list at the domain: the broker's command for operators and services, nothing for devices", async (t) => {
  for (const c of [op, svc]) {
    const items = await iq(c, "get", "localhost", `<query xmlns='${NS_DISCO_ITEMS}' node='${NS_COMMANDS}'/>`);
    t.match(items, /<item jid="localhost" node="list-online-devices" name="List online devices"\/>/);
  }
  const forDevice = await iq(door, "get", "localhost", `<query xmlns='${NS_DISCO_ITEMS}' node='${NS_COMMANDS}'/>`);
  t.match(forDevice, /type="result"/);
  t.notMatch(forDevice, /<item /);
  const info = await iq(op, "get", "localhost", `<query xmlns='${NS_DISCO_INFO}' node='list-online-devices'/>`);
  t.match(info, /<identity category="automation" type="command-node" name="List online devices"\/>/);
  t.match(info, `<feature var="${NS_COMMANDS}"/>`);
  t.match(await iq(door, "get", "localhost", `<query xmlns='${NS_DISCO_INFO}' node='list-online-devices'/>`), /<forbidden /);
});

t.test("list-online-devices: a completed result form listing the online devices and their types", async (t) => {
  for (const c of [op, svc]) {
    const done = await iq(c, "set", "localhost", execute("list-online-devices", " action='execute'"));
    t.match(done, /<command xmlns="http:\/\/jabber.org\/protocol\/commands" node="list-online-devices" sessionid="[^"]+" status="completed">/);
    t.match(done, /<note type="info">2 devices online<\/note>/);
    t.match(done, /<x xmlns="jabber:x:data" type="result">/);
    t.match(done, /<field var="FORM_TYPE" type="hidden"><value>urn:xmpp:switchboard:command:broker:list-online-devices<\/value><\/field>/);
    // XEP-0004 §3.4 items, one per device, sorted by JID; th2 is offline.
    const rows = [...done.matchAll(/<item><field var="jid"><value>([^<]+)<\/value><\/field><field var="type"><value>([^<]+)<\/value><\/field><\/item>/g)].map((m) => [m[1], m[2]]);
    t.same(rows, [["door1@localhost", "door-sensor"], ["th1@localhost", "thermostat"]]);
    t.match(done, /<field var="devices" type="text-multi"[^>]*><value>door1@localhost door-sensor<\/value><value>th1@localhost thermostat<\/value><\/field>/);
  }
  // The action is implied (§2.4.1); `complete` is accepted too.
  t.match(await iq(op, "set", "localhost", execute("list-online-devices")), /status="completed"/);
  t.match(await iq(op, "set", "localhost", execute("list-online-devices", " action='complete'")), /status="completed"/);
  // A device that goes offline leaves the list.
  await th1.endAsync();
  await waitFor(() => ![...broker.xmpp.sessions.all()].some((s) => s.bare === "th1@localhost"), 10_000, "th1 offline");
  const after = await iq(op, "set", "localhost", execute("list-online-devices"));
  t.match(after, /<note type="info">1 device online<\/note>/);
  t.notMatch(after, /th1@localhost/);
});

t.test("list-online-devices: forbidden for a device; bad actions, sessions and nodes refused", async (t) => {
  const forbidden = await iq(door, "set", "localhost", execute("list-online-devices", " action='execute'"));
  t.match(forbidden, /type="error"/);
  t.match(forbidden, /<error type="auth"><forbidden /);
  t.match(forbidden, /<command xmlns="http:\/\/jabber.org\/protocol\/commands" node="list-online-devices"/, "the command is echoed (XEP-0050 §4.4)");
  t.notMatch(forbidden, /th1@|door1@localhost<\/value>/);
  const cancel = await iq(op, "set", "localhost", execute("list-online-devices", " action='cancel'"));
  t.match(cancel, /<bad-request [^>]*\/><bad-action xmlns="http:\/\/jabber.org\/protocol\/commands"\/>|<bad-action /);
  t.match(await iq(op, "set", "localhost", execute("list-online-devices", " action='launch'")), /<malformed-action /);
  t.match(await iq(op, "set", "localhost", execute("list-online-devices", " sessionid='x'")), /<bad-sessionid /);
  t.match(await iq(op, "set", "localhost", execute("nope")), /<item-not-found /);
  t.match(await iq(op, "get", "localhost", `<query xmlns='${NS_DISCO_INFO}' node='nope'/>`), /<item-not-found /);
});
