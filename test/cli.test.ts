// The `switchboard` command as users run it (CONTRACT §2): a real subprocess per
// call, each test with its own data dir. Provisioning output, bad input (exit 1,
// one line on stderr), fleet import (all or nothing, line numbers, 10,000 rows in
// under a minute), credentials at rest, and the CLI next to a running broker.
import t from "tap";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { openSqliteRegistry } from "../src/registry/sqlite.js";
import { verifyPassword } from "../src/auth/scram.js";
import { RawClient } from "./helpers/raw.js";
import { badInput, lines, okJson, spawnCli, type Run, type TT } from "./helpers/cli.js";

// The 10,000-row import and the broker subprocess need more than the default file timeout.
t.setTimeout(300_000);

const cli = (args: string[]) => spawnCli(args).exited;

interface Env {
  dir: string;
  dataDir: string;
  configFile: string;
  /** Runs the CLI with `--config` pointing at this test's config. */
  run(...args: string[]): Promise<Run>;
  /** Reads the registry the CLI wrote, in process. */
  registry<T>(fn: (r: ReturnType<typeof openSqliteRegistry>) => T | Promise<T>): Promise<T>;
  file(name: string, text: string): string;
}

function setup(t: TT, extraConfig = ""): Env {
  const dir = mkdtempSync(join(tmpdir(), "sb-cli-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = join(dir, "data");
  const configFile = join(dir, "switchboard.yaml");
  writeFileSync(configFile, `dataDir: ${JSON.stringify(dataDir)}\n${extraConfig}`);
  return {
    dir,
    dataDir,
    configFile,
    run: (...args: string[]) => cli([...args, "--config", configFile]),
    async registry(fn) {
      const r = openSqliteRegistry({ dataDir, pollMs: 60_000 });
      try {
        return await fn(r);
      } finally {
        r.close();
      }
    },
    file(name, text) {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
  };
}

/** Exactly one JSON line on stdout, nothing on stderr, exit 0. */


const deviceIds = (env: Env) => env.registry((r) => r.list("device").map((a) => a.name).sort());
const allNames = (env: Env) => env.registry((r) => r.list().map((a) => a.name).sort());

// ---------------------------------------------------------------- device add

t.test("device add with --password prints one JSON line {id, jid, type}, the given password not echoed", async (t) => {
  const env = setup(t);
  const r = await env.run("device", "add", "thermo-1", "--type", "thermostat", "--password", "Secret-Pass-1");
  const out = okJson(t, r, "device add");
  t.same(Object.keys(out).sort(), ["id", "jid", "type"], "exactly these keys");
  t.strictSame(out, { id: "thermo-1", jid: "thermo-1@localhost", type: "thermostat" });
  await env.registry(async (reg) => {
    const account = reg.get("thermo-1");
    t.ok(account, "stored");
    t.equal(account?.role, "device");
    t.equal(account?.type, "thermostat");
    const creds = reg.credentials("thermo-1")!;
    t.ok(await verifyPassword("sha256", creds.sha256, "Secret-Pass-1"), "the given password verifies (SHA-256)");
    t.ok(await verifyPassword("sha1", creds.sha1, "Secret-Pass-1"), "the given password verifies (SHA-1)");
    t.notOk(await verifyPassword("sha256", creds.sha256, "Secret-Pass-2"), "another password does not");
  });
});

t.test("device add without --password generates a working password", async (t) => {
  const env = setup(t);
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
    t.ok(await verifyPassword("sha256", reg.credentials("meter.7")!.sha256, a.password), "generated password verifies (SHA-256)");
    t.ok(await verifyPassword("sha1", reg.credentials("meter.7")!.sha1, a.password), "generated password verifies (SHA-1)");
    t.ok(await verifyPassword("sha256", reg.credentials("door_2")!.sha256, b.password));
    t.notOk(await verifyPassword("sha256", reg.credentials("meter.7")!.sha256, b.password), "not with the other device's password");
  });
});

t.test("the jid uses the configured domain", async (t) => {
  const env = setup(t, "domain: iot.example.org\n");
  const out = okJson(t, await env.run("device", "add", "d1", "--type", "thermostat"), "device add");
  t.equal(out.jid, "d1@iot.example.org");
  const acc = okJson(t, await env.run("account", "add", "svc", "--role", "service"), "account add");
  t.equal(acc.jid, "svc@iot.example.org");
});

t.test("names: 1 and 64 characters, digits, '.', '_' and '-' are accepted", async (t) => {
  const env = setup(t);
  for (const id of ["a", "0", "a".repeat(64), "x.y_z-9", "9lives"]) {
    const out = okJson(t, await env.run("device", "add", id, "--type", "thermostat"), `device add ${id}`);
    t.equal(out.id, id);
  }
  t.same(await deviceIds(env), ["0", "9lives", "a", "a".repeat(64), "x.y_z-9"].sort());
});

// ---------------------------------------------------------------- credentials at rest

t.test("credentials are stored only as salted SCRAM keys", async (t) => {
  const env = setup(t);
  const password = "Corr3ct-Horse-Battery-Staple-7781";
  okJson(t, await env.run("device", "add", "dev-a", "--type", "thermostat", "--password", password), "device add");
  okJson(t, await env.run("device", "add", "dev-b", "--type", "thermostat", "--password", password), "device add");
  okJson(t, await env.run("account", "add", "svc-a", "--role", "service", "--password", password), "account add");
  const csv = env.file("fleet.csv", `id,type,password\ndev-c,thermostat,${password}\n`);
  okJson(t, await env.run("device", "import", csv), "device import");

  const pw = Buffer.from(password, "utf8");
  const sha1 = createHash("sha1").update(pw).digest();
  const sha256 = createHash("sha256").update(pw).digest();
  const textNeedles = [
    password,
    password.toLowerCase(),
    pw.toString("base64"),
    pw.toString("hex"),
    sha1.toString("hex"),
    sha1.toString("base64"),
    sha256.toString("hex"),
    sha256.toString("base64"),
  ];
  const byteNeedles = [pw, sha1, sha256, ...textNeedles.map((s) => Buffer.from(s))];

  const dbFile = join(env.dataDir, "registry.sqlite");
  t.ok(existsSync(dbFile), "registry is dataDir/registry.sqlite");
  const db = new Database(dbFile, { readonly: true });
  let cells = 0;
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>;
    t.ok(tables.length > 0, "has tables");
    for (const { name } of tables) {
      const rows = db.prepare(`SELECT * FROM "${name.replace(/"/g, '""')}"`).all() as Array<Record<string, unknown>>;
      for (const row of rows)
        for (const [column, value] of Object.entries(row)) {
          cells++;
          const where = `${name}.${column}`;
          if (typeof value === "string") {
            for (const n of textNeedles) if (value.toLowerCase().includes(n.toLowerCase())) t.fail(`${where} contains the password or a plain hash of it`);
          } else if (Buffer.isBuffer(value)) {
            for (const n of byteNeedles) if (value.includes(n)) t.fail(`${where} contains the password or a plain hash of it`);
          }
        }
    }
  } finally {
    db.close();
  }
  t.ok(cells > 0, `scanned ${cells} cells`);

  // The raw files too (database and any write-ahead log left behind).
  for (const f of [dbFile, `${dbFile}-wal`])
    if (existsSync(f)) {
      const bytes = readFileSync(f);
      t.notOk(
        byteNeedles.some((n) => bytes.includes(n)),
        `${f.slice(env.dir.length)} holds neither the password nor a plain hash of it`,
      );
    }

  await env.registry(async (reg) => {
    const a = reg.credentials("dev-a")!;
    const b = reg.credentials("dev-b")!;
    for (const [name, c] of [["dev-a", a], ["dev-b", b], ["svc-a", reg.credentials("svc-a")!], ["dev-c", reg.credentials("dev-c")!]] as const) {
      t.ok(c.sha1.iterations >= 4096, `${name}: SCRAM-SHA-1 iterations ${c.sha1.iterations} >= 4096`);
      t.ok(c.sha256.iterations >= 4096, `${name}: SCRAM-SHA-256 iterations ${c.sha256.iterations} >= 4096`);
      t.ok(c.sha1.salt.length >= 12 && c.sha256.salt.length >= 12, `${name}: salts of at least 12 bytes`);
      t.ok(await verifyPassword("sha256", c.sha256, password), `${name}: keys verify the password`);
    }
    t.notOk(a.sha256.salt.equals(b.sha256.salt), "same password, different salt (SHA-256)");
    t.notOk(a.sha1.salt.equals(b.sha1.salt), "same password, different salt (SHA-1)");
    t.notOk(a.sha256.storedKey.equals(b.sha256.storedKey), "same password, different stored key");
  });
});

