// The password-hashing threads (src/auth/hash-pool.ts): the same keys as Node's
// PBKDF2, each thread at the priority asked for, a failing job that leaves the pool
// working, and close().
import t from "tap";
import { readFileSync, readdirSync } from "node:fs";
import { pbkdf2Sync } from "node:crypto";
import { startHashPool } from "../../src/auth/hash-pool.js";
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
  const registry = { get: (n: string) => (n === "d1" ? account : undefined), credentials: (n: string) => (n === "d1" ? credentials : undefined) } as unknown as Registry;
  let calls = 0;
  const counted = { pbkdf2: (...a: Parameters<typeof pool.pbkdf2>) => (calls++, pool.pbkdf2(...a)) };
  const auth = createAuthenticator({ registry, domain: "localhost", iterations: 4096, hashPool: counted, verifiedCacheSize: 0 });
  t.equal((await auth.verifyPassword("d1", "right-pw"))?.name, "d1", "the right password");
  t.equal(await auth.verifyPassword("d1", "wrong-pw"), undefined, "a wrong one");
  t.equal(await auth.verifyPassword("nobody", "pw"), undefined, "an unknown user");
  t.equal(calls, 3, "each check hashed on the pool");
});
