// The strings an MQTT client names things with (MQTT 3.1.1 §1.5.3): a PUBLISH's topic
// name, SUBSCRIBE and UNSUBSCRIBE topic filters, CONNECT's client id, will topic and
// user name. Ill-formed UTF-8 or U+0000 closes the connection [MQTT-1.5.3-1]
// [MQTT-1.5.3-2] [MQTT-4.7.3-2], and so do the control characters and non-characters
// a server MAY close for (as Mosquitto does), before aedes or a hook sees the packet:
// no acknowledgement, nothing stored or delivered, counted, other connections unaffected.
import t from "tap";
import mqtt, { type MqttClient } from "mqtt";
import { passwordOf, testAccounts } from "../helpers/accounts.js";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { bytes, connectPacket, publishPacket, subscribePacket, unsubscribePacket } from "../helpers/mqtt-bytes.js";
import { CONNACK, PUBACK, RawMqtt, SUBACK, UNSUBACK } from "../helpers/raw-mqtt.js";
import { waitFor } from "../helpers/wait.js";

const STEP_MS = 5_000;
const accounts = testAccounts({ svc: "service", dev1: "thermostat", dev2: "thermostat", dev3: "thermostat" });
const pw = (name: string) => passwordOf(accounts, name);
const sample = (temperature: number) => JSON.stringify({ temperature, humidity: 40 });

/** Strings the broker closes the connection for, each with what is wrong in it. */
const BAD: Array<[string, Buffer]> = [
  ["U+0000 at the end", bytes("devices/dev1/telemetry", [0x00])],
  ["U+0000 inside", bytes("devices/dev1", [0x00], "/telemetry")],
  ["an overlong '/' (C0 AF)", bytes("devices/dev1", [0xc0, 0xaf], "telemetry")],
  ["an overlong U+0000 (C0 80)", bytes("devices/dev1/", [0xc0, 0x80])],
  ["a three-byte overlong '/' (E0 80 AF)", bytes("devices/dev1", [0xe0, 0x80, 0xaf], "telemetry")],
  ["a surrogate U+D800 (ED A0 80)", bytes("devices/dev1/", [0xed, 0xa0, 0x80])],
  ["a code point past U+10FFFF (F4 90 80 80)", bytes("devices/dev1/", [0xf4, 0x90, 0x80, 0x80])],
  ["a stray continuation byte (80)", bytes("devices/dev1/", [0x80], "x")],
  ["a sequence cut short at the end (E2 82)", bytes("devices/dev1/x", [0xe2, 0x82])],
  ["a byte never in UTF-8 (FF)", bytes("devices/", [0xff], "/telemetry")],
  ["U+0001, a control character (and the guard's mark for '+')", bytes("devices/", [0x01], "/telemetry")],
  ["U+001F", bytes("devices/dev1/", [0x1f])],
  ["U+007F", bytes("devices/dev1/", [0x7f])],
  ["U+0085, a C1 control (C2 85)", bytes("devices/dev1/", [0xc2, 0x85])],
  ["the non-character U+FFFF (EF BF BF)", bytes("devices/dev1/", [0xef, 0xbf, 0xbf])],
  ["the non-character U+FDD0 (EF B7 90)", bytes("devices/dev1/", [0xef, 0xb7, 0x90])],
  ["the non-character U+1FFFE (F0 9F BF BE)", bytes("devices/dev1/", [0xf0, 0x9f, 0xbf, 0xbe])],
];

let broker: TestBroker;
/** The service, subscribed to every device's telemetry and errors. */
let svc: MqttClient;
const seen: Array<{ topic: string; payload: string }> = [];
/** dev2 publishes telemetry (QoS 1) every 20 ms from start to end. */
let dev2: MqttClient;
let ticker: NodeJS.Timeout;
const sent: string[] = [];
const acked: string[] = [];
let dev2Closed = false;