// ---------------------------------------------------------------- account add

t.test("account add --role service|operator prints {name, jid, role}, and the password only when generated", async (t) => {
  const env = setup(t);
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
    t.ok(await verifyPassword("sha256", reg.credentials("backend")!.sha256, "svc-pass-123"));
    t.ok(await verifyPassword("sha256", reg.credentials("alice")!.sha256, op.password), "generated operator password verifies");
  });
  const list = await env.run("device", "list", "--json");
  t.same(JSON.parse(list.stdout), [], "services and operators are not listed as devices");
});

// ---------------------------------------------------------------- list and remove

t.test("device list (table) and device list --json", async (t) => {
  const env = setup(t);
  const empty = await env.run("device", "list", "--json");
  t.equal(empty.code, 0);
  t.same(JSON.parse(empty.stdout), [], "no devices: empty JSON array");

  okJson(t, await env.run("device", "add", "therm-1", "--type", "thermostat"), "add");
  okJson(t, await env.run("device", "add", "door-1", "--type", "door-sensor"), "add");
  okJson(t, await env.run("device", "add", "meter-1", "--type", "power-meter"), "add");
  okJson(t, await env.run("account", "add", "ops", "--role", "operator"), "add operator");

  const json = await env.run("device", "list", "--json");
  t.equal(json.code, 0);
  t.equal(json.stderr, "");
  const arr = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
  t.ok(Array.isArray(arr), "a JSON array");
  t.equal(arr.length, 3, "three devices, no operator");
  const byId = new Map(arr.map((d) => [d.id, d]));
  for (const [id, type] of [["therm-1", "thermostat"], ["door-1", "door-sensor"], ["meter-1", "power-meter"]]) {
    t.match(byId.get(id), { id, jid: `${id}@localhost`, type }, `${id} listed with jid and type`);
  }
  t.notOk(JSON.stringify(arr).includes("password"), "no passwords in the list");

  const table = await env.run("device", "list");
  t.equal(table.code, 0);
  t.equal(table.stderr, "");
  const rows = lines(table.stdout);
  t.throws(() => JSON.parse(table.stdout), "without --json it is not JSON");
  t.equal(rows.length, 4, "a header and one row per device");
  t.match(rows[0], /\bID\b/i, "header names the id column");
  t.match(rows[0], /\bTYPE\b/i, "header names the type column");
  for (const [id, type] of [["therm-1", "thermostat"], ["door-1", "door-sensor"], ["meter-1", "power-meter"]]) {
    const row = rows.find((r) => r.split(/\s+/)[0] === id);
    t.ok(row, `${id} has a row`);
    t.match(row ?? "", new RegExp(`\\b${type}\\b`), `${id}'s row shows its type`);
  }
  t.notOk(rows.some((r) => r.startsWith("ops")), "operator not in the device table");
});

