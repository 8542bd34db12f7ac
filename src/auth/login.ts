// A login attempt from an address, whichever protocol carries it: the ban check
// first, then the password, then the failure counted. Every protocol edge (SASL
// PLAIN and SCRAM, MQTT CONNECT) goes through here, so they share one limiter.
import { RegistryUnavailableError, type Account } from "../registry/registry.js";
import type { Authenticator } from "./credentials.js";
import type { Ban, FailureLimiter } from "./limiter.js";

export type Protocol = "xmpp" | "mqtt";

/** Refused: `ban` while banned; `unavailable` when the registry could not be read (not counted as a failure). */
export type LoginOutcome = { ok: true; account: Account } | { ok: false; ban: Ban | null; unavailable?: true };

export interface Login {
  /** A clear password (SASL PLAIN, MQTT CONNECT) checked for `username` from `address`. */
  password(protocol: Protocol, address: string, username: string, password: string): Promise<LoginOutcome>;
  /** The ban that refuses an attempt for `username` from `address` (SCRAM checks it at each step). */
  banned(protocol: Protocol, address: string, username: string): Ban | null;
  /** A failed attempt that was not a clear password (a SCRAM proof, an authzid). */
  failed(protocol: Protocol, address: string, username: string): void;
}

/** Failed logins and refusals while banned, by protocol. */
export interface LoginCounters {
  readonly failures: ReadonlyMap<Protocol, number>;
  readonly refused: ReadonlyMap<Protocol, number>;
}

export function createLogin(deps: { auth: Authenticator; limiter: FailureLimiter }): Login & { counters: LoginCounters } {
  const { auth, limiter } = deps;
  const counters = { failures: new Map<Protocol, number>(), refused: new Map<Protocol, number>() };
  const count = (map: Map<Protocol, number>, protocol: Protocol) => map.set(protocol, (map.get(protocol) ?? 0) + 1);

  const banned = (protocol: Protocol, address: string, name: string): Ban | null => {
    const ban = limiter.banned(address, name);
    if (ban) count(counters.refused, protocol);
    return ban;
  };
  const failed = (protocol: Protocol, address: string, name: string): void => {
    limiter.failed(address, name);
    count(counters.failures, protocol);
  };

  return {
    counters,
    async password(protocol, address, username, password) {
      const name = auth.loginName(username);
      const ban = banned(protocol, address, name);
      if (ban) return { ok: false, ban };
      // A reconnect with a password verified before costs no turn and no PBKDF2.
      const known = await auth.verifiedBefore(username, password);
      if (known) return { ok: true, account: known };
      const release = await limiter.turn(address, name);
      try {
        // The ban may have started while this attempt waited for its turn.
        const late = banned(protocol, address, name);
        if (late) return { ok: false, ban: late };
        const account = await unlessUnavailable(auth.verifyPassword(username, password));
        if (account === "unavailable") return { ok: false, ban: null, unavailable: true };
        if (account) return { ok: true, account };
        // Counted before the turn passes on, so the next waiter sees the ban it makes.
        failed(protocol, address, name);
        return { ok: false, ban: null };
      } finally {
        release();
      }
    },
    banned: (protocol, address, username) => banned(protocol, address, auth.loginName(username)),
    failed: (protocol, address, username) => failed(protocol, address, auth.loginName(username)),
  };
}

/** What a client refused because the registry cannot be read reads (MQTT CONNACK 3, SASL temporary-auth-failure). */
export const UNAVAILABLE_TEXT = "the account registry cannot be reached; try again";

/** `work`'s result, or "unavailable" when it failed with RegistryUnavailableError (any other error passes on). */
export const unlessUnavailable = <T>(work: Promise<T>): Promise<T | "unavailable"> =>
  work.catch((err: unknown) => {
    if (err instanceof RegistryUnavailableError) return "unavailable" as const;
    throw err;
  });

/** The text a refused client reads: why, and until when. */
export const banText = (ban: Ban): string =>
  `too many failed logins from this ${ban.scope === "address" ? "address" : "address for this account"}; try again after ${new Date(ban.until).toISOString()}`;