const mqttUrl = () => `mqtt://127.0.0.1:${broker.ports.mqtt}`;
const badUtf8 = () => broker.mqtt.counters.rejectedByVerdict["bad-utf8"];

t.before(async () => {
  broker = await startTestBroker({}, accounts);
  svc = await mqtt.connectAsync(mqttUrl(), { clientId: "svc-watch", username: "svc", password: pw("svc"), reconnectPeriod: 0 });
  svc.on("message", (topic, payload) => seen.push({ topic, payload: payload.toString("utf8") }));
  await svc.subscribeAsync({ "devices/+/telemetry": { qos: 1 }, "devices/+/errors": { qos: 0 } });
  dev2 = await mqtt.connectAsync(mqttUrl(), { clientId: "dev2", username: "dev2", password: pw("dev2"), reconnectPeriod: 0 });
  dev2.on("close", () => void (dev2Closed = true));
  let n = 0;
  ticker = setInterval(() => {
    const payload = sample(10 + (n++ % 1000) / 100);
    sent.push(payload);
    dev2.publishAsync("devices/dev2/telemetry", payload, { qos: 1 }).then(() => acked.push(payload), () => {});
  }, 20);
});
t.teardown(async () => {
  clearInterval(ticker);
  dev2.end(true);
  svc.end(true);
  await broker.close();
});

/** A raw connection to the broker; with `as`, logged in as that account with that client id. */
async function raw(t: { teardown(fn: () => void): void }, as?: { clientId: string | Buffer; username: string }): Promise<RawMqtt> {
  const r = await RawMqtt.open(broker.ports.mqtt);
  t.teardown(() => r.destroy());
  if (as) await r.login({ ...as, password: pw(as.username) });
  return r;
}

t.test("a PUBLISH whose topic is not an acceptable string closes the connection: no PUBACK, nothing stored or delivered", async (t) => {
  const before = badUtf8();
  const droppedBefore = broker.mqtt.counters.droppedPublishes;
  for (const [what, topic] of BAD) {
    const conn = await raw(t, { clientId: "dev1", username: "dev1" });
    conn.socket.write(publishPacket(topic, sample(30), 7));
    t.ok(await conn.closedWithin(), `device, ${what}: connection closed`);
    t.equal(conn.count(PUBACK), 0, `device, ${what}: no PUBACK`);
  }
  t.equal(badUtf8() - before, BAD.length, "each one counted as bad-utf8");
  t.equal(broker.mqtt.counters.droppedPublishes, droppedBefore, "no hook saw them: none was dropped by the ACL");
  await new Promise((r) => setTimeout(r, 200));
  t.same(await broker.store.query("dev1", "thermostat", 0, Date.now(), 10), [], "nothing of dev1 stored");
  t.same(seen.filter((m) => m.topic.startsWith("devices/dev1/")), [], "nothing of dev1 delivered, no error report either");
});

t.test("a service's PUBLISH with U+0000 or ill-formed UTF-8 in a command topic closes it; the device receives nothing", async (t) => {
  const dev3 = await mqtt.connectAsync(mqttUrl(), { clientId: "dev3", username: "dev3", password: pw("dev3"), reconnectPeriod: 0 });
  t.teardown(() => dev3.endAsync());
  const commands: string[] = [];
  dev3.on("message", (topic) => commands.push(topic));
  await dev3.subscribeAsync("devices/dev3/commands/#", { qos: 1 });
  const before = badUtf8();
  const topics: Array<[string, Buffer]> = [
    ["U+0000", bytes("devices/dev3/commands/re", [0x00], "boot")],
    ["an overlong U+0000", bytes("devices/dev3/commands/re", [0xc0, 0x80], "boot")],
    ["a surrogate", bytes("devices/dev3/commands/", [0xed, 0xbf, 0xbf])],
  ];
  for (const [what, topic] of topics) {
    const conn = await raw(t, { clientId: "svc-raw", username: "svc" });
    conn.socket.write(publishPacket(topic, JSON.stringify({ id: "c-1", params: {} }), 9));
    t.ok(await conn.closedWithin(), `service, ${what}: connection closed`);
    t.equal(conn.count(PUBACK), 0, `service, ${what}: no PUBACK`);
  }
  t.equal(badUtf8() - before, topics.length, "counted");
  // A good command afterwards arrives, and is the only one.
  await svc.publishAsync("devices/dev3/commands/reboot", JSON.stringify({ id: "c-2", params: {} }), { qos: 1 });
  await waitFor(() => commands.length > 0, STEP_MS, "the good command");
  await new Promise((r) => setTimeout(r, 100));
  t.same(commands, ["devices/dev3/commands/reboot"], "dev3 received only the good command");
});