t.test("device remove", async (t) => {
  const env = setup(t);
  const added = okJson(t, await env.run("device", "add", "gone-1", "--type", "thermostat"), "add");
  okJson(t, await env.run("device", "add", "stays-1", "--type", "thermostat"), "add");
  const r = await env.run("device", "remove", "gone-1");
  t.equal(r.code, 0, `exit 0 (${r.stderr.trim()})`);
  t.equal(r.stderr, "");
  t.same(await deviceIds(env), ["stays-1"], "removed from the registry, the other stays");
  t.equal(await env.registry((reg) => reg.credentials("gone-1")), undefined, "credentials gone");
  const list = JSON.parse((await env.run("device", "list", "--json")).stdout) as Array<{ id: string }>;
  t.same(list.map((d) => d.id), ["stays-1"]);

  badInput(t, await env.run("device", "remove", "gone-1"), "removing it twice", /gone-1/);
  badInput(t, await env.run("device", "remove", "never-was"), "unknown id", /never-was/);
  t.same(await deviceIds(env), ["stays-1"]);

  // The id is free again: adding it back works, with a new password.
  const again = okJson(t, await env.run("device", "add", "gone-1", "--type", "door-sensor"), "re-add");
  t.equal(again.type, "door-sensor");
  await env.registry(async (reg) => {
    t.notOk(await verifyPassword("sha256", reg.credentials("gone-1")!.sha256, added.password), "the old password no longer works");
  });
});

