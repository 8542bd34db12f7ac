// The private internals of pinned dependencies that bridges/mqtt/*-adapter.ts read,
// checked against the installed versions: this fails when an upgrade changes any of
// them, before the broker silently takes a slower path or a wrong one.
import t from "tap";
import { readFileSync } from "node:fs";
import { Duplex, PassThrough } from "node:stream";
import { Aedes } from "aedes";
import { connectPacket, publishPacket } from "../helpers/mqtt-bytes.js";
import { clientOf, emitterOf, hasClient, idleBeside, publishAs, refreshKeepalive } from "../../bridges/mqtt/aedes-adapter.js";
import { audience } from "../../bridges/mqtt/mqemitter-adapter.js";
import { memoryPersistence } from "../../bridges/mqtt/persistence-adapter.js";

const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { dependencies: Record<string, string> };

t.test("the adapted packages are pinned exactly, and installed at those versions", async (t) => {
  for (const name of ["aedes", "aedes-persistence", "mqemitter", "mqtt-packet"]) {
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
