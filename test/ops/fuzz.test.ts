// Seeded fuzzing of both edges against one live broker: mutated MQTT packets and
// mutated XMPP stanzas, from many connections at once, authenticated or not. The
// broker must survive all of it (an escaped exception would end this process), log
// no internal error (a handler that threw is a bug even when caught), and afterwards
// serve a good device, service and operator as before. Seeds are fixed, so a failure
// repeats; FUZZ_SEED and FUZZ_ROUNDS widen a manual run.
import t, { type Test } from "tap";
import net from "node:net";
import mqtt from "mqtt";
import WebSocket from "ws";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { RawClient, STREAM_OPEN } from "../helpers/raw.js";
import { waitFor } from "../helpers/wait.js";
import { connectPacket, packet, remainingLength, u16, utf8 } from "../helpers/mqtt-bytes.js";

const SEED = Number(process.env.FUZZ_SEED ?? 20261121);
const ROUNDS = Number(process.env.FUZZ_ROUNDS ?? 600);
const PARALLEL = 12;

/** mulberry32: a small seeded PRNG, so every run sends the same bytes. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return { next, int, pick: <T>(xs: readonly T[]): T => xs[int(xs.length)]!, chance: (p: number) => next() < p };
}
type Rng = ReturnType<typeof prng>;

const DEVICES = ["dev1", "dev2", "door1"];
const ACCOUNTS = [
  { name: "op1", role: "operator" as const, password: "op pw" },
  { name: "svc1", role: "service" as const, password: "svc pw" },
  { name: "dev1", role: "device" as const, type: "thermostat", password: "dev pw" },
  { name: "dev2", role: "device" as const, type: "thermostat", password: "dev pw" },
  { name: "door1", role: "device" as const, type: "door-sensor", password: "dev pw" },
];

// ---- MQTT 3.1.1 packets ----
const connect = (clientId: string, user: string | null, password: string | null, keepalive = 30) =>
  connectPacket({ clientId, username: user ?? undefined, password: password ?? undefined, keepalive });

const TOPICS = (r: Rng, me: string) => [
  `devices/${me}/telemetry`, `devices/${me}/replies`, `devices/${me}/errors`, `devices/${r.pick(DEVICES)}/telemetry`, `devices/${me}/commands/set`,
  "devices/+/telemetry", "#", "$SYS/broker/uptime", "devices/#", "", "/", "a".repeat(r.int(3000)), "x/".repeat(r.int(200)),
  `devices/${me}/telemetry\u0000`, `devices/${me}/tele\uD800metry`, "devices/\u00e9\u{1F600}/telemetry", `devices/${me}/telemetry/#`, "+/+/+",
];
const PAYLOADS = (r: Rng) => [
  JSON.stringify({ temperature: r.next() * 100 - 20, humidity: r.int(100) }),
  JSON.stringify({ temperature: "hot" }), JSON.stringify({ temperature: 1e308 * 10 }), "{\"temperature\":NaN}",
  JSON.stringify({ __proto__: { admin: true }, temperature: 1 }), "{\"constructor\":{\"prototype\":{\"x\":1}},\"temperature\":2}",
  JSON.stringify({ temperature: 20, ts: "yesterday" }), JSON.stringify({ temperature: 20, ts: Date.now() + 3 * 86_400_000 }),
  JSON.stringify({ temperature: 20, ts: -1 }), JSON.stringify({ temperature: 20, ts: 1e20 }), JSON.stringify({ open: r.chance(0.5) }),
  JSON.stringify({ "a b,c=d\"e\n": 1, temperature: 3 }), "[".repeat(r.int(20_000)), "[]", "null", "1", "\"s\"", "", "\u0000\u00ff",
  Buffer.from(Array.from({ length: r.int(200) }, () => r.int(256))).toString("latin1"),
  JSON.stringify({ temperature: 21, humidity: 40, extra: { deep: [1, 2, { x: "y".repeat(r.int(5000)) }] } }),
];

function mqttPacket(r: Rng, me: string): Buffer {
  const id = r.pick([0, 1, r.int(65536), 65535]);
  switch (r.int(12)) {
    case 0:
    case 1:
    case 2: {
      const qos = r.pick([0, 1, 1, 2, 3]);
      // Now and then bytes that are not UTF-8 at all (§1.5.3): an overlong NUL, an encoded surrogate, a stray continuation byte.
      const topic = r.chance(0.1) ? Buffer.concat([Buffer.from(`devices/${me}/`), r.pick([Buffer.from([0xc0, 0x80]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0x80]), Buffer.from([0xff, 0xfe])])]) : r.pick(TOPICS(r, me));
      const flags = (qos << 1) | (r.chance(0.1) ? 1 : 0) | (r.chance(0.05) ? 8 : 0);
      return packet(0x30 | flags, Buffer.concat([utf8(topic), qos ? u16(id) : Buffer.alloc(0), Buffer.from(r.pick(PAYLOADS(r)), "latin1")]));
    }
    case 3: {
      const filters = Array.from({ length: r.int(4) }, () => Buffer.concat([utf8(r.pick(TOPICS(r, me))), Buffer.from([r.pick([0, 1, 2, 3, 0x80])])]));
      return packet(r.pick([0x82, 0x80, 0x83]), Buffer.concat([u16(id), ...filters]));
    }
    case 4:
      return packet(0xa2, Buffer.concat([u16(id), utf8(r.pick(TOPICS(r, me)))]));
    case 5:
      return packet(r.pick([0x40, 0x50, 0x62, 0x70]), u16(id));
    case 6:
      // PINGREQ, DISCONNECT, a PINGRESP from a client, the reserved types 0 and 15.
      return Buffer.from([r.pick([0xc0, 0xe0, 0xd0, 0xf0, 0x00]), 0]);
    case 7:
      return connect(r.pick([me, "", "other", "x".repeat(300)]), r.pick([me, `${me}@localhost`, null, "svc1"]), r.pick(["dev pw", "wrong", null, ""]), r.int(70_000));
    case 8:
      // Remaining length that lies: longer or shorter than what follows, or a 5-byte varint.
      return Buffer.concat([Buffer.from([0x32]), r.pick([remainingLength(r.int(1 << 28)), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f]), remainingLength(1)]), utf8(`devices/${me}/telemetry`), u16(id)]);
    default: {
      const b = Buffer.from(mqttPacket(r, me));
      for (let i = r.int(4); i >= 0 && b.length; i--) b[r.int(b.length)] = r.int(256);
      return r.chance(0.3) ? b.subarray(0, r.int(b.length + 1)) : b;
    }
  }
}

async function mqttRound(r: Rng, port: number): Promise<void> {
  const me = r.pick(DEVICES);
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => {});
  socket.on("data", () => {});
  await new Promise<void>((resolve) => socket.once("connect", resolve).once("error", () => resolve()));
  const parts: Buffer[] = [];
  if (r.chance(0.75)) parts.push(r.chance(0.85) ? connect(me, me, "dev pw") : connect("svc1", "svc1", "svc pw"));
  for (let i = 1 + r.int(8); i > 0; i--) parts.push(r.chance(0.05) ? Buffer.from(Array.from({ length: r.int(64) }, () => r.int(256))) : mqttPacket(r, me));
  for (const p of parts) {
    if (socket.destroyed) break;
    socket.write(p);
    if (r.chance(0.3)) await new Promise((res) => setTimeout(res, r.int(15)));
  }
  await new Promise((res) => setTimeout(res, r.int(40)));
  if (r.chance(0.5)) socket.end();
  else socket.destroy();
}

// ---- XMPP stanzas (RFC 6120 §8) ----
const TARGETS = ["", "localhost", "pubsub.localhost", "dev1@localhost/mqtt", "dev1@localhost", "door1@localhost/mqtt", "op1@localhost", "svc1@localhost/x",
  "nobody@localhost", "elsewhere.example", "@localhost", "a@b@c", "dev1@localhost/" + "r".repeat(2000), "\u0000", "dev1@LOCALHOST/mqtt", "x".repeat(1100) + "@localhost"];
const PAYLOADS_XMPP = (r: Rng) => [
  "<query xmlns='http://jabber.org/protocol/disco#info'/>", "<query xmlns='http://jabber.org/protocol/disco#items' node='telemetry'/>",
  "<ping xmlns='urn:xmpp:ping'/>", "<query xmlns='jabber:iq:last'/>", "<query xmlns='jabber:iq:roster'><item jid='dev1@localhost' subscription='remove'/></query>",
  "<vCard xmlns='vcard-temp'/>", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='${r.pick(["telemetry", "telemetry/dev1", "telemetry/nobody", "", "telemetry/../x"])}' jid='${r.pick(["op1@localhost", "dev1@localhost", "bad@@"])}'/></pubsub>`,
  `<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='telemetry/dev1' max_items='${r.pick(["1", "-5", "x", "99999999999", ""])}'/></pubsub>`,
  `<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='telemetry/${r.pick(DEVICES)}'><item><json xmlns='urn:xmpp:json:0'>${r.pick(PAYLOADS(r)).replace(/[<&]/g, "")}</json></item></publish></pubsub>`,
  "<pubsub xmlns='http://jabber.org/protocol/pubsub'><unsubscribe node='telemetry'/></pubsub>", "<pubsub xmlns='http://jabber.org/protocol/pubsub'/>",
  `<command xmlns='http://jabber.org/protocol/commands' node='${r.pick(["set-setpoint", "reboot", "", "nope"])}' action='${r.pick(["execute", "complete", "cancel", "bogus"])}' sessionid='${r.pick(["", "abc", "1"])}'><x xmlns='jabber:x:data' type='submit'><field var='${r.pick(["setpoint", "value", ""])}'><value>${r.pick(["21", "-999", "NaN", "", "1e400"])}</value></field></x></command>`,
  `<req xmlns='urn:xmpp:iot:sensordata' seqnr='${r.pick(["1", "-1", "x", "99999999999999999999"])}' momentary='${r.pick(["true", "false", "maybe"])}' from='${r.pick(["2020-01-01T00:00:00Z", "yesterday", ""])}' to='${r.pick(["2030-01-01T00:00:00Z", "0", ""])}'/>`,
  "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>again</resource></bind>", "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>", "", "<unknown xmlns='urn:x'/><second xmlns='urn:y'/>",
];

function stanza(r: Rng): string {
  const id = r.pick(["a", "", "x".repeat(r.int(500)), "&amp;", "1"]);
  const to = r.pick(TARGETS);
  const toAttr = to === "" && r.chance(0.5) ? "" : ` to='${to}'`;
  switch (r.int(4)) {
    case 0:
    case 1:
      return `<iq type='${r.pick(["get", "set", "result", "error", "bogus", ""])}' id='${id}'${toAttr}>${r.pick(PAYLOADS_XMPP(r))}</iq>`;
    case 2:
      return `<presence${toAttr} type='${r.pick(["subscribe", "unsubscribe", "subscribed", "unsubscribed", "probe", "unavailable", "error", "x"])}'>${r.pick(["", "<show>away</show>", "<priority>999</priority>", "<priority>x</priority>", "<status>" + "s".repeat(r.int(2000)) + "</status>"])}</presence>`;
    default:
      return `<message${toAttr} type='${r.pick(["chat", "normal", "groupchat", "headline", "error", "nonsense"])}' id='${id}'><body>${r.pick(["hi", "", "&lt;x&gt;", "\u00e9\u{1F600}"])}</body></message>`;
  }
}

function mutate(r: Rng, s: string): string {
  if (!r.chance(0.25)) return s;
  const chars = [...s];
  const junk = ["<", ">", "&", "'", "\"", "]]>", "&#0;", "&#xD800;", "<!--", "<?pi?>", "<!DOCTYPE x>", "\u0000", "\uFFFE", "</iq>", "<x:y>", "xmlns:x=''"];
  for (let i = 1 + r.int(3); i > 0; i--) {
    const at = r.int(chars.length + 1);
    if (r.chance(0.5)) chars.splice(at, 0, r.pick(junk));
    else chars.splice(at, 1 + r.int(5));
  }
  return chars.join("");
}

async function xmppRound(r: Rng, port: number): Promise<void> {
  const c = await RawClient.connect(port);
  try {
    if (r.chance(0.7)) {
      const who = r.pick(ACCOUNTS);
      await c.login(who.name, who.password, { resource: r.pick(["fz", "mqtt", "a/b", ""]) || undefined, tls: false });
    } else {
      c.send(r.chance(0.8) ? STREAM_OPEN() : mutate(r, STREAM_OPEN(r.pick(["localhost", "other", ""]))));
    }
    for (let i = 1 + r.int(8); i > 0 && !c.closed; i--) {
      c.send(mutate(r, stanza(r)));
      if (r.chance(0.3)) await new Promise((res) => setTimeout(res, r.int(15)));
    }
    if (r.chance(0.3) && !c.closed) c.send(r.pick(["</stream:stream>", "</stream>", "<", "\u0000"]));
    await new Promise((res) => setTimeout(res, r.int(40)));
  } catch {
    // A login refused or a stream closed by the server is an expected outcome here.
  } finally {
    c.close();
  }
}

// ---- WebSocket: RFC 7395 framing at /xmpp-websocket, MQTT 3.1.1 §6 at /mqtt ----
const OPEN_FRAME = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";

async function wsRound(r: Rng, port: number): Promise<void> {
  const path = r.pick(["/xmpp-websocket", "/xmpp-websocket", "/mqtt", "/mqtt", "/nowhere"]);
  const right = path === "/mqtt" ? ["mqtt"] : ["xmpp"];
  const protocols = r.chance(0.7) ? right : r.pick([["xmpp"], ["mqtt"], ["mqttv3.1"], [], ["xmpp", "mqtt"]]);
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, protocols, { maxPayload: 1 << 20 });
  ws.on("error", () => {});
  const opened = await new Promise<boolean>((resolve) => {
    ws.once("open", () => resolve(true));
    ws.once("close", () => resolve(false));
  });
  if (!opened) return;
  const send = (data: string | Buffer) => ws.readyState === WebSocket.OPEN && ws.send(data, { binary: typeof data !== "string" });
  const me = r.pick(DEVICES);
  if (path === "/mqtt") {
    if (r.chance(0.75)) send(connect(me, me, "dev pw"));
    for (let i = 1 + r.int(8); i > 0; i--) send(r.chance(0.1) ? mutate(r, stanza(r)) : mqttPacket(r, me));
  } else {
    const who = r.pick(ACCOUNTS);
    // Pipelined login (the server works through what it was sent in order): open, PLAIN, open, bind.
    if (r.chance(0.7)) {
      send(OPEN_FRAME);
      send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${who.name}\0${r.chance(0.9) ? who.password : "wrong"}`).toString("base64")}</auth>`);
      send(OPEN_FRAME);
      send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
      // Fuzz the bound session, not the login: a bad frame sent meanwhile ends the stream at once.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, 2_000);
        function done() {
          clearTimeout(timer);
          ws.off("message", onMessage);
          resolve();
        }
        function onMessage(data: WebSocket.RawData) {
          if (/<jid>|<failure|<close/.test(String(data))) done();
        }
        ws.on("message", onMessage);
        ws.once("close", done);
      });
    } else send(mutate(r, OPEN_FRAME));
    for (let i = 1 + r.int(8); i > 0; i--) send(r.chance(0.1) ? Buffer.from(Array.from({ length: r.int(64) }, () => r.int(256))) : mutate(r, stanza(r)));
    if (r.chance(0.3)) send(r.pick(["<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>", "<stream:stream>", "", "<a/><b/>"]));
  }
  await new Promise((res) => setTimeout(res, r.int(40)));
  if (r.chance(0.5)) ws.close(r.pick([1000, 1001, 1008, 4000]));
  else ws.terminate();
}

async function fuzz(round: (r: Rng, port: number) => Promise<void>, port: number, seed: number): Promise<number> {
  let next = 0;
  const lane = async (laneNo: number) => {
    const r = prng(seed * 31 + laneNo);
    while (next < ROUNDS) {
      next++;
      await round(r, port).catch(() => {});
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, (_, i) => lane(i)));
  return next;
}

const internalErrors = (b: TestBroker) => b.logs.filter((l) => JSON.parse(l).level >= 50);
/** What the broker logged, by message: shows which paths a run reached. */
function reached(b: TestBroker): string {
  const n = new Map<string, number>();
  for (const l of b.logs) {
    const { msg, reason, verdict, condition } = JSON.parse(l) as Record<string, string>;
    const key = [msg, (reason ?? verdict ?? condition)?.replace(/^\d+:\d+: /, "")].filter(Boolean).join(": ").slice(0, 80);
    n.set(key, (n.get(key) ?? 0) + 1);
  }
  return [...n].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${v} × ${k}`).join("\n");
}

async function stillServes(t: Test, b: TestBroker, settleMs = 10_000): Promise<void> {
  // Every fuzzing connection is gone: no device may still look online to anyone.
  const left = () => ({ mqttClients: Object.keys((b.mqtt.aedes as unknown as { clients: Record<string, unknown> }).clients), xmppDeviceSessions: DEVICES.flatMap((d) => b.xmpp.sessions.ofAccount(`${d}@localhost`).map((x) => x.full)) });
  await waitFor(() => { const l = left(); return l.mqttClients.length === 0 && l.xmppDeviceSessions.length === 0; }, settleMs, "fuzzing sessions to end").catch((err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify(left())}`);
  });
  const op = await RawClient.connect(b.ports.xmpp);
  await op.login("op1", "op pw", { resource: "after", tls: false });
  op.send("<presence/><iq type='get' id='p0' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  await op.expect(/<iq[^>]*id="p0"/);
  t.notMatch(op.log, /<presence (?![^>]*type=)[^>]*from="(dev1|dev2|door1)@/, "no device left available after the fuzzing");

  const svc = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.ports.mqtt}`, { clientId: "svc1", username: "svc1", password: "svc pw", reconnectPeriod: 0 });
  await svc.subscribeAsync("devices/+/telemetry", { qos: 1 });
  // Fuzzed samples may still arrive (retained, or committed after the rounds ended): wait for this one.
  const got = new Promise<string>((resolve) => svc.on("message", (topic, payload) => topic === "devices/dev1/telemetry" && String(payload).includes("21.5") && resolve(String(payload))));
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.ports.mqtt}`, { clientId: "dev1", username: "dev1", password: "dev pw", reconnectPeriod: 0 });
  await dev.publishAsync("devices/dev1/telemetry", JSON.stringify({ temperature: 21.5, humidity: 40 }), { qos: 1 });
  t.match(await got, /21\.5/, "a good device's sample reaches a service");
  await op.expect(/<presence from="dev1@localhost\/mqtt"/);
  op.send("<iq type='get' id='p1' to='dev1@localhost/mqtt'><ping xmlns='urn:xmpp:ping'/></iq>");
  t.match((await op.expect(/<iq[^>]*id="p1"[^>]*\/>/))[0], /type="result"/, "an operator sees the device come online and its IQ is answered");
  op.close();
  await dev.endAsync();
  await svc.endAsync();
}

