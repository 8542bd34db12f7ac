// bridges/mqtt/cluster-audience.ts on a real Redis, with the other node played by hand
// on its own cluster bus: a new MQTT filter counts (its subscribe completes) only once
// every other live node has confirmed it, or after the timeout; the other nodes'
// filters, as announced, withdrawn, lost with their node, and read from Redis by a
// node starting; and bad announcements refused. The emitter is a stand-in that records
// the calls: test/cluster/mqtt.test.ts runs the same path on aedes' own emitter.
import t from "tap";
import { Writable } from "node:stream";
import { clusterAudience, type Subscribable } from "../../bridges/mqtt/cluster-audience.js";
import { openBus, type BusMessage, type ClusterBus } from "../../src/cluster/bus.js";
import { watchNodes, type NodeWatch } from "../../src/cluster/nodes.js";
import { createLogger } from "../../src/log.js";
import { startRedis } from "../helpers/redis.js";
import { sleep, waitFor } from "../helpers/wait.js";

const redis = await startRedis();
t.teardown(() => redis.close());

type Tap = { teardown(fn: () => unknown): void };

async function nodeOf(t: Tap, nodeId: string, logs: string[] = []): Promise<{ bus: ClusterBus; watch: NodeWatch }> {
  const log = createLogger(new Writable({ write: (chunk, _e, done) => (logs.push(String(chunk)), done()) }));
  const bus = await openBus({ url: redis.url, nodeId, log });
  const watch = watchNodes({ bus, heartbeatMs: 60_000, nodeTimeoutMs: 120_000, counts: () => ({ sessions: 0, devices: 0 }), onError: () => {} });
  t.teardown(() => bus.close());
  t.teardown(() => watch.close());
  await watch.tick();
  return { bus, watch };
}

/** An emitter that completes each subscribe on the next turn, as mqemitter-redis does once Redis has. */
function emitter(): Subscribable & { filters: string[] } {
  const filters: string[] = [];
  return {
    filters,
    on: (filter, _listener, done) => (filters.push(filter), done && setImmediate(done)),
    removeListener: (filter, _listener, done) => (filters.splice(filters.indexOf(filter), 1), done && setImmediate(done)),
  };
}

/** The other node's side: what it hears of the audience's node. */
function listen(bus: ClusterBus): BusMessage[] {
  const heard: BusMessage[] = [];
  bus.on("mf+", (m) => void heard.push(m));
  bus.on("mf-", (m) => void heard.push(m));
  return heard;
}

t.test("a new filter counts once every other node has confirmed it; a second listener waits for the same", async (t) => {
  const a = await nodeOf(t, "a");
  const z = await nodeOf(t, "z");
  const heard = listen(z.bus);
  await a.watch.tick();
  t.same([...a.watch.others().keys()], ["z"], "node a knows node z");
  const mq = emitter();
  await clusterAudience({ ...a, mq, ackTimeoutMs: 10_000, log: createLogger() });

  let first = false;
  let second = false;
  mq.on("devices/+/telemetry", () => {}, () => void (first = true));
  mq.on("devices/+/telemetry", () => {}, () => void (second = true));
  const told = await waitFor(() => heard.find((m) => m.t === "mf+"), 5_000, "node z told of the filter");
  t.equal(told.f, "devices/+/telemetry");
  t.equal(heard.length, 1, "told once, not once per listener");
  await sleep(300);
  t.notOk(first || second, "neither subscribe completes before node z confirms");
  z.bus.send("a", "mf-ok", { k: told.k });
  await waitFor(() => first && second, 5_000, "both complete once confirmed");
  t.pass("both subscribes complete after the confirmation");

  // Removed: told once the last listener goes.
  mq.removeListener("devices/+/telemetry", () => {});
  await sleep(200);
  t.equal(heard.length, 1, "one listener left: nothing told");
  mq.removeListener("devices/+/telemetry", () => {});
  await waitFor(() => heard.find((m) => m.t === "mf-"), 5_000, "node z told the filter is gone");
});

