// The embedded MQTT broker as two nodes of a cluster in one process, sharing a real
// Redis through aedes' own engines (mqemitter-redis, aedes-persistence-redis; docs/mqtt.md,
// "Several nodes"), with `mqtt` package clients: publishes, retained messages, persistent
// sessions, wills and telemetry cross nodes; a client id that connects on the other node
// takes the connection over and is reported so; a node restarted under its node id keeps
// what it queued before; a Redis away at start is one clear error; and a node's close
// ends its Redis connections, Redis up or gone.
import t from "tap";
import { spawn } from "node:child_process";
import { Writable } from "node:stream";
import { Redis } from "ioredis";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import type { Login } from "../../src/auth/login.js";
import { parseConfig } from "../../src/config.js";
import { createLogger } from "../../src/log.js";
import { createMetrics } from "../../src/metrics.js";
import { TAKEN_OVER } from "../../src/links/device-link.js";
import type { Account } from "../../src/registry/registry.js";
import type { SpooledSample } from "../../src/telemetry/sample.js";
import { createMqttLink, type MqttLink } from "../../bridges/mqtt/broker.js";
import { openBus } from "../../src/cluster/bus.js";
import { watchNodes } from "../../src/cluster/nodes.js";
import { mqttOptions } from "../../bridges/mqtt/options.js";
import { freePort } from "../helpers/ports.js";
import { startRedis } from "../helpers/redis.js";
import { sleep, waitFor, withTimeout } from "../helpers/wait.js";

type Tap = { teardown(fn: () => unknown): void };

const redis = await startRedis();
t.teardown(() => redis.close());

const DEVICES = ["dev1", "dev2", "dev3", "dev4", "dev5", "dev6"];
const accounts = new Map<string, Account>([
  ["svc", { name: "svc", role: "service", type: null, createdAt: 0 }],
  ...DEVICES.map((name) => [name, { name, role: "device", type: "thermostat", createdAt: 0 }] as [string, Account]),
]);
const password = (name: string) => `${name} pw`;

/** Accepts every account above with its password. */
const login: Login = {
  async password(_protocol, _address, username, given) {
    const account = accounts.get(username);
    return account && given === password(username) ? { ok: true, account } : { ok: false, ban: null };
  },
  banned: () => null,
  failed: () => {},
};

const configOf = (nodeId: string, redisUrl: string) =>
  parseConfig({
    mqtt: { host: "127.0.0.1", port: 0, tlsPort: null },
    cluster: { nodeId, redis: { url: redisUrl }, postgres: { url: "postgres://unused@127.0.0.1:1/unused" } },
    tsdb: { kind: "influx" },
  });

interface Node {
  link: MqttLink;
  url: string;
  /** `online dev1`, `offline dev1 <status>`, in order. */
  events: string[];
  logs: string[];
}

/** One node: the MQTT link of a cluster config, an ingest that accepts every sample. */
async function node(t: Tap, nodeId: string, redisUrl = redis.url): Promise<Node> {
  const logs: string[] = [];
  const sink = new Writable({ write: (chunk, _e, done) => (logs.push(String(chunk)), done()) });
  const config = configOf(nodeId, redisUrl);
  const options = mqttOptions(config, { cert: "", key: "" });
  const log = createLogger(sink);
  // The cluster's bus and node watch, as src/index.ts makes them: the nodes tell each other their subscriptions.
  const bus = await openBus({ url: redisUrl, nodeId, log });
  const watch = watchNodes({ bus, ...config.cluster!, counts: () => ({ sessions: 0, devices: 0 }), onError: () => {} });
  t.teardown(() => bus.close());
  t.teardown(() => watch.close());
  await watch.tick();
  const link = await createMqttLink({ options, login, admit: () => true, metrics: createMetrics(), log, peers: { bus, watch } });
  t.teardown(() => link.close());
  const events: string[] = [];
  link.listen({
    telemetry: (device, payload, done) => done({ ok: true, sample: { device, seq: 1, payload: String(payload) } as unknown as SpooledSample }),
    online: (a) => void events.push(`online ${a.name}`),
    offline: (a, status) => void events.push(`offline ${a.name} ${status}`),
  });
  await link.open();
  return { link, url: `mqtt://127.0.0.1:${link.ports.mqtt}`, events, logs };
}

interface Msg {
  topic: string;
  payload: string;
  retain: boolean;
}