// ---------------------------------------------------------------- bad input

t.test("bad input exits 1 with one clear line on stderr, and changes nothing", async (t) => {
  const env = setup(t);
  okJson(t, await env.run("device", "add", "existing", "--type", "thermostat"), "add");
  okJson(t, await env.run("account", "add", "svc", "--role", "service"), "add service");

  badInput(t, await env.run("device", "add", "d1", "--type", "toaster"), "unknown type", /toaster/, /type/i);
  badInput(t, await env.run("device", "add", "existing", "--type", "thermostat"), "duplicate id", /existing/, /exist|duplicate|taken/i);
  badInput(t, await env.run("device", "add", "svc", "--type", "thermostat"), "id of an existing service account", /svc/, /exist|duplicate|taken/i);
  badInput(t, await env.run("account", "add", "existing", "--role", "operator"), "account named like an existing device", /existing/, /exist|duplicate|taken/i);
  badInput(t, await env.run("device", "add", "Thermo1", "--type", "thermostat"), "uppercase name", /\bid\b|name/i);
  badInput(t, await env.run("device", "add", ".hidden", "--type", "thermostat"), "leading dot", /\bid\b|name/i);
  badInput(t, await env.run("device", "add", "-dash", "--type", "thermostat"), "leading dash");
  badInput(t, await env.run("device", "add", "a".repeat(65), "--type", "thermostat"), "65 characters", /\bid\b|name|long|64/i);
  badInput(t, await env.run("device", "add", "", "--type", "thermostat"), "empty name", /\bid\b|name/i);
  badInput(t, await env.run("device", "add", "a@b", "--type", "thermostat"), "'@' in the name", /\bid\b|name/i);
  badInput(t, await env.run("device", "add", "sp ace", "--type", "thermostat"), "space in the name", /\bid\b|name/i);
  badInput(t, await env.run("device", "add", "d2"), "missing --type", /type/);
  badInput(t, await env.run("device", "add", "--type", "thermostat"), "missing id", /\bid\b|name/i);
  badInput(t, await env.run("device", "add", "d3", "--type", "thermostat", "--password", ""), "empty password", /password/i);
  badInput(t, await env.run("account", "add", "bob", "--role", "admin"), "unknown role", /role/i, /admin|service|operator/);
  badInput(t, await env.run("account", "add", "bob", "--role", "device"), "role device via account add", /role/i);
  badInput(t, await env.run("account", "add", "bob"), "missing --role", /role/i);
  badInput(t, await env.run("account", "add", "Bob", "--role", "operator"), "bad account name", /\bname\b|\bid\b/i);
  badInput(t, await env.run("frobnicate"), "unknown command", /frobnicate/, /command/i);
  badInput(t, await env.run("device", "explode", "x"), "unknown device subcommand", /explode/);
  badInput(t, await env.run("device", "add", "d4", "--type", "thermostat", "--colour", "red"), "unknown flag", /--colour|colour/);
  badInput(t, await env.run("device", "list", "--jsonn"), "misspelt flag", /jsonn/);

  t.same(await allNames(env), ["existing", "svc"], "nothing was added by any of them");
  t.equal(await env.registry((reg) => reg.get("existing")?.type), "thermostat", "the existing device is unchanged");
});

