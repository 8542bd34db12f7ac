// Password checks shared by every protocol edge (XMPP SASL now, MQTT CONNECT later):
// one place that knows how credentials are stored and how a login is verified.
import { createHmac, randomBytes } from "node:crypto";
import type { Credentials, Registry, Account } from "../registry/registry.js";
import type { HashPool } from "./hash-pool.js";
import { deriveKeys, normalizePassword, safeEqual, verifyPassword, type ScramHash, type ScramKeys } from "./scram.js";

export async function createCredentials(password: string, iterations: number): Promise<Credentials> {
  const [sha1, sha256] = await Promise.all([deriveKeys("sha1", password, iterations), deriveKeys("sha256", password, iterations)]);
  return { sha1, sha256 };
}

export interface Authenticator {
  /**
   * The name a login is counted and decoyed under: `name` and `name@domain` in any
   * case are one name, whether or not the account exists.
   */
  loginName(username: string): string;
  /** The account behind a name given at login, which may be `name` or `name@domain`. */
  resolve(username: string): Account | undefined;
  /** The account, when this exact password was verified for it before (no PBKDF2). */
  verifiedBefore(username: string, password: string): Promise<Account | undefined>;
  /** Checks a clear password (SASL PLAIN, MQTT) against the stored SCRAM-SHA-256 keys. */
  verifyPassword(username: string, password: string): Promise<Account | undefined>;
  /**
   * Keys for a SCRAM exchange. For an unknown user it returns decoy keys whose salt
   * and iteration count depend only on the login name and a server secret, so the
   * server-first message is as stable as a real account's and reveals nothing.
   */
  scramKeys(username: string, hash: ScramHash): Promise<{ account: Account | undefined; keys: ScramKeys }>;
}

/**
 * Remembers passwords that were verified, as a keyed digest, so that a device that
 * reconnects (the usual case: a network blip brings a fleet back at once) costs one
 * HMAC instead of a PBKDF2 run (docs/operations.md, "Remembered passwords").
 * ejabberd does the same (auth_use_cache). Only a right password
 * takes the fast path, a wrong one always pays the PBKDF2, so the cache is no oracle.
 * The digest covers the stored key: a changed password misses by itself. The
 * trade-off: someone who can read the broker's memory can test guesses against these
 * digests at HMAC speed.
 * `auth.verifiedCacheSize: 0` turns it off.
 */
function verifiedCache(size: number) {
  const secret = randomBytes(32);
  const entries = new Map<string, Buffer>();
  const digestOf = (storedKey: Buffer, password: string) => createHmac("sha256", secret).update(storedKey).update(normalizePassword(password)).digest();
  return {
    has(name: string, storedKey: Buffer, password: string): boolean {
      const known = entries.get(name);
      return known !== undefined && safeEqual(known, digestOf(storedKey, password));
    },
    add(name: string, storedKey: Buffer, password: string): void {
      if (size === 0) return;
      entries.delete(name);
      entries.set(name, digestOf(storedKey, password));
      // Oldest first out (Map keeps insertion order).
      if (entries.size > size) entries.delete(entries.keys().next().value!);
    },
  };
}

/**
 * `hashPool` runs the PBKDF2 of each password check (hash-pool.ts): on threads that
 * yield to the event loop, so a connect storm never stalls connected sessions.
 * Without one (tools, tests) libuv's pool runs it.
 */
export function createAuthenticator(deps: { registry: Registry; domain: string; iterations: number; verifiedCacheSize?: number; hashPool?: Pick<HashPool, "pbkdf2"> }): Authenticator {
  const { registry, domain, iterations, hashPool } = deps;
  // Shared through the registry: every node of a fleet gives an unknown name the same salt.
  const decoySecret = registry.secret("scram-decoy");
  // Awaited where it is used; a registry that cannot give it fails those logins, not the process.
  decoySecret.catch(() => {});
  const verified = verifiedCache(deps.verifiedCacheSize ?? 100_000);

  function loginName(username: string): string {
    const lower = username.toLowerCase();
    const at = lower.lastIndexOf("@");
    return at >= 0 && lower.slice(at + 1) === domain ? lower.slice(0, at) : lower;
  }

  function resolve(username: string): Account | undefined {
    const name = loginName(username);
    return name.includes("@") ? undefined : registry.get(name);
  }

  async function decoy(username: string, hash: ScramHash): Promise<ScramKeys> {
    const salt = createHmac("sha256", await decoySecret).update(`${hash}:${loginName(username)}`).digest().subarray(0, 16);
    const size = hash === "sha1" ? 20 : 32;
    return { salt, iterations, storedKey: randomBytes(size), serverKey: randomBytes(size) };
  }

  /**
   * The account and its stored keys, once per check. The keys are asked for unknown
   * names too, so a registry on a database server answers both after one round trip.
   */
  async function lookup(username: string): Promise<{ account: Account; credentials: Credentials } | undefined> {
    const name = loginName(username);
    const credentials = await registry.credentials(name);
    // Resolved after the keys: a registry that found keys for a name its directory had
    // not seen yet (added a moment ago elsewhere) has taken the account in by then.
    const account = resolve(username);
    return account && credentials ? { account, credentials } : undefined;
  }
  const seenBefore = (found: Awaited<ReturnType<typeof lookup>>, password: string) =>
    found && verified.has(found.account.name, found.credentials.sha256.storedKey, password) ? found.account : undefined;

  return {
    loginName,
    resolve,
    // Unreadable keys (RegistryUnavailableError) are not "seen before": the full check says why.
    verifiedBefore: (username, password) => lookup(username).then((found) => seenBefore(found, password), () => undefined),
    async verifyPassword(username, password) {
      const found = await lookup(username);
      const known = seenBefore(found, password);
      if (known) return known;
      // An unknown user costs the same PBKDF2 as a known one: no timing oracle.
      const ok = await verifyPassword("sha256", found?.credentials.sha256 ?? (await decoy(username, "sha256")), password, hashPool?.pbkdf2);
      if (!ok || !found) return undefined;
      verified.add(found.account.name, found.credentials.sha256.storedKey, password);
      return found.account;
    },
    async scramKeys(username, hash) {
      const found = await lookup(username);
      return { account: found?.account, keys: found?.credentials[hash] ?? (await decoy(username, hash)) };
    },
  };
}
