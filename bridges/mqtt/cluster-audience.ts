// Which MQTT topic filters the other nodes of a cluster listen to (docs/mqtt.md,
// "Several nodes"), so that a publish goes through Redis only when a subscriber on
// another node could want it. mqemitter-redis alone sends every message to Redis and
// delivers it even here only when Redis sends it back: for a node whose subscribers
// are all its own, or a sample nobody subscribes to, a round trip and two encodings
// per message for nothing (docs/benchmarks.md, "Cluster").
//
// Each node tells the others of every filter its emitter starts or stops listening to
// (aedes subscribes each client's filters, and its own `$SYS` ones, through the
// emitter's public on/removeListener), and keeps its filters in the Redis set
// `switchboard:mqtt-filters:<node>`, which a node starting, or back after a Redis
// outage, reads. A new filter counts only once every other live node has confirmed it
// (aedes sends the SUBACK after that): a message published anywhere after the SUBACK
// reaches the subscriber, as with mqemitter-redis alone. A filter that is gone may be
// believed a little longer, which costs a publish, never a message.
import { QlobberTrue } from "qlobber";
import type { ClusterBus } from "../../src/cluster/bus.js";
import { liveNodes, type NodeWatch } from "../../src/cluster/nodes.js";
import type { Logger } from "../../src/log.js";

/** The emitter's public subscription methods (mqemitter's API). */
export interface Subscribable {
  on(filter: string, listener: unknown, done?: () => void): unknown;
  removeListener(filter: string, listener: unknown, done?: () => void): unknown;
}

export interface ClusterAudience {
  /** Whether a subscriber on another node could want a publish on this topic. */
  elsewhere(topic: string): boolean;
  /** The filters other nodes listen to, by node (tests, metrics). */
  readonly remote: ReadonlyMap<string, ReadonlySet<string>>;
}

const setKey = (node: string) => `switchboard:mqtt-filters:${node}`;
/** At most this many topics' answers are kept between changes. */
const CACHE_TOPICS = 100_000;

// MQTT 3.1.1 §4.7: `/` separates levels, `+` is one level, `#` any number, the parent's included.
const trieOptions = { separator: "/", wildcard_one: "+", wildcard_some: "#", match_empty_levels: true };

/** A filter from another node (MQTT 3.1.1 §4.7.3: 1 to 65,535 bytes); anything else is refused by the bus. */
function filterOf(m: Record<string, unknown>): string {
  if (typeof m.f !== "string" || m.f.length === 0 || Buffer.byteLength(m.f) > 65_535) throw new Error("not an MQTT topic filter");
  return m.f;
}

/**
 * Starts sharing `mq`'s filters with the other nodes and learning theirs. Call before
 * aedes subscribes anything on `mq`.
 */
