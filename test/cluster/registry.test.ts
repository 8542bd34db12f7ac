// The registry on a real PostgreSQL (docs/cluster.md): the schema only through
// migrate, every process's directory kept current through LISTEN/NOTIFY (also after
// its listening connection was cut), stored keys that log in, shared secrets and
// last-seen times, a standalone node's SQLite registry copied in with its keys, and
// logins while PostgreSQL is down.
import t from "tap";
import pg from "pg";
import { createAuthenticator, createCredentials } from "../../src/auth/credentials.js";
import { createFailureLimiter } from "../../src/auth/limiter.js";
import { createLogin } from "../../src/auth/login.js";
import { migrate, SCHEMA_VERSION } from "../../src/registry/postgres-schema.js";
import { openPostgresRegistry } from "../../src/registry/postgres.js";
import { openSqliteRegistry } from "../../src/registry/sqlite.js";
import { addAccount } from "../../src/provision.js";
import type { AccountChange, Registry } from "../../src/registry/registry.js";
import { startPostgres } from "../helpers/postgres.js";
import { tempDir } from "../helpers/temp-dir.js";
import { waitFor } from "../helpers/wait.js";

const postgres = await startPostgres();
t.teardown(() => postgres.close());

async function open(t: { teardown(fn: () => unknown): void }, url: string): Promise<Registry> {
  const r = await openPostgresRegistry({ url });
  t.teardown(() => r.close());
  return r;
}
const device = async (name: string, password = "pw-1") => ({ name, role: "device" as const, type: "thermostat", credentials: await createCredentials(password, 4096) });

t.test("the schema comes only from migrate; a missing or newer one is refused with what to do", async (t) => {
  const url = await postgres.database();
  await t.rejects(openPostgresRegistry({ url }), /no Switchboard schema: run `switchboard migrate --config FILE`/);
  t.same(await migrate(url), { from: null, to: SCHEMA_VERSION }, "created");
  t.same(await migrate(url), { from: SCHEMA_VERSION, to: SCHEMA_VERSION }, "a second run changes nothing");
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query("UPDATE switchboard_schema SET version = 99");
  await c.end();
  await t.rejects(openPostgresRegistry({ url }), /version 99, newer than this Switchboard knows \(1\): upgrade Switchboard/);
  await t.rejects(migrate(url), /newer than this Switchboard knows/, "migrate does not downgrade");
});

t.test("two processes: changes on one reach the other's directory; duplicates and bulk adds are all or nothing", async (t) => {
  const url = await postgres.database();
  await migrate(url);
  const a = await open(t, url);
  const b = await open(t, url);
  const seenByB: AccountChange[] = [];
  b.onChange((c) => seenByB.push(c));

  const added = await a.add(await device("d1"));
  t.equal(a.get("d1")?.createdAt, added.createdAt, "the writer sees its own add at once");
  await waitFor(() => b.get("d1") !== undefined, 10_000, "b learns of d1");
  t.same(seenByB.map((c) => [c.op, c.account.name]), [["add", "d1"]], "b was told once");
  t.ok(await b.credentials("d1"), "b reads d1's keys");
  await t.rejects(a.add(await device("d1")), { code: "SB_ERR_DUPLICATE", message: "'d1' already exists" });

  await t.rejects(b.addMany([await device("d2"), await device("d1")]), { code: "SB_ERR_DUPLICATE" }, "one duplicate in a bulk add");
  t.equal(await a.credentials("d2"), undefined, "and none of it was stored");
  await b.addMany([await device("d2"), await device("d3")]);
  await waitFor(() => a.get("d3") !== undefined, 10_000, "a learns of the bulk add");
  t.same(a.list("device").map((x) => x.name), ["d1", "d2", "d3"]);

  t.equal((await b.remove("d1"))?.name, "d1");
  await waitFor(() => a.get("d1") === undefined, 10_000, "a learns of the removal");
  t.equal(await b.remove("d1"), undefined, "removing it again finds nothing");
});

t.test("a key lookup finds an account added elsewhere before its notification; logins and shared secrets work", async (t) => {
  const url = await postgres.database();
  await migrate(url);
  const a = await open(t, url);
  const b = await open(t, url);
  t.same(await a.secret("scram-decoy"), await b.secret("scram-decoy"), "one secret for every process");
  await a.add(await device("fresh", "right pw"));
  // b's authenticator, asked at once: the lookup of the keys takes the account in.
  const auth = createAuthenticator({ registry: b, domain: "localhost", iterations: 4096 });
  t.equal((await auth.verifyPassword("fresh", "right pw"))?.name, "fresh", "the right password logs in on the other process");
  t.equal(await auth.verifyPassword("fresh", "wrong pw"), undefined, "a wrong one does not");
  t.equal(await auth.verifyPassword("nobody", "pw"), undefined, "an unknown name does not");
});

