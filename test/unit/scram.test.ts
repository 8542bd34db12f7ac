import t from "tap";
import { createHash } from "node:crypto";
import { deriveKeys, keysFromSalted, parseClientFirst, saltedPassword, verifyClientFinal, verifyPassword, decodeSaslName } from "../../src/auth/scram.js";

// RFC 5802 §5 (SCRAM-SHA-1) and RFC 7677 §3 (SCRAM-SHA-256) example exchanges.
const vectors = [
  {
    hash: "sha1" as const,
    password: "pencil",
    clientFirst: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    nonce: "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
    salt: "QSXCR+Q6sek8bf92",
    clientFinal: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
  },
  {
    hash: "sha256" as const,
    password: "pencil",
    clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    nonce: "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
    clientFinal: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
  },
];

for (const v of vectors) {
  t.test(`RFC test vector ${v.hash}`, async (t) => {
    const salt = Buffer.from(v.salt, "base64");
    const { storedKey, serverKey } = keysFromSalted(v.hash, await saltedPassword(v.hash, v.password, salt, 4096));
    const keys = { salt, iterations: 4096, storedKey, serverKey };
    const first = parseClientFirst(v.clientFirst);
    if ("error" in first) throw new Error("client-first rejected");
    t.equal(first.username, "user");
    const ok = verifyClientFinal(v.hash, first, v.serverFirst, v.nonce, keys, v.clientFinal);
    t.same(ok, { ok: true, serverFinal: v.serverFinal });
    // A single flipped bit in the proof fails.
    const bad = v.clientFinal.replace(/p=(.)/, (_m, c: string) => `p=${c === "A" ? "B" : "A"}`);
    t.same(verifyClientFinal(v.hash, first, v.serverFirst, v.nonce, keys, bad), { ok: false, error: "not-authorized" });
    // Wrong nonce and wrong channel binding fail too.
    t.same(verifyClientFinal(v.hash, first, v.serverFirst, v.nonce, keys, v.clientFinal.replace("r=", "r=x")), { ok: false, error: "not-authorized" });
    t.same(verifyClientFinal(v.hash, first, v.serverFirst, v.nonce, keys, v.clientFinal.replace("c=biws", "c=eSws")), { ok: false, error: "not-authorized" });
    t.same(verifyClientFinal(v.hash, first, v.serverFirst, v.nonce, keys, "c=biws,r=x"), { ok: false, error: "malformed-request" });
  });
}

t.test("stored keys verify the password and nothing else", async (t) => {
  const keys = await deriveKeys("sha256", "correct horse", 4096);
  t.ok(await verifyPassword("sha256", keys, "correct horse"));
  t.notOk(await verifyPassword("sha256", keys, "correct horsE"));
  t.notOk(await verifyPassword("sha256", keys, ""));
  // Never a plain hash of the password.
  t.not(keys.storedKey.toString("hex"), createHash("sha256").update("correct horse").digest("hex"));
  t.equal(keys.iterations, 4096);
  t.equal(keys.salt.length, 16);
});

t.test("SASLprep normalizes the password (RFC 4013)", async (t) => {
  const keys = await deriveKeys("sha1", "I\u00ADX", 4096); // soft hyphen is mapped to nothing
  t.ok(await verifyPassword("sha1", keys, "IX"));
});

t.test("client-first parsing", async (t) => {
  t.same(parseClientFirst("x,,n=user,r=abc"), { error: "malformed-request" });
  t.same(parseClientFirst("p=tls-unique,,n=user,r=abc"), { error: "channel-binding" });
  t.same(parseClientFirst("n,,n=,r=abc"), { error: "malformed-request" });
  t.same(parseClientFirst("n,,r=abc"), { error: "malformed-request" });
  t.same(parseClientFirst("n,,m=ext,n=user,r=abc"), { error: "malformed-request" });
  const withAuthz = parseClientFirst("n,a=admin,n=user,r=abc");
  t.match(withAuthz, { authzid: "admin", username: "user", gs2Header: "n,a=admin," });
  t.equal(decodeSaslName("a=2Cb=3Dc"), "a,b=c");
  t.equal(decodeSaslName("a=2"), null);
});
