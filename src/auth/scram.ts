// SCRAM primitives, RFC 5802 §3 (SHA-1) and RFC 7677 (SHA-256).
// PBKDF2 runs off the event loop: on the hashing threads given (hash-pool.ts), else on
// libuv's thread pool (async crypto.pbkdf2).
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";
import saslprep from "saslprep";
import type { Pbkdf2 } from "./hash-pool.js";

const pbkdf2Async = promisify(pbkdf2);

export type ScramHash = "sha1" | "sha256";
export const SCRAM_HASHES: Record<string, ScramHash> = { "SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256" };
const KEY_LENGTH: Record<ScramHash, number> = { sha1: 20, sha256: 32 };

/** What the registry stores per hash: never the password, never a plain hash of it. */
export interface ScramKeys {
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
}

export const hmac = (hash: ScramHash, key: Buffer, data: string | Buffer): Buffer =>
  createHmac(hash, key).update(data).digest();
export const digest = (hash: ScramHash, data: Buffer): Buffer => createHash(hash).update(data).digest();

export function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/** Constant-time equality that does not leak the length through an early return. */
export function safeEqual(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) {
    timingSafeEqual(a, a);
    return false;
  }
  return timingSafeEqual(a, b);
}

/** RFC 4013 SASLprep, as RFC 5802 §2.2 requires for the password (Normalize()). */
export function normalizePassword(password: string): string {
  return saslprep(password);
}

/** SaltedPassword := Hi(Normalize(password), salt, i), RFC 5802 §3. */
export async function saltedPassword(hash: ScramHash, password: string, salt: Buffer, iterations: number, pbkdf2: Pbkdf2 = pbkdf2Async): Promise<Buffer> {
  return pbkdf2(normalizePassword(password), salt, iterations, KEY_LENGTH[hash], hash);
}

/** StoredKey := H(HMAC(SaltedPassword, "Client Key")), RFC 5802 §3: all a password check needs. */
const storedKeyFromSalted = (hash: ScramHash, salted: Buffer): Buffer => digest(hash, hmac(hash, salted, "Client Key"));

export function keysFromSalted(hash: ScramHash, salted: Buffer): { storedKey: Buffer; serverKey: Buffer } {
  return { storedKey: storedKeyFromSalted(hash, salted), serverKey: hmac(hash, salted, "Server Key") };
}

export async function deriveKeys(hash: ScramHash, password: string, iterations: number, salt = randomBytes(16)): Promise<ScramKeys> {
  const { storedKey, serverKey } = keysFromSalted(hash, await saltedPassword(hash, password, salt, iterations));
  return { salt, iterations, storedKey, serverKey };
}

/** A PLAIN login (or MQTT password) checked against stored SCRAM keys. */
export async function verifyPassword(hash: ScramHash, keys: ScramKeys, password: string, pbkdf2?: Pbkdf2): Promise<boolean> {
  let salted: Buffer;
  try {
    salted = await saltedPassword(hash, password, keys.salt, keys.iterations, pbkdf2);
  } catch {
    return false; // SASLprep rejects prohibited characters: such a password cannot match.
  }
  return safeEqual(storedKeyFromSalted(hash, salted), keys.storedKey);
}

/** RFC 5802 §7 attribute list `k=v,k=v` in order; null when malformed. */
export function parseAttributes(text: string): Map<string, string> | null {
  const out = new Map<string, string>();
  for (const part of text.split(",")) {
    if (part.length < 2 || part[1] !== "=" || !/^[a-zA-Z]$/.test(part[0]!)) return null;
    if (out.has(part[0]!)) return null;
    out.set(part[0]!, part.slice(2));
  }
  return out;
}

/** saslname decoding, RFC 5802 §5.1: "=2C" is ",", "=3D" is "="; any other "=" is invalid. */
export function decodeSaslName(name: string): string | null {
  if (/=(?!2C|3D)/.test(name)) return null;
  return name.replace(/=2C/g, ",").replace(/=3D/g, "=");
}

/**
 * Server side of one SCRAM exchange (RFC 5802 §5). Feed it the client-first
 * message, then the client-final message. Keys are looked up between the two steps.
 */
export interface ClientFirst {
  gs2Header: string;
  authzid: string | null;
  username: string;
  clientNonce: string;
  bare: string;
}

export function parseClientFirst(message: string): ClientFirst | { error: "malformed-request" | "channel-binding" } {
  // gs2-header = gs2-cbind-flag "," [ authzid ] ","
  const m = /^([nyp](?:=[^,]*)?),(a=[^,]*)?,(.*)$/s.exec(message);
  if (!m) return { error: "malformed-request" };
  const [, cbind, authzPart, bare] = m as unknown as [string, string, string | undefined, string];
  // We offer no -PLUS mechanism, so a client demanding channel binding ("p=") cannot proceed.
  if (cbind.startsWith("p")) return { error: "channel-binding" };
  const attrs = parseAttributes(bare);
  if (!attrs || !attrs.has("n") || !attrs.has("r") || attrs.has("m")) return { error: "malformed-request" };
  const username = decodeSaslName(attrs.get("n")!);
  const authzid = authzPart ? decodeSaslName(authzPart.slice(2)) : null;
  const clientNonce = attrs.get("r")!;
  if (username === null || username === "" || (authzPart && !authzid) || !/^[\x21-\x2b\x2d-\x7e]+$/.test(clientNonce))
    return { error: "malformed-request" };
  return { gs2Header: `${cbind},${authzPart ?? ""},`, authzid, username, clientNonce, bare };
}

export function serverFirst(first: ClientFirst, keys: ScramKeys): { message: string; nonce: string } {
  const nonce = first.clientNonce + randomBytes(18).toString("base64");
  return { nonce, message: `r=${nonce},s=${keys.salt.toString("base64")},i=${keys.iterations}` };
}

export type FinalResult = { ok: true; serverFinal: string } | { ok: false; error: "malformed-request" | "not-authorized" };

export function verifyClientFinal(hash: ScramHash, first: ClientFirst, serverFirstMessage: string, nonce: string, keys: ScramKeys, message: string): FinalResult {
  const proofAt = message.lastIndexOf(",p=");
  if (proofAt < 0) return { ok: false, error: "malformed-request" };
  const withoutProof = message.slice(0, proofAt);
  const attrs = parseAttributes(withoutProof);
  const proof = Buffer.from(message.slice(proofAt + 3), "base64");
  if (!attrs || !attrs.has("c") || !attrs.has("r")) return { ok: false, error: "malformed-request" };
  if (proof.length !== KEY_LENGTH[hash]) return { ok: false, error: "malformed-request" };
  // The channel binding must echo our gs2 header (RFC 5802 §7, c=biws for "n,,").
  if (attrs.get("c") !== Buffer.from(first.gs2Header).toString("base64")) return { ok: false, error: "not-authorized" };
  if (attrs.get("r") !== nonce) return { ok: false, error: "not-authorized" };
  const authMessage = `${first.bare},${serverFirstMessage},${withoutProof}`;
  const clientSignature = hmac(hash, keys.storedKey, authMessage);
  const clientKey = xor(proof, clientSignature);
  if (!safeEqual(digest(hash, clientKey), keys.storedKey)) return { ok: false, error: "not-authorized" };
  return { ok: true, serverFinal: `v=${hmac(hash, keys.serverKey, authMessage).toString("base64")}` };
}
