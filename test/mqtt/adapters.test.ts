// The private internals of pinned dependencies that bridges/mqtt/*-adapter.ts read,
// checked against the installed versions: this fails when an upgrade changes any of
// them, before the broker silently takes a slower path or a wrong one.
import t from "tap";
import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import { Duplex, PassThrough } from "node:stream";
import { Aedes } from "aedes";
import { Redis } from "ioredis";
import mqemitter from "mqemitter";
import mqemitterRedis from "mqemitter-redis";
import redisPersistence from "aedes-persistence-redis";
import { connectPacket, publishPacket } from "../helpers/mqtt-bytes.js";
import { clientById, clientOf, emitterOf, hasClient, idleBeside, onClientElsewhere, publishAs, refreshKeepalive } from "../../bridges/mqtt/aedes-adapter.js";
import { audience } from "../../bridges/mqtt/mqemitter-adapter.js";
import { memoryPersistence } from "../../bridges/mqtt/persistence-adapter.js";
import { localFirst, onEmitterError } from "../../bridges/mqtt/redis-adapter.js";
import { startRedis } from "../helpers/redis.js";
import { sleep, waitFor } from "../helpers/wait.js";

const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { dependencies: Record<string, string> };

t.test("the adapted packages are pinned exactly, and installed at those versions", async (t) => {
  for (const name of ["aedes", "aedes-persistence", "mqemitter", "mqtt-packet", "mqemitter-redis", "aedes-persistence-redis", "msgpack-lite"]) {
    const pinned = pkg.dependencies[name];
    t.match(pinned, /^\d+\.\d+\.\d+(-[\w.]+)?$/, `${name} is pinned exactly (${pinned})`);
    const installed = JSON.parse(readFileSync(new URL(`../../node_modules/${name}/package.json`, import.meta.url), "utf8")) as { version: string };
    t.equal(installed.version, pinned, `${name} installed at ${pinned}`);
  }
});

/** A client connection to an aedes broker in memory: what the client sends, and what it receives. */
function inMemoryClient(aedes: Aedes) {
  const toBroker = new PassThrough();
  const fromBroker = new PassThrough();
  const conn = new Duplex({
    read() {},
    write(chunk, _enc, done) {
      fromBroker.write(chunk);
      done();
    },
  });
  toBroker.on("data", (d) => conn.push(d));
  aedes.handle(conn);
  const received: Buffer[] = [];
  fromBroker.on("data", (d: Buffer) => received.push(d));
  return { conn, send: (b: Buffer) => toBroker.write(b), received };
}

const until = async (check: () => boolean, what: string) => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!check()) throw new Error(`timed out: ${what}`);
};

t.test("aedes: the client state the telemetry path reads", async (t) => {
  const aedes = await Aedes.createBroker();
  t.teardown(() => new Promise<void>((r) => aedes.close(() => r())));
  const c = inMemoryClient(aedes);
  c.send(connectPacket({ clientId: "pin-1", keepalive: 30 }));
  await until(() => c.received.length > 0, "CONNACK");
  const client = clientOf(c.conn);
  t.ok(client, "aedes sets conn.client");
  t.equal(client!.id, "pin-1");
  t.ok(hasClient(aedes, "pin-1"), "aedes.clients holds the client by id");
  t.notOk(hasClient(aedes, "nobody"));
  const raw = client as unknown as Record<string, unknown>;
  await until(() => raw.connackSent === true, "connackSent, set once the CONNACK is written");
  t.equal(raw.version, 4, "version is the protocol level");
  t.equal(typeof raw._parsingBatch, "number", "_parsingBatch");
  t.equal(raw._keepaliveInterval, 45_001, "_keepaliveInterval (1.5 × keep-alive, §3.1.2.10)");
  t.equal(typeof (raw._keepaliveTimer as { refresh?: unknown })?.refresh, "function", "_keepaliveTimer is a Node timer");
  t.ok(idleBeside(client!), "idle between reads");
  refreshKeepalive(client!);
  t.pass("keep-alive refreshed");

  const delivered: string[] = [];
  aedes.subscribe("pin/#", (packet, done) => {
    delivered.push(packet.topic);
    done();
  }, () => {});
  await new Promise<void>((resolve) => publishAs(aedes, { cmd: "publish", topic: "pin/x", payload: Buffer.from("1"), qos: 0, retain: false, dup: false }, client!, () => resolve()));
  t.same(delivered, ["pin/x"], "publish with the client argument delivers");
  c.send(publishPacket("pin/y", "2"));
  await until(() => delivered.length === 2, "a publish on aedes' own path");
});

