// Presence, RFC 6121 §4: initial presence and probes, broadcast to the contacts that
// are subscribed, directed presence, and `unavailable` when a session ends however
// it ends. Devices on other links are sessions too (links/linked-sessions.ts) and use `update`.
import xml, { type Element } from "@xmpp/xml";
import { StanzaError } from "../errors.js";
import type { Router, StanzaEvent } from "../router.js";
import type { Registry, Account } from "../../registry/registry.js";
import type { Session } from "../sessions.js";
import { receivesPresenceOf } from "../visibility.js";

export const NS_DELAY = "urn:xmpp:delay";

export interface PresenceService {
  /** A session's broadcast presence: an available <presence/>, or null for unavailable. */
  update(session: Session, presence: Element | null, status?: string): void;
  /** The session is gone (stream closed, socket lost, taken over): unavailable if it was available. */
  ended(session: Session, status?: string): void;
  /** Sessions that receive device presence: available operators and services. */
  watchers(): Iterable<Session>;
  /** Called when a session of this process becomes available, and when it stops being available. */
  onSession(listener: (session: Session, available: boolean, status?: string) => void): void;
  /**
   * A session of this process went somewhere else without going away: its device
   * reconnected on another node (MQTT client-id takeover). Withdrawn without an
   * unavailable, which is sent only if no session of that JID is available after
   * the grace period (so watchers see no flap, and no stale "online" either).
   */
  handedOver(session: Session): void;
  /** Every broadcast presence of a session of this process (null: unavailable), as it happens: what other nodes must learn. */
  onChange(listener: (session: Session, presence: Element | null, status: string | undefined, handedOver: boolean) => void): void;
  /**
   * A session of another node (`session.node`) changed its presence, as its node
   * reported: recorded, and told to this process's own sessions only (each node
   * tells its own). `handedOver` as in handedOver().
   */
  mirror(session: Session, presence: Element | null, status?: string, handedOver?: boolean): void;
}

/** How long a handed-over session's JID may stay without an available session before watchers are told it is unavailable. */
export const HAND_OVER_GRACE_MS = 2000;

const clampPriority = (text: string | null): number => {
  const n = Number.parseInt(text ?? "0", 10);
  return Number.isFinite(n) ? Math.max(-128, Math.min(127, n)) : 0;
};

