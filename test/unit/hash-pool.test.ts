// The password-hashing threads (src/auth/hash-pool.ts): the same keys as Node's
// PBKDF2, each thread at the priority asked for, a failing job that leaves the pool
// working, and close(). The native PBKDF2 (src/auth/native/pbkdf2.c): built, used,
// RFC 7914's vectors and random inputs equal to node:crypto's, bad arguments refused.
import t from "tap";
import { readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { pbkdf2Sync, randomBytes } from "node:crypto";
import { NATIVE_PBKDF2, startHashPool } from "../../src/auth/hash-pool.js";
import { createAuthenticator, createCredentials } from "../../src/auth/credentials.js";
import type { Account, Registry } from "../../src/registry/registry.js";

/** nice of every thread of this process (field 19 of /proc/self/task/TID/stat). */
function threadNices(): number[] {
  return readdirSync("/proc/self/task").map((tid) => {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
  });
}

t.test("keys match node:crypto's PBKDF2, many at once over two threads", async (t) => {
  const pool = await startHashPool({ threads: 2, nice: 10 });
  t.teardown(() => pool.close());
  const jobs = Array.from({ length: 24 }, (_, i) => ({ password: `pw-${i}-ü`, salt: Buffer.from(`salt-${i}`), digest: i % 2 ? "sha1" : "sha256", length: i % 2 ? 20 : 32 }));
  const keys = await Promise.all(jobs.map((j) => pool.pbkdf2(j.password, j.salt, 4096, j.length, j.digest)));
  jobs.forEach((j, i) => t.equal(keys[i]!.toString("hex"), pbkdf2Sync(j.password, j.salt, 4096, j.length, j.digest).toString("hex"), `job ${i}`));
  t.ok(Buffer.isBuffer(keys[0]), "a Buffer comes back");
});

// RFC 7914 §11, PBKDF2-HMAC-SHA256.
const RFC7914 = [
  { password: "passwd", salt: "salt", iterations: 1, hex: "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783" },
  { password: "Password", salt: "NaCl", iterations: 80000, hex: "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d" },
];

t.test("the native PBKDF2 is built, and the pool hashes SHA-256 with it", async (t) => {
  // No silent fallback in the tests: a missing build fails here (npm run build:native).
  t.ok(NATIVE_PBKDF2, "src/auth/native/build/Release/pbkdf2.node exists");
  const pool = await startHashPool({ threads: 2, nice: 10 });
  t.teardown(() => pool.close());
  t.equal(pool.native, true, "reported as native");
  for (const v of RFC7914) t.equal((await pool.pbkdf2(v.password, Buffer.from(v.salt), v.iterations, 64, "sha256")).toString("hex"), v.hex, `RFC 7914 vector, c=${v.iterations}`);
});

t.test("without the native PBKDF2 the pool gives the same keys", async (t) => {
  const pool = await startHashPool({ threads: 1, nice: 10, native: false });
  t.teardown(() => pool.close());
  t.equal(pool.native, false, "reported as not native");
  for (const v of RFC7914) t.equal((await pool.pbkdf2(v.password, Buffer.from(v.salt), v.iterations, 64, "sha256")).toString("hex"), v.hex, `RFC 7914 vector, c=${v.iterations}`);
});

const addon = createRequire(import.meta.url)(NATIVE_PBKDF2 ?? "missing-native-pbkdf2") as { pbkdf2Sha256: (password: unknown, salt: unknown, iterations: unknown, keyLength: unknown) => Buffer };

t.test("native keys equal node:crypto's for random passwords, salts, counts and lengths", async (t) => {
  let mismatches = 0;
  // Passwords past the 64-byte block (hashed first, RFC 2104 §2), empty ones and salts,
  // key lengths that are not a multiple of the digest (several blocks, a partial last one).
  for (let i = 0; i < 300; i++) {
    const password = randomBytes(i % 150);
    const salt = randomBytes(i % 41);
    const iterations = 1 + ((i * 37) % 2500);
    const keyLength = 1 + (i % 100);
    if (!addon.pbkdf2Sha256(password, salt, iterations, keyLength).equals(pbkdf2Sync(password, salt, iterations, keyLength, "sha256"))) mismatches++;
  }
  t.equal(mismatches, 0, "300 random cases");
  const unicode = "pässwörd-☃-\u{1F600}";
  t.equal(addon.pbkdf2Sha256(Buffer.from(unicode), Buffer.from("s"), 4096, 32).toString("hex"), pbkdf2Sync(unicode, "s", 4096, 32, "sha256").toString("hex"), "a non-ASCII password as UTF-8");
});

t.test("the native PBKDF2 refuses bad arguments with a clear error and the process goes on", async (t) => {
  const b = Buffer.from("x");
  const cases: Array<[string, unknown[], RegExp, string]> = [
    ["password not a Buffer", ["pw", b, 1, 32], /password must be a Buffer/, "ERR_INVALID_ARG_TYPE"],
    ["salt not a Buffer", [b, "salt", 1, 32], /salt must be a Buffer/, "ERR_INVALID_ARG_TYPE"],
    ["iterations a string", [b, b, "1", 32], /iterations must be a number/, "ERR_INVALID_ARG_TYPE"],
    ["iterations 0", [b, b, 0, 32], /iterations must be an integer from 1/, "ERR_OUT_OF_RANGE"],
    ["iterations 1.5", [b, b, 1.5, 32], /iterations must be an integer/, "ERR_OUT_OF_RANGE"],
    ["iterations NaN", [b, b, NaN, 32], /iterations must be an integer/, "ERR_OUT_OF_RANGE"],
    ["iterations 2^32", [b, b, 2 ** 32, 32], /iterations must be an integer/, "ERR_OUT_OF_RANGE"],
    ["keyLength 0", [b, b, 1, 0], /keyLength must be an integer from 1 to 1024/, "ERR_OUT_OF_RANGE"],
    ["keyLength 1025", [b, b, 1, 1025], /keyLength must be an integer from 1 to 1024/, "ERR_OUT_OF_RANGE"],
    ["too few arguments", [b, b], /four arguments/, "ERR_INVALID_ARG_TYPE"],
  ];
  for (const [what, args, message, code] of cases) t.throws(() => addon.pbkdf2Sha256(...(args as [unknown, unknown, unknown, unknown])), { message, code }, what);
  t.equal(addon.pbkdf2Sha256(b, b, 1, 32).length, 32, "a good call after them works");
});

t.test("each hashing thread runs at the asked priority; the event loop keeps its own", async (t) => {
  const before = threadNices().filter((n) => n === 7).length;
  const pool = await startHashPool({ threads: 3, nice: 7 });
  t.teardown(() => pool.close());
  t.equal(pool.niced, true, "reported as niced");
  t.equal(threadNices().filter((n) => n === 7).length - before, 3, "three threads at nice 7");
  t.equal(threadNices()[0], 0, "the main thread is left at 0");
});

t.test("a job that fails is rejected with the reason, and the pool goes on", async (t) => {
  const pool = await startHashPool({ threads: 1, nice: 10 });
  t.teardown(() => pool.close());
  await t.rejects(pool.pbkdf2("pw", Buffer.from("s"), 4096, 32, "no-such-digest"), /digest/i, "an unknown digest is named");
  await t.rejects(pool.pbkdf2("pw", Buffer.from("s"), -1, 32, "sha256"), /iterations/i, "bad iterations are named");
  t.equal((await pool.pbkdf2("pw", Buffer.from("s"), 4096, 32, "sha256")).length, 32, "the next job works");
});

t.test("close() fails waiting jobs and refuses new ones", async (t) => {
  const pool = await startHashPool({ threads: 1, nice: 10 });
  const first = pool.pbkdf2("pw", Buffer.from("s"), 200_000, 32, "sha256").catch((e: Error) => e);
  const queued = pool.pbkdf2("pw", Buffer.from("s"), 4096, 32, "sha256").catch((e: Error) => e);
  await pool.close();
  t.match(await queued, { message: /closed/ }, "a queued job is failed");
  t.type(await first, Error, "the running one too (its thread is ended)");
  await t.rejects(pool.pbkdf2("pw", Buffer.from("s"), 4096, 32, "sha256"), /closed/, "a new one is refused");
});

t.test("the authenticator checks passwords on the pool", async (t) => {
  const pool = await startHashPool({ threads: 2, nice: 10 });
  t.teardown(() => pool.close());
  const account = { name: "d1", role: "device", type: "thermostat" } as unknown as Account;
  const credentials = await createCredentials("right-pw", 4096);
  const registry = { get: (n: string) => (n === "d1" ? account : undefined), credentials: (n: string) => (n === "d1" ? credentials : undefined), secret: () => Buffer.alloc(32) } as unknown as Registry;
  let calls = 0;
  const counted = { pbkdf2: (...a: Parameters<typeof pool.pbkdf2>) => (calls++, pool.pbkdf2(...a)) };
  const auth = createAuthenticator({ registry, domain: "localhost", iterations: 4096, hashPool: counted, verifiedCacheSize: 0 });
  t.equal((await auth.verifyPassword("d1", "right-pw"))?.name, "d1", "the right password");
  t.equal(await auth.verifyPassword("d1", "wrong-pw"), undefined, "a wrong one");
  t.equal(await auth.verifyPassword("nobody", "pw"), undefined, "an unknown user");
  t.equal(calls, 3, "each check hashed on the pool");
});
