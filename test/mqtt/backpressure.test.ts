// Backpressure on the MQTT edge (docs/mqtt.md, Backpressure): a publisher that writes
// as fast as TCP lets it is slowed down by the broker instead of being buffered, a
// subscriber that stops reading holds the publishers back only until
// mqtt.slowConsumerTimeoutMs and is then disconnected, and everyone else goes on. Real
// sockets; the broker runs in this process, so its memory is this process's.
import t from "tap";
import net from "node:net";
import mqtt from "mqtt";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { startTestBroker } from "../helpers/broker.js";
import { connectPacket, publishPacket, subscribePacket } from "../helpers/mqtt-bytes.js";

// A full collection on demand, so that what the process *holds* is measured, not
// garbage a busy allocator has not collected yet (RSS peaks vary with GC timing).
setFlagsFromString("--expose-gc");
const collect = runInNewContext("gc") as () => void;
// Two collections with a pause between: V8 frees dead Buffers' memory on a background
// sweeper after a collection, and until it has, process.memoryUsage().external still
// counts them: single readings right after gc() ranged 13-49 MiB where this reads ~2.
const held = async () => {
  collect();
  await new Promise((r) => setTimeout(r, 50));
  collect();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
};

const STEP_MS = 15_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const connect = (id: string, password: string) => connectPacket({ clientId: id, username: id, password, keepalive: 60 });

/** A raw MQTT connection that has received its CONNACK. */
async function rawConnect(port: number, id: string, password: string): Promise<net.Socket> {
  const socket = net.connect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  socket.write(connect(id, password));
  const ack = await new Promise<Buffer>((resolve, reject) => {
    socket.once("data", resolve).once("error", reject);
    setTimeout(() => reject(new Error(`no CONNACK for ${id}`)), STEP_MS);
  });
  if (ack[0] !== 0x20 || ack[3] !== 0) throw new Error(`${id}: CONNACK ${ack.toString("hex")}`);
  return socket;
}

// Distinct samples (the humidity counts), so none is a duplicate of another; padded
// with JSON whitespace to 30 KB, so that the kernel's socket buffers (MBs) fill quickly.
const SAMPLE_BYTES = 30_000;
const sample = (i: number) => JSON.stringify({ temperature: 20 + (i % 1000) / 100, humidity: (i % 100_000) / 1000 }).padEnd(SAMPLE_BYTES, " ");

t.test("a stuck subscriber holds publishers back, then is cut off; the flood costs bounded memory", async (t) => {
  const b = await startTestBroker({ mqtt: { outboundHighWaterBytes: 256 * 1024, slowConsumerTimeoutMs: 2_000 } }, [
    { name: "svc", role: "service", password: "svc pw" },
    { name: "watch", role: "service", password: "watch pw" },
    { name: "dev1", role: "device", type: "thermostat", password: "dev1 pw" },
  ]);
  t.teardown(() => b.close());
  const port = b.ports.mqtt;

  // The stuck subscriber: subscribes, then never reads again.
  const stuck = await rawConnect(port, "svc", "svc pw");
  stuck.write(subscribePacket("devices/+/telemetry"));
  await sleep(200);
  stuck.pause();
  let stuckClosed = false;
  stuck.on("close", () => (stuckClosed = true));
  stuck.on("error", () => {});

  // A healthy subscriber.
  const watch = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: "watch", username: "watch", password: "watch pw", reconnectPeriod: 0 });
  t.teardown(() => watch.end(true));
  await watch.subscribeAsync("devices/+/telemetry", { qos: 0 });
  let watched = 0;
  watch.on("message", () => watched++);

  // The publisher writes QoS 0 telemetry as fast as its socket takes it, for 1.5 s.
  const pub = await rawConnect(port, "dev1", "dev1 pw");
  pub.on("error", () => {});
  const heldBefore = await held();
  let written = 0;
  let blocked = false;
  const floodUntil = Date.now() + 3_000;
  while (Date.now() < floodUntil) {
    const batch: Buffer[] = [];
    for (let i = 0; i < 10; i++) batch.push(publishPacket("devices/dev1/telemetry", sample(written + i)));
    written += 10;
    if (!pub.write(Buffer.concat(batch))) {
      blocked = true;
      // Nothing more is written until the socket drains (or the flood's time is up).
      await Promise.race([new Promise((r) => pub.once("drain", r)), sleep(floodUntil - Date.now())]);
    } else {
      await new Promise((r) => setImmediate(r));
    }
  }
  // The flood is held here: what the process keeps for it is bounded, the rest waits in TCP.
  const heldDuring = await held();
  const acceptedDuringHold = b.ingest.counters.accepted;
  t.ok(blocked, "the publisher's socket filled up: TCP pushed back on it");
  t.ok(acceptedDuringHold < written, `the broker took ${acceptedDuringHold} of ${written} messages while the subscriber was stuck`);

  // The stuck subscriber is disconnected after slowConsumerTimeoutMs and counted.
  const deadline = Date.now() + STEP_MS;
  while (b.mqtt.counters.slowConsumers === 0 && Date.now() < deadline) await sleep(50);
  t.equal(b.mqtt.counters.slowConsumers, 1, "the subscriber that stopped reading is counted as a slow consumer");
  // Its socket sees the end once it reads again.
  stuck.resume();
  while (!stuckClosed && Date.now() < deadline) await sleep(50);
  t.ok(stuckClosed, "and was disconnected");

  // The held publisher's backlog now flows: the broker accepts what was written.
  while (b.ingest.counters.accepted < written && Date.now() < deadline + STEP_MS) await sleep(50);
  t.equal(b.ingest.counters.accepted, written, "every message written was accepted once the stuck subscriber was gone");
  while (watched < written && Date.now() < deadline + 2 * STEP_MS) await sleep(50);
  t.equal(watched, written, "the healthy subscriber received every one of them");
  const growth = (heldDuring - heldBefore) / 1024 / 1024;
  const flooded = (written * SAMPLE_BYTES) / 1024 / 1024;
  const accepted = (acceptedDuringHold * SAMPLE_BYTES) / 1024 / 1024;
  // What it keeps while the flood is held (the stuck subscriber's queue up to
  // outboundHighWaterBytes, the spool tail, pub-sub history) is far less than what was
  // flooded: the rest waits in TCP. Measured ~2 MiB; a broker that buffered the flood
  // would hold more than the 8 allowed here.
  t.ok(growth < 8, `the process held ${growth.toFixed(1)} MiB more (after two full GCs) for ${accepted.toFixed(1)} MiB accepted of ${flooded.toFixed(1)} MiB flooded`);

  const text = await (await fetch(`http://127.0.0.1:${b.ports.http}/metrics`)).text();
  t.match(text, /^switchboard_mqtt_slow_consumers_total 1$/m, "exported as a metric");
  pub.destroy();
});

