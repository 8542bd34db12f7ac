// Password checks shared by every protocol edge (XMPP SASL now, MQTT CONNECT later):
// one place that knows how credentials are stored and how a login is verified.
import { createHmac, randomBytes } from "node:crypto";
import type { Credentials, Registry, Account } from "../registry/registry.js";
import { deriveKeys, verifyPassword, type ScramHash, type ScramKeys } from "./scram.js";

export async function createCredentials(password: string, iterations: number): Promise<Credentials> {
  const [sha1, sha256] = await Promise.all([deriveKeys("sha1", password, iterations), deriveKeys("sha256", password, iterations)]);
  return { sha1, sha256 };
}

export interface Authenticator {
  /** The account behind a name given at login, which may be `name` or `name@domain`. */
  resolve(username: string): Account | undefined;
  /** Checks a clear password (SASL PLAIN, MQTT) against the stored SCRAM-SHA-256 keys. */
  verifyPassword(username: string, password: string): Promise<Account | undefined>;
  /**
   * Keys for a SCRAM exchange. For an unknown user it returns stable decoy keys
   * so that the server-first message does not reveal which accounts exist.
   */
  scramKeys(username: string, hash: ScramHash): { account: Account | undefined; keys: ScramKeys };
}

export function createAuthenticator(deps: { registry: Registry; domain: string; iterations: number }): Authenticator {
  const { registry, domain, iterations } = deps;
  const decoySecret = randomBytes(32);

  function resolve(username: string): Account | undefined {
    const at = username.indexOf("@");
    if (at >= 0) {
      if (username.slice(at + 1).toLowerCase() !== domain) return undefined;
      username = username.slice(0, at);
    }
    return registry.get(username.toLowerCase());
  }

  function decoy(username: string, hash: ScramHash): ScramKeys {
    const salt = createHmac("sha256", decoySecret).update(`${hash}:${username}`).digest().subarray(0, 16);
    const size = hash === "sha1" ? 20 : 32;
    return { salt, iterations, storedKey: randomBytes(size), serverKey: randomBytes(size) };
  }

  return {
    resolve,
    async verifyPassword(username, password) {
      const account = resolve(username);
      const credentials = account && registry.credentials(account.name);
      // An unknown user costs the same PBKDF2 as a known one: no timing oracle.
      const ok = await verifyPassword("sha256", credentials?.sha256 ?? decoy(username, "sha256"), password);
      return ok && credentials ? account : undefined;
    },
    scramKeys(username, hash) {
      const account = resolve(username);
      const credentials = account && registry.credentials(account.name);
      return { account: credentials ? account : undefined, keys: credentials?.[hash] ?? decoy(username, hash) };
    },
  };
}
