// The nodes of a cluster talk through Redis (docs/cluster.md): one channel all nodes
// hear (`switchboard:all`) and one per node (`switchboard:node:<id>`), JSON messages
// tagged with the sender's node id and epoch (a fresh id per process start, so a node
// restarted after `kill -9` is told from its former self). Redis pub/sub delivers in
// the order a connection published, across channels too, to a subscriber that holds
// one connection: a session's "bound", presence and "gone" arrive in order.
//
// Commands fail at once while Redis is away (nothing queued to replay out of date):
// what a node publishes then is lost, and the state it stands for is resent when
// Redis is back (`onUp`; directory.ts resynchronises).
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import type { Logger } from "../log.js";

export const KEY = {
  /** Every node id that has run; their liveness keys tell which are alive. */
  nodes: "switchboard:nodes",
  /** A node's liveness: its heartbeat, expiring after cluster.nodeTimeoutMs. */
  alive: (node: string) => `switchboard:alive:${node}`,
  /** A node's sessions (full JID → JSON), what a node starting or resynchronising reads. */
  sessions: (node: string) => `switchboard:sessions:${node}`,
  all: "switchboard:all",
  node: (node: string) => `switchboard:node:${node}`,
};

/** A message between nodes: `t` its type, `n` and `e` the sender's node id and epoch. */
export interface BusMessage {
  t: string;
  n: string;
  e: string;
  [field: string]: unknown;
}

export interface ClusterBus {
  readonly nodeId: string;
  readonly epoch: string;
  /** Commands (for the node's own keys); fail at once while Redis is away. */
  readonly redis: Redis;
  /** Whether Redis answers now. */
  readonly up: boolean;
  /** To every other node. */
  broadcast(type: string, fields: Record<string, unknown>): void;
  /** To one node. */
  send(node: string, type: string, fields: Record<string, unknown>): void;
  /** A message as published, for a transaction that publishes it along with other commands. */
  message(type: string, fields: Record<string, unknown>): string;
  on(type: string, handler: (message: BusMessage) => void): void;
  /** Redis is reachable again after an outage (and subscribed again). */
  onUp(listener: () => void): void;
  onDown(listener: () => void): void;
  readonly counters: { published: number; received: number; lost: number; refused: number; publishedBytes: number };
  close(): Promise<void>;
}

export async function openBus(opts: { url: string; nodeId: string; log: Pick<Logger, "warn" | "info"> }): Promise<ClusterBus> {
  const { nodeId, log } = opts;
  const epoch = randomUUID();
  // No offline queue, no retries: a node never replays stale state; it resynchronises.
  const settings = { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 500 };
  // Auto-pipelining: what one tick publishes goes to Redis in one write.
  const redis = new Redis(opts.url, { ...settings, enableAutoPipelining: true, connectionName: `switchboard-${nodeId}` });
  const subscriber = new Redis(opts.url, { ...settings, enableOfflineQueue: true, connectionName: `switchboard-${nodeId}-sub` });
  const handlers = new Map<string, (message: BusMessage) => void>();
  const ups: Array<() => void> = [];
  const downs: Array<() => void> = [];
  const counters = { published: 0, received: 0, lost: 0, refused: 0, publishedBytes: 0 };
  let up = false;
  let closing = false;

  function down(err?: Error): void {
    if (!up || closing) return;
    up = false;
    log.warn({ err: err?.message }, "Redis cannot be reached: this node is not ready (/readyz 503) and serves its own sessions only until it is back");
    for (const listener of downs) listener();
  }
  // ioredis rejects connect() with "Connection is closed"; the socket's own error says why.
  let socketError: Error | undefined;
  redis.on("error", (err: Error) => (socketError = err));
  redis.on("error", down).on("close", () => down());
  subscriber.on("error", down).on("close", () => down());
  // ioredis subscribes again on reconnect before it reports ready.
  const ready = () => {
    if (up || closing || redis.status !== "ready" || subscriber.status !== "ready") return;
    up = true;
    log.info({}, "Redis is reachable: this node is part of the cluster");
    for (const listener of ups) listener();
  };
  redis.on("ready", ready);
  subscriber.on("ready", ready);

  // Our own broadcasts come back to us too: told by their first bytes, before any parsing
  // (publish() writes the sender first).
  const ownPrefix = `{"n":${JSON.stringify(nodeId)},"e":${JSON.stringify(epoch)},`;
  subscriber.on("message", (_channel: string, raw: string) => {
    if (raw.startsWith(ownPrefix)) return;
    let message: BusMessage;
    try {
      message = JSON.parse(raw) as BusMessage;
      if (typeof message !== "object" || message === null || typeof message.t !== "string" || typeof message.n !== "string" || typeof message.e !== "string") throw new Error("not a cluster message");
    } catch {
      counters.refused++;
      return;
    }
    counters.received++;
    try {
      handlers.get(message.t)?.(message);
    } catch (err) {
      // A message this node cannot use (another version, or written by hand into Redis)
      // must not end the process from inside ioredis' reader.
      counters.refused++;
      log.warn({ type: String(message.t).slice(0, 32), from: String(message.n).slice(0, 32), err: (err as Error).message }, "cluster message refused");
    }
  });

  const message = (type: string, fields: Record<string, unknown>) => JSON.stringify({ n: nodeId, e: epoch, t: type, ...fields });
  function publish(channel: string, type: string, fields: Record<string, unknown>): void {
    const raw = message(type, fields);
    if (!up) return void counters.lost++;
    counters.published++;
    counters.publishedBytes += raw.length;
    redis.publish(channel, raw).catch(() => void counters.lost++);
  }

  await Promise.all([redis.connect(), subscriber.connect()]).catch((err: Error) => {
    redis.disconnect();
    subscriber.disconnect();
    throw new RedisUnavailableError(opts.url, socketError ?? err);
  });
  await subscriber.subscribe(KEY.all, KEY.node(nodeId));
  up = true;

  return {
    nodeId,
    epoch,
    redis,
    get up() {
      return up;
    },
    broadcast: (type, fields) => publish(KEY.all, type, fields),
    send: (node, type, fields) => publish(KEY.node(node), type, fields),
    message,
    on(type, handler) {
      if (handlers.has(type)) throw new Error(`cluster message ${type} already has a handler`);
      handlers.set(type, handler);
    },
    onUp: (listener) => void ups.push(listener),
    onDown: (listener) => void downs.push(listener),
    counters,
    async close() {
      closing = true;
      await Promise.allSettled([redis.quit(), subscriber.quit()]);
      redis.disconnect();
      subscriber.disconnect();
    },
  };
}

/** Redis cannot be reached where cluster.redis.url says: one line, host and port, never the password. */
export class RedisUnavailableError extends Error {
  constructor(url: string, cause: Error) {
    super(`cannot reach Redis at ${redact(url)} (cluster.redis.url): ${(cause as { code?: string }).code ?? cause.message}`);
  }
}

/** host:port of a Redis URL, never its password. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || 6379}`;
  } catch {
    return "(unparsable URL)";
  }
}