t.test("valid non-ASCII topics pass the guard: refused by the ACL with a report, the connection stays up", async (t) => {
  const dev1 = await mqtt.connectAsync(mqttUrl(), { clientId: "dev1", username: "dev1", password: pw("dev1"), reconnectPeriod: 0 });
  t.teardown(() => dev1.endAsync());
  const reports: string[] = [];
  dev1.on("message", (_topic, payload) => reports.push((JSON.parse(payload.toString("utf8")) as { topic: string }).topic));
  await dev1.subscribeAsync("devices/dev1/errors", { qos: 0 });
  const before = badUtf8();
  // Two-, three- and four-byte characters, U+FEFF (kept as it is, [MQTT-1.5.3-3]), and a
  // wildcard after them (still reported with the character the device sent).
  const topics = ["devices/dev1/telemetry/é", "devices/dev1/€/telemetry", "devices/dev1/😀", "devices/dev1/\uFEFFx", "devices/é/+"];
  for (const topic of topics) await dev1.publishAsync(topic, sample(30), { qos: 1 });
  await waitFor(() => reports.length >= topics.length, STEP_MS, "an error report for each");
  t.same(reports, topics, "each refused by the ACL and reported with the topic as sent");
  t.notOk(dev1.disconnected || dev1.disconnecting, "dev1 still connected");
  await dev1.publishAsync("devices/dev1/telemetry", sample(22), { qos: 1 });
  await waitFor(() => seen.some((m) => m.topic === "devices/dev1/telemetry"), STEP_MS, "dev1's telemetry at the service");
  t.equal(badUtf8(), before, "nothing counted as bad-utf8");
});

t.test("a SUBSCRIBE or UNSUBSCRIBE filter with U+0000 or ill-formed UTF-8 closes the connection: no SUBACK, no UNSUBACK", async (t) => {
  const before = badUtf8();
  const filters: Array<[string, Buffer]> = [
    ["U+0000", bytes("devices/dev1/commands/", [0x00])],
    ["U+0000 before '#'", bytes("devices/dev1/commands/", [0x00], "/#")],
    ["an overlong '/'", bytes("devices/dev1/commands", [0xc0, 0xaf], "#")],
    ["a surrogate", bytes("devices/dev1/commands/", [0xed, 0xa0, 0x80])],
    ["U+0001", bytes("devices/dev1/commands/", [0x01])],
  ];
  // A device's SUBSCRIBE and a service's UNSUBSCRIBE: no acknowledgement of either.
  const packets = [
    { name: "SUBSCRIBE", as: { clientId: "dev1", username: "dev1" }, bytes: subscribePacket, ack: "SUBACK", type: SUBACK },
    { name: "UNSUBSCRIBE", as: { clientId: "svc-raw", username: "svc" }, bytes: unsubscribePacket, ack: "UNSUBACK", type: UNSUBACK },
  ];
  for (const p of packets)
    for (const [what, filter] of filters) {
      const conn = await raw(t, p.as);
      conn.socket.write(p.bytes(filter));
      t.ok(await conn.closedWithin(), `${p.name}, ${what}: connection closed`);
      t.equal(conn.count(p.type), 0, `${p.name}, ${what}: no ${p.ack}`);
    }
  t.equal(badUtf8() - before, 2 * filters.length, "each one counted as bad-utf8");

  // A valid non-ASCII filter is answered (refused by the ACL, 0x80) and the connection stays up.
  const conn = await raw(t, { clientId: "dev1", username: "dev1" });
  conn.socket.write(subscribePacket("devices/dev1/é/#"));
  await waitFor(() => conn.count(SUBACK) === 1, STEP_MS, "SUBACK");
  conn.socket.write(unsubscribePacket("devices/dev1/é/#"));
  await waitFor(() => conn.count(UNSUBACK) === 1, STEP_MS, "UNSUBACK");
  t.notOk(conn.closed, "a non-ASCII filter: SUBACK, UNSUBACK, still connected");
});