// Failures are expected by the thousand here: no delay, so the checks after the fuzz
// are not slowed down by the address's own failure count.
const CONFIG = { auth: { maxFailures: 1000, maxAccountFailures: 1000 }, xmpp: { requireTls: false } };

/** One part: a fresh broker, the rounds against one of its ports, then the checks. */
function fuzzPart(name: string, round: (r: Rng, port: number) => Promise<void>, port: (b: TestBroker) => number, settleMs?: number): void {
  t.test(`${name} (seed ${SEED})`, async (t) => {
    const b = await startTestBroker(CONFIG, ACCOUNTS);
    t.teardown(() => b.close());
    t.equal(await fuzz(round, port(b), SEED), ROUNDS, "every round ran");
    t.same(internalErrors(b), [], "no internal error logged");
    t.comment(reached(b));
    await stillServes(t, b, settleMs);
  });
}

fuzzPart(`MQTT: ${ROUNDS} connections of mutated packets`, mqttRound, (b) => b.ports.mqtt);
fuzzPart(`XMPP: ${ROUNDS} streams of mutated stanzas`, xmppRound, (b) => b.ports.xmpp);
// Longer than the ws client's 30 s close timeout: a client that sent its close frame
// while the server was not reading is only let go when that timeout destroys the
// socket. (Once in ~45 runs of 4,000 rounds a session outlived a 10 s wait here.)
fuzzPart(`WebSocket: ${ROUNDS} connections to /xmpp-websocket and /mqtt`, wsRound, (b) => b.ports.http, 40_000);