t.test("a node that does not confirm in time: the subscribe completes after the timeout, with a warning", async (t) => {
  const logs: string[] = [];
  const a = await nodeOf(t, "a", logs);
  const z = await nodeOf(t, "z");
  listen(z.bus);
  await a.watch.tick();
  const mq = emitter();
  await clusterAudience({ ...a, mq, ackTimeoutMs: 400, log: createLogger(new Writable({ write: (chunk, _e, done) => (logs.push(String(chunk)), done()) })) });
  const start = Date.now();
  await new Promise<void>((resolve) => mq.on("x/#", () => {}, resolve));
  t.ok(Date.now() - start >= 350, `completed after the timeout (${Date.now() - start} ms)`);
  t.ok(logs.some((l) => l.includes("not confirmed by every node") && l.includes('"z"')), "the warning names the filter's silent node");
});

t.test("a lost node: the subscribe does not wait for it, and its filters are forgotten", async (t) => {
  const a = await nodeOf(t, "a");
  const z = await nodeOf(t, "z");
  listen(z.bus);
  await a.watch.tick();
  const mq = emitter();
  const audience = await clusterAudience({ ...a, mq, ackTimeoutMs: 30_000, log: createLogger() });
  z.bus.broadcast("mf+", { f: "devices/+/telemetry" });
  await waitFor(() => audience.elsewhere("devices/d1/telemetry"), 5_000, "node z's filter known");
  t.notOk(audience.elsewhere("devices/d1/commands/x"), "a topic outside it is not");
  t.notOk(audience.elsewhere("devices"), "nor its parent");

  let done = false;
  mq.on("y/+", () => {}, () => void (done = true));
  await sleep(100);
  t.notOk(done, "waiting for node z");
  // Node z comes back as another process: its former self is lost.
  a.watch.heard("z", "another-epoch");
  await waitFor(() => done, 5_000, "the subscribe completes once node z is lost");
  t.notOk(audience.elsewhere("devices/d1/telemetry"), "node z's filters are forgotten");
});

t.test("a starting node reads the live nodes' filters from Redis; announcements withdrawn, and bad ones refused", async (t) => {
  const z = await nodeOf(t, "z");
  // Node z's own audience writes its set.
  const zq = emitter();
  await clusterAudience({ ...z, mq: zq, ackTimeoutMs: 1_000, log: createLogger() });
  await new Promise<void>((resolve) => zq.on("telemetry/#", () => {}, resolve));
  await new Promise<void>((resolve) => zq.on("$SYS/+/heartbeat", () => {}, resolve));
  await waitFor(async () => (await z.bus.redis.smembers("switchboard:mqtt-filters:z")).length === 2, 5_000, "node z's set written");

  const a = await nodeOf(t, "a");
  const audience = await clusterAudience({ ...a, mq: emitter(), ackTimeoutMs: 1_000, log: createLogger() });
  t.ok(audience.elsewhere("telemetry"), "node z's `telemetry/#` read at start (it matches its parent level)");
  t.ok(audience.elsewhere("telemetry/a/b"), "and below it");
  t.ok(audience.elsewhere("$SYS/b1/heartbeat"));
  t.notOk(audience.elsewhere("commands/a"));
  t.same([...(audience.remote.get("z") ?? [])].sort(), ["$SYS/+/heartbeat", "telemetry/#"]);

  zq.removeListener("telemetry/#", () => {});
  await waitFor(() => !audience.elsewhere("telemetry/a"), 5_000, "withdrawn when node z's last listener goes");

  const refused = a.bus.counters.refused;
  for (const bad of [{}, { f: "" }, { f: 7 }, { f: "x".repeat(70_000) }]) z.bus.broadcast("mf+", bad);
  z.bus.broadcast("mf-", { f: null });
  await waitFor(() => a.bus.counters.refused - refused === 5, 5_000, "five bad announcements refused");
  t.same([...(audience.remote.get("z") ?? [])], ["$SYS/+/heartbeat"], "nothing taken from them");
});