t.test("a config error exits 1 with one line naming the key", async (t) => {
  const env = setup(t, "xmpp:\n  prot: 5222\n");
  badInput(t, await env.run("device", "add", "d1", "--type", "thermostat"), "unknown config key", /xmpp\.prot/);
  t.notOk(existsSync(join(env.dataDir, "registry.sqlite")), "nothing was written");
});

// ---------------------------------------------------------------- import

t.test("device import: CSV with and without header, JSON Lines", async (t) => {
  const env = setup(t);
  const withHeader = env.file("with-header.csv", "id,type,password\ncsv-1,thermostat,pw-csv-1\ncsv-2,door-sensor,pw-csv-2\ncsv-3,power-meter,pw-csv-3\n");
  const r1 = await env.run("device", "import", withHeader);
  t.equal(r1.code, 0, `CSV with header imported (${r1.stderr.trim()})`);
  t.equal(r1.stderr, "");
  t.same(await deviceIds(env), ["csv-1", "csv-2", "csv-3"], "header line is not a device");

  const noHeader = env.file("no-header.csv", "bare-1,thermostat,pw-bare-1\r\nbare-2,power-meter,pw-bare-2\r\n");
  const r2 = await env.run("device", "import", noHeader);
  t.equal(r2.code, 0, `CSV without header (CRLF) imported (${r2.stderr.trim()})`);

  const jsonl = env.file(
    "fleet.jsonl",
    [
      { id: "jl-1", type: "thermostat", password: "pw-jl-1" },
      { id: "jl-2", type: "door-sensor", password: "pw,jl \"2\"" },
    ]
      .map((o) => JSON.stringify(o))
      .join("\n") + "\n",
  );
  const r3 = await env.run("device", "import", jsonl);
  t.equal(r3.code, 0, `JSON Lines imported (${r3.stderr.trim()})`);

  await env.registry(async (reg) => {
    const expect: Array<[string, string, string]> = [
      ["csv-1", "thermostat", "pw-csv-1"],
      ["csv-2", "door-sensor", "pw-csv-2"],
      ["csv-3", "power-meter", "pw-csv-3"],
      ["bare-1", "thermostat", "pw-bare-1"],
      ["bare-2", "power-meter", "pw-bare-2"],
      ["jl-1", "thermostat", "pw-jl-1"],
      ["jl-2", "door-sensor", 'pw,jl "2"'],
    ];
    t.equal(reg.list("device").length, expect.length, "every row imported once");
    for (const [id, type, pw] of expect) {
      t.equal(reg.get(id)?.type, type, `${id} is a ${type}`);
      t.equal(reg.get(id)?.role, "device");
      t.ok(await verifyPassword("sha256", reg.credentials(id)!.sha256, pw), `${id}: its password from the file works`);
    }
  });
});

t.test("device import: an RFC 4180 CSV with quoted fields", async (t) => {
  // What a spreadsheet writes when a password contains a comma or a quote.
  const env = setup(t);
  const file = env.file("quoted.csv", 'id,type,password\n"q-1","thermostat","pw,with,commas"\nq-2,door-sensor,"say ""hi"""\n');
  const r = await env.run("device", "import", file);
  t.equal(r.code, 0, `quoted CSV imported (${r.stderr.trim()})`);
  await env.registry(async (reg) => {
    t.equal(reg.get("q-1")?.type, "thermostat", "quoted id and type are unquoted");
    const c1 = reg.credentials("q-1");
    const c2 = reg.credentials("q-2");
    t.ok(c1 && (await verifyPassword("sha256", c1.sha256, "pw,with,commas")), "quoted password with commas");
    t.ok(c2 && (await verifyPassword("sha256", c2.sha256, 'say "hi"')), "doubled quotes inside a quoted password");
  });
});

