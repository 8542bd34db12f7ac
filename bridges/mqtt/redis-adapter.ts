// aedes' own cluster engines on the cluster's Redis (docs/mqtt.md, "Several nodes"):
// mqemitter-redis carries every publish and aedes' `$SYS` announcements between nodes,
// aedes-persistence-redis keeps persistent sessions (subscriptions, queued QoS 1 and 2
// messages), retained messages and wills. Both are pinned exactly in package.json and
// made here and nowhere else. They are given connections made here (their documented
// `subConn`, `pubConn` and `conn` options), so this module decides how Redis is reached,
// logs its loss once, and ends every connection on close, Redis reachable or not (for
// which it wraps the emitter's close()). The private members used are mqemitter-redis'
// `state` (see onEmitterError), its in-process delivery `_emit`, its echo cache
// `_cache` and its message format (see localFirst); test/mqtt/adapters.test.ts fails if
// the pinned version changes them.
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { Redis } from "ioredis";
import msgpack from "msgpack-lite";
import mqemitterRedis from "mqemitter-redis";
import redisPersistence from "aedes-persistence-redis";
import { redact, RedisUnavailableError } from "../../src/cluster/bus.js";
import type { Logger } from "../../src/log.js";
import { storedSubscriptionsShortcut } from "./persistence-adapter.js";

/** How long a start waits for Redis, and a close for each of its steps. */
const CONNECT_MS = 5_000;
const QUIT_MS = 5_000;

export interface RedisEngines {
  /** aedes' `mq`. */
  readonly mq: ReturnType<typeof mqemitterRedis>;
  /** aedes' `persistence`. */
  readonly persistence: redisPersistence.AedesPersistenceRedis;
  /** Whether a persistent session anywhere in the cluster has a subscription stored (or one is changing). */
  readonly holdsSubscriptions: () => boolean;
  /** Counts them again; called once aedes has set the store up (it loads them then). */
  readonly recount: () => void;
  /** Whether a publish on this topic could reach a subscriber on another node. */
  readonly elsewhere: (topic: string) => boolean;
  /**
   * Ends both engines, for aedes.close(): `clientsClosed` once aedes has ended its
   * clients (its `closed` event), `brokerClosed` once it has also quit the emitter's
   * connections (its callback). Resolves with every connection ended or abandoned, so
   * nothing keeps the process alive, Redis reachable or not.
   */
  close(clientsClosed: Promise<void>, brokerClosed: Promise<void>): Promise<void>;
}

/**
 * mqemitter-redis 7.2.1 re-emits its connections' errors on `mq.state`, a private
 * EventEmitter; with no listener there, the first lost connection to Redis throws out
 * of ioredis' event handler and ends the process. Returns false if it is not there.
 */
export function onEmitterError(mq: unknown, listener: (err: Error) => void): boolean {
  const state = (mq as { state?: unknown }).state;
  if (!(state instanceof EventEmitter)) return false;
  state.on("error", listener);
  return true;
}

type Done = (err?: Error | null) => void;
interface EmitterInternals {
  /** mqemitter's own emit: delivery to this process's listeners only. */
  _emit?: (packet: { topic: string }, done?: Done) => unknown;
  /** Ids of messages already delivered here: one heard again from Redis is skipped. */
  _cache?: { set(id: string, seen: boolean): unknown };
  pubConn: Redis;
  state: EventEmitter;
}

/**
 * Makes the emitter deliver here at once and send to Redis only what `elsewhere(topic)`
 * says another node could want (cluster-audience.ts). mqemitter-redis 7.2.1 sends every
 * message to Redis as msgpack `{ id, msg }` and delivers it here when Redis sends it
 * back. A message sent on is published the same way under an id put in its echo cache
 * first, so the copy Redis sends back is not delivered twice. `done` runs once the
 * message is delivered here and, if it went on, Redis has taken it (aedes sends a
 * PUBACK then, as before). Returns false if the emitter is not the one this was written for.
 */
export function localFirst(mq: unknown, elsewhere: (topic: string) => boolean): boolean {
  const m = mq as EmitterInternals & { emit: (packet: { topic: string }, done?: Done) => unknown };
  const { _emit: deliverHere, _cache: echoes, pubConn, state } = m;
  if (typeof deliverHere !== "function" || typeof echoes?.set !== "function" || !(pubConn instanceof Redis) || !(state instanceof EventEmitter)) return false;
  const prefix = randomUUID();
  let count = 0;
  const reportError: Done = (err) => void (err && state.emit("error", err));
  m.emit = (packet, done = reportError) => {
    if (!elsewhere(packet.topic)) return deliverHere.call(mq, packet, done);
    const id = `${prefix}:${++count}`;
    echoes.set(id, true);
    let steps = 2;
    let failure: Error | null = null;
    const step: Done = (err) => {
      failure ??= err ?? null;
      if (--steps === 0) done(failure);
    };
    pubConn.publish(packet.topic, msgpack.encode({ id, msg: packet })).then(() => step(), step);
    return deliverHere.call(mq, packet, step);
  };
  return true;
}

function bounded<T>(p: Promise<T>, ms: number, timeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(timeout()), ms);
    p.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (e: unknown) => (clearTimeout(timer), reject(e)),
    );
  });
}

/**
 * Connects to the cluster's Redis (`name` prefixes the connections' names in CLIENT
 * LIST); throws, naming host and port, if it cannot be reached.
 */
