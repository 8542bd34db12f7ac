// XEP-0050 commands to MQTT devices: forms from schemas, dispatch over MQTT, every
// error of docs/commands.md (Errors), with a real MQTT device (the mqtt package) and a
// raw XMPP client.
import t from "tap";
import mqtt, { type MqttClient } from "mqtt";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { RawClient } from "../helpers/raw.js";
import { waitFor } from "../helpers/wait.js";

let broker: TestBroker;
let op: RawClient;
let n = 0;
t.before(async () => {
  broker = await startTestBroker({ commands: { timeoutMs: 1500 } }, [
    { name: "op1", role: "operator", password: "pw1" },
    { name: "op2", role: "operator", password: "pw2" },
    { name: "svc", role: "service", password: "pw3" },
    { name: "th1", role: "device", type: "thermostat", password: "pw4" },
    { name: "th2", role: "device", type: "thermostat", password: "pw5" },
    { name: "pm1", role: "device", type: "power-meter", password: "pw6" },
  ]);
  op = await RawClient.connect(broker.ports.xmpp);
  await op.login("op1", "pw1", { resource: "r" });
});
t.teardown(async () => {
  op.close();
  await broker.close();
});

type Behaviour = (command: string, req: { id: string; params: Record<string, unknown> }) => object | null;
async function device(id: string, password: string, behave: Behaviour): Promise<MqttClient> {
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: id, username: id, password, reconnectPeriod: 0 });
  c.on("message", (topic, payload) => {
    const command = topic.split("/")[3]!;
    const req = JSON.parse(payload.toString());
    const reply = behave(command, req);
    if (reply) void c.publishAsync(`devices/${id}/replies`, JSON.stringify(reply), { qos: 1 });
  });
  await c.subscribeAsync(`devices/${id}/commands/#`, { qos: 1 });
  return c;
}

async function iq(body: string, to = "th1@localhost"): Promise<string> {
  const id = `q${++n}`;
  op.send(`<iq type='${body.startsWith("<query") ? "get" : "set"}' id='${id}' to='${to}'>${body}</iq>`);
  return (await op.expect(new RegExp(`<iq[^>]*id="${id}".*?</iq>`, "s"), 8000))[0];
}
const exec = (node: string, extra = "", inner = "") => `<command xmlns='http://jabber.org/protocol/commands' node='${node}' ${extra}>${inner}</command>`;
const form = (fields: string, formType = "urn:xmpp:switchboard:command:thermostat:set_setpoint", type = "submit") =>
  `<x xmlns='jabber:x:data' type='${type}'>${formType ? `<field var='FORM_TYPE'><value>${formType}</value></field>` : ""}${fields}</x>`;
const sessionOf = (reply: string) => /sessionid="([^"]+)"/.exec(reply)![1]!;

t.test("the command list and command info, at the bare JID and at /mqtt", async (t) => {
  const dev = await device("th1", "pw4", () => null);
  for (const to of ["th1@localhost", "th1@localhost/mqtt"]) {
    const list = await iq("<query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/>", to);
    t.match(list, new RegExp(`<item jid="${to.replace("/", "\\/")}" node="set_setpoint" name="Set the target temperature"/>`));
    t.match(list, /node="reboot"/);
    const info = await iq("<query xmlns='http://jabber.org/protocol/disco#info' node='set_setpoint'/>", to);
    t.match(info, /<identity category="automation" type="command-node"/);
  }
  const features = await iq("<query xmlns='http://jabber.org/protocol/disco#info'/>", "th1@localhost/mqtt");
  t.match(features, /var="http:\/\/jabber.org\/protocol\/commands"/);
  await dev.endAsync();
});

t.test("execute → form from the schema → submit → published to the device → result form", async (t) => {
  const seen: unknown[] = [];
  const dev = await device("th1", "pw4", (command, req) => {
    seen.push({ command, ...req });
    return { id: req.id, ok: true, result: { setpoint: req.params.value } };
  });
  const first = await iq(exec("set_setpoint", "action='execute'"));
  t.match(first, /status="executing"/);
  t.match(first, /<field var="FORM_TYPE" type="hidden"><value>urn:xmpp:switchboard:command:thermostat:set_setpoint<\/value><\/field>/);
  t.match(first, /<field var="value" type="text-single" label="target temperature, °C"><required\/><validate xmlns="http:\/\/jabber.org\/protocol\/xdata-validate" datatype="xs:double"><range min="5" max="35"\/><\/validate><\/field>/);
  const done = await iq(exec("set_setpoint", `sessionid='${sessionOf(first)}' action='complete'`, form("<field var='value'><value>21.5</value></field>")));
  t.match(done, /status="completed"/);
  t.match(done, /<x xmlns="jabber:x:data" type="result">.*<field var="setpoint"[^>]*><value>21.5<\/value>/s, done);
  t.match(seen, [{ command: "set_setpoint", params: { value: 21.5 } }]);
  t.match(seen[0], { id: /^[\w-]{8,}$/ });
  // No parameters: one step.
  const reboot = await iq(exec("reboot"));
  t.match(reboot, /status="completed"/);
  t.equal(broker.commandOutcomes.get("completed"), 2);
  t.ok(broker.logs.some((l) => /"msg":"command"/.test(l) && /"outcome":"completed"/.test(l) && /"who":"op1@localhost\/r"/.test(l)), "audited");
  await dev.endAsync();
});

