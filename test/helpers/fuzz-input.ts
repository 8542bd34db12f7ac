// What the fuzz tests (test/ops/fuzz-*.test.ts) send, drawn from a seeded PRNG:
// mutated MQTT 3.1.1 packets and mutated XMPP stanzas (RFC 6120 §8).
import { connectPacket, packet, remainingLength, u16, utf8 } from "./mqtt-bytes.js";
import { DEVICES, pw, type Rng } from "./fuzz.js";

// ---- MQTT 3.1.1 packets ----
export const connect = (clientId: string, user: string | null, password: string | null, keepalive = 30) =>
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

export function mqttPacket(r: Rng, me: string): Buffer {
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
      return connect(r.pick([me, "", "other", "x".repeat(300)]), r.pick([me, `${me}@localhost`, null, "svc1"]), r.pick([pw(me), "wrong", null, ""]), r.int(70_000));
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

export function stanza(r: Rng): string {
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

export function mutate(r: Rng, s: string): string {
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
