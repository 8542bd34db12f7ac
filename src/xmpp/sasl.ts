// SASL mechanisms on the server side (RFC 6120 §6): PLAIN (RFC 4616), SCRAM-SHA-1
// (RFC 5802) and SCRAM-SHA-256 (RFC 7677). Each exchange is a small state machine
// fed the decoded client messages; it never sees the XML.
import { SASLError } from "./errors.js";
import type { Account } from "../registry/registry.js";
import type { Authenticator } from "../auth/credentials.js";
import { banText, UNAVAILABLE_TEXT, unlessUnavailable, type Login } from "../auth/login.js";
import type { Ban } from "../auth/limiter.js";
import { parseClientFirst, SCRAM_HASHES, serverFirst, verifyClientFinal, type ClientFirst, type ScramKeys } from "../auth/scram.js";

export type SaslStep =
  | { kind: "challenge"; data: Buffer }
  | { kind: "success"; account: Account; data?: Buffer }
  | { kind: "failure"; error: SASLError; username?: string };

export interface SaslExchange {
  /** `data` is null when the client sent no initial response. */
  step(data: Buffer | null): Promise<SaslStep>;
}

export const MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"] as const;
export type MechanismName = (typeof MECHANISMS)[number];

interface Deps {
  auth: Authenticator;
  login: Login;
  /** The peer's address, for the failed-login limiter. */
  address: string;
}

const fail = (condition: SASLError["condition"], text?: string, username?: string): SaslStep => ({ kind: "failure", error: new SASLError(condition, text), username });
/** RFC 6120 §6.5.11: a ban is temporary; the text says until when. */
const refused = (ban: Ban, username: string): SaslStep => fail("temporary-auth-failure", banText(ban), username);
/** The same condition when the registry cannot be read: a temporary error on the server's side, not a failed login. */
const unavailable = (username: string): SaslStep => fail("temporary-auth-failure", UNAVAILABLE_TEXT, username);

/**
 * An authzid is accepted only when it names the authenticating account itself. It is
 * compared as a login name, never looked up: the answer is the same whether or not
 * the account exists (RFC 6120 §6.3.8: the server decides which authzid it allows).
 */
const authzidMatches = (authzid: string | null, username: string, deps: Deps): boolean =>
  !authzid || deps.auth.loginName(authzid) === deps.auth.loginName(username);

function plain(deps: Deps): SaslExchange {
  return {
    async step(data) {
      if (data === null || data.length === 0) return { kind: "challenge", data: Buffer.alloc(0) };
      // RFC 4616 §2: [authzid] NUL authcid NUL passwd, all UTF-8.
      const parts = data.toString("utf8").split("\0");
      if (parts.length !== 3 || !parts[1] || !parts[2]) return fail("malformed-request", "expected authzid\\0authcid\\0password");
      const [authzid, username, password] = parts as [string, string, string];
      // An authzid naming another account never yields a session as that account:
      // refused before any password check, and counted like a wrong password.
      if (!authzidMatches(authzid || null, username, deps)) {
        const ban = deps.login.banned("xmpp", deps.address, username);
        if (ban) return refused(ban, username);
        deps.login.failed("xmpp", deps.address, username);
        return fail("invalid-authzid", "authzid must name the authenticating account", username);
      }
      const outcome = await deps.login.password("xmpp", deps.address, username, password);
      if (outcome.ok) return { kind: "success", account: outcome.account };
      if (outcome.unavailable) return unavailable(username);
      return outcome.ban ? refused(outcome.ban, username) : fail("not-authorized", undefined, username);
    },
  };
}

function scram(name: MechanismName, deps: Deps): SaslExchange {
  const hash = SCRAM_HASHES[name]!;
  let state: { first: ClientFirst; serverFirst: string; nonce: string; keys: ScramKeys; account: Account | undefined } | null = null;
  let done = false;
  return {
    async step(data) {
      if (done) return fail("malformed-request", "exchange already finished");
      if (data === null || data.length === 0) {
        if (state) return fail("malformed-request", "empty client-final message");
        return { kind: "challenge", data: Buffer.alloc(0) };
      }
      const message = data.toString("utf8");
      if (!state) {
        const first = parseClientFirst(message);
        if ("error" in first) {
          done = true;
          return first.error === "channel-binding" ? fail("mechanism-too-weak", "channel binding is not supported") : fail("malformed-request", "bad client-first message");
        }
        const ban = deps.login.banned("xmpp", deps.address, first.username);
        if (ban) {
          done = true;
          return refused(ban, first.username);
        }
        if (!authzidMatches(first.authzid, first.username, deps)) {
          done = true;
          deps.login.failed("xmpp", deps.address, first.username);
          return fail("invalid-authzid", "authzid must name the authenticating account", first.username);
        }
        const found = await unlessUnavailable(deps.auth.scramKeys(first.username, hash));
        if (found === "unavailable") {
          done = true;
          return unavailable(first.username);
        }
        const { account, keys } = found;
        const sf = serverFirst(first, keys);
        state = { first, serverFirst: sf.message, nonce: sf.nonce, keys, account };
        return { kind: "challenge", data: Buffer.from(sf.message) };
      }
      done = true;
      const { username } = state.first;
      // Banned meanwhile (by guesses on other streams): refused whatever the proof.
      const ban = deps.login.banned("xmpp", deps.address, username);
      if (ban) return refused(ban, username);
      const result = verifyClientFinal(hash, state.first, state.serverFirst, state.nonce, state.keys, message);
      if (result.ok && state.account) return { kind: "success", account: state.account, data: Buffer.from(result.serverFinal) };
      if (!result.ok && result.error === "malformed-request") return fail(result.error, undefined, username);
      deps.login.failed("xmpp", deps.address, username);
      return fail("not-authorized", undefined, username);
    },
  };
}

export function startExchange(mechanism: MechanismName, deps: Deps): SaslExchange {
  return mechanism === "PLAIN" ? plain(deps) : scram(mechanism, deps);
}

/** RFC 6120 §6.4.2: "=" is an empty response; otherwise strict base64. Null when malformed. */
export function decodeSaslPayload(text: string): Buffer | null {
  if (text === "=") return Buffer.alloc(0);
  const compact = text.replace(/[ \t\r\n]/g, "");
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) return null;
  return Buffer.from(compact, "base64");
}

export const encodeSaslPayload = (data: Buffer): string => (data.length === 0 ? "=" : data.toString("base64"));
