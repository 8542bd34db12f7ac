// A real InfluxDB 1.x (Debian's influxd) for tests: its own temp dir and free ports,
// stoppable and restartable on the same data for outage tests.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface TestInflux {
  url: string;
  port: number;
  /** Runs an InfluxQL query and returns the parsed JSON. */
  query(q: string, db?: string): Promise<any>;
  count(measurement: string, db: string): Promise<number>;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

const INFLUXD = "/usr/bin/influxd";

export async function startInflux(): Promise<TestInflux> {
  if (!existsSync(INFLUXD)) throw new Error("influxd not found: install Debian's influxdb package (npm test does)");
  const dir = mkdtempSync(join(tmpdir(), "sb-influx-"));
  const port = await freePort();
  const rpc = await freePort();
  const config = join(dir, "influxdb.conf");
  writeFileSync(
    config,
    `reporting-disabled = true
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
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
`,
  );
  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess | null = null;

  async function start(): Promise<void> {
    child = spawn(INFLUXD, ["-config", config], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr = (stderr + d).slice(-4000)));
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        const res = await fetch(`${url}/ping`);
        if (res.status === 204) return;
      } catch {}
      if (child.exitCode !== null) throw new Error(`influxd exited: ${stderr}`);
      if (Date.now() > deadline) throw new Error(`influxd did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async function stop(): Promise<void> {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once("exit", () => resolve());
      c.kill("SIGTERM");
      setTimeout(() => c.kill("SIGKILL"), 5000).unref();
    });
  }

  async function query(q: string, db?: string): Promise<any> {
    const params = new URLSearchParams({ q, epoch: "ns" });
    if (db) params.set("db", db);
    const res = await fetch(`${url}/query?${params}`);
    return res.json();
  }

  await start();
  return {
    url,
    port,
    query,
    async count(measurement, db) {
      const r = await query(`SELECT count(*) FROM "${measurement}"`, db);
      const values = r.results?.[0]?.series?.[0]?.values?.[0] as number[] | undefined;
      return values ? Math.max(...values.slice(1)) : 0;
    },
    stop,
    start,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
