// The password-hashing threads (src/auth/hash-pool.ts, src/auth/hash-thread.ts): RFC
// 7914's vectors and the same keys as pbkdf2Sync for random inputs, each thread at the
// priority asked for, the hashing off the main thread, a failing job that leaves the
// pool working, and close().
import t from "tap";
import { readFileSync, readdirSync } from "node:fs";
import { pbkdf2Sync, randomBytes, randomInt } from "node:crypto";
import { startHashPool } from "../../src/auth/hash-pool.js";
import type { Logger } from "../../src/log.js";
import { createAuthenticator, createCredentials } from "../../src/auth/credentials.js";
import type { Account, Registry } from "../../src/registry/registry.js";

/** nice of every thread of this process (field 19 of /proc/self/task/TID/stat). */
function niceOf(tid: string | number): number {
  const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
}

/** Every thread's nice value. (The main thread is the one whose id is the pid: ids wrap, so it need not be listed first.) */
function threadNices(): number[] {
  return readdirSync("/proc/self/task").map(niceOf);
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

t.test("the pool gives RFC 7914's PBKDF2-HMAC-SHA256 vectors", async (t) => {
  const pool = await startHashPool({ threads: 2, nice: 10 });
  t.teardown(() => pool.close());
  for (const v of RFC7914) t.equal((await pool.pbkdf2(v.password, Buffer.from(v.salt), v.iterations, 64, "sha256")).toString("hex"), v.hex, `RFC 7914 vector, c=${v.iterations}`);
});

/** A random string of `n` code points, some past one UTF-8 byte, some astral. */
function randomPassword(n: number): string {
  const planes = [0x7f, 0x7ff, 0xd7ff, 0x10ffff];
  return Array.from({ length: n }, (_, i) => {
    const cp = randomInt(0x20, planes[i % planes.length]! + 1);
    return String.fromCodePoint(cp >= 0xd800 && cp <= 0xdfff ? 0x41 : cp);
  }).join("");
}

t.test("the pool's keys equal pbkdf2Sync's for random passwords, salts, counts and lengths", async (t) => {
  const pool = await startHashPool({ threads: 2, nice: 10 });
  t.teardown(() => pool.close());
  // Passwords past the 64-byte block (hashed first, RFC 2104 §2), empty ones and salts,
  // key lengths that are not a multiple of the digest (several blocks, a partial last one).
  const cases = Array.from({ length: 300 }, (_, i) => ({ password: randomPassword(i % 70), salt: randomBytes(i % 41), iterations: 1 + ((i * 37) % 2500), keyLength: 1 + (i % 100) }));
  const keys = await Promise.all(cases.map((c) => pool.pbkdf2(c.password, c.salt, c.iterations, c.keyLength, "sha256")));
  const mismatches = cases.filter((c, i) => !keys[i]!.equals(pbkdf2Sync(c.password, c.salt, c.iterations, c.keyLength, "sha256")));
  t.same(mismatches, [], "300 random cases");
});

t.test("each hashing thread runs at the asked priority; the event loop keeps its own", async (t) => {
  const before = threadNices().filter((n) => n === 7).length;
  const pool = await startHashPool({ threads: 3, nice: 7 });
  t.teardown(() => pool.close());
  t.equal(pool.niced, true, "reported as niced");
  t.equal(threadNices().filter((n) => n === 7).length - before, 3, "three threads at nice 7");
  t.equal(niceOf(process.pid), 0, "the main thread is left at 0");
});

t.test("where a thread's priority cannot be lowered, the pool still hashes and warns once", async (t) => {
  const warnings: unknown[][] = [];
  // 20 is past setpriority's range (-20..19): refused like an OS that forbids it.
  const pool = await startHashPool({ threads: 2, nice: 20, log: { warn: (...a: unknown[]) => void warnings.push(a) } as unknown as Pick<Logger, "warn"> });
  t.teardown(() => pool.close());
  t.equal(pool.niced, false, "reported as not niced");
  t.equal(warnings.length, 1, "one warning for the pool");
  t.match(warnings[0], [{ nice: 20 }, /could not lower their priority/]);
  t.equal((await pool.pbkdf2("passwd", Buffer.from("salt"), 1, 64, "sha256")).toString("hex"), RFC7914[0]!.hex, "keys as usual");
});

/** CPU seconds (user + system) of one thread of this process, from /proc/self/task/TID/stat. */
function threadCpuSeconds(tid: number): number {
  const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ ticks
}

t.test("a storm of password checks runs off the event loop's thread", async (t) => {
  const pool = await startHashPool({ threads: 2, nice: 10 });
  t.teardown(() => pool.close());
  const main0 = threadCpuSeconds(process.pid);
  const all0 = process.cpuUsage();
  await Promise.all(Array.from({ length: 48 }, (_, i) => pool.pbkdf2(`pw-${i}`, Buffer.from("s"), 40_000, 32, "sha256")));
  const all = process.cpuUsage(all0);
  const total = (all.user + all.system) / 1e6;
  const main = threadCpuSeconds(process.pid) - main0;
  t.ok(total > 0.2, `the storm used CPU (${total.toFixed(2)} s)`);
  t.ok(main < total / 4, `the main thread used ${main.toFixed(2)} s of the storm's ${total.toFixed(2)} s`);
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
  const registry = { get: (n: string) => (n === "d1" ? account : undefined), credentials: async (n: string) => (n === "d1" ? credentials : undefined), secret: async () => Buffer.alloc(32) } as unknown as Registry;
  let calls = 0;
  const counted = { pbkdf2: (...a: Parameters<typeof pool.pbkdf2>) => (calls++, pool.pbkdf2(...a)) };
  const auth = createAuthenticator({ registry, domain: "localhost", iterations: 4096, hashPool: counted, verifiedCacheSize: 0 });
  t.equal((await auth.verifyPassword("d1", "right-pw"))?.name, "d1", "the right password");
  t.equal(await auth.verifyPassword("d1", "wrong-pw"), undefined, "a wrong one");
  t.equal(await auth.verifyPassword("nobody", "pw"), undefined, "an unknown user");
  t.equal(calls, 3, "each check hashed on the pool");
});