export async function openRedisEngines(
  url: string,
  name: string,
  log: Pick<Logger, "warn" | "info">,
  /** Learns which filters the other nodes listen to (cluster-audience.ts), before anything subscribes. Without it every message goes through Redis. */
  share?: (mq: ReturnType<typeof mqemitterRedis>) => Promise<{ elsewhere: (topic: string) => boolean }>,
): Promise<RedisEngines> {
  const address = redact(url);
  // Connected by hand, so that a Redis away at start is an error here, not a start
  // that waits for it without end. The emitter's connections pipeline as mqemitter-redis'
  // own would. Retried as ioredis' default does, except once closing: a connection that
  // is down then gives up at its next attempt, failing the commands queued on it, which
  // aedes' closes of its clients wait for (ioredis' disconnect() between attempts only
  // stops retrying, and leaves them waiting).
  let closing = false;
  const retryStrategy = (times: number) => (closing ? null : Math.min(times * 50, 2000));
  const sub = new Redis(url, { lazyConnect: true, enableAutoPipelining: true, retryStrategy, connectionName: `${name}-sub` });
  const pub = new Redis(url, { lazyConnect: true, enableAutoPipelining: true, retryStrategy, connectionName: `${name}-pub` });
  const db = new Redis(url, { lazyConnect: true, retryStrategy, connectionName: `${name}-store` });
  const connections = [sub, pub, db];
  // Not again once ended: ioredis would wait 2 s for a close of its stream that came already.
  const disconnect = () => connections.forEach((c) => c.status !== "end" && c.disconnect());

  let reachable = true;
  /** The first error met, for a start that fails (ioredis then rejects with "Connection is closed."). */
  let firstError: Error | null = null;
  const lost = (err: Error) => {
    firstError ??= err;
    if (!reachable) return;
    reachable = false;
    log.warn({ redis: address, err: err.message }, "Redis cannot be reached: MQTT messages, sessions and retained messages are not shared with the other nodes until it is back");
  };
  const back = () => {
    if (reachable || connections.some((c) => c.status !== "ready")) return;
    reachable = true;
    log.info({ redis: address }, "Redis is back: MQTT is shared with the other nodes again");
  };
  for (const c of connections) c.on("error", lost).on("ready", back);

  try {
    await bounded(Promise.all(connections.map((c) => c.connect())), CONNECT_MS, () => new Error("no answer in 5 s"));
  } catch (err) {
    disconnect();
    throw new RedisUnavailableError(url, firstError ?? (err as Error));
  }

  // concurrency 0 and matchEmptyLevels [MQTT-4.7.1-3]: what aedes gives its own in-memory emitter.
  // An echo cache big enough for the messages sent on while their echoes are on the way (localFirst).
  const mq = mqemitterRedis({ subConn: sub, pubConn: pub, concurrency: 0, matchEmptyLevels: true, maxLRUCache: 100_000 });
  if (!onEmitterError(mq, lost)) {
    disconnect();
    throw new Error("mqemitter-redis: no `state` emitter for connection errors (see bridges/mqtt/redis-adapter.ts)");
  }
  // mqemitter-redis' close() sends QUIT on both connections and waits for both to end:
  // with Redis away that never completes, and on a connection already ended (given up,
  // above) the QUIT's rejection goes unhandled and ends the process. Then they are
  // ended here instead.
  const quit = mq.close.bind(mq);
  mq.close = (done: () => void) => {
    if (sub.status === "ready" && pub.status === "ready") return quit(done);
    disconnect();
    done();
  };
  let elsewhere = (_topic: string) => true;
  try {
    if (share) elsewhere = (await share(mq)).elsewhere;
    if (!localFirst(mq, (topic) => elsewhere(topic))) throw new Error("mqemitter-redis: no `_emit`, `_cache` or `pubConn` (see bridges/mqtt/redis-adapter.ts)");
  } catch (err) {
    disconnect();
    throw err;
  }
  const persistence = redisPersistence({ conn: db });
  // The store keeps every node's stored subscriptions in one topic trie, told of the
  // other nodes' changes on `$SYS/sub/add` and `$SYS/sub/rm` (aedes-persistence's
  // broadcast): each one heard is a reason to count again. While none is stored
  // anywhere, aedes' lookup for every QoS 1 publish is answered without the walk.
  const stored = storedSubscriptionsShortcut(persistence, Infinity);
  mq.on("$SYS/sub/+", (_packet: unknown, done: () => void) => (stored.recount(), done()));

  let closed: Promise<void> | null = null;
  async function close(clientsClosed: Promise<void>, brokerClosed: Promise<void>): Promise<void> {
    closing = true;
    const settled = <T>(p: Promise<T>) => bounded(p, QUIT_MS, () => new Error("timeout")).then(() => {}, () => {});
    // Wills go out, and queued commands reach Redis or fail, as clients are ended.
    await settled(clientsClosed);
    // Then aedes closes the emitter (above).
    await settled(brokerClosed);
    // The store's own end: it leaves aedes' `$SYS/sub/+` and disconnects its connection.
    await settled(persistence.destroy());
    disconnect();
  }

  return {
    mq,
    persistence,
    holdsSubscriptions: stored.holds,
    recount: stored.recount,
    elsewhere: (topic) => elsewhere(topic),
    close: (clientsClosed, brokerClosed) => (closed ??= close(clientsClosed, brokerClosed)),
  };
}
