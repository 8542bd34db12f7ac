// Pubsub subscriptions shared by the nodes of a cluster (docs/cluster.md): every node
// holds all of them, so that each node, which hears every accepted sample, notifies
// its own subscribed sessions (pubsub.ts notifies only this process's sessions). A
// change is applied here, told to the other nodes, and kept in the Redis hash
// `switchboard:pubsub`, which a starting node reads and every node writes again after
// an outage. Subscriptions outlive the node they were made on.
import { randomId } from "../ids.js";
import type { SubscriptionStore } from "../xmpp/modules/pubsub.js";
import type { ClusterBus } from "./bus.js";

const HASH = "switchboard:pubsub";
const field = (node: string, jid: string) => `${node}\n${jid}`;

export async function sharedSubscriptions(bus: ClusterBus): Promise<SubscriptionStore> {
  /** pubsub node → subscriber JID → subid. */
  const nodes = new Map<string, Map<string, string>>();
  const none: readonly string[] = [];

  function put(node: string, jid: string, subid: string): void {
    let subs = nodes.get(node);
    if (!subs) nodes.set(node, (subs = new Map()));
    subs.set(jid, subid);
  }
  const drop = (node: string, jid: string) => nodes.get(node)?.delete(jid) ?? false;

  async function load(): Promise<void> {
    for (const [key, subid] of Object.entries(await bus.redis.hgetall(HASH))) {
      const cut = key.indexOf("\n");
      if (cut > 0) put(key.slice(0, cut), key.slice(cut + 1), subid);
    }
  }

  bus.on("ps+", (m) => put(String(m.node), String(m.jid), String(m.subid)));
  bus.on("ps-", (m) => void drop(String(m.node), String(m.jid)));
  // After an outage (Redis restarted empty, or changes missed): ours written again, theirs read.
  bus.onUp(() => {
    const all: string[] = [];
    for (const [node, subs] of nodes) for (const [jid, subid] of subs) all.push(field(node, jid), subid);
    (all.length ? bus.redis.hset(HASH, ...all) : Promise.resolve(0)).then(load).catch(() => {});
  });
  await load();

  return {
    add(node, jid) {
      const existing = nodes.get(node)?.get(jid);
      if (existing) return existing;
      const subid = randomId();
      put(node, jid, subid);
      bus.redis.hset(HASH, field(node, jid), subid).catch(() => {});
      bus.broadcast("ps+", { node, jid, subid });
      return subid;
    },
    remove(node, jid) {
      if (!drop(node, jid)) return false;
      bus.redis.hdel(HASH, field(node, jid)).catch(() => {});
      bus.broadcast("ps-", { node, jid });
      return true;
    },
    of(node) {
      const subs = nodes.get(node);
      return subs?.size ? [...subs.keys()] : none;
    },
  };
}
