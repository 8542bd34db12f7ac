// The session directory of a cluster (docs/cluster.md). Every node holds, next to its
// own sessions, a copy of every other node's: full JID, account, protocol and
// presence, as that node announces them. The router, presence, delivery and last
// activity work on that table unchanged; a session of another node differs in one
// way: `send` and `close` travel to its node (one Redis message), which hands the
// stanza to its own session. Presence goes once per node, not once per recipient:
// each node tells its own sessions (presence.ts `mirror`).
//
// What a node announces, in order on one connection: `b` (bound), `p` (presence),
// `g` (gone). It keeps the same in its hash `switchboard:sessions:<node>`, which a
// node that starts, or that comes back after losing Redis, reads to catch up. A node
// that is lost (nodes.ts) has its sessions dropped on every node, each node telling
// its own watchers that they are unavailable: once per watcher.
import type { Element } from "@xmpp/xml";
import parseXml from "@xmpp/xml/lib/parse.js";
import { parseJid } from "../xmpp/jid.js";
import { createLocalSessionTable, type Session, type SessionTable } from "../xmpp/sessions.js";
import { StreamError, StanzaError, errorReply, type StreamCondition } from "../xmpp/errors.js";
import type { Router } from "../xmpp/router.js";
import type { PresenceService } from "../xmpp/modules/presence.js";
import type { Registry } from "../registry/registry.js";
import type { Logger } from "../log.js";
import { KEY, type BusMessage, type ClusterBus } from "./bus.js";
import type { NodeWatch } from "./nodes.js";

