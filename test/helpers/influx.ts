// A real InfluxDB 1.x (Debian's influxd) for tests: its own temp dir and free ports,
// stoppable and restartable on the same data for outage tests, pausable (SIGSTOP) for
// a server that accepts connections and never answers, optionally with
// authentication and one admin user.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { daemon } from "./daemon.js";
import { freePort } from "./ports.js";

export interface TestInflux {
  url: string;
  port: number;
  /** Runs an InfluxQL query and returns the parsed JSON. */
  query(q: string, db?: string): Promise<any>;
  count(measurement: string, db: string): Promise<number>;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Freezes the process (SIGSTOP): connections are accepted by the kernel, none answered. */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

const INFLUXD = "/usr/bin/influxd";

/** influxd's config: everything under `dir`, HTTP on `port`, RPC on `rpc`; no reporting, no _internal store, no query log. */
export function influxConfig(dir: string, port: number, rpc: number, auth = false): string {
  return `reporting-disabled = true
bind-address = "127.0.0.1:${rpc}"
[meta]
  dir = "${dir}/meta"
[data]
  dir = "${dir}/data"
  wal-dir = "${dir}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:${port}"
  log-enabled = false
  auth-enabled = ${auth}
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
`;
}

export async function startInflux(opts: { admin?: { username: string; password: string } } = {}): Promise<TestInflux> {
  if (!existsSync(INFLUXD)) throw new Error("influxd not found: install Debian's influxdb package (npm test does)");
  const dir = mkdtempSync(join(tmpdir(), "sb-influx-"));
  const port = await freePort();
  const rpc = await freePort();
  const config = join(dir, "influxdb.conf");
  writeFileSync(config, influxConfig(dir, port, rpc, opts.admin !== undefined));
  const url = `http://127.0.0.1:${port}`;
  const influxd = daemon(
    "influxd",
    INFLUXD,
    ["-config", config],
    () => fetch(`${url}/ping`).then((res) => res.status === 204, () => false),
    { startMs: 20_000, pollMs: 100 },
  );

  async function query(q: string, db?: string): Promise<any> {
    const params = new URLSearchParams({ q, epoch: "ns" });
    if (db) params.set("db", db);
    if (opts.admin) {
      params.set("u", opts.admin.username);
      params.set("p", opts.admin.password);
    }
    const res = await fetch(`${url}/query?${params}`);
    return res.json();
  }

  await influxd.start();
  // With authentication on and no user yet, InfluxDB 1.x accepts only the creation of an admin.
  if (opts.admin) {
    const q = `CREATE USER "${opts.admin.username}" WITH PASSWORD '${opts.admin.password}' WITH ALL PRIVILEGES`;
    const res = await fetch(`${url}/query`, { method: "POST", body: new URLSearchParams({ q }) });
    if (!res.ok) throw new Error(`creating the admin user: ${res.status} ${await res.text()}`);
  }
  return {
    url,
    port,
    query,
    async count(measurement, db) {
      const r = await query(`SELECT count(*) FROM "${measurement}"`, db);
      const values = r.results?.[0]?.series?.[0]?.values?.[0] as number[] | undefined;
      return values ? Math.max(...values.slice(1)) : 0;
    },
    stop: influxd.stop,
    start: influxd.start,
    pause: () => influxd.signal("SIGSTOP"),
    resume: () => influxd.signal("SIGCONT"),
    async close() {
      await influxd.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