t.test("bad parameters and bad forms: bad-request naming the field", async (t) => {
  const dev = await device("th1", "pw4", (_c, req) => ({ id: req.id, ok: true, result: { setpoint: 20 } }));
  const cases: Array<[string, RegExp]> = [
    [form("<field var='value'><value>warm</value></field>"), /value: 'warm' is not a number/],
    [form("<field var='value'><value>99</value></field>"), /value: Too big: expected number to be &lt;=35/],
    [form(""), /value: is required/],
    [form("<field var='value'><value>20</value></field><field var='colour'><value>red</value></field>"), /colour: unknown field/],
    [form("<field var='value'><value>20</value></field>", "", "submit"), /FORM_TYPE is missing/],
    [form("<field var='value'><value>20</value></field>", "urn:other", "submit"), /FORM_TYPE must be/],
    [form("<field var='value'><value>20</value></field>", "urn:xmpp:switchboard:command:thermostat:set_setpoint", "form"), /must be of type 'submit'/],
    ["<x xmlns='jabber:x:data' type='submit'><garbage><more/></garbage></x>", /FORM_TYPE is missing/],
  ];
  for (const [x, text] of cases) {
    const reply = await iq(exec("set_setpoint", "action='execute'", x));
    t.match(reply, /<bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"\/>/);
    t.match(reply, text);
  }
  await dev.endAsync();
});

t.test("sessions: unknown or someone else's sessionid is bad-sessionid; cancel works", async (t) => {
  const first = await iq(exec("set_setpoint"));
  const sid = sessionOf(first);
  t.match(await iq(exec("set_setpoint", "sessionid='nope' action='complete'", form("<field var='value'><value>20</value></field>"))), /<bad-sessionid xmlns="http:\/\/jabber.org\/protocol\/commands"\/>/);
  const other = await RawClient.connect(broker.ports.xmpp);
  await other.login("op2", "pw2", { resource: "x" });
  other.send(`<iq type='set' id='steal' to='th1@localhost'>${exec("set_setpoint", `sessionid='${sid}' action='complete'`, form("<field var='value'><value>20</value></field>"))}</iq>`);
  t.match((await other.expect(/<iq[^>]*id="steal".*?<\/iq>/s))[0], /<bad-sessionid /);
  other.close();
  t.match(await iq(exec("set_setpoint", `sessionid='${sid}' action='cancel'`)), /status="canceled"/);
  t.match(await iq(exec("set_setpoint", `sessionid='${sid}' action='complete'`, form("<field var='value'><value>20</value></field>"))), /<bad-sessionid /, "a canceled session is gone");
});

t.test("offline, timeout, device error, invalid result, unknown command, forbidden", async (t) => {
  const submit = (node = "set_setpoint", to = "th1@localhost") => iq(exec(node, "", node === "set_setpoint" ? form("<field var='value'><value>20</value></field>") : ""), to);
  t.match(await submit(), /<recipient-unavailable /, "offline");
  let mode = "silent";
  const dev = await device("th1", "pw4", (_c, req) => {
    if (mode === "silent") return null;
    if (mode === "error") return { id: req.id, ok: false, error: "valve stuck" };
    return { id: req.id, ok: true, result: { setpoint: "twenty" } };
  });
  const started = Date.now();
  t.match(await submit(), /<remote-server-timeout /);
  t.ok(Date.now() - started >= 1400, "after the timeout");
  mode = "error";
  const err = await submit();
  t.match(err, /<undefined-condition /);
  t.match(err, /valve stuck/);
  mode = "bad";
  const bad = await submit();
  t.match(bad, /<undefined-condition /);
  t.match(bad, /setpoint/);
  t.match(await submit("self_destruct"), /<item-not-found /);
  t.match(await submit("set_setpoint", "pm1@localhost"), /<item-not-found /, "not a command of that type");
  // A device commanding a device is forbidden (it never reaches the command module).
  const other = await RawClient.connect(broker.ports.xmpp);
  await other.login("th2", "pw5");
  other.send(`<iq type='set' id='dd' to='th1@localhost'>${exec("reboot")}</iq>`);
  t.match((await other.expect(/<iq[^>]*id="dd".*?<\/iq>/s))[0], /<forbidden /);
  other.close();
  // A device that disconnects with a command pending fails it at once.
  mode = "silent";
  const pending = submit();
  await waitFor(() => broker.dispatcher.pending === 1 || undefined);
  const cut = Date.now();
  await dev.endAsync(true);
  t.match(await pending, /<recipient-unavailable /);
  t.ok(Date.now() - cut < 1000, "not at the timeout");
});

t.test("replies with bad JSON, unknown ids, late and duplicate replies are counted and ignored", async (t) => {
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: "th2", username: "th2", password: "pw5", reconnectPeriod: 0 });
  let lastId = "";
  c.on("message", (_topic, payload) => (lastId = JSON.parse(payload.toString()).id));
  await c.subscribeAsync("devices/th2/commands/#", { qos: 1 });
  const before = { ...broker.dispatcher.counters };
  await c.publishAsync("devices/th2/replies", "{not json", { qos: 1 });
  await c.publishAsync("devices/th2/replies", JSON.stringify({ id: "nope", ok: true, result: {} }), { qos: 1 });
  // set_setpoint uses commands.timeoutMs (1.5 s here); reboot has its own 30 s.
  const setpoint = () => iq(exec("set_setpoint", "", form("<field var='value'><value>20</value></field>")), "th2@localhost");
  const timedOut = setpoint();
  await waitFor(() => lastId || undefined);
  t.match(await timedOut, /<remote-server-timeout /, "still times out correctly");
  await c.publishAsync("devices/th2/replies", JSON.stringify({ id: lastId, ok: true, result: { setpoint: 20 } }), { qos: 1 });
  lastId = "";
  const ok = setpoint();
  await waitFor(() => lastId || undefined);
  await c.publishAsync("devices/th2/replies", JSON.stringify({ id: lastId, ok: true, result: { setpoint: 20 } }), { qos: 1 });
  t.match(await ok, /status="completed"/);
  await c.publishAsync("devices/th2/replies", JSON.stringify({ id: lastId, ok: true, result: { setpoint: 20 } }), { qos: 1 });
  await waitFor(() => broker.dispatcher.counters.duplicateReplies > before.duplicateReplies || undefined);
  const after = broker.dispatcher.counters;
  t.equal(after.malformedReplies - before.malformedReplies, 1);
  t.equal(after.unknownReplies - before.unknownReplies, 1);
  t.equal(after.lateReplies - before.lateReplies, 1);
  t.equal(after.duplicateReplies - before.duplicateReplies, 1);
  await c.endAsync();
});

