import t from "tap";
import { pbkdf2 } from "node:crypto";
import { promisify } from "node:util";
import { createAuthenticator, createCredentials } from "../../src/auth/credentials.js";
import type { Account, Credentials, Registry } from "../../src/registry/registry.js";

// The authenticator over a three-method registry stand-in; the real registry path is
// covered by the MQTT and XMPP login tests.
function registryWith(accounts: Map<string, { account: Account; credentials: Credentials }>): Registry {
  return {
    get: (name: string) => accounts.get(name)?.account,
    credentials: async (name: string) => accounts.get(name)?.credentials,
    secret: async () => Buffer.alloc(32),
  } as unknown as Registry;
}

const pbkdf2Async = promisify(pbkdf2);

/** PBKDF2 through node:crypto, counting the calls: what the hash pool would run. */
function countingPbkdf2() {
  const counter = {
    calls: 0,
    pbkdf2: (password: string, salt: Buffer, iterations: number, keyLength: number, digest: string) => {
      counter.calls++;
      return pbkdf2Async(password, salt, iterations, keyLength, digest);
    },
  };
  return counter;
}

t.test("a verified password is remembered; a wrong one and a changed one are not", async (t) => {
  const account = { name: "d1", role: "device", type: "thermostat" } as unknown as Account;
  const accounts = new Map([["d1", { account, credentials: await createCredentials("right-pw", 4096) }]]);
  const hashPool = countingPbkdf2();
  const auth = createAuthenticator({ registry: registryWith(accounts), domain: "localhost", iterations: 4096, hashPool });

  t.equal((await auth.verifyPassword("d1", "right-pw"))?.name, "d1", "first login");
  t.equal(hashPool.calls, 1, "the first login runs one PBKDF2");
  for (let i = 0; i < 20; i++) t.equal((await auth.verifyPassword("d1@localhost", "right-pw"))?.name, "d1");
  t.equal((await auth.verifiedBefore("D1", "right-pw"))?.name, "d1", "verifiedBefore sees it, under any spelling of the name");
  t.equal(hashPool.calls, 1, "20 reconnects (as name@domain) run no PBKDF2");

  t.equal(await auth.verifyPassword("d1", "wrong-pw"), undefined, "a wrong password is still refused");
  t.equal(hashPool.calls, 2, "and pays its PBKDF2");
  t.equal(await auth.verifiedBefore("d1", "wrong-pw"), undefined, "a wrong password is not remembered");
  // The password changes: the remembered digest covers the old stored key.
  accounts.set("d1", { account, credentials: await createCredentials("new-pw", 4096) });
  t.equal(await auth.verifiedBefore("d1", "right-pw"), undefined, "the old password is no longer taken as verified");
  t.equal(await auth.verifyPassword("d1", "right-pw"), undefined, "the old password no longer works");
  t.equal(hashPool.calls, 3, "it paid a PBKDF2");
  t.equal((await auth.verifyPassword("d1", "new-pw"))?.name, "d1");
  t.equal((await auth.verifyPassword("d1", "new-pw"))?.name, "d1");
  t.equal(hashPool.calls, 4, "the new password: one PBKDF2, then remembered");
  accounts.delete("d1");
  t.equal(await auth.verifyPassword("d1", "new-pw"), undefined, "a removed account is refused");
});

t.test("verifiedCacheSize 0 turns the cache off", async (t) => {
  const account = { name: "d2", role: "device", type: "thermostat" } as unknown as Account;
  const accounts = new Map([["d2", { account, credentials: await createCredentials("pw", 4096) }]]);
  const hashPool = countingPbkdf2();
  const auth = createAuthenticator({ registry: registryWith(accounts), domain: "localhost", iterations: 4096, verifiedCacheSize: 0, hashPool });
  for (let i = 0; i < 3; i++) t.equal((await auth.verifyPassword("d2", "pw"))?.name, "d2");
  t.equal(hashPool.calls, 3, "every login pays the PBKDF2");
  t.equal(await auth.verifiedBefore("d2", "pw"), undefined, "nothing is remembered");
});

t.test("the cache keeps the most recently verified accounts, up to its size", async (t) => {
  const accounts = new Map<string, { account: Account; credentials: Credentials }>();
  for (const name of ["a", "b", "c"]) accounts.set(name, { account: { name, role: "device", type: "thermostat" } as unknown as Account, credentials: await createCredentials(`${name}-pw`, 4096) });
  const hashPool = countingPbkdf2();
  const auth = createAuthenticator({ registry: registryWith(accounts), domain: "localhost", iterations: 4096, verifiedCacheSize: 2, hashPool });
  for (const name of ["a", "b", "c"]) await auth.verifyPassword(name, `${name}-pw`);
  t.equal(hashPool.calls, 3);
  t.equal(await auth.verifiedBefore("a", "a-pw"), undefined, "the oldest went first");
  t.ok((await auth.verifiedBefore("b", "b-pw")) && (await auth.verifiedBefore("c", "c-pw")), "the two newest are kept");
});
