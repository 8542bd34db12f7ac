// The session table: which bound resources exist and how to reach them. Kept behind
// an interface because a later issue runs several nodes, where a session may live
// on another process; nothing else may assume this map holds every session.
import type { Element } from "@xmpp/xml";
import type { JID } from "./jid.js";
import type { Account } from "../registry/registry.js";
import type { StreamError } from "./errors.js";

export interface Session {
  readonly id: string;
  /** Full JID of the bound resource. */
  readonly jid: JID;
  /** `local@domain`, precomputed: it is looked up on every routed stanza. */
  readonly bare: string;
  readonly full: string;
  readonly account: Account;
  /** How the session reached us: `xmpp` (TCP or WebSocket) or `mqtt`. */
  readonly protocol: string;
  /** Delivers a stanza to the session's peer. */
  send(stanza: Element): void;
  /** Ends the session, with a stream error where the protocol has one. */
  close(error?: StreamError): void;
  /** RFC 6121 §4.2: the last available presence, null until initial presence or after unavailable. */
  presence: Element | null;
  /** Priority of that presence (RFC 6121 §4.7.2.3); negative means "do not route bare messages here". */
  priority: number;
  /** RFC 6121 §2.1.6: requested the roster, so gets roster pushes. */
  rosterRequested: boolean;
  /**
   * The node that holds the session, for a session of another node of a cluster
   * (src/cluster/directory.ts): `send` and `close` reach it there. Absent for this
   * process's own sessions.
   */
  readonly node?: string;
}

export interface SessionTable {
  /** Adds a bound session; returns the session it displaces (same full JID), if any. */
  add(session: Session): Session | undefined;
  remove(session: Session): boolean;
  get(fullJid: string): Session | undefined;
  ofAccount(bare: string): readonly Session[];
  all(): IterableIterator<Session>;
  readonly size: number;
}

export function createLocalSessionTable(): SessionTable {
  const byFull = new Map<string, Session>();
  const byBare = new Map<string, Session[]>();
  const none: readonly Session[] = [];
  return {
    add(session) {
      const previous = byFull.get(session.full);
      if (previous) this.remove(previous);
      byFull.set(session.full, session);
      const list = byBare.get(session.bare);
      if (list) list.push(session);
      else byBare.set(session.bare, [session]);
      return previous;
    },
    remove(session) {
      if (byFull.get(session.full) !== session) return false;
      byFull.delete(session.full);
      const list = byBare.get(session.bare)!.filter((s) => s !== session);
      if (list.length) byBare.set(session.bare, list);
      else byBare.delete(session.bare);
      return true;
    },
    get: (full) => byFull.get(full),
    ofAccount: (bare) => byBare.get(bare) ?? none,
    all: () => byFull.values(),
    get size() {
      return byFull.size;
    },
  };
}
