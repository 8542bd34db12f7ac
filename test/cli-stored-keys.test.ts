// Credentials at rest (docs/cli.md, Credentials): whatever way an account was added,
// the registry holds salted SCRAM keys only (RFC 5802 §3), never the password or a
// plain hash of it, in any table or in the raw database files.
import t from "tap";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { verifyPassword } from "../src/auth/scram.js";
import { cliEnv, okJson } from "./helpers/cli.js";

t.setTimeout(300_000);

t.test("credentials are stored only as salted SCRAM keys", async (t) => {
  const env = cliEnv(t);
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
    const a = (await reg.credentials("dev-a"))!;
    const b = (await reg.credentials("dev-b"))!;
    for (const [name, c] of [["dev-a", a], ["dev-b", b], ["svc-a", (await reg.credentials("svc-a"))!], ["dev-c", (await reg.credentials("dev-c"))!]] as const) {
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