t.test("a CONNECT with U+0000 or ill-formed UTF-8 in its client id, will topic or user name is closed without a CONNACK", async (t) => {
  const before = badUtf8();
  const cases: Array<[string, Parameters<typeof connectPacket>[0]]> = [
    ["a service's client id with U+0000", { clientId: bytes("svc-", [0x00], "x"), username: "svc", password: pw("svc") }],
    ["a service's client id with an overlong '/'", { clientId: bytes("svc", [0xc0, 0xaf], "x"), username: "svc", password: pw("svc") }],
    ["a service's client id with a surrogate", { clientId: bytes("svc-", [0xed, 0xa0, 0x80]), username: "svc", password: pw("svc") }],
    ["a service's client id with U+0001", { clientId: bytes("svc-", [0x01]), username: "svc", password: pw("svc") }],
    ["a device's client id with U+0000", { clientId: bytes("dev1", [0x00]), username: "dev1", password: pw("dev1") }],
    ["a device's client id cut short (E2 82)", { clientId: bytes("dev1", [0xe2, 0x82]), username: "dev1", password: pw("dev1") }],
    ["a will topic with U+0000", { clientId: "svc-w", username: "svc", password: pw("svc"), will: { topic: bytes("devices/dev1/commands/", [0x00]), message: "{}" } }],
    ["a will topic with a stray continuation byte", { clientId: "svc-w", username: "svc", password: pw("svc"), will: { topic: bytes("devices/", [0x80]), message: "{}" } }],
    ["a user name with U+0000", { clientId: "dev1", username: bytes("dev1", [0x00]), password: pw("dev1") }],
    ["a user name past U+10FFFF", { clientId: "svc-u", username: bytes("svc", [0xf4, 0x90, 0x80, 0x80]), password: pw("svc") }],
  ];
  for (const [what, connect] of cases) {
    const conn = await raw(t);
    conn.socket.write(connectPacket(connect));
    t.ok(await conn.closedWithin(), `${what}: connection closed`);
    t.equal(conn.count(CONNACK), 0, `${what}: no CONNACK`);
  }
  t.equal(badUtf8() - before, cases.length, "each one counted as bad-utf8");

  // Non-ASCII, well-formed: a service's client id is accepted.
  const conn = await raw(t, { clientId: "svc-é-😀", username: "svc" });
  t.notOk(conn.closed, "a service with client id svc-é-😀: CONNACK 0");
});

t.test("the other device published throughout, unaffected", async (t) => {
  clearInterval(ticker);
  await waitFor(() => acked.length === sent.length, STEP_MS, "every PUBACK for dev2");
  await waitFor(() => sent.every((p) => seen.some((m) => m.topic === "devices/dev2/telemetry" && m.payload === p)), STEP_MS, "every sample at the service");
  t.ok(sent.length > 20, `dev2 published ${sent.length} samples during the tests`);
  t.notOk(dev2Closed, "dev2 stayed connected");
  t.equal(broker.mqtt.counters.rejectedByVerdict.oversize + broker.mqtt.counters.rejectedByVerdict.malformed, 0, "nothing else was refused");
});