t.test("device import --accounts: services and operators", async (t) => {
  const env = setup(t);
  const csv = env.file("accounts.csv", "name,role,password\nbilling,service,pw-billing\nalice,operator,pw-alice\n");
  const r1 = await env.run("device", "import", "--accounts", csv);
  t.equal(r1.code, 0, `CSV accounts imported (${r1.stderr.trim()})`);
  const bare = env.file("accounts-bare.csv", "bob,operator,pw-bob\n");
  const r2 = await env.run("device", "import", bare, "--accounts");
  t.equal(r2.code, 0, `CSV accounts without header (${r2.stderr.trim()})`);
  const jsonl = env.file("accounts.jsonl", `${JSON.stringify({ name: "telemetry-sink", role: "service", password: "pw-sink" })}\n`);
  const r3 = await env.run("device", "import", "--accounts", jsonl);
  t.equal(r3.code, 0, `JSON Lines accounts (${r3.stderr.trim()})`);
  await env.registry(async (reg) => {
    for (const [name, role, pw] of [
      ["billing", "service", "pw-billing"],
      ["alice", "operator", "pw-alice"],
      ["bob", "operator", "pw-bob"],
      ["telemetry-sink", "service", "pw-sink"],
    ] as const) {
      t.equal(reg.get(name)?.role, role, `${name} is a ${role}`);
      t.ok(await verifyPassword("sha256", reg.credentials(name)!.sha256, pw), `${name}: password works`);
    }
    t.equal(reg.list().length, 4);
    t.equal(reg.list("device").length, 0, "no devices");
  });
});

t.test("device import: one bad row aborts the whole import and names its line", async (t) => {
  const cases: Array<{ name: string; file: string; text: string; line: number; also?: RegExp; accounts?: boolean }> = [
    { name: "unknown type", file: "f.csv", text: "id,type,password\nn-1,thermostat,p1\nn-2,toaster,p2\nn-3,thermostat,p3\n", line: 3, also: /toaster/ },
    { name: "bad name (uppercase)", file: "f.csv", text: "id,type,password\nn-1,thermostat,p1\nN-2,thermostat,p2\nn-3,thermostat,p3\n", line: 3 },
    { name: "bad name (leading dot)", file: "f.csv", text: "n-1,thermostat,p1\n.n-2,thermostat,p2\n", line: 2 },
    { name: "bad name (65 chars)", file: "f.csv", text: `n-1,thermostat,p1\nn-2,thermostat,p2\n${"b".repeat(65)},thermostat,p3\n`, line: 3 },
    { name: "empty name", file: "f.csv", text: "n-1,thermostat,p1\n,thermostat,p2\n", line: 2 },
    { name: "duplicate within the file", file: "f.csv", text: "id,type,password\nn-1,thermostat,p1\nn-2,thermostat,p2\nn-1,door-sensor,p3\n", line: 4, also: /n-1/ },
    { name: "duplicate of an existing device", file: "f.csv", text: "n-1,thermostat,p1\nn-2,thermostat,p2\nexisting,thermostat,p3\nn-4,thermostat,p4\n", line: 3, also: /existing/ },
    { name: "duplicate of an existing service", file: "f.csv", text: "n-1,thermostat,p1\nsvc,thermostat,p2\n", line: 2, also: /svc/ },
    { name: "missing column", file: "f.csv", text: "id,type,password\nn-1,thermostat,p1\nn-2,thermostat\nn-3,thermostat,p3\n", line: 3 },
    { name: "empty password", file: "f.csv", text: "n-1,thermostat,p1\nn-2,thermostat,\n", line: 2, also: /password/i },
    { name: "malformed JSON", file: "f.jsonl", text: '{"id":"n-1","type":"thermostat","password":"p1"}\n{"id":"n-2","type":"thermostat","password":"p2"\n', line: 2 },
    { name: "JSON missing password", file: "f.jsonl", text: '{"id":"n-1","type":"thermostat","password":"p1"}\n{"id":"n-2","type":"thermostat","password":"p2"}\n{"id":"n-3","type":"thermostat"}\n', line: 3, also: /password/ },
    { name: "JSON unknown type", file: "f.jsonl", text: '{"id":"n-1","type":"kettle","password":"p1"}\n', line: 1, also: /kettle/ },
    { name: "JSON bad id", file: "f.jsonl", text: '{"id":"n-1","type":"thermostat","password":"p1"}\n{"id":"N 2","type":"thermostat","password":"p2"}\n', line: 2 },
    { name: "accounts: unknown role", file: "a.csv", accounts: true, text: "name,role,password\nops-1,operator,p1\nops-2,admin,p2\n", line: 3, also: /role|admin/ },
    { name: "accounts: role device", file: "a.csv", accounts: true, text: "ops-1,operator,p1\nops-2,device,p2\n", line: 2 },
    { name: "accounts: duplicate of an existing device", file: "a.jsonl", accounts: true, text: '{"name":"ops-1","role":"operator","password":"p1"}\n{"name":"existing","role":"service","password":"p2"}\n', line: 2, also: /existing/ },
    { name: "accounts: malformed JSON", file: "a.jsonl", accounts: true, text: '{"name":"ops-1","role":"operator","password":"p1"}\n{"name":\n', line: 2 },
  ];
  const env = setup(t);
  okJson(t, await env.run("device", "add", "existing", "--type", "thermostat"), "add");
  okJson(t, await env.run("account", "add", "svc", "--role", "service"), "add service");
  const before = await allNames(env);
  for (const c of cases) {
    const file = env.file(c.file, c.text);
    const r = await env.run("device", "import", ...(c.accounts ? ["--accounts"] : []), file);
    badInput(t, r, c.name, new RegExp(`\\bline ${c.line}\\b`, "i"), ...(c.also ? [c.also] : []));
    t.same(await allNames(env), before, `${c.name}: nothing was imported`);
  }
});