// KEYS: the node's liveness key, its sessions hash, the node set; ARGV: the node id.
// Only if the node has not come back in the meantime (it rewrites its hash at once).
const FORGET_NODE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return 1`;

/** A session as its node keeps it in Redis. */
interface Announced {
  s: string;
  a: string;
  p: string;
  at: number;
  x: string | null;
}

export interface ClusterSessionTable extends SessionTable {
  /** This node's own sessions (size counts only these). */
  own(): IterableIterator<Session>;
}

/**
 * The table the XMPP server is built on: this node's sessions and the copies of the
 * others'. Adding or removing one of this node's sessions is announced here;
 * syncSessions() keeps the copies.
 */
export function clusterSessionTable(bus: ClusterBus): ClusterSessionTable & { internal: Internal } {
  const table = createLocalSessionTable();
  const mine = new Map<Session, number>();
  const internal: Internal = { table, mine };
  return {
    internal,
    add(session) {
      const displaced = table.add(session);
      if (session.node === undefined) {
        const at = Date.now();
        mine.set(session, at);
        bus.broadcast("b", { s: session.id, f: session.full, a: session.account.name, p: session.protocol, at });
        store(bus, session, at);
      }
      if (displaced) mine.delete(displaced);
      return displaced;
    },
    remove(session) {
      if (!table.remove(session)) return false;
      if (mine.delete(session)) {
        bus.redis.hdel(KEY.sessions(bus.nodeId), session.full).catch(() => {});
        // After the presence the caller sends next (presence.ended), so other nodes
        // learn the status before the session is gone.
        queueMicrotask(() => bus.broadcast("g", { s: session.id, f: session.full, at: Date.now() }));
      }
      return true;
    },
    get: (full) => table.get(full),
    ofAccount: (bare) => table.ofAccount(bare),
    all: () => table.all(),
    own: () => mine.keys(),
    get size() {
      return mine.size;
    },
  };
}

interface Internal {
  table: SessionTable;
  /** This node's sessions, with the time each was bound (the newer of two with one JID wins). */
  mine: Map<Session, number>;
}

/** A session of this node as its hash keeps it. */
function announced(session: Session, at: number): string {
  const value: Announced = { s: session.id, a: session.account.name, p: session.protocol, at, x: session.presence?.toString() ?? null };
  return JSON.stringify(value);
}

function store(bus: ClusterBus, session: Session, at: number): void {
  bus.redis.hset(KEY.sessions(bus.nodeId), session.full, announced(session, at)).catch(() => {});
}

export interface SessionSync {
  /** Reads every live node's sessions (start-up, and again after an outage). */
  catchUp(): Promise<void>;
  readonly counters: { stanzasIn: number; stanzasOut: number; undeliverable: number; nodesLost: number };
}

export function syncSessions(deps: {
  bus: ClusterBus;
  table: ReturnType<typeof clusterSessionTable>;
  watch: NodeWatch;
  router: Router;
  presence: PresenceService;
  registry: Registry;
  log: Pick<Logger, "info" | "warn">;
}): SessionSync {
  const { bus, watch, router, presence, registry, log } = deps;
  const { table, mine } = deps.table.internal;
  const counters = { stanzasIn: 0, stanzasOut: 0, undeliverable: 0, nodesLost: 0 };
  /** Each other node's sessions here, by session id, under the epoch they came from. */
  const nodes = new Map<string, { epoch: string; sessions: Map<string, Session>; boundAt: WeakMap<Session, number> }>();
  const lastStatus = new WeakMap<Session, string>();
  /** Each copy's presence as its node last announced it (compared when a hash is read again). */
  const announcedPresence = new WeakMap<Session, string | null>();
  /** Messages held while a node's hash is read, replayed after it. */
  let held: BusMessage[] | null = null;
  /** Node → epoch of hashes to read once the reading under way is done. */
  const again = new Map<string, string>();

  function of(node: string, epoch: string) {
    let entry = nodes.get(node);
    if (entry && entry.epoch !== epoch) {
      drop(node, "connection lost", false);
      entry = undefined;
    }
    if (!entry) nodes.set(node, (entry = { epoch, sessions: new Map(), boundAt: new WeakMap() }));
    return entry;
  }

  function remoteSession(node: string, id: string, full: string, accountName: string, protocol: string): Session | null {
    const jid = parseJid(full);
    const account = registry.get(accountName);
    if (!jid || !jid.local || !account) return null;
    const session: Session = {
      id,
      jid,
      full: jid.toString(),
      bare: `${jid.local}@${jid.domain}`,
      account,
      protocol,
      node,
      presence: null,
      priority: 0,
      rosterRequested: false,
      send(stanza) {
        counters.stanzasOut++;
        bus.send(node, "d", { f: session.full, x: stanza.toString() });
      },
      close: (error) => bus.send(node, "c", { f: full, s: id, c: error?.condition, tx: error?.text }),
    };
    return session;
  }

  /** A session another node bound; the newer of two sessions with one full JID wins (RFC 6120 §7.7.2.2). */
  function bound(m: BusMessage, announced: Announced, full: string): Session | null {
    const node = of(m.n, m.e);
    if (node.sessions.has(announced.s)) return node.sessions.get(announced.s)!;
    const existing = table.get(full);
    if (existing) {
      const existingAt = existing.node === undefined ? mine.get(existing) : nodes.get(existing.node)?.boundAt.get(existing);
      const existingNode = existing.node ?? bus.nodeId;
      if (existingAt !== undefined && (existingAt > announced.at || (existingAt === announced.at && existingNode > m.n))) return null;
    }
    const session = remoteSession(m.n, announced.s, full, announced.a, announced.p);
    if (!session) return null;
    node.sessions.set(announced.s, session);
    node.boundAt.set(session, announced.at);
    const displaced = table.add(session);
    if (displaced?.node === undefined && displaced && mine.delete(displaced)) {
      bus.redis.hdel(KEY.sessions(bus.nodeId), displaced.full).catch(() => {});
      displaced.close(new StreamError("conflict", "replaced by a new connection with the same resource"));
    } else if (displaced?.node) nodes.get(displaced.node)?.sessions.delete(displaced.id);
    return session;
  }

  function presenceOf(session: Session, x: string | null, status?: string, handedOver = false): void {
    announcedPresence.set(session, x);
    if (x === null) {
      if (status) lastStatus.set(session, status);
      if (session.presence) presence.mirror(session, null, status, handedOver);
      return;
    }
    let stanza: Element;
    try {
      stanza = parseXml(x) as Element;
    } catch {
      return;
    }
    if (stanza.name !== "presence") return;
    presence.mirror(session, stanza);
  }

  function gone(node: string, session: Session, at: number): void {
    nodes.get(node)?.sessions.delete(session.id);
    if (table.get(session.full) !== session) return;
    table.remove(session);
    if (session.presence) presence.mirror(session, null, "connection lost");
    if (table.ofAccount(session.bare).length === 0) registry.setLastSeen(session.account.name, { at, status: lastStatus.get(session) ?? null }, true);
  }

  /** Every session of `node` is gone (the node stopped, restarted or was lost). */
  function drop(node: string, status: string, storeLastSeen: boolean): void {
    const entry = nodes.get(node);
    if (!entry) return;
    nodes.delete(node);
    const at = Date.now();
    for (const session of entry.sessions.values()) {
      if (session.presence) lastStatus.set(session, status);
      if (table.get(session.full) !== session) continue;
      table.remove(session);
      if (session.presence) presence.mirror(session, null, status);
      if (table.ofAccount(session.bare).length === 0) registry.setLastSeen(session.account.name, { at, status }, !storeLastSeen);
    }
  }

  // Messages from other nodes.
  function handle(type: string, apply: (m: BusMessage) => void): void {
    bus.on(type, (m) => {
      watch.heard(m.n, m.e);
      if (held && type !== "d" && type !== "c") held.push(m);
      else apply(m);
    });
  }
  const apply: Record<string, (m: BusMessage) => void> = {
    b(m) {
      bound(m, { s: String(m.s), a: String(m.a), p: String(m.p), at: Number(m.at), x: null }, String(m.f));
    },
    p(m) {
      const session = of(m.n, m.e).sessions.get(String(m.s));
      if (session) presenceOf(session, typeof m.x === "string" ? m.x : null, typeof m.st === "string" ? m.st : undefined, m.m === 1);
    },
    g(m) {
      const session = of(m.n, m.e).sessions.get(String(m.s));
      if (session) gone(m.n, session, Number(m.at) || Date.now());
    },
    sync(m) {
      void readNodes(new Map([[m.n, m.e]])).catch((err: Error) => log.warn({ node: m.n, err: err.message }, "cluster: could not read a node's sessions"));
    },
    // A node started: heard() above already dropped what its former process held.
    h() {},
    // A node stopped cleanly: its sessions have ended one by one; anything left is dropped without a "lost" warning.
    bye(m) {
      if (!nodes.has(m.n)) return;
      log.info({ node: m.n }, "cluster: node left");
      drop(m.n, "node stopped", false);
    },
  };
  for (const [type, fn] of Object.entries(apply)) handle(type, fn);

  // A stanza for one of this node's sessions.
  bus.on("d", (m) => {
    counters.stanzasIn++;
    const session = table.get(String(m.f));
    let stanza: Element;
    try {
      stanza = parseXml(String(m.x)) as Element;
    } catch {
      return;
    }
    if (session && session.node === undefined) return session.send(stanza);
    counters.undeliverable++;
    // RFC 6121 §8.5.3.2.1: an IQ to a resource that is gone (it left while this was in flight).
    const type = stanza.attrs.type;
    if (stanza.name === "iq" && (type === "get" || type === "set")) {
      try {
        router.routeFromServer(errorReply(stanza, new StanzaError("service-unavailable")));
      } catch {
        // The sender is gone too.
      }
    }
  });
  bus.on("c", (m) => {
    const session = table.get(String(m.f));
    if (!session || session.node !== undefined || session.id !== m.s) return;
    session.close(typeof m.c === "string" ? new StreamError(m.c as StreamCondition, typeof m.tx === "string" ? m.tx : undefined) : undefined);
  });

  // This node's presence changes, for the others.
  presence.onChange((session, stanza, status, handedOver) => {
    const at = mine.get(session);
    // A displaced session's unavailable still goes out (the others ignore it: not their copy).
    bus.broadcast("p", { s: session.id, f: session.full, x: stanza?.toString() ?? null, st: status, m: handedOver ? 1 : undefined });
    if (at !== undefined) store(bus, session, at);
  });

  watch.onLost((node, epoch) => {
    const entry = nodes.get(node);
    if (!entry || entry.epoch !== epoch) return;
    counters.nodesLost++;
    const alive = watch.live().has(node);
    // The first live node (by id) stores the last-seen times and clears the lost node's hash.
    const reaper = [...watch.live().keys()].find((n) => n !== node) === bus.nodeId;
    log.warn({ node, sessions: entry.sessions.size }, alive ? "cluster: node restarted; its former sessions are gone" : "cluster: node lost; its sessions are unavailable");
    drop(node, "connection lost", reaper);
    if (reaper && !alive) bus.redis.eval(FORGET_NODE, 3, KEY.alive(node), KEY.sessions(node), KEY.nodes, node).catch(() => {});
  });

  /** Brings the copies of these nodes' sessions in line with their hashes; other nodes' messages wait meanwhile. */
  async function readNodes(list: ReadonlyMap<string, string>): Promise<void> {
    // A reading under way may have read these hashes before they were rewritten: read them after it.
    if (held) return void list.forEach((epoch, node) => again.set(node, epoch));
    held = [];
    try {
      for (const [node, epoch] of list) if (node !== bus.nodeId) readHash(node, epoch, await bus.redis.hgetall(KEY.sessions(node)));
    } finally {
      const replay = held;
      held = null;
      for (const m of replay) apply[m.t]?.(m);
    }
    if (again.size) {
      const next = new Map(again);
      again.clear();
      await readNodes(next);
    }
  }

  function readHash(node: string, epoch: string, hash: Record<string, string>): void {
    const entry = of(node, epoch);
    const listed = new Map<string, [string, Announced]>();
    for (const [full, raw] of Object.entries(hash)) {
      try {
        const a = JSON.parse(raw) as Announced;
        listed.set(a.s, [full, a]);
      } catch {
        // A value this version cannot read: skipped.
      }
    }
    for (const session of [...entry.sessions.values()]) if (!listed.has(session.id)) gone(node, session, Date.now());
    const m = { t: "b", n: node, e: epoch };
    for (const [full, a] of listed.values()) {
      const session = bound(m, a, full);
      if (session && (announcedPresence.get(session) ?? null) !== a.x) presenceOf(session, a.x);
    }
  }

  async function catchUp(): Promise<void> {
    await watch.tick();
    await readNodes(new Map([...watch.live()].map(([node, info]) => [node, info.epoch])));
  }

  // Back after an outage: the others may have missed what this node announced, and it
  // missed theirs. Its hash is written again from its own sessions, the others are
  // told to read it, and it reads theirs.
  bus.onUp(() => {
    const key = KEY.sessions(bus.nodeId);
    const write = bus.redis.multi().del(key);
    for (const [session, at] of mine) {
      write.hset(key, session.full, announced(session, at));
    }
    write
      .exec()
      .then(() => bus.broadcast("sync", {}))
      .then(catchUp)
      .then(() => log.info({ sessions: mine.size }, "cluster: sessions and presence resynchronised"))
      .catch((err: Error) => log.warn({ err: err.message }, "cluster: resynchronisation failed; retried when Redis is back"));
  });

  return { catchUp, counters };
}

/** Clears what a former process of this node left (after `kill -9`) and announces this one. */
export async function announceNode(bus: ClusterBus): Promise<void> {
  await bus.redis.del(KEY.sessions(bus.nodeId));
  bus.broadcast("h", {});
}