t.test("many publishers flood a stuck subscriber that then goes away: the broker lives on", async (t) => {
  // Thousands of deliveries in progress at once. aedes' emitter, given a cap on them,
  // queues the rest and works through that queue recursively once nobody subscribes:
  // a stack overflow that killed the process (this test's process, here).
  const devices = Array.from({ length: 150 }, (_, i) => ({ name: `flood${i}`, role: "device" as const, type: "thermostat", password: "pw" }));
  const b = await startTestBroker({ mqtt: { outboundHighWaterBytes: 64 * 1024, slowConsumerTimeoutMs: 60_000 } }, [{ name: "svc", role: "service", password: "svc pw" }, ...devices]);
  t.teardown(() => b.close());
  const port = b.ports.mqtt;
  const stuck = await rawConnect(port, "svc", "svc pw");
  stuck.on("error", () => {});
  stuck.write(subscribePacket("devices/+/telemetry"));
  await sleep(200);
  stuck.pause();

  const publishers = await Promise.all(devices.map((d) => rawConnect(port, d.name, "pw")));
  for (const p of publishers) p.on("error", () => {});
  const small = (i: number) => JSON.stringify({ temperature: 20 + (i % 1000) / 100, humidity: (i % 100_000) / 1000 });
  const until = Date.now() + 2_000;
  let written = 0;
  await Promise.all(publishers.map(async (p, n) => {
    while (Date.now() < until) {
      const batch: Buffer[] = [];
      for (let i = 0; i < 50; i++) batch.push(publishPacket(`devices/${devices[n]!.name}/telemetry`, small(written++)));
      if (!p.write(Buffer.concat(batch))) await Promise.race([new Promise((r) => p.once("drain", r)), sleep(until - Date.now())]);
      else await new Promise((r) => setImmediate(r));
    }
  }));
  const acceptedWhileStuck = b.ingest.counters.accepted;
  t.ok(acceptedWhileStuck > 4_000, `the broker took ${acceptedWhileStuck} samples before the stuck subscriber held everyone back`);
  stuck.destroy();
  // The publishers' backlog now flows to nobody; the broker must come through it.
  const deadline = Date.now() + STEP_MS;
  let accepted = 0;
  while (Date.now() < deadline) {
    await sleep(500);
    if (b.ingest.counters.accepted === accepted) break;
    accepted = b.ingest.counters.accepted;
  }
  for (const p of publishers) p.destroy();
  const probe = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: "svc-probe", username: "svc", password: "svc pw", reconnectPeriod: 0, connectTimeout: 5_000 });
  t.ok(probe.connected, `alive after ${accepted} samples: a new client connects`);
  await probe.endAsync();
});