/** An `mqtt` package client and what it received. */
class Peer {
  readonly msgs: Msg[] = [];
  closed = false;
  sessionPresent = false;
  constructor(readonly c: MqttClient) {
    c.on("message", (topic, payload, packet) => void this.msgs.push({ topic, payload: String(payload), retain: packet.retain }));
    c.on("close", () => void (this.closed = true));
    c.on("error", () => {});
  }
  wait(what: string, match: (m: Msg) => boolean, ms = 10_000): Promise<Msg> {
    return waitFor(() => this.msgs.find(match), ms, `${what}; received ${JSON.stringify(this.msgs)}`);
  }
}

async function connect(t: Tap, n: Node, name: string, o: IClientOptions = {}): Promise<Peer> {
  const c = mqtt.connect(n.url, { clientId: name, username: name, password: password(name), reconnectPeriod: 0, connectTimeout: 10_000, protocolVersion: 4, ...o });
  const peer = new Peer(c);
  t.teardown(() => c.end(true));
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      c.once("connect", (connack) => ((peer.sessionPresent = Boolean(connack.sessionPresent)), resolve()));
      c.once("error", reject);
    }),
    `${name} connects`,
  );
  return peer;
}

const reading = (temperature: number) => JSON.stringify({ temperature, humidity: 40 });

t.test("a QoS 1 publish on one node reaches a subscriber on the other; a retained message set on one is kept for the other", async (t) => {
  const [a, b] = [await node(t, "a"), await node(t, "b")];
  const dev1 = await connect(t, b, "dev1");
  await dev1.c.subscribeAsync("devices/dev1/commands/#", { qos: 1 });
  const svc = await connect(t, a, "svc");
  await svc.c.publishAsync("devices/dev1/commands/reboot", JSON.stringify({ id: "c1" }), { qos: 1 });
  const got = await dev1.wait("the command published on node a", (m) => m.topic === "devices/dev1/commands/reboot");
  t.equal(got.payload, JSON.stringify({ id: "c1" }));

  await svc.c.publishAsync("devices/dev2/commands/set", JSON.stringify({ id: "r1" }), { qos: 1, retain: true });
  const dev2 = await connect(t, b, "dev2");
  await dev2.c.subscribeAsync("devices/dev2/commands/#", { qos: 1 });
  const retained = await dev2.wait("the retained message set on node a", (m) => m.topic === "devices/dev2/commands/set");
  t.same(retained, { topic: "devices/dev2/commands/set", payload: JSON.stringify({ id: "r1" }), retain: true }, "delivered as retained");
});

t.test("a publish goes through Redis only while a subscriber on another node could want it, known there before its SUBACK", async (t) => {
  const [a, b] = [await node(t, "a"), await node(t, "b")];
  // What reaches Redis on the devices' topics, as any node would hear it.
  const spy = new Redis(redis.url);
  t.teardown(() => spy.disconnect());
  const inRedis: string[] = [];
  spy.on("pmessage", (_p: string, channel: string) => void inRedis.push(channel));
  await spy.psubscribe("devices/*");

  const svc = await connect(t, a, "svc");
  const dev1 = await connect(t, a, "dev1");
  await dev1.c.subscribeAsync("devices/dev1/commands/#", { qos: 1 });
  for (let i = 0; i < 20; i++) await svc.c.publishAsync("devices/dev1/commands/set", String(i), { qos: 1 });
  await dev1.wait("the 20 commands", () => dev1.msgs.length >= 20);
  await sleep(200);
  t.same(dev1.msgs.map((m) => m.payload), Array.from({ length: 20 }, (_, i) => String(i)), "delivered on the same node, in order, once each");
  t.same(inRedis, [], "none of them went through Redis: nobody on another node subscribes");

  // A subscriber on node b: the first publish on node a after its SUBACK reaches it.
  for (let round = 0; round < 5; round++) {
    const dev2 = await connect(t, b, "dev2");
    await dev2.c.subscribeAsync("devices/dev2/commands/+", { qos: 1 });
    await svc.c.publishAsync("devices/dev2/commands/set", `r${round}`, { qos: 1 });
    const got = await dev2.wait(`round ${round}: the command published on node a right after the SUBACK`, (m) => m.payload === `r${round}`);
    t.equal(got.topic, "devices/dev2/commands/set", `round ${round}: delivered across nodes`);
    await dev2.c.endAsync();
    await waitFor(() => b.events.includes("offline dev2 disconnected"), 5_000, "dev2 gone from node b");
    b.events.length = 0;
  }
  t.equal(inRedis.filter((c) => c === "devices/dev2/commands/set").length, 5, "those went through Redis, once each");

  // Gone from node b, so node a keeps the next ones to itself again.
  await sleep(300);
  const before = inRedis.length;
  await svc.c.publishAsync("devices/dev2/commands/set", "nobody", { qos: 1 });
  await svc.c.publishAsync("devices/dev1/commands/set", "local", { qos: 1 });
  await dev1.wait("the local command", (m) => m.payload === "local");
  await sleep(200);
  t.equal(inRedis.length, before, "no subscriber elsewhere any more: nothing through Redis");
});