t.test("device import of a file that does not exist", async (t) => {
  const env = setup(t);
  badInput(t, await env.run("device", "import", join(env.dir, "nope.csv")), "missing file", /nope\.csv/);
  badInput(t, await env.run("device", "import"), "no file given", /file/i);
});

t.test("device import: 10,000 rows in under a minute", { timeout: 120_000 }, async (t) => {
  const env = setup(t);
  const types = ["thermostat", "power-meter", "door-sensor"];
  const rows = ["id,type,password"];
  for (let i = 0; i < 10_000; i++) rows.push(`fleet-${String(i).padStart(5, "0")},${types[i % 3]},pw-${i}-${(i * 7919) % 10007}`);
  const file = env.file("fleet.csv", rows.join("\n") + "\n");
  const r = await env.run("device", "import", file);
  t.comment(`10,000 rows imported in ${r.ms} ms (wall clock, process start to exit)`);
  t.equal(r.code, 0, `exit 0 (${r.stderr.trim()})`);
  t.ok(r.ms < 60_000, `under a minute (${r.ms} ms)`);
  await env.registry(async (reg) => {
    const devices = reg.list("device");
    t.equal(devices.length, 10_000, "all 10,000 devices are there");
    t.equal(reg.get("fleet-00001")?.type, "power-meter");
    t.equal(reg.get("fleet-09998")?.type, "door-sensor");
    for (const i of [0, 4321, 9999]) {
      const id = `fleet-${String(i).padStart(5, "0")}`;
      t.ok(await verifyPassword("sha256", reg.credentials(id)!.sha256, `pw-${i}-${(i * 7919) % 10007}`), `${id}: password works`);
    }
  });

  // A second fleet whose very last row is bad: none of its 10,000 rows lands.
  const bad = ["id,type,password"];
  for (let i = 0; i < 9_999; i++) bad.push(`more-${String(i).padStart(5, "0")},thermostat,pw-${i}`);
  bad.push("more-last,thermostat");
  const badFile = env.file("bad-fleet.csv", bad.join("\n") + "\n");
  badInput(t, await env.run("device", "import", badFile), "bad last row of 10,000", /\bline 10001\b/i);
  t.equal(await env.registry((reg) => reg.list("device").length), 10_000, "nothing of the bad fleet was added");
});

// ---------------------------------------------------------------- next to a running broker

/** SASL PLAIN over STARTTLS; true on <success/>, false on <failure/>. */
async function tryLogin(port: number, user: string, password: string): Promise<boolean> {
  const c = await RawClient.connect(port);
  try {
    await c.secureStream();
    c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${password}`).toString("base64")}</auth>`);
    const m = await c.expect(/<(success|failure)\b/, 15_000);
    return m[1] === "success";
  } finally {
    c.close();
  }
}

