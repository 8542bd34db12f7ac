import t from "tap";
import { createAuthenticator, createCredentials } from "../../src/auth/credentials.js";
import type { Account, Credentials, Registry } from "../../src/registry/registry.js";

// The authenticator over a three-method registry stand-in; the real registry path is
// covered by the MQTT and XMPP login tests.
function registryWith(accounts: Map<string, { account: Account; credentials: Credentials }>): Registry {
  return {
    get: (name: string) => accounts.get(name)?.account,
    credentials: (name: string) => accounts.get(name)?.credentials,
    secret: () => Buffer.alloc(32),
  } as unknown as Registry;
}

t.test("a verified password is remembered; a wrong one and a changed one are not", async (t) => {
  const account = { name: "d1", role: "device", type: "thermostat" } as unknown as Account;
  const accounts = new Map([["d1", { account, credentials: await createCredentials("right-pw", 4096) }]]);
  const auth = createAuthenticator({ registry: registryWith(accounts), domain: "localhost", iterations: 4096 });

  let t0 = performance.now();
  t.equal((await auth.verifyPassword("d1", "right-pw"))?.name, "d1", "first login: PBKDF2");
  const cold = performance.now() - t0;
  t0 = performance.now();
  for (let i = 0; i < 20; i++) t.equal((await auth.verifyPassword("d1@localhost", "right-pw"))?.name, "d1");
  const warm = (performance.now() - t0) / 20;
  t.ok(warm < cold / 5, `a reconnect skips PBKDF2 (${warm.toFixed(3)} ms vs ${cold.toFixed(3)} ms)`);

  t.equal(await auth.verifyPassword("d1", "wrong-pw"), undefined, "a wrong password is still refused");
  // The password changes: the remembered digest covers the old stored key.
  accounts.set("d1", { account, credentials: await createCredentials("new-pw", 4096) });
  t.equal(await auth.verifyPassword("d1", "right-pw"), undefined, "the old password no longer works");
  t.equal((await auth.verifyPassword("d1", "new-pw"))?.name, "d1");
  accounts.delete("d1");
  t.equal(await auth.verifyPassword("d1", "new-pw"), undefined, "a removed account is refused");
});

t.test("verifiedCacheSize 0 turns the cache off", async (t) => {
  const account = { name: "d2", role: "device", type: "thermostat" } as unknown as Account;
  const accounts = new Map([["d2", { account, credentials: await createCredentials("pw", 4096) }]]);
  const auth = createAuthenticator({ registry: registryWith(accounts), domain: "localhost", iterations: 4096, verifiedCacheSize: 0 });
  const t0 = performance.now();
  await auth.verifyPassword("d2", "pw");
  const cold = performance.now() - t0;
  const t1 = performance.now();
  t.ok(await auth.verifyPassword("d2", "pw"));
  t.ok(performance.now() - t1 > cold / 5, "every login pays the PBKDF2");
});