t.test("mqemitter: the topic trie `_matcher` with add, remove, clear and match", async (t) => {
  const aedes = await Aedes.createBroker();
  t.teardown(() => new Promise<void>((r) => aedes.close(() => r())));
  const matcher = (emitterOf(aedes) as { _matcher?: Record<string, unknown> })._matcher;
  t.ok(matcher, "aedes.mq._matcher exists");
  for (const name of ["add", "remove", "clear", "match"]) t.equal(typeof matcher![name], "function", `_matcher.${name}`);
  const reaches = audience(emitterOf(aedes), () => false);
  t.notOk(reaches("devices/a/telemetry"), "no subscriber: nobody reached");
  const listener = (_p: unknown, done: () => void) => done();
  await new Promise<void>((r) => aedes.subscribe("devices/+/telemetry", listener, r));
  t.ok(reaches("devices/a/telemetry"), "a subscription is seen at once");
  await new Promise<void>((r) => aedes.unsubscribe("devices/+/telemetry", listener, r));
  t.notOk(reaches("devices/a/telemetry"), "and its removal");
});

t.test("aedes-persistence: the methods the shortcut wraps", async (t) => {
  const persistence = memoryPersistence() as unknown as Record<string, unknown> & { holdsSubscriptions(): boolean };
  for (const name of ["addSubscriptions", "removeSubscriptions", "cleanSubscriptions", "subscriptionsByTopic", "countOffline"]) t.equal(typeof persistence[name], "function", name);
  t.notOk(persistence.holdsSubscriptions(), "none stored");
  const counted = await (persistence.countOffline as () => Promise<{ subsCount: number }>)();
  t.equal(counted.subsCount, 0, "countOffline answers as a promise with subsCount");
});

t.test("aedes: a client id registered by another broker on the emitter, seen before aedes closes its own", async (t) => {
  // Two brokers sharing one emitter, as the nodes of a cluster share mqemitter-redis.
  const mq = mqemitter({ concurrency: 0, matchEmptyLevels: true });
  const seen: Array<{ clientId: string; registered: boolean; closed: boolean }> = [];
  let a: Aedes | null = null;
  await onClientElsewhere(mq, "node-a", (clientId) => {
    const client = a && clientById(a, clientId);
    seen.push({ clientId, registered: Boolean(client), closed: Boolean(client?.closed) });
  });
  a = await Aedes.createBroker({ id: "node-a", mq });
  const b = await Aedes.createBroker({ id: "node-b", mq });
  t.teardown(() => new Promise<void>((r) => b.close(() => a!.close(() => r()))));
  t.equal(a.id, "node-a", "aedes takes the id given");

  const onA = inMemoryClient(a);
  onA.send(connectPacket({ clientId: "pin-2" }));
  await until(() => hasClient(a!, "pin-2"), "registered on a");
  const clientOnA = clientById(a, "pin-2")!;
  t.same(seen, [], "a's own clients are not reported");
  const onB = inMemoryClient(b);
  onB.send(connectPacket({ clientId: "pin-2" }));
  await until(() => clientOnA.closed, "aedes on a closes its connection with the id registered on b ($SYS/<id>/new/clients, closeSameClients)");
  t.same(seen, [{ clientId: "pin-2", registered: true, closed: false }], "seen once, while a still held it open");
  t.notOk(hasClient(a, "pin-2"), "and no longer registered on a");
  t.ok(hasClient(b, "pin-2"), "registered on b");
});

