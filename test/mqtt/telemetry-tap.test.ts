import t from "tap";
import net from "node:net";
import { Duplex } from "node:stream";
import mqtt from "mqtt";
import { GuardedConnection, type InboundPublish } from "../../bridges/mqtt/guard.js";
import { connectPacket, packet, u16, utf8 } from "../helpers/mqtt-bytes.js";
import { startTestBroker } from "../helpers/broker.js";
import { waitFor } from "../helpers/wait.js";

// The telemetry tap (bridges/mqtt/guard.ts frames, broker.ts's tapTelemetry handles):
// a device's telemetry skips aedes' per-packet path with the same outcome.

const publish = (topic: string, payload: string, o: { qos?: 0 | 1 | 2; id?: number; retain?: boolean; dup?: boolean } = {}) =>
  packet(0x30 | ((o.qos ?? 0) << 1) | (o.retain ? 1 : 0) | (o.dup ? 0x08 : 0), Buffer.concat([utf8(topic), o.qos ? u16(o.id ?? 1) : Buffer.alloc(0), Buffer.from(payload)]));
const PINGREQ = Buffer.from([0xc0, 0x00]);

/** A guarded connection over an in-memory socket, with a tap that takes publishes to `t/x`; its CONNECT already read by "aedes". */
async function rig(o: { settleAtOnce?: boolean } = {}) {
  const socket = new Duplex({ read() {}, write: (_c, _e, done) => done() });
  const taken: Array<{ qos: number; messageId: number; payload: string }> = [];
  const conn: GuardedConnection = new GuardedConnection(socket, 64 * 1024, () => {}, undefined, undefined, (c, p: InboundPublish) => {
    if (p.bytes.toString("utf8", p.topicStart, p.topicEnd) !== "t/x") return false;
    taken.push({ qos: p.qos, messageId: p.messageId, payload: String(p.payload) });
    if (o.settleAtOnce) queueMicrotask(() => c.settle());
    return true;
  });
  /** What aedes would read, all of it. */
  const forAedes = () => {
    const parts: Buffer[] = [];
    for (let chunk: Buffer | null; (chunk = conn.read() as Buffer | null) !== null; ) parts.push(chunk);
    return Buffer.concat(parts);
  };
  // [MQTT-3.1.0-1]: the first packet is a CONNECT; aedes reads it.
  socket.push(connectPacket({ clientId: "rig" }));
  await new Promise((resolve) => setImmediate(resolve));
  forAedes();
  return { socket, conn, taken, forAedes, send: (b: Buffer) => socket.push(b) };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

t.test("framing: the tap gets whole publishes, aedes gets every other packet unchanged and in order", async (t) => {
  const { conn, taken, forAedes, send } = await rig({ settleAtOnce: true });
  conn.pause();
  send(Buffer.concat([publish("t/x", '{"a":1}', { qos: 1, id: 7 }), publish("t/x", '{"a":2}')]));
  await turn();
  t.same(taken, [{ qos: 1, messageId: 7, payload: '{"a":1}' }, { qos: 0, messageId: 0, payload: '{"a":2}' }], "QoS 1 and QoS 0, with their ids");
  t.equal(forAedes().length, 0, "nothing for aedes");

  // Not taken: another topic, retained, QoS 2, QoS 0 with DUP set, QoS 1 with packet id 0.
  const others = [
    publish("t/y", "{}"),
    publish("t/x", "{}", { retain: true }),
    publish("t/x", "{}", { qos: 2, id: 3 }),
    publish("t/x", "{}", { dup: true }),
    publish("t/x", "{}", { qos: 1, id: 0 }),
    PINGREQ,
  ];
  for (const p of others) {
    send(p);
    await turn();
    t.same(forAedes(), p, `left to aedes: ${p.subarray(0, 2).toString("hex")}…`);
  }
  t.equal(taken.length, 2, "none of them taken");

  // While aedes has a packet of this connection unread, a later telemetry publish waits behind it.
  const ping = PINGREQ;
  const late = publish("t/x", '{"a":3}', { qos: 1, id: 8 });
  send(Buffer.concat([ping, late]));
  await turn();
  t.same(forAedes(), Buffer.concat([ping, late]), "order kept: both to aedes");
  t.equal(taken.length, 2);
});

t.test("framing: a publish cut into single bytes, and one across two reads with the next", async (t) => {
  const { conn, taken, send } = await rig({ settleAtOnce: true });
  conn.pause();
  const one = publish("t/x", '{"temperature":21.5}', { qos: 1, id: 300 });
  for (const byte of one) {
    send(Buffer.from([byte]));
    await turn();
  }
  t.same(taken, [{ qos: 1, messageId: 300, payload: '{"temperature":21.5}' }], "whole once its last byte came");
  const two = Buffer.concat([publish("t/x", "1", { qos: 1, id: 1 }), publish("t/x", "2", { qos: 1, id: 2 })]);
  send(two.subarray(0, 9));
  await turn();
  send(two.subarray(9));
  await turn();
  t.same(taken.slice(1).map((p) => p.payload), ["1", "2"]);
});

t.test("framing: past the tap's slots the rest waits and the socket is paused; settling resumes it", async (t) => {
  const { socket, conn, taken, forAedes, send } = await rig();
  conn.pause();
  const burst = Buffer.concat(Array.from({ length: 100 }, (_, i) => publish("t/x", String(i), { qos: 1, id: i + 1 })));
  send(burst);
  await turn();
  t.equal(taken.length, 64, "64 held by the tap");
  t.ok(socket.isPaused(), "socket paused");
  for (let i = 0; i < 31; i++) conn.settle();
  t.equal(taken.length, 64, "nothing more until half are settled");
  conn.settle();
  t.equal(taken.length, 96, "32 more taken, up to the slots again");
  t.ok(socket.isPaused(), "still paused");
  for (let i = 0; i < 32; i++) conn.settle();
  t.equal(taken.length, 100, "the rest taken");
  t.notOk(socket.isPaused(), "socket resumed");
  t.same(taken.map((p) => p.messageId), Array.from({ length: 100 }, (_, i) => i + 1), "in order");
  t.equal(forAedes().length, 0);
});

t.test("framing: at the end of the stream, an incomplete packet goes to aedes, then the end", async (t) => {
  const { socket, conn, taken, send } = await rig({ settleAtOnce: true });
  const whole = publish("t/x", "1", { qos: 1, id: 1 });
  const cut = publish("t/x", "2", { qos: 1, id: 2 }).subarray(0, 5);
  send(Buffer.concat([whole, cut]));
  await turn();
  t.equal(taken.length, 1);
  const parts: Buffer[] = [];
  conn.on("data", (c: Buffer) => parts.push(c));
  const ended = new Promise<void>((resolve) => conn.on("end", () => resolve()));
  socket.push(null);
  await ended;
  t.same(Buffer.concat(parts), cut, "the incomplete packet, unchanged, for aedes to refuse");
});

t.test("framing: a stream that ends while publishes wait for slots: they are taken once slots free, then the end", async (t) => {
  const { socket, conn, taken, send } = await rig();
  send(Buffer.concat(Array.from({ length: 70 }, (_, i) => publish("t/x", String(i), { qos: 1, id: i + 1 }))));
  await turn();
  t.equal(taken.length, 64);
  const ended = new Promise<void>((resolve) => conn.on("end", () => resolve()));
  conn.resume();
  socket.push(null);
  for (let i = 0; i < 64; i++) conn.settle();
  await ended;
  t.equal(taken.length, 70, "all seventy taken before the end");
});

const DEVICE = { name: "tap1", role: "device" as const, type: "thermostat", password: "tap-pw-1" };
const SERVICE = { name: "svc1", role: "service" as const, password: "svc-pw-1" };

/** A raw MQTT connection: send bytes, wait for bytes. */
async function rawDevice(port: number) {
  const socket = net.connect(port, "127.0.0.1");
  await new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  let received = Buffer.alloc(0);
  let closedAt = 0;
  socket.on("data", (d: Buffer) => void (received = Buffer.concat([received, d])));
  socket.on("close", () => void (closedAt = Date.now()));
  socket.on("error", () => {});
  return {
    socket,
    send: (b: Buffer) => socket.write(b),
    received: () => received,
    closedAt: () => closedAt,
  };
}

t.test("a device's telemetry takes the tap: PUBACKs in order after the spool, samples stored in order, other packets answered", async (t) => {
  const b = await startTestBroker({}, [DEVICE]);
  t.teardown(() => b.close());
  const dev = await rawDevice(b.ports.mqtt);
  t.teardown(() => dev.socket.destroy());
  dev.send(connectPacket({ clientId: "tap1", username: "tap1", password: "tap-pw-1" }));
  await waitFor(() => dev.received().length >= 4, 5_000, "CONNACK");
  t.same(dev.received().subarray(0, 4), Buffer.from([0x20, 0x02, 0x00, 0x00]), "CONNACK accepted");
  const tapped = b.mqtt.counters.tappedPublishes;
  const sample = (n: number) => JSON.stringify({ temperature: 20 + n, humidity: 40, ts: 1_700_000_000_000 + n });
  // One write: telemetry, a reply (aedes' path), telemetry, PINGREQ, telemetry, an invalid sample.
  dev.send(
    Buffer.concat([
      publish("devices/tap1/telemetry", sample(1), { qos: 1, id: 11 }),
      publish("devices/tap1/replies", '{"id":"x","ok":true}', { qos: 1, id: 12 }),
      publish("devices/tap1/telemetry", sample(2), { qos: 1, id: 13 }),
      PINGREQ,
      publish("devices/tap1/telemetry", sample(3), { qos: 1, id: 14 }),
      publish("devices/tap1/telemetry", '{"temperature":"hot"}', { qos: 1, id: 15 }),
    ]),
  );
  const acks = await waitFor(() => {
    const bytes = dev.received().subarray(4);
    const ids: number[] = [];
    let pong = false;
    // Short packets only here: a one-byte Remaining Length.
    for (let i = 0; i + 2 <= bytes.length; i += 2 + bytes[i + 1]!) {
      if (bytes[i] === 0x40) ids.push(bytes.readUInt16BE(i + 2));
      if (bytes[i] === 0xd0) pong = true;
    }
    return pong && ids.length >= 5 ? ids : undefined;
  }, 5_000, "five PUBACKs and a PINGRESP");
  const telemetryAcks = acks.filter((id) => id !== 12);
  t.same(telemetryAcks, [11, 13, 14, 15], "telemetry PUBACKs in the order sent, the refused one included");
  t.ok(b.mqtt.counters.tappedPublishes - tapped >= 1, "the tap took telemetry");
  const stored = await waitFor(async () => {
    const rows = await b.store.query("tap1", "thermostat", 0, Date.now(), 10);
    return rows.length === 3 ? rows : undefined;
  }, 5_000, "three samples stored");
  t.same(stored.map((r) => r.fields.temperature), [21, 22, 23], "stored, in order");
  t.equal(b.ingest.lastSample("tap1")?.fields.temperature, 23, "last sample");

  // Telemetry only, all on the tap: a refusal (answered at once) still waits for the PUBACK before it.
  const before = dev.received().length;
  const tappedBefore = b.mqtt.counters.tappedPublishes;
  dev.send(
    Buffer.concat([
      publish("devices/tap1/telemetry", sample(4), { qos: 1, id: 21 }),
      publish("devices/tap1/telemetry", "not json", { qos: 1, id: 22 }),
      publish("devices/tap1/telemetry", sample(5), { qos: 1, id: 23 }),
    ]),
  );
  await waitFor(() => dev.received().length >= before + 12 || undefined, 5_000, "three PUBACKs");
  const tail = dev.received().subarray(before);
  t.same([0, 4, 8].map((i) => tail.readUInt16BE(i + 2)), [21, 22, 23], "PUBACKs in order (MQTT 3.1.1 §4.6)");
  t.equal(b.mqtt.counters.tappedPublishes - tappedBefore, 3, "all three taken by the tap");
});

t.test("telemetry alone keeps a connection alive (MQTT 3.1.1 §3.1.2.10); silence ends it at 1.5 × keepalive", async (t) => {
  const b = await startTestBroker({}, [DEVICE]);
  t.teardown(() => b.close());
  const dev = await rawDevice(b.ports.mqtt);
  t.teardown(() => dev.socket.destroy());
  dev.send(connectPacket({ clientId: "tap1", username: "tap1", password: "tap-pw-1", keepalive: 1 }));
  await waitFor(() => dev.received().length >= 4, 5_000, "CONNACK");
  const tapped = b.mqtt.counters.tappedPublishes;
  let quiet = 0;
  for (let i = 1; i <= 8; i++) {
    dev.send(publish("devices/tap1/telemetry", JSON.stringify({ temperature: 20, humidity: 40 }), { qos: 0 }));
    quiet = Date.now();
    await new Promise((r) => setTimeout(r, 400));
  }
  t.equal(b.mqtt.counters.tappedPublishes - tapped, 8, "all eight taken by the tap");
  t.equal(dev.closedAt(), 0, "still connected after 3.2 s of telemetry only (keepalive 1 s)");
  await waitFor(() => dev.closedAt() || undefined, 5_000, "keepalive expiry");
  t.ok(dev.closedAt() - quiet >= 1_400, `closed ${dev.closedAt() - quiet} ms after the last publish`);
});

t.test("fan-out from the tap: a subscriber that arrives later gets the next samples, and a refused one never", async (t) => {
  const b = await startTestBroker({}, [DEVICE, SERVICE]);
  t.teardown(() => b.close());
  const url = `mqtt://127.0.0.1:${b.ports.mqtt}`;
  const dev = await mqtt.connectAsync(url, { clientId: "tap1", username: "tap1", password: "tap-pw-1", reconnectPeriod: 0 });
  t.teardown(() => dev.endAsync());
  // Published while nobody listens: no fan-out work, nothing queued anywhere.
  await dev.publishAsync("devices/tap1/telemetry", JSON.stringify({ temperature: 19, humidity: 40 }), { qos: 1 });
  const svc = await mqtt.connectAsync(url, { clientId: "svc1", username: "svc1", password: "svc-pw-1", reconnectPeriod: 0 });
  t.teardown(() => svc.endAsync());
  const got: string[] = [];
  svc.on("message", (topic, payload) => got.push(`${topic} ${payload}`));
  await svc.subscribeAsync("devices/+/telemetry", { qos: 1 });
  await dev.publishAsync("devices/tap1/telemetry", '{"temperature":"hot"}', { qos: 1 });
  await dev.publishAsync("devices/tap1/telemetry", JSON.stringify({ temperature: 20, humidity: 40 }), { qos: 1 });
  await waitFor(() => got.length >= 1 || undefined, 5_000, "a delivery");
  await svc.unsubscribeAsync("devices/+/telemetry");
  await dev.publishAsync("devices/tap1/telemetry", JSON.stringify({ temperature: 21, humidity: 40 }), { qos: 1 });
  await new Promise((r) => setTimeout(r, 200));
  t.same(got, [`devices/tap1/telemetry ${JSON.stringify({ temperature: 20, humidity: 40 })}`], "only the accepted sample published while subscribed");
  t.ok(b.mqtt.counters.tappedPublishes >= 4, "all through the tap");
});