export function presenceModule(deps: { router: Router; registry: Registry; now?: () => number; handOverGraceMs?: number }): PresenceService {
  const { router, registry, now = Date.now, handOverGraceMs = HAND_OVER_GRACE_MS } = deps;
  const { events, sessions, domain } = router;
  const watchers = new Set<Session>();
  const directed = new WeakMap<Session, Set<string>>();
  const listeners: Array<(session: Session, available: boolean, status?: string) => void> = [];
  const changeListeners: Array<(session: Session, presence: Element | null, status: string | undefined, handedOver: boolean) => void> = [];

  function sendAs(from: string, to: Session, presence: Element): void {
    presence.attrs.from = from;
    presence.attrs.to = to.full;
    to.send(presence);
  }

  /**
   * RFC 6121 §4.2.2 / §4.4.2: subscribed contacts' available resources, plus the
   * owner's available resources, the sending one included (it sees its own presence).
   */
  function audience(session: Session, includeSelf: boolean): Session[] {
    // Sessions of other nodes hear it from their own node (cluster: one message per node, not per recipient).
    const out = sessions.ofAccount(session.bare).filter((s) => s.node === undefined && (s === session ? includeSelf : s.presence));
    for (const watcher of watchers) if (watcher.bare !== session.bare && receivesPresenceOf(watcher.account, session.account)) out.push(watcher);
    return out;
  }

  function unavailableStanza(status?: string): Element {
    return xml("presence", { type: "unavailable" }, status ? xml("status", {}, status) : null);
  }

  /** XEP-0203: an unavailable presence for an account with no resource, dated when it was last seen. */
  function lastPresence(account: Account): Element {
    const seen = registry.lastSeen(account.name);
    return xml(
      "presence",
      { type: "unavailable" },
      seen?.status ? xml("status", {}, seen.status) : null,
      seen ? xml("delay", { xmlns: NS_DELAY, from: domain, stamp: new Date(seen.at).toISOString() }) : null,
    );
  }

  /** Answers a probe from `viewer` for `contact` (RFC 6121 §4.3.2) with its current presence. */
  function probe(viewer: Session, contact: Account): void {
    const bare = `${contact.name}@${domain}`;
    let any = false;
    for (const s of sessions.ofAccount(bare)) {
      if (!s.presence) continue;
      any = true;
      sendAs(s.full, viewer, s.presence);
    }
    if (!any) sendAs(bare, viewer, lastPresence(contact));
  }

  function update(session: Session, presence: Element | null, status?: string): void {
    broadcast(session, presence, status, true);
  }

  /** `toSelf`: the sending resource gets its own presence back (not when it is gone). */
  function broadcast(session: Session, presence: Element | null, status: string | undefined, toSelf: boolean): void {
    const initial = presence !== null && session.presence === null;
    if (presence) {
      // Stored once, without addressing, and re-addressed per recipient.
      delete presence.attrs.to;
      presence.attrs.from = session.full;
      session.priority = clampPriority(presence.getChildText("priority"));
      session.presence = presence;
    } else {
      if (session.presence === null) return;
      session.presence = null;
    }
    const role = session.account.role;
    const own = session.node === undefined;
    if (role !== "device" && own) {
      if (presence) watchers.add(session);
      else watchers.delete(session);
    }
    const stanza = presence ?? unavailableStanza(status);
    for (const target of audience(session, toSelf && session.protocol === "xmpp")) sendAs(session.full, target, stanza);
    if (!own) return;
    for (const listener of changeListeners) listener(session, presence, status, false);
    if (initial || !presence) for (const listener of listeners) listener(session, presence !== null, status);
    if (!presence) {
      for (const to of directed.get(session) ?? []) {
        const target = sessions.get(to);
        if (target) sendAs(session.full, target, unavailableStanza(status));
      }
      directed.delete(session);
    }
    if (initial) {
      // §4.2.2: the new resource learns the presence of everything it is subscribed to
      // and of the owner's other resources.
      for (const other of sessions.ofAccount(session.bare)) if (other !== session && other.presence) sendAs(other.full, session, other.presence);
      if (role !== "device") for (const contact of registry.list("device")) probe(session, contact);
    }
  }

  function ended(session: Session, status?: string): void {
    broadcast(session, null, status, false);
    watchers.delete(session);
    if (sessions.ofAccount(session.bare).length === 0) registry.setLastSeen(session.account.name, { at: now(), status: status ?? null });
  }

  function fromClient(event: StanzaEvent): boolean {
    const session = event.origin;
    if (!session) return false;
    const { stanza, type } = event;
    const broadcast = stanza.attrs.to === undefined;
    if (broadcast) {
      if (type === "available") update(session, stanza);
      else if (type === "unavailable") update(session, null, stanza.getChildText("status") ?? undefined);
      return true;
    }
    const contact = registry.get(event.to.local);
    if (!contact) return true; // §4.3 / §3.1.3: presence to an unknown account is silently dropped
    switch (type) {
      case "probe":
        if (receivesPresenceOf(session.account, contact)) probe(session, contact);
        return true;
      case "subscribe":
        // The roster is managed by the broker: an existing subscription is confirmed (§3.1.3).
        if (receivesPresenceOf(session.account, contact)) {
          router.reply(event, xml("presence", { type: "subscribed" }));
          probe(session, contact);
        }
        return true;
      case "subscribed":
      case "unsubscribe":
      case "unsubscribed":
        return true;
      case "error":
        if (event.target === "full") sessions.get(event.to.toString())?.send(stanza);
        return true;
      default: {
        // Directed presence, §4.6: delivered, and remembered for the unavailable at the end.
        const targets = event.target === "full" ? [sessions.get(event.to.toString())].filter((s) => s !== undefined) : sessions.ofAccount(event.to.toString()).filter((s) => s.presence);
        for (const target of targets) {
          target.send(stanza);
          if (type === "available") {
            const set = directed.get(session) ?? new Set<string>();
            set.add(target.full);
            directed.set(session, set);
          } else directed.get(session)?.delete(target.full);
        }
        return true;
      }
    }
  }

  events.on("presence/bare", fromClient);
  events.on("presence/full", fromClient);
  events.on("presence/host", (event) => {
    if (event.type !== "error" && event.type !== "available" && event.type !== "unavailable")
      router.error(event, new StanzaError("service-unavailable"));
    return true;
  });

  /** Withdrawn quietly; unavailable for this process's sessions only if the JID has no available session after the grace period. */
  function withdraw(session: Session): void {
    if (session.presence === null) return;
    session.presence = null;
    watchers.delete(session);
    const timer = setTimeout(() => {
      if (sessions.get(session.full)?.presence) return;
      const stanza = unavailableStanza();
      for (const target of audience(session, false)) sendAs(session.full, target, stanza);
    }, handOverGraceMs);
    timer.unref();
  }

  return {
    update,
    ended,
    watchers: () => watchers.values(),
    onSession: (listener) => void listeners.push(listener),
    onChange: (listener) => void changeListeners.push(listener),
    handedOver(session) {
      const had = session.presence !== null;
      withdraw(session);
      if (had && session.node === undefined) for (const listener of changeListeners) listener(session, null, undefined, true);
    },
    mirror(session, presence, status, handedOver = false) {
      if (handedOver) withdraw(session);
      else broadcast(session, presence, status, false);
    },
  };
}