export async function clusterAudience(deps: { bus: ClusterBus; watch: NodeWatch; mq: Subscribable; ackTimeoutMs: number; log: Pick<Logger, "warn"> }): Promise<ClusterAudience> {
  const { bus, watch, mq } = deps;
  const self = bus.nodeId;

  // The other nodes' filters.
  const remote = new Map<string, { epoch: string; filters: Set<string> }>();
  /** filter → how many other nodes listen to it; in the trie while above 0. */
  const holders = new Map<string, number>();
  const trie = new QlobberTrue(trieOptions);
  let answers = new Map<string, boolean>();

  function hold(node: string, epoch: string, filter: string): void {
    let entry = remote.get(node);
    if (!entry || entry.epoch !== epoch) {
      if (entry) forget(node, entry.epoch);
      remote.set(node, (entry = { epoch, filters: new Set() }));
    }
    if (entry.filters.has(filter)) return;
    entry.filters.add(filter);
    const n = holders.get(filter) ?? 0;
    holders.set(filter, n + 1);
    if (n === 0) (trie.add(filter), (answers = new Map()));
  }
  function release(node: string, filter: string): void {
    const entry = remote.get(node);
    if (!entry?.filters.delete(filter)) return;
    const n = holders.get(filter)! - 1;
    if (n > 0) return void holders.set(filter, n);
    holders.delete(filter);
    trie.remove(filter);
    answers = new Map();
  }
  function forget(node: string, epoch: string): void {
    const entry = remote.get(node);
    if (!entry || entry.epoch !== epoch) return;
    for (const filter of [...entry.filters]) release(node, filter);
    remote.delete(node);
  }
  /** A node's filters as its Redis set holds them, replacing what was known of it. */
  async function read(node: string, epoch: string): Promise<void> {
    const filters = new Set(await bus.redis.smembers(setKey(node)));
    const entry = remote.get(node);
    if (entry?.epoch === epoch) for (const filter of [...entry.filters]) if (!filters.has(filter)) release(node, filter);
    for (const filter of filters) hold(node, epoch, filter);
  }
  async function readAll(): Promise<void> {
    for (const [node, info] of await liveNodes(bus.redis)) if (node !== self) await read(node, info.epoch);
  }

  // This node's filters, by how many listeners each has here.
  const own = new Map<string, number>();
  /** A filter announced and not yet confirmed by every other node: resolves when it is. */
  const announcing = new Map<string, Promise<void>>();
  /** Announcements waiting for confirmations: id → the nodes still to confirm. */
  const waiting = new Map<number, { nodes: Set<string>; done: () => void }>();
  let announcements = 0;

  function announce(filter: string): Promise<void> {
    bus.redis.sadd(setKey(self), filter).catch(() => {});
    const nodes = new Set(watch.others().keys());
    // Redis away: nobody hears, nobody could confirm; the set is written again when it is back.
    if (!bus.up || nodes.size === 0) return (bus.broadcast("mf+", { f: filter }), Promise.resolve());
    const k = ++announcements;
    const told = new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        deps.log.warn({ filter, nodes: [...(waiting.get(k)?.nodes ?? [])] }, "cluster: MQTT subscription not confirmed by every node in time; acknowledged anyway");
        done();
      }, deps.ackTimeoutMs);
      const done = () => (clearTimeout(timer), waiting.delete(k), resolve());
      waiting.set(k, { nodes, done });
    });
    bus.broadcast("mf+", { f: filter, k });
    return told;
  }
  function confirmed(node: string, k: number): void {
    const w = waiting.get(k);
    if (w && w.nodes.delete(node) && w.nodes.size === 0) w.done();
  }

  const on = mq.on.bind(mq);
  const removeListener = mq.removeListener.bind(mq);
  mq.on = (filter, listener, done) => {
    const n = own.get(filter) ?? 0;
    own.set(filter, n + 1);
    if (n === 0) {
      // Forgotten once confirmed, unless the filter was dropped and announced again meanwhile.
      const told: Promise<void> = announce(filter).finally(() => void (announcing.get(filter) === told && announcing.delete(filter)));
      announcing.set(filter, told);
    }
    const pending = announcing.get(filter);
    return on(filter, listener, done && (pending ? () => void pending.then(done) : done));
  };
  mq.removeListener = (filter, listener, done) => {
    const n = (own.get(filter) ?? 1) - 1;
    if (n > 0) own.set(filter, n);
    else {
      own.delete(filter);
      bus.redis.srem(setKey(self), filter).catch(() => {});
      bus.broadcast("mf-", { f: filter });
    }
    return removeListener(filter, listener, done);
  };

  bus.on("mf+", (m) => {
    hold(m.n, m.e, filterOf(m));
    if (m.k !== undefined) bus.send(m.n, "mf-ok", { k: Number(m.k) });
  });
  bus.on("mf-", (m) => {
    if (remote.get(m.n)?.epoch === m.e) release(m.n, filterOf(m));
  });
  bus.on("mf-ok", (m) => confirmed(m.n, Number(m.k)));
  bus.on("mf-sync", (m) => void read(m.n, m.e).catch(() => {}));
  watch.onLost((node, epoch) => {
    forget(node, epoch);
    for (const k of [...waiting.keys()]) confirmed(node, k);
  });
  // Back after an outage (Redis perhaps restarted empty): ours written again, then the
  // others told to read it, and theirs read.
  bus.onUp(() => {
    const filters = [...own.keys()];
    const write = bus.redis.multi().del(setKey(self));
    if (filters.length) write.sadd(setKey(self), ...filters);
    write
      .exec()
      .then(() => bus.broadcast("mf-sync", {}))
      .then(readAll)
      .catch(() => {});
  });

  // What a former process of this node left is not this one's.
  await bus.redis.del(setKey(self));
  await readAll();

  return {
    elsewhere(topic) {
      let any = answers.get(topic);
      if (any === undefined) {
        if (answers.size >= CACHE_TOPICS) answers = new Map();
        any = holders.size > 0 && trie.test(topic);
        answers.set(topic, any);
      }
      return any;
    },
    get remote() {
      return new Map([...remote].map(([node, entry]) => [node, entry.filters]));
    },
  };
}
