// Credentials at rest and on the command line (docs/cli.md, Credentials and File
// permissions): the data dir and every file the CLI or the broker writes in it are the
// owner's alone under the usual umask 022; a password reaches the CLI through standard
// input or the environment without showing in `ps`, and no command echoes a password it
// was given.
import t from "tap";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqliteRegistry } from "../src/registry/sqlite.js";
import { createAuthenticator } from "../src/auth/credentials.js";
import { waitFor } from "./helpers/wait.js";
import { badInput, lines, okJson, spawnCli, type Run, type TT } from "./helpers/cli.js";

t.setTimeout(180_000);

/** The CLI under the usual umask 022. */
const spawnCli022 = (args: string[], opts: { env?: Record<string, string>; stdin?: "pipe" | "ignore" } = {}) => spawnCli(args, { ...opts, umask: "022" });

/** Runs the CLI with `input` on its standard input (closed after it). */
function cliWithInput(args: string[], input: string, env?: Record<string, string>): Promise<Run> {
  const p = spawnCli022(args, { stdin: "pipe", env });
  p.child.stdin!.end(input);
  return p.exited;
}

function setup(t: TT) {
  const dir = mkdtempSync(join(tmpdir(), "sb-secrets-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = join(dir, "data");
  const configFile = join(dir, "switchboard.yaml");
  writeFileSync(
    configFile,
    `dataDir: ${JSON.stringify(dataDir)}\nxmpp: { host: 127.0.0.1, port: 0, requireTls: false }\nmqtt: { host: 127.0.0.1, port: 0, tlsPort: 0 }\nhttp: { host: 127.0.0.1, port: 0 }\n`,
  );
  return {
    dir,
    dataDir,
    configFile,
    args: (...args: string[]) => [...args, "--config", configFile],
    run: (args: string[], env?: Record<string, string>) => spawnCli022([...args, "--config", configFile], { env }).exited,
    /** The account behind `name` when `password` logs in as it, checked against the stored keys. */
    async login(name: string, password: string) {
      const registry = openSqliteRegistry({ dataDir, pollMs: 60_000 });
      try {
        return await createAuthenticator({ registry, domain: "localhost", iterations: 4096, verifiedCacheSize: 0 }).verifyPassword(name, password);
      } finally {
        registry.close();
      }
    },
    names() {
      const registry = openSqliteRegistry({ dataDir, pollMs: 60_000 });
      try {
        return registry.list().map((a) => a.name);
      } finally {
        registry.close();
      }
    },
  };
}

const mode = (path: string) => statSync(path).mode & 0o777;
const octal = (m: number) => `0${m.toString(8)}`;

/** Every file under `dir` is 0600 and every directory (itself included) 0700; returns the files seen. */
function checkTree(t: TT, dir: string, when: string): string[] {
  const files: string[] = [];
  const visit = (path: string, rel: string) => {
    const st = statSync(path);
    if (st.isDirectory()) {
      t.equal(octal(st.mode & 0o777), "0700", `${when}: ${rel || "the data dir"}/ is 0700`);
      for (const name of readdirSync(path)) visit(join(path, name), rel ? `${rel}/${name}` : name);
    } else {
      files.push(rel);
      t.equal(octal(st.mode & 0o777), "0600", `${when}: ${rel} is 0600`);
    }
  };
  visit(dir, "");
  return files;
}




// ---------------------------------------------------------------- files at rest

t.test("device add with a fresh data dir under umask 022: the data dir is 0700, the registry 0600", async (t) => {
  const env = setup(t);
  okJson(t, await env.run(["device", "add", "d1", "--type", "thermostat"]), "device add");
  t.equal(octal(mode(env.dataDir)), "0700", "the data dir");
  t.equal(octal(mode(join(env.dataDir, "registry.sqlite"))), "0600", "registry.sqlite");
  for (const side of ["-wal", "-shm"]) {
    const file = join(env.dataDir, `registry.sqlite${side}`);
    try {
      t.equal(octal(mode(file)), "0600", `registry.sqlite${side}`);
    } catch {
      t.pass(`registry.sqlite${side} is gone (removed at the last close)`);
    }
  }
  checkTree(t, env.dataDir, "after device add");
});

t.test("a broker run: every file it writes in the data dir is 0600, every directory 0700", async (t) => {
  const env = setup(t);
  okJson(t, await env.run(["account", "add", "op1", "--role", "operator"]), "account add");
  const broker = spawnCli022(env.args("start"));
  t.teardown(() => {
    if (broker.child.exitCode === null) broker.child.kill("SIGKILL");
  });
  await waitFor(() => {
    if (broker.child.exitCode !== null) throw new Error(`the broker exited: ${broker.stdout}`);
    return broker.stdout.includes('"msg":"listening"');
  }, 30_000, "listening");
  // While it runs, SQLite's -wal and -shm files are there too.
  const running = checkTree(t, env.dataDir, "while running");
  for (const f of ["registry.sqlite", "registry.sqlite-wal", "registry.sqlite-shm", "spool.sqlite", "telemetry.sqlite", "tls/key.pem", "tls/cert.pem"])
    t.ok(running.includes(f), `${f} is there while the broker runs`);
  broker.child.kill("SIGTERM");
  const r = await broker.exited;
  t.equal(r.code, 0, "SIGTERM: exit 0");
  checkTree(t, env.dataDir, "after SIGTERM");
});

t.test("an existing registry and data dir open to others are narrowed to 0600 / 0700, silently", async (t) => {
  const env = setup(t);
  okJson(t, await env.run(["device", "add", "d1", "--type", "thermostat"]), "device add");
  const registry = join(env.dataDir, "registry.sqlite");
  // What an earlier version left under umask 022.
  chmodSync(env.dataDir, 0o755);
  chmodSync(registry, 0o644);
  const r = await env.run(["device", "list", "--json"]);
  t.equal(r.code, 0, "device list: exit 0");
  t.equal(r.stderr, "", "nothing said about it");
  t.equal(octal(mode(registry)), "0600", "registry.sqlite narrowed to 0600");
  t.equal(octal(mode(env.dataDir)), "0700", "the data dir narrowed to 0700");
  t.same(JSON.parse(r.stdout).map((d: { id: string }) => d.id), ["d1"], "and the registry still reads");
});

// ---------------------------------------------------------------- passwords on the command line

t.test("--password-stdin: the password is not in the command line while the CLI waits for it, and it works", async (t) => {
  const env = setup(t);
  const password = "Stdin-Pass-4471 with spaces";
  const p = spawnCli022(env.args("device", "add", "d1", "--type", "thermostat", "--password-stdin"), { stdin: "pipe" });
  const pid = p.child.pid!;
  // Nothing has been written to its standard input: it cannot finish before that.
  await new Promise((r) => setTimeout(r, 1500));
  t.equal(p.child.exitCode, null, "waiting on standard input");
  const ps = execFileSync("ps", ["-o", "args=", "-p", String(pid)], { encoding: "utf8" });
  const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
  for (const [what, text] of [["ps", ps], ["/proc/<pid>/cmdline", cmdline]] as const) {
    t.match(text, /--password-stdin/, `${what} shows the command`);
    t.notMatch(text, /Stdin-Pass/, `${what} shows no password`);
  }
  p.child.stdin!.end(`${password}\n`);
  const r = await p.exited;
  const out = okJson(t, r, "device add --password-stdin");
  t.strictSame(out, { id: "d1", jid: "d1@localhost", type: "thermostat" }, "no password key");
  t.ok(await env.login("d1", password), "the password from standard input logs in (without its line break)");
  t.notOk(await env.login("d1", `${password}\n`), "the line break was not part of it");
});

t.test("a given password is never echoed, however given; a generated one is printed once", async (t) => {
  const env = setup(t);
  const ways: Array<{ name: string; password: string; run: (args: string[]) => Promise<Run> }> = [
    { name: "--password", password: "Flag-Pass-9001", run: (args) => env.run([...args, "--password", "Flag-Pass-9001"]) },
    { name: "--password-stdin", password: "Stdin-Pass-9002", run: (args) => cliWithInput(env.args(...args, "--password-stdin"), "Stdin-Pass-9002\r\n") },
    { name: "SWITCHBOARD_PASSWORD", password: "Env-Pass-9003", run: (args) => env.run(args, { SWITCHBOARD_PASSWORD: "Env-Pass-9003" }) },
  ];
  let n = 0;
  for (const way of ways) {
    n++;
    const device = okJson(t, await way.run(["device", "add", `dev-${n}`, "--type", "thermostat"]), `device add with ${way.name}`);
    t.strictSame(device, { id: `dev-${n}`, jid: `dev-${n}@localhost`, type: "thermostat" }, `device add with ${way.name}: {id, jid, type} only`);
    const account = okJson(t, await way.run(["account", "add", `svc-${n}`, "--role", "service"]), `account add with ${way.name}`);
    t.strictSame(account, { name: `svc-${n}`, jid: `svc-${n}@localhost`, role: "service" }, `account add with ${way.name}: {name, jid, role} only`);
    t.ok(await env.login(`dev-${n}`, way.password), `the device logs in with the password given by ${way.name}`);
    t.ok(await env.login(`svc-${n}`, way.password), `the service logs in with the password given by ${way.name}`);
  }

  const generated = await env.run(["device", "add", "gen-1", "--type", "door-sensor"]);
  const out = okJson(t, generated, "device add, password generated");
  const password = out.password as string;
  t.type(password, "string", "the generated password is printed");
  t.equal(generated.stdout.split(password).length - 1, 1, "exactly once");
  t.ok(await env.login("gen-1", password), "and it logs in");
  const person = okJson(t, await env.run(["account", "add", "alice", "--role", "operator"]), "account add, password generated");
  t.ok(await env.login("alice", person.password as string), "the operator's generated password is printed and logs in");

  const csv = join(env.dir, "fleet.csv");
  writeFileSync(csv, "id,type,password\nimp-1,thermostat,Import-Pass-9004\n");
  const imported = await env.run(["device", "import", csv]);
  t.strictSame(Object.keys(okJson(t, imported, "device import")).sort(), ["imported", "kind", "ms"], "device import prints no password");
  t.notMatch(imported.stdout + imported.stderr, /Import-Pass/, "device import: not in its output");
  t.ok(await env.login("imp-1", "Import-Pass-9004"), "the imported password logs in");
});

t.test("--password-stdin with an empty password exits 1 with one clear line", async (t) => {
  const env = setup(t);
  for (const [what, input] of [["end of input at once", ""], ["an empty line", "\n"]] as const) {
    badInput(t, await cliWithInput(env.args("device", "add", "d1", "--type", "thermostat", "--password-stdin"), input), `device add, ${what}`, /^error: /, /--password-stdin/, /empty/);
    badInput(t, await cliWithInput(env.args("account", "add", "svc", "--role", "service", "--password-stdin"), input), `account add, ${what}`, /empty/);
  }
  badInput(t, await env.run(["device", "add", "d1", "--type", "thermostat"], { SWITCHBOARD_PASSWORD: "" }), "an empty SWITCHBOARD_PASSWORD", /SWITCHBOARD_PASSWORD/, /empty/);
  t.same(env.names(), [], "nothing was added");
});

t.test("giving the password two ways is a usage error", async (t) => {
  const env = setup(t);
  badInput(
    t,
    await cliWithInput(env.args("device", "add", "d1", "--type", "thermostat", "--password", "Two-Ways-1", "--password-stdin"), "Two-Ways-2\n"),
    "--password and --password-stdin",
    /^error: /,
    /--password(?!-stdin)/,
    /--password-stdin/,
  );
  badInput(t, await env.run(["account", "add", "svc", "--role", "service", "--password", "Two-Ways-1"], { SWITCHBOARD_PASSWORD: "Two-Ways-3" }), "--password and SWITCHBOARD_PASSWORD", /--password/, /SWITCHBOARD_PASSWORD/);
  badInput(
    t,
    await cliWithInput(env.args("device", "add", "d1", "--type", "thermostat", "--password-stdin"), "Two-Ways-2\n", { SWITCHBOARD_PASSWORD: "Two-Ways-3" }),
    "--password-stdin and SWITCHBOARD_PASSWORD",
    /--password-stdin/,
    /SWITCHBOARD_PASSWORD/,
  );
  badInput(t, await cliWithInput(env.args("device", "list", "--password-stdin"), "x\n"), "a command without a password", /does not take --password-stdin/);
  t.same(env.names(), [], "nothing was added");
});
