// The client half of SCRAM (RFC 5802 §3), to drive exchanges byte by byte in tests.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";

export function scramClient(hash: "sha1" | "sha256", username: string, password: string, authzid?: string) {
  const nonce = randomBytes(12).toString("base64");
  const gs2 = `n,${authzid ? `a=${authzid}` : ""},`;
  const bare = `n=${username},r=${nonce}`;
  return {
    first: Buffer.from(gs2 + bare).toString("base64"),
    /** The client-final message for a server-first challenge (base64 in, base64 out). */
    final(serverFirstB64: string, opts: { corruptProof?: boolean } = {}): string {
      const serverFirst = Buffer.from(serverFirstB64, "base64").toString();
      const attrs = Object.fromEntries(serverFirst.split(",").map((p) => [p[0], p.slice(2)]));
      const salted = pbkdf2Sync(password, Buffer.from(attrs.s!, "base64"), Number(attrs.i), hash === "sha1" ? 20 : 32, hash);
      const clientKey = createHmac(hash, salted).update("Client Key").digest();
      const storedKey = createHash(hash).update(clientKey).digest();
      const withoutProof = `c=${Buffer.from(gs2).toString("base64")},r=${attrs.r}`;
      const signature = createHmac(hash, storedKey).update(`${bare},${serverFirst},${withoutProof}`).digest();
      const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]!));
      if (opts.corruptProof) proof[0]! ^= 1;
      return Buffer.from(`${withoutProof},p=${proof.toString("base64")}`).toString("base64");
    },
  };
}
