// The `switchboard` command (docs/cli.md). Every failure is one line on stderr
// and exit code 1; success output is JSON where docs/cli.md says so.
import { RedisUnavailableError } from "./cluster/bus.js";
import { clusterStatus } from "./cluster/nodes.js";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { loadConfig, ConfigError, type Config } from "./config.js";
import { openRegistry } from "./registry/open.js";
import { migrate, PostgresUnavailableError, SchemaError } from "./registry/postgres-schema.js";
import type { Registry } from "./registry/registry.js";
import { addAccount, importAccounts, parseImport, ProvisionError } from "./provision.js";
import { deviceType, deviceTypeNames, deviceTypes } from "../devices/index.js";
import { exportSchema } from "./schema-export.js";
import { openSqliteStore } from "./telemetry/sqlite-store.js";
import { createInfluxStore } from "./telemetry/influx-store.js";
import { givenPassword, PASSWORD_ENV, PasswordInputError } from "./password-input.js";
import { ListenError } from "./listen.js";

/** `--since 1h` (s, m, h, d) or an ISO 8601 time → epoch ms. */
function parseSince(text: string): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(text);
  if (m) return Date.now() - Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "s" | "m" | "h" | "d"];
  const t = Date.parse(text);
  if (Number.isNaN(t)) throw new UsageError(`--since must be a duration like 30m, 1h, 2d or an ISO 8601 time, not '${text}'`);
  return t;
}

const USAGE = `usage:
  switchboard start [--config FILE]
  switchboard check-config [--config FILE]
  switchboard device add <id> --type <type> [--password-stdin | --password P] [--config FILE]
  switchboard device list [--json] [--config FILE]
  switchboard device remove <id> [--config FILE]
  switchboard device import FILE [--accounts] [--config FILE]
  switchboard account add <name> --role service|operator [--password-stdin | --password P] [--config FILE]
  switchboard schema export [--type T]
  switchboard telemetry <id> [--since 1h] [--limit N] [--json] [--config FILE]
  switchboard migrate [--from DATADIR] --config FILE    (a cluster's PostgreSQL schema)
  switchboard cluster status --config FILE               (a cluster's live nodes)
--password-stdin reads the password's first line from standard input; ${PASSWORD_ENV}
gives it through the environment; --password P shows it to every local user (ps).
A password that was given is never printed; a generated one is printed once.`;

class UsageError extends Error {}

function args(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: "string", short: "c" },
      type: { type: "string" },
      role: { type: "string" },
      password: { type: "string" },
      "password-stdin": { type: "boolean" },
      json: { type: "boolean" },
      accounts: { type: "boolean" },
      since: { type: "string" },
      limit: { type: "string" },
      from: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}

async function withRegistry<T>(config: Config, fn: (registry: Registry) => Promise<T> | T): Promise<T> {
  const registry = await openRegistry(config, { pollMs: 60_000 });
  try {
    return await fn(registry);
  } finally {
    await registry.close();
  }
}

// What each command takes: its options and how many positional words in all.
const COMMANDS: Record<string, { options: string[]; words: number }> = {
  start: { options: ["config"], words: 1 },
  "check-config": { options: ["config"], words: 1 },
  "device add": { options: ["config", "type", "password", "password-stdin"], words: 3 },
  "account add": { options: ["config", "role", "password", "password-stdin"], words: 3 },
  "device list": { options: ["config", "json"], words: 2 },
  "device remove": { options: ["config"], words: 3 },
  "device import": { options: ["config", "accounts"], words: 3 },
  "schema export": { options: ["config", "type"], words: 2 },
  telemetry: { options: ["config", "since", "limit", "json"], words: 2 },
  migrate: { options: ["config", "from"], words: 1 },
  "cluster status": { options: ["config"], words: 2 },
};