t.test("telemetry nobody subscribes to, on any node, stays off aedes' publish path; a persistent session's stored subscription on the other node brings it back", async (t) => {
  const [a, b] = [await node(t, "a"), await node(t, "b")];
  const published: string[] = [];
  a.link.aedes.on("publish", (p) => void (p.topic.startsWith("devices/") && published.push(p.topic)));
  const dev1 = await connect(t, a, "dev1");
  await dev1.c.publishAsync("devices/dev1/telemetry", reading(20), { qos: 1 });
  await sleep(200);
  t.same(published, [], "no subscriber anywhere: not handed to aedes");

  // A persistent session on node b subscribes, then goes away: its subscription stays stored.
  const svc = await connect(t, b, "svc", { clean: false });
  await svc.c.subscribeAsync("devices/dev1/telemetry", { qos: 1 });
  await svc.c.endAsync();
  await sleep(300);
  await dev1.c.publishAsync("devices/dev1/telemetry", reading(21), { qos: 1 });
  await waitFor(() => published.length > 0, 5_000, "the sample handed to aedes for the stored session");
  const back = await connect(t, b, "svc", { clean: false });
  const queued = await back.wait("the sample queued while the session was away", (m) => m.topic === "devices/dev1/telemetry");
  t.equal(queued.payload, reading(21), "delivered on node b when the session came back");
  await back.c.endAsync();
  await (await connect(t, b, "svc", { clean: true })).c.endAsync();
});

t.test("a persistent session left on one node resumes on the other with the QoS 1 messages published while it was away", async (t) => {
  const [a, b] = [await node(t, "a"), await node(t, "b")];
  const first = await connect(t, a, "dev3", { clean: false });
  await first.c.subscribeAsync("devices/dev3/commands/#", { qos: 1 });
  await first.c.endAsync();
  await waitFor(() => a.events.includes("offline dev3 disconnected"), 5_000, "dev3 gone from node a");

  // One published through each node while the device is away. aedes 1.2.0 sends the
  // PUBACK before it publishes, and queues for stored sessions last: its `publish` event
  // tells that a message is queued.
  const [svcA, svcB] = [await connect(t, a, "svc"), await connect(t, b, "svc", { clientId: "svc-b" })];
  const queued = (n: Node, topic: string) => withTimeout(new Promise<void>((resolve) => n.link.aedes.on("publish", (p) => void (p.topic === topic && resolve()))), `${topic} queued`);
  const both = [queued(b, "devices/dev3/commands/one"), queued(a, "devices/dev3/commands/two")];
  await svcB.c.publishAsync("devices/dev3/commands/one", JSON.stringify({ id: "q1" }), { qos: 1 });
  await svcA.c.publishAsync("devices/dev3/commands/two", JSON.stringify({ id: "q2" }), { qos: 1 });
  await Promise.all(both);

  const again = await connect(t, b, "dev3", { clean: false });
  t.ok(again.sessionPresent, "CONNACK on node b: session present");
  await again.wait("both queued commands", () => again.msgs.length >= 2);
  await sleep(200); // and nothing more
  // Published by two clients, the two are in no defined order (MQTT 3.1.1 §4.6).
  t.same(
    again.msgs.map((m) => [m.topic, m.payload]).sort(),
    [
      ["devices/dev3/commands/one", JSON.stringify({ id: "q1" })],
      ["devices/dev3/commands/two", JSON.stringify({ id: "q2" })],
    ],
    "queued while away, delivered on node b once each",
  );
  // Ends the stored session, so that no later run of this file finds it.
  await again.c.endAsync();
  await (await connect(t, b, "dev3", { clean: true })).c.endAsync();
});