t.test("1,000 commands in flight to one device: each gets its own outcome", async (t) => {
  const dev = await device("th1", "pw4", (_c, req) => ({ id: req.id, ok: true, result: { setpoint: req.params.value } }));
  const svc = await RawClient.connect(broker.ports.xmpp);
  await svc.login("svc", "pw3", { resource: "load" });
  const N = 1000;
  for (let i = 0; i < N; i++) {
    const v = 5 + (i % 300) / 10;
    svc.send(`<iq type='set' id='c${i}' to='th1@localhost'>${exec("set_setpoint", "", form(`<field var='value'><value>${v}</value></field>`))}</iq>`);
  }
  let matched = 0;
  for (let i = 0; i < N; i++) {
    const reply = (await svc.expect(new RegExp(`<iq[^>]*id="c${i}".*?</iq>`, "s"), 15_000))[0];
    const v = 5 + (i % 300) / 10;
    if (new RegExp(`<field var="setpoint"[^>]*><value>${v}</value>`).test(reply)) matched++;
  }
  t.equal(matched, N, "every reply carries its own request's value");
  svc.close();
  await dev.endAsync();
});

t.test("XEP-0325 set maps onto the type's commands, validated the same way", async (t) => {
  const seen: unknown[] = [];
  const dev = await device("th1", "pw4", (command, req) => {
    seen.push({ command, params: req.params });
    return { id: req.id, ok: true, result: { setpoint: req.params.value } };
  });
  const ok = await iq("<set xmlns='urn:xmpp:iot:control'><double name='setpoint' value='22.5'/></set>", "th1@localhost/mqtt");
  t.match(ok, /<setResponse xmlns="urn:xmpp:iot:control" responseCode="OK"\/>/);
  t.same(seen, [{ command: "set_setpoint", params: { value: 22.5 } }]);
  t.match(await iq("<set xmlns='urn:xmpp:iot:control'><double name='setpoint' value='50'/></set>"), /<bad-request .*value: Too big/s);
  t.match(await iq("<set xmlns='urn:xmpp:iot:control'><boolean name='turbo' value='true'/></set>"), /<bad-request .*turbo: not a control parameter/s);
  t.match(await iq("<set xmlns='urn:xmpp:iot:control'><double name='setpoint' value='hot'/></set>"), /<bad-request .*is not a number/s);
  await dev.endAsync();
  t.match(await iq("<set xmlns='urn:xmpp:iot:control'><double name='setpoint' value='20'/></set>"), /<recipient-unavailable /);
});