function checkUsage(name: string, values: Record<string, unknown>, positionals: string[]): void {
  const spec = COMMANDS[name];
  if (!spec) return;
  const stray = Object.keys(values).filter((k) => values[k] !== undefined && !spec.options.includes(k));
  if (stray.length) throw new UsageError(`'${name}' does not take --${stray.join(", --")}`);
  if (positionals.length > spec.words) throw new UsageError(`'${name}' got an unexpected argument '${positionals[spec.words]}'`);
}

const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = args(argv);
  if (values.help || positionals.length === 0) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? 0 : 1;
  }
  const [command, sub, ...rest] = positionals;
  const config = loadConfig(values.config);
  const iterations = config.auth.scramIterations;
  const need = (value: string | undefined, what: string): string => {
    if (!value) throw new UsageError(`missing ${what}`);
    return value;
  };
  const password = () => givenPassword({ flag: values.password, stdin: values["password-stdin"], env: process.env[PASSWORD_ENV], input: process.stdin });
  // The password only when it was generated here: one that was given is never echoed.
  const generated = (given: string | undefined, account: { password: string }) => (given === undefined ? { password: account.password } : {});

  const single = command === "start" || command === "check-config" || command === "telemetry" || command === "migrate";
  const name = `${command} ${single ? "" : (sub ?? "")}`.trim();
  checkUsage(name, values, positionals);
  switch (name) {
    case "start": {
      const { runBroker } = await import("./main.js");
      return runBroker(config);
    }
    case "check-config":
      print({ ok: true, domain: config.domain, dataDir: resolve(config.dataDir) });
      return 0;
    case "device add": {
      const id = need(rest[0], "<id>");
      const type = need(values.type, "--type");
      const given = await password();
      const account = await withRegistry(config, (r) => addAccount(r, { name: id, role: "device", type, password: given }, iterations));
      print({ id: account.name, jid: `${account.name}@${config.domain}`, type: account.type, ...generated(given, account) });
      return 0;
    }
    case "account add": {
      const name = need(rest[0], "<name>");
      const role = need(values.role, "--role");
      if (role !== "service" && role !== "operator") throw new UsageError(`--role must be 'service' or 'operator', not '${role}'`);
      const given = await password();
      const account = await withRegistry(config, (r) => addAccount(r, { name, role, type: null, password: given }, iterations));
      print({ name: account.name, jid: `${account.name}@${config.domain}`, role: account.role, ...generated(given, account) });
      return 0;
    }
    case "device list": {
      const rows = await withRegistry(config, (r) =>
        r.list("device").map((a) => ({ id: a.name, jid: `${a.name}@${config.domain}`, type: a.type, lastSeen: r.lastSeen(a.name)?.at ?? null })),
      );
      if (values.json) print(rows.map((r) => ({ ...r, lastSeen: r.lastSeen === null ? null : new Date(r.lastSeen).toISOString() })));
      else {
        const lines = rows.map((r) => `${r.id.padEnd(24)} ${String(r.type).padEnd(14)} ${r.lastSeen ? new Date(r.lastSeen).toISOString() : "never seen"}`);
        process.stdout.write([`${"ID".padEnd(24)} ${"TYPE".padEnd(14)} LAST SEEN`, ...lines].join("\n") + "\n");
      }
      return 0;
    }
    case "device remove": {
      const id = need(rest[0], "<id>");
      const removed = await withRegistry(config, (r) => {
        const account = r.get(id);
        if (!account || account.role !== "device") throw new ProvisionError("SB_ERR_NOT_FOUND", `no device '${id}'`);
        return r.remove(id);
      });
      print({ removed: removed!.name });
      return 0;
    }
    case "device import": {
      const file = need(rest[0], "FILE");
      let text: string;
      try {
        text = readFileSync(file, "utf8");
      } catch (err) {
        throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code}`);
      }
      const rows = parseImport(text, values.accounts ? "accounts" : "devices");
      const started = Date.now();
      const count = await withRegistry(config, (r) => importAccounts(r, rows, iterations));
      print({ imported: count, kind: values.accounts ? "accounts" : "devices", ms: Date.now() - started });
      return 0;
    }
    case "schema export": {
      if (values.type && !deviceType(values.type)) throw new UsageError(`unknown device type '${values.type}' (known: ${deviceTypeNames.join(", ")})`);
      const all = Object.fromEntries(deviceTypes.map((t) => [t.name, exportSchema(t)]));
      print(values.type ? all[values.type] : all);
      return 0;
    }
    case "telemetry": {
      const id = need(sub, "<id>");
      const limit = values.limit === undefined ? 1000 : Number.parseInt(values.limit, 10);
      if (!(limit > 0)) throw new UsageError(`--limit must be a positive number`);
      const since = parseSince(values.since ?? "1h");
      const rows = await withRegistry(config, async (r) => {
        const account = r.get(id);
        const type = account?.role === "device" ? deviceType(account.type) : undefined;
        if (!type) throw new ProvisionError("SB_ERR_NOT_FOUND", `no device '${id}'`);
        const store = config.tsdb.kind === "influx" ? createInfluxStore(config.tsdb.influx) : openSqliteStore({ dataDir: resolve(config.dataDir) });
        try {
          return await store.query(id, type.measurement, since, Date.now() + 86_400_000, limit);
        } finally {
          await store.close();
        }
      });
      if (values.json) print(rows.map((s) => ({ ts: new Date(s.time).toISOString(), ...s.tags, ...s.fields })));
      // Said on stderr, so stdout stays the (empty) listing: a sample published a moment
      // ago is still in the spool, and a newcomer running the README's lines in a row
      // would otherwise see nothing at all and no reason.
      else if (rows.length === 0)
        process.stderr.write(`no samples of '${id}' since ${new Date(since).toISOString()} in the store (an accepted sample reaches it within tsdb.flushMs, ${config.tsdb.flushMs} ms)\n`);
      else process.stdout.write(rows.map((s) => `${new Date(s.time).toISOString()}  ${Object.entries({ ...s.tags, ...s.fields }).map(([k, v]) => `${k}=${v}`).join(" ")}`).join("\n") + "\n");
      return 0;
    }
    case "migrate": {
      if (!config.cluster) throw new UsageError("migrate works on a cluster's PostgreSQL: the configuration has no cluster.postgres.url (docs/cluster.md)");
      const result = await migrate(config.cluster.postgres.url, values.from === undefined ? undefined : resolve(values.from));
      print({ schema: result.to, from: result.from, ...(values.from === undefined ? {} : { copied: result.copied, skipped: result.skipped }) });
      return 0;
    }
    case "cluster status": {
      if (!config.cluster) throw new UsageError("cluster status needs a cluster: the configuration has no cluster key (docs/cluster.md)");
      const nodes = await clusterStatus(config.cluster.redis.url);
      print({ nodes: nodes.map((n) => ({ node: n.node, sessions: n.sessions, devices: n.devices, heartbeat: new Date(n.at).toISOString(), startedAt: new Date(n.startedAt).toISOString() })) });
      return 0;
    }
    default:
      throw new UsageError(`unknown command '${positionals.join(" ")}' (see switchboard --help)`);
  }
}

run(process.argv.slice(2)).then(
  (code) => {
    if (code !== -1) process.exitCode = code;
  },
  (err: unknown) => {
    // A port that cannot be bound (`mqtt.port 1883 is in use`) is a setting to change, not a bug: no stack.
    const known =
      err instanceof ConfigError ||
      err instanceof ProvisionError ||
      err instanceof UsageError ||
      err instanceof PasswordInputError ||
      err instanceof ListenError ||
      err instanceof SchemaError ||
      err instanceof PostgresUnavailableError ||
      err instanceof RedisUnavailableError ||
      (err as { code?: string } | null)?.code?.startsWith("ERR_PARSE_ARGS");
    process.stderr.write(`error: ${known ? (err as Error).message : String((err as Error).stack ?? err)}\n`);
    process.exitCode = 1;
  },
);