t.test("the same client id connecting on the other node takes the connection over, reported as such once", async (t) => {
  const [a, b] = [await node(t, "a"), await node(t, "b")];
  const onA = await connect(t, a, "dev4");
  await waitFor(() => a.events.includes("online dev4"), 5_000, "dev4 online on node a");
  const onB = await connect(t, b, "dev4");
  await waitFor(() => onA.closed, 5_000, "node a closes its connection");
  await waitFor(() => a.events.some((e) => e.startsWith("offline dev4")), 5_000, "node a reports dev4 offline");
  await sleep(300); // a second report would come by now
  t.same(a.events, ["online dev4", `offline dev4 ${TAKEN_OVER}`], "node a: online, then offline once, taken over on another node");
  t.equal(TAKEN_OVER, "taken over on another node");
  t.same(b.events, ["online dev4"], "node b: online");
  t.notOk(a.link.reaches("dev4"), "node a no longer reaches dev4");
  t.ok(b.link.reaches("dev4"), "node b does");
  t.notOk(onB.closed, "the new connection stays open");

  // Its end on node b is an ordinary one.
  await onB.c.endAsync();
  await waitFor(() => b.events.includes("offline dev4 disconnected"), 5_000, "dev4 offline on node b");
  t.equal(a.events.length, 2, "nothing more from node a");
});

t.test("a will set on one node reaches a subscriber on the other when the client's socket is cut", async (t) => {
  const [a, b] = [await node(t, "a"), await node(t, "b")];
  const svc = await connect(t, b, "svc");
  await svc.c.subscribeAsync("devices/dev5/telemetry", { qos: 1 });
  const will = reading(-1);
  const dev5 = await connect(t, a, "dev5", { will: { topic: "devices/dev5/telemetry", payload: Buffer.from(will), qos: 1, retain: false } });
  dev5.c.stream.destroy();
  const got = await svc.wait("the will of dev5", (m) => m.topic === "devices/dev5/telemetry");
  t.equal(got.payload, will);
  await waitFor(() => a.events.includes("offline dev5 disconnected"), 5_000, "dev5 offline on node a");
});

t.test("telemetry accepted on one node's telemetry path reaches a subscriber on the other", async (t) => {
  const [a, b] = [await node(t, "a"), await node(t, "b")];
  const svc = await connect(t, b, "svc");
  await svc.c.subscribeAsync("devices/dev6/telemetry", { qos: 1 });
  const dev6 = await connect(t, a, "dev6");
  const tapped = a.link.counters.tappedPublishes;
  await dev6.c.publishAsync("devices/dev6/telemetry", reading(21.5), { qos: 1 });
  await dev6.c.publishAsync("devices/dev6/telemetry", reading(21.6), { qos: 0 });
  await svc.wait("the QoS 0 sample", (m) => m.payload === reading(21.6));
  t.equal(a.link.counters.tappedPublishes - tapped, 2, "both taken by node a's telemetry path");
  t.same(
    svc.msgs.map((m) => m.payload),
    [reading(21.5), reading(21.6)],
    "both samples, in order, on node b",
  );
});

t.test("a node restarted under the same node id keeps the messages it queued before, each delivered once", async (t) => {
  const first = await node(t, "r");
  const dev = await connect(t, first, "dev1", { clean: false });
  await dev.c.subscribeAsync("devices/dev1/commands/#", { qos: 1 });
  await dev.c.endAsync();
  const svc = await connect(t, first, "svc");
  const queued = (n: Node, topic: string) => withTimeout(new Promise<void>((resolve) => n.link.aedes.on("publish", (p) => void (p.topic === topic && resolve()))), `${topic} queued`);
  const before = queued(first, "devices/dev1/commands/before");
  await svc.c.publishAsync("devices/dev1/commands/before", "0", { qos: 1 });
  await before;
  await first.link.close();

  const again = await node(t, "r");
  t.match(again.link.aedes.id, /^switchboard-r-[0-9a-f]{8}$/, "aedes' id: the node id and a part of its own per start");
  t.not(again.link.aedes.id, first.link.aedes.id, "another one after a restart");
  // As many as the first start had made packets, and more: aedes numbers each broker's packets from 1.
  const svc2 = await connect(t, again, "svc");
  const last = queued(again, "devices/dev1/commands/n20");
  for (let i = 1; i <= 20; i++) await svc2.c.publishAsync(`devices/dev1/commands/n${i}`, String(i), { qos: 1 });
  await last;
  const back = await connect(t, again, "dev1", { clean: false });
  await back.wait("the last queued command", (m) => m.topic === "devices/dev1/commands/n20");
  await sleep(200); // and nothing more
  t.same(back.msgs.map((m) => m.payload), ["0", ...Array.from({ length: 20 }, (_, i) => String(i + 1))], "the one from before the restart, then the 20 after, once each");
  await back.c.endAsync();
  await (await connect(t, again, "dev1", { clean: true })).c.endAsync();
});