t.test("mqemitter-redis: given connections, and their errors on the private `state` emitter", async (t) => {
  // Never connected: nothing here needs a Redis.
  const sub = new Redis({ lazyConnect: true });
  const pub = new Redis({ lazyConnect: true });
  t.teardown(() => (sub.disconnect(), pub.disconnect()));
  const mq = mqemitterRedis({ subConn: sub, pubConn: pub });
  t.equal((mq as unknown as { subConn: unknown }).subConn, sub, "subConn is used, not a connection of its own");
  t.equal((mq as unknown as { pubConn: unknown }).pubConn, pub, "pubConn too");
  t.ok((mq as unknown as { state: unknown }).state instanceof EventEmitter, "mq.state is an EventEmitter");
  t.throws(() => sub.emit("error", new Error("unheard")), { message: "unheard" }, "with no listener on state, a connection error throws");
  const heard: string[] = [];
  t.ok(onEmitterError(mq, (err) => void heard.push(err.message)), "the listener is added");
  sub.emit("error", new Error("lost sub"));
  pub.emit("error", new Error("lost pub"));
  t.same(heard, ["lost sub", "lost pub"], "both connections' errors arrive there");
  t.equal(typeof mq.close, "function", "close, which the adapter wraps");
});

t.test("mqemitter-redis: delivered here at once, sent on through Redis only when wanted elsewhere, its echo not delivered twice", async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.close());
  const emitterOn = () => {
    const sub = new Redis(redis.url);
    const pub = new Redis(redis.url);
    const mq = mqemitterRedis({ subConn: sub, pubConn: pub, concurrency: 0 });
    t.teardown(() => new Promise<void>((resolve) => mq.close(() => resolve())));
    return mq;
  };
  const [here, there] = [emitterOn(), emitterOn()];
  let wanted = true;
  t.ok(localFirst(here, () => wanted), "mqemitter-redis has `_emit`, `_cache` and `pubConn`");
  const got = { here: [] as string[], there: [] as string[] };
  const subscribe = (mq: typeof here, into: string[]) => new Promise<void>((resolve) => mq.on("a/+", (m, done) => (into.push(String(m.payload)), done()), resolve));
  await subscribe(here, got.here);
  await subscribe(there, got.there);

  const emitted = (payload: string) => new Promise<Error | null | undefined>((resolve) => here.emit({ topic: "a/b", payload }, resolve));
  t.notOk(await emitted("1"), "sent on: done without an error once Redis has it");
  t.same(got.here, ["1"], "delivered here before Redis answered");
  await sleep(300);
  t.same(got, { here: ["1"], there: ["1"] }, "the other emitter had it from Redis; here once, its echo skipped");

  wanted = false;
  t.notOk(await emitted("2"), "kept here: done");
  await sleep(300);
  t.same(got, { here: ["1", "2"], there: ["1"] }, "not sent to Redis when nobody elsewhere wants it");

  // The other emitter's messages still arrive here through Redis.
  there.emit({ topic: "a/c", payload: "3" });
  await waitFor(() => got.here.includes("3"), 5_000, "a message from the other emitter");
  t.same(got.there, ["1", "3"], "which it had once itself");
});

t.test("aedes-persistence-redis: an async setup, the methods aedes calls, nothing sent before setup", async (t) => {
  const conn = new Redis({ lazyConnect: true });
  t.teardown(() => conn.disconnect());
  const persistence = redisPersistence({ conn }) as unknown as Record<string, unknown> & { asyncPersistence?: unknown };
  t.equal((persistence.setup as () => unknown).constructor.name, "AsyncFunction", "setup is an async function (aedes 1.x requires it)");
  for (const name of ["destroy", "cleanIncoming", "subscriptionsByTopic", "outgoingEnqueueCombi", "putWill", "streamWill"]) t.equal(typeof persistence[name], "function", name);
  t.equal(conn.status, "wait", "nothing sent before setup");
});