async function eventually(what: string, fn: () => Promise<boolean>, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 200));
  }
}

t.test("the CLI works while a broker runs on the same dataDir", { timeout: 90_000 }, async (t) => {
  const env = setup(t);
  const startConfig = env.file(
    "broker.yaml",
    [
      `dataDir: ${JSON.stringify(env.dataDir)}`,
      "xmpp: {host: 127.0.0.1, port: 0}",
      "mqtt: {host: 127.0.0.1, port: 0, tlsPort: null}",
      "http: {host: 127.0.0.1, port: 0}",
      // The checks below fail logins on purpose, repeatedly: no slow-down for them.
      "auth: {maxFailures: 1000, maxAccountFailures: 1000}",
      "",
    ].join("\n"),
  );
  const runWith = (...args: string[]) => cli([...args, "--config", startConfig]);
  okJson(t, await runWith("device", "add", "before-start", "--type", "thermostat", "--password", "pw-before"), "add before start");

  const broker = spawnCli(["start", "--config", startConfig]);
  t.teardown(() => {
    if (broker.child.exitCode === null && broker.child.signalCode === null) broker.child.kill("SIGKILL");
  });
  let listening: Record<string, unknown> | undefined;
  const deadline = Date.now() + 30_000;
  while (!listening && Date.now() < deadline && broker.child.exitCode === null) {
    for (const line of lines(broker.stdout)) {
      try {
        const rec = JSON.parse(line) as Record<string, unknown>;
        if (rec.msg === "listening") listening = rec;
      } catch {
        /* not JSON: reported below */
      }
    }
    if (!listening) await new Promise((r) => setTimeout(r, 50));
  }
  if (!listening) {
    t.fail(`broker did not log "listening" (stdout: ${broker.stdout}, stderr: ${broker.stderr})`);
    return;
  }
  const xmppPort = listening.xmpp as number;
  t.type(xmppPort, "number");
  t.ok(await tryLogin(xmppPort, "before-start", "pw-before"), "a device provisioned before start logs in");

  const added = okJson(t, await runWith("device", "add", "live-1", "--type", "thermostat"), "device add while running");
  t.equal(added.jid, "live-1@localhost");
  t.ok(await eventually("login", () => tryLogin(xmppPort, "live-1", added.password)), "the running broker accepts the new device's generated password");

  const op = okJson(t, await runWith("account", "add", "live-op", "--role", "operator"), "account add while running");
  t.ok(await eventually("login", () => tryLogin(xmppPort, "live-op", op.password)), "the new operator logs in");

  const csv = env.file("live.csv", "live-2,door-sensor,pw-live-2\nlive-3,power-meter,pw-live-3\n");
  const imp = await runWith("device", "import", csv);
  t.equal(imp.code, 0, `import while running (${imp.stderr.trim()})`);
  t.ok(await eventually("login", () => tryLogin(xmppPort, "live-3", "pw-live-3")), "an imported device logs in");

  const list = await runWith("device", "list", "--json");
  t.equal(list.code, 0);
  t.same((JSON.parse(list.stdout) as Array<{ id: string }>).map((d) => d.id).sort(), ["before-start", "live-1", "live-2", "live-3"]);

  const rm = await runWith("device", "remove", "live-1");
  t.equal(rm.code, 0, `remove while running (${rm.stderr.trim()})`);
  t.ok(await eventually("refused", async () => !(await tryLogin(xmppPort, "live-1", added.password))), "a removed device can no longer log in");

  t.equal(broker.child.exitCode, null, "broker still running");
  broker.child.kill("SIGTERM");
  const exit = await Promise.race([broker.exited, new Promise<null>((r) => setTimeout(() => r(null), 15_000))]);
  t.ok(exit, "broker exits within 15 s of SIGTERM");
  t.equal(exit?.code, 0, `broker exits 0 on SIGTERM (stderr: ${broker.stderr.trim()})`);
  t.equal(exit?.signal ?? null, null, "not killed by the signal");
});
