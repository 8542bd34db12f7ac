// `switchboard device add` and `account add` as users run them (docs/cli.md): a real
// subprocess per call, each test with its own data dir. One JSON line on stdout,
// generated passwords only when none was given, names of 1 to 64 characters, the
// configured domain in every JID.
import t from "tap";
import { verifyPassword } from "../src/auth/scram.js";
import { cliEnv, okJson } from "./helpers/cli.js";

t.setTimeout(300_000);

// ---------------------------------------------------------------- device add

t.test("device add with --password prints one JSON line {id, jid, type}, the given password not echoed", async (t) => {
  const env = cliEnv(t);
  const r = await env.run("device", "add", "thermo-1", "--type", "thermostat", "--password", "Secret-Pass-1");
  const out = okJson(t, r, "device add");
  t.same(Object.keys(out).sort(), ["id", "jid", "type"], "exactly these keys");
  t.strictSame(out, { id: "thermo-1", jid: "thermo-1@localhost", type: "thermostat" });
  await env.registry(async (reg) => {
    const account = reg.get("thermo-1");
    t.ok(account, "stored");
    t.equal(account?.role, "device");
    t.equal(account?.type, "thermostat");
    const creds = (await reg.credentials("thermo-1"))!;
    t.ok(await verifyPassword("sha256", creds.sha256, "Secret-Pass-1"), "the given password verifies (SHA-256)");
    t.ok(await verifyPassword("sha1", creds.sha1, "Secret-Pass-1"), "the given password verifies (SHA-1)");
    t.notOk(await verifyPassword("sha256", creds.sha256, "Secret-Pass-2"), "another password does not");
  });
});

t.test("device add without --password generates a working password", async (t) => {
  const env = cliEnv(t);
  const a = okJson(t, await env.run("device", "add", "meter.7", "--type", "power-meter"), "device add");
  const b = okJson(t, await env.run("device", "add", "door_2", "--type", "door-sensor"), "device add");
  t.equal(a.jid, "meter.7@localhost");
  t.equal(a.type, "power-meter");
  t.equal(b.type, "door-sensor");
  for (const out of [a, b]) {
    t.type(out.password, "string");
    t.ok(out.password.length >= 16, `generated password is at least 16 characters (${out.password.length})`);
  }
  t.not(a.password, b.password, "each generated password is different");
  await env.registry(async (reg) => {
    t.ok(await verifyPassword("sha256", (await reg.credentials("meter.7"))!.sha256, a.password), "generated password verifies (SHA-256)");
    t.ok(await verifyPassword("sha1", (await reg.credentials("meter.7"))!.sha1, a.password), "generated password verifies (SHA-1)");
    t.ok(await verifyPassword("sha256", (await reg.credentials("door_2"))!.sha256, b.password));
    t.notOk(await verifyPassword("sha256", (await reg.credentials("meter.7"))!.sha256, b.password), "not with the other device's password");
  });
});

t.test("the jid uses the configured domain", async (t) => {
  const env = cliEnv(t, "domain: iot.example.org\n");
  const out = okJson(t, await env.run("device", "add", "d1", "--type", "thermostat"), "device add");
  t.equal(out.jid, "d1@iot.example.org");
  const acc = okJson(t, await env.run("account", "add", "svc", "--role", "service"), "account add");
  t.equal(acc.jid, "svc@iot.example.org");
});

t.test("names: 1 and 64 characters, digits, '.', '_' and '-' are accepted", async (t) => {
  const env = cliEnv(t);
  for (const id of ["a", "0", "a".repeat(64), "x.y_z-9", "9lives"]) {
    const out = okJson(t, await env.run("device", "add", id, "--type", "thermostat"), `device add ${id}`);
    t.equal(out.id, id);
  }
  t.same(await env.deviceIds(), ["0", "9lives", "a", "a".repeat(64), "x.y_z-9"].sort());
});
// ---------------------------------------------------------------- account add

t.test("account add --role service|operator prints {name, jid, role}, and the password only when generated", async (t) => {
  const env = cliEnv(t);
  const svc = okJson(t, await env.run("account", "add", "backend", "--role", "service", "--password", "svc-pass-123"), "account add service");
  t.same(Object.keys(svc).sort(), ["jid", "name", "role"], "exactly these keys: the given password is not echoed");
  t.strictSame(svc, { name: "backend", jid: "backend@localhost", role: "service" });
  const op = okJson(t, await env.run("account", "add", "alice", "--role", "operator"), "account add operator");
  t.same(Object.keys(op).sort(), ["jid", "name", "password", "role"]);
  t.equal(op.name, "alice");
  t.equal(op.jid, "alice@localhost");
  t.equal(op.role, "operator");
  t.ok(typeof op.password === "string" && op.password.length >= 16, "generated password of at least 16 characters");
  await env.registry(async (reg) => {
    t.equal(reg.get("backend")?.role, "service");
    t.equal(reg.get("alice")?.role, "operator");
    t.ok(await verifyPassword("sha256", (await reg.credentials("backend"))!.sha256, "svc-pass-123"));
    t.ok(await verifyPassword("sha256", (await reg.credentials("alice"))!.sha256, op.password), "generated operator password verifies");
  });
  const list = await env.run("device", "list", "--json");
  t.same(JSON.parse(list.stdout), [], "services and operators are not listed as devices");
});