t.test("Redis that cannot be reached at start: the link is not made, and says where it looked", async (t) => {
  const port = await freePort();
  const url = `redis://:secret@127.0.0.1:${port}`;
  await t.rejects(node(t, "x", url), { message: `cannot reach Redis at 127.0.0.1:${port} (cluster.redis.url): ECONNREFUSED` });
});

t.test("a node's close ends its Redis connections, with Redis up or gone", async (t) => {
  // A process of its own: it exits only if nothing (no Redis connection, no timer) is left.
  const own = await startRedis();
  t.teardown(() => own.close());
  const script = `
    import { createMqttLink } from ${JSON.stringify(new URL("../../bridges/mqtt/broker.ts", import.meta.url).href)};
    import { mqttOptions } from ${JSON.stringify(new URL("../../bridges/mqtt/options.ts", import.meta.url).href)};
    import { parseConfig } from ${JSON.stringify(new URL("../../src/config.ts", import.meta.url).href)};
    import { createLogger } from ${JSON.stringify(new URL("../../src/log.ts", import.meta.url).href)};
    import { createMetrics } from ${JSON.stringify(new URL("../../src/metrics.ts", import.meta.url).href)};
    import mqtt from "mqtt";
    const config = parseConfig(${JSON.stringify({ mqtt: { host: "127.0.0.1", port: 0, tlsPort: null }, cluster: { nodeId: "c", redis: { url: own.url }, postgres: { url: "postgres://u@127.0.0.1:1/x" } }, tsdb: { kind: "influx" } })});
    const login = { password: async () => ({ ok: true, account: { name: "svc", role: "service", type: null, createdAt: 0 } }), banned: () => null, failed: () => {} };
    const link = await createMqttLink({ options: mqttOptions(config, { cert: "", key: "" }), login, admit: () => true, metrics: createMetrics(), log: createLogger() });
    await link.open();
    const c = await mqtt.connectAsync("mqtt://127.0.0.1:" + link.ports.mqtt, { clientId: "svc", username: "svc", password: "x", clean: false, reconnectPeriod: 0 });
    await c.subscribeAsync("devices/+/telemetry", { qos: 1 });
    process.stdout.write("ready\\n");
    await new Promise((resolve) => process.stdin.once("data", resolve));
    process.stdin.destroy();
    const t0 = Date.now();
    await link.close();
    c.end(true);
    process.stdout.write("closed in " + (Date.now() - t0) + " ms\\n");
  `;
  async function run(gone: boolean): Promise<{ code: number | null; out: string; ms: number }> {
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: new URL("../..", import.meta.url), stdio: ["pipe", "pipe", "pipe"] });
    t.teardown(() => void child.kill("SIGKILL"));
    let out = "";
    child.stdout.on("data", (d) => void (out += d));
    child.stderr.on("data", (d) => void (out += d));
    await waitFor(() => out.includes("ready"), 20_000, `the child node starts: ${out}`);
    if (gone) await own.stop();
    const start = Date.now();
    child.stdin.write("close\n");
    const code = await withTimeout(new Promise<number | null>((resolve) => child.once("exit", resolve)), `the child exits after close (output: ${out})`, 15_000);
    return { code, out, ms: Date.now() - start };
  }
  const up = await run(false);
  t.equal(up.code, 0, `exits on its own with Redis up (${up.out.trim()})`);
  t.ok(up.ms < 3_000, `promptly (${up.ms} ms)`);
  const gone = await run(true);
  t.equal(gone.code, 0, `exits on its own with Redis gone (${gone.out.trim()})`);
  t.ok(gone.ms < 8_000, `within a few seconds (${gone.ms} ms)`);
});