t.test("last-seen times are written behind and read by a process opened later", async (t) => {
  const url = await postgres.database();
  await migrate(url);
  const a = await openPostgresRegistry({ url });
  await a.add(await device("d1"));
  a.setLastSeen("d1", { at: 1234, status: "gone" });
  t.same(a.lastSeen("d1"), { at: 1234, status: "gone" });
  a.setLastSeen("nobody", { at: 1, status: null }); // no such account: dropped, not an error
  await a.close();
  const b = await open(t, url);
  t.same(b.lastSeen("d1"), { at: 1234, status: "gone" }, "stored at close");
  t.equal(b.lastSeen("nobody"), undefined);
});

t.test("a listening connection that is cut: the changes made meanwhile are reported once it listens again", async (t) => {
  const url = await postgres.database();
  await migrate(url);
  const errors: Error[] = [];
  const a = await openPostgresRegistry({ url, onError: (e) => errors.push(e) });
  t.teardown(() => a.close());
  const b = await open(t, url);
  await b.add(await device("before"));
  await waitFor(() => a.get("before") !== undefined, 10_000, "a sees the first add");
  const changes: AccountChange[] = [];
  a.onChange((c) => changes.push(c));
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'");
  await b.remove("before");
  await b.add(await device("during"));
  await admin.end();
  await waitFor(() => a.get("during") !== undefined && a.get("before") === undefined, 10_000, "a caught up after listening again");
  t.same(changes.map((c) => [c.op, c.account.name]).sort(), [["add", "during"], ["remove", "before"]], "each change reported once");
  t.ok(errors.some((e) => /listens for account changes|terminat/i.test(e.message)), "the lost connection was reported");
});

t.test("migrate --from copies a standalone registry: keys as they are, last seen, the decoy secret; a second run skips", async (t) => {
  const dataDir = tempDir(t, "sb-standalone-");
  const sqlite = openSqliteRegistry({ dataDir, pollMs: 60_000 });
  await addAccount(sqlite, { name: "old-1", role: "device", type: "thermostat", password: "old pw 1" }, 4096);
  await addAccount(sqlite, { name: "svc", role: "service", type: null, password: "svc pw" }, 4096);
  sqlite.setLastSeen("old-1", { at: 42, status: "disconnected" });
  const decoy = await sqlite.secret("scram-decoy");
  await sqlite.close();

  const url = await postgres.database();
  t.same(await migrate(url, dataDir), { from: null, to: SCHEMA_VERSION, copied: 2, skipped: 0 });
  const r = await open(t, url);
  const auth = createAuthenticator({ registry: r, domain: "localhost", iterations: 4096 });
  t.equal((await auth.verifyPassword("old-1", "old pw 1"))?.name, "old-1", "the device logs in with its old password");
  t.equal((await auth.verifyPassword("svc", "svc pw"))?.role, "service");
  t.same(r.lastSeen("old-1"), { at: 42, status: "disconnected" });
  t.same(await r.secret("scram-decoy"), decoy, "unknown names keep their decoy salts");
  t.same(await migrate(url, dataDir), { from: SCHEMA_VERSION, to: SCHEMA_VERSION, copied: 0, skipped: 2 }, "a second run copies nothing");
  await t.rejects(migrate(url, tempDir(t, "sb-empty-")), /no registry.sqlite there/);
});

t.test("PostgreSQL down: accounts that logged in before still can, others are told the registry is unreachable; back up, all can", async (t) => {
  const url = await postgres.database();
  await migrate(url);
  const errors: Error[] = [];
  const r = await openPostgresRegistry({ url, onError: (e) => errors.push(e), timeoutMs: 2000 });
  t.teardown(() => r.close());
  await r.add(await device("known", "known pw"));
  await r.add(await device("cold", "cold pw"));
  const login = createLogin({ auth: createAuthenticator({ registry: r, domain: "localhost", iterations: 4096, verifiedCacheSize: 0 }), limiter: createFailureLimiter({ maxFailures: 10, maxAccountFailures: 10, windowMs: 60_000, banMs: 60_000 }) });
  t.ok((await login.password("mqtt", "10.0.0.1", "known", "known pw")).ok, "known logs in while PostgreSQL is up");

  await postgres.stop();
  t.ok((await login.password("mqtt", "10.0.0.1", "known", "known pw")).ok, "known logs in again while it is down (its keys were kept)");
  t.same(await login.password("mqtt", "10.0.0.1", "known", "wrong"), { ok: false, ban: null }, "a wrong password is still refused");
  t.same(await login.password("mqtt", "10.0.0.2", "cold", "cold pw"), { ok: false, ban: null, unavailable: true }, "cold cannot: the registry is unreachable");
  await t.rejects(r.add(await device("new")), "no new accounts while it is down");
  t.ok(errors.length > 0, "the lost connection was reported");

  await postgres.start();
  await waitFor(async () => (await login.password("mqtt", "10.0.0.2", "cold", "cold pw")).ok, 15_000, "cold logs in once PostgreSQL is back");
  await r.add(await device("new"));
  t.ok(r.get("new"), "and accounts can be added again");
});
