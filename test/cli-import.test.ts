// `switchboard device import` (docs/cli.md, Bulk import): CSV with or without a header
// (RFC 4180 quoting), JSON Lines, services and operators with --accounts; all or
// nothing, a bad row named by its line number; 10,000 rows in under a minute.
import t from "tap";
import { join } from "node:path";
import { verifyPassword } from "../src/auth/scram.js";
import { badInput, cliEnv, okJson } from "./helpers/cli.js";

// The 10,000-row import needs more than the default file timeout.
t.setTimeout(300_000);

t.test("device import: CSV with and without header, JSON Lines", async (t) => {
  const env = cliEnv(t);
  const withHeader = env.file("with-header.csv", "id,type,password\ncsv-1,thermostat,pw-csv-1\ncsv-2,door-sensor,pw-csv-2\ncsv-3,power-meter,pw-csv-3\n");
  const r1 = await env.run("device", "import", withHeader);
  t.equal(r1.code, 0, `CSV with header imported (${r1.stderr.trim()})`);
  t.equal(r1.stderr, "");
  t.same(await env.deviceIds(), ["csv-1", "csv-2", "csv-3"], "header line is not a device");

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
      t.ok(await verifyPassword("sha256", (await reg.credentials(id))!.sha256, pw), `${id}: its password from the file works`);
    }
  });
});

t.test("device import: an RFC 4180 CSV with quoted fields", async (t) => {
  // What a spreadsheet writes when a password contains a comma or a quote.
  const env = cliEnv(t);
  const file = env.file("quoted.csv", 'id,type,password\n"q-1","thermostat","pw,with,commas"\nq-2,door-sensor,"say ""hi"""\n');
  const r = await env.run("device", "import", file);
  t.equal(r.code, 0, `quoted CSV imported (${r.stderr.trim()})`);
  await env.registry(async (reg) => {
    t.equal(reg.get("q-1")?.type, "thermostat", "quoted id and type are unquoted");
    const c1 = await reg.credentials("q-1");
    const c2 = await reg.credentials("q-2");
    t.ok(c1 && (await verifyPassword("sha256", c1.sha256, "pw,with,commas")), "quoted password with commas");
    t.ok(c2 && (await verifyPassword("sha256", c2.sha256, 'say "hi"')), "doubled quotes inside a quoted password");
  });
});

t.test("device import --accounts: services and operators", async (t) => {
  const env = cliEnv(t);
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
      t.ok(await verifyPassword("sha256", (await reg.credentials(name))!.sha256, pw), `${name}: password works`);
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
  const env = cliEnv(t);
  okJson(t, await env.run("device", "add", "existing", "--type", "thermostat"), "add");
  okJson(t, await env.run("account", "add", "svc", "--role", "service"), "add service");
  const before = await env.allNames();
  for (const c of cases) {
    const file = env.file(c.file, c.text);
    const r = await env.run("device", "import", ...(c.accounts ? ["--accounts"] : []), file);
    badInput(t, r, c.name, new RegExp(`\\bline ${c.line}\\b`, "i"), ...(c.also ? [c.also] : []));
    t.same(await env.allNames(), before, `${c.name}: nothing was imported`);
  }
});

t.test("device import of a file that does not exist", async (t) => {
  const env = cliEnv(t);
  badInput(t, await env.run("device", "import", join(env.dir, "nope.csv")), "missing file", /nope\.csv/);
  badInput(t, await env.run("device", "import"), "no file given", /file/i);
});

t.test("device import: 10,000 rows in under a minute", { timeout: 120_000 }, async (t) => {
  const env = cliEnv(t);
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
      t.ok(await verifyPassword("sha256", (await reg.credentials(id))!.sha256, `pw-${i}-${(i * 7919) % 10007}`), `${id}: password works`);
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
