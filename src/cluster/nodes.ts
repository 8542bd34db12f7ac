// Which nodes are alive (docs/cluster.md). Each node refreshes its liveness key every
// cluster.heartbeatMs; the key expires after cluster.nodeTimeoutMs, so a node that
// stops (even by `kill -9`) is gone from Redis by then. Each node reads every
// liveness key as often, and tells its listeners of a node that is no longer alive or
// that came back as another process (a new epoch): they drop what they held of it.
import { Redis } from "ioredis";
import { KEY, RedisUnavailableError, type ClusterBus } from "./bus.js";
import type { Session } from "../xmpp/sessions.js";

export interface NodeInfo {
  node: string;
  epoch: string;
  startedAt: number;
  /** When this heartbeat was written (the writer's clock). */
  at: number;
  sessions: number;
  devices: number;
}

export interface NodeWatch {
  /** The live nodes as last read, this one included. */
  live(): ReadonlyMap<string, NodeInfo>;
  /** The other nodes alive at the last reading or heard from since: node → epoch. */
  others(): ReadonlyMap<string, string>;
  /** A node that was alive (or heard from) is no longer, or restarted (its former epoch given). */
  onLost(listener: (node: string, epoch: string) => void): void;
  /** A message came from this node and epoch: it counts as known until its liveness key says otherwise. */
  heard(node: string, epoch: string): void;
  /** Writes the heartbeat and reads the others' now (tests; start-up). */
  tick(): Promise<void>;
  close(): Promise<void>;
}

/** This node's available device sessions (its heartbeat's count). */
export function devicesOnline(table: { own(): Iterable<Session> }): number {
  let n = 0;
  for (const s of table.own()) if (s.account.role === "device" && s.presence) n++;
  return n;
}

/** Every node whose liveness key exists, read in two round trips. */
export async function liveNodes(redis: Redis): Promise<Map<string, NodeInfo>> {
  const ids = (await redis.smembers(KEY.nodes)).sort();
  const out = new Map<string, NodeInfo>();
  if (ids.length === 0) return out;
  const values = await redis.mget(ids.map(KEY.alive));
  ids.forEach((id, i) => {
    const raw = values[i];
    if (raw) out.set(id, JSON.parse(raw) as NodeInfo);
  });
  return out;
}

export function watchNodes(deps: { bus: ClusterBus; heartbeatMs: number; nodeTimeoutMs: number; counts: () => { sessions: number; devices: number }; onError: (err: Error) => void }): NodeWatch {
  const { bus, heartbeatMs, nodeTimeoutMs } = deps;
  const startedAt = Date.now();
  const lostListeners: Array<(node: string, epoch: string) => void> = [];
  let live = new Map<string, NodeInfo>();
  /** Node → epoch of every node alive at the last reading or heard from since. */
  const known = new Map<string, string>();
  let running: Promise<void> | null = null;

  async function beat(): Promise<void> {
    const info: NodeInfo = { node: bus.nodeId, epoch: bus.epoch, startedAt, at: Date.now(), ...deps.counts() };
    await bus.redis.multi().set(KEY.alive(bus.nodeId), JSON.stringify(info), "PX", nodeTimeoutMs).sadd(KEY.nodes, bus.nodeId).exec();
    const now = await liveNodes(bus.redis);
    live = now;
    // Redis just came back (empty, if it restarted): the others' liveness keys are
    // written again at their next heartbeat. Until nodeTimeoutMs has passed, only a new
    // epoch says a node is gone; a missing key does not.
    const settling = Date.now() - upAt < nodeTimeoutMs;
    for (const [node, epoch] of [...known]) {
      const is = now.get(node);
      if (is?.epoch === epoch || (!is && settling)) continue;
      known.delete(node);
      for (const listener of lostListeners) listener(node, epoch);
    }
    for (const [node, info] of now) if (node !== bus.nodeId) known.set(node, info.epoch);
  }

  function tick(): Promise<void> {
    // With Redis away nothing is known of the others: nobody is declared dead.
    if (!bus.up) return Promise.resolve();
    running ??= beat()
      .catch(deps.onError)
      .finally(() => (running = null));
    return running;
  }

  let upAt = 0;
  bus.onUp(() => (upAt = Date.now()));
  const timer = setInterval(() => void tick(), heartbeatMs);
  timer.unref();
  return {
    live: () => live,
    others: () => known,
    onLost: (listener) => void lostListeners.push(listener),
    heard(node, epoch) {
      const was = known.get(node);
      if (was === epoch) return;
      // Heard from a new process of a node we knew: the former one is gone.
      known.set(node, epoch);
      if (was !== undefined) for (const listener of lostListeners) listener(node, was);
    },
    tick,
    async close() {
      clearInterval(timer);
      await running;
      // A node that stops cleanly leaves at once rather than after nodeTimeoutMs, and says so.
      if (bus.up) {
        // Said in the transaction that deletes the key, before it: the others hear it
        // before they can miss the key (a broadcast would be auto-pipelined, so sent after it).
        await bus.redis.multi().publish(KEY.all, bus.message("bye", {})).del(KEY.alive(bus.nodeId)).srem(KEY.nodes, bus.nodeId).exec().catch(() => {});
      }
    },
  };
}

/** The live nodes, for `switchboard cluster status`: their liveness keys, read once. */
export async function clusterStatus(url: string): Promise<NodeInfo[]> {
  const redis = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
  let socketError: Error | undefined;
  redis.on("error", (err: Error) => (socketError = err));
  try {
    await redis.connect().catch((err: Error) => {
      throw new RedisUnavailableError(url, socketError ?? err);
    });
    return [...(await liveNodes(redis)).values()];
  } finally {
    redis.disconnect();
  }
}
