// Broker nodes as separate OS processes, each started as a user starts it: `switchboard
// start --config FILE` from the checkout (test/helpers/cli.ts spawnCli: node itself
// through tsx, never npm or npx, which leave the broker behind when killed), so a test
// can kill one with SIGKILL, freeze it with SIGSTOP, stop it with SIGTERM and start it
// again on the same config and data. Each node has its own temp dir (config file, and
// dataDir unless the config names one) and, unless the config gives them, fixed free
// loopback ports: a restarted node comes back on the ports a load balancer in front of
// it (test/helpers/haproxy.ts) already points at.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify as toYaml } from "yaml";
import { kill as killCli, logRecords, spawnCli, waitListening, type Proc, type Run } from "./cli.js";
import { freePort } from "./ports.js";

/** The ports of the node's "listening" log line. */
export interface NodePorts {
  xmpp: number;
  mqtt: number;
  http: number;
  /** MQTT over TLS, null when `mqtt.tlsPort` is null. */
  mqttTls: number | null;
}

export interface NodeOptions {
  /** Shown in errors; also the temp dir's prefix. */
  name?: string;
  /** The config file's format; YAML by default (the broker reads both). */
  format?: "yaml" | "json";
  /** Extra environment (e.g. LOG_LEVEL=debug); the rest is a user's (cli.ts childEnv). */
  env?: Record<string, string>;
  /** How long a start may take until the "listening" line; 30 s by default. */
  startMs?: number;
}

export interface TestNode {
  readonly name: string;
  /** The config as written (with the ports and dataDir filled in), and its file. */
  readonly config: Record<string, any>;
  readonly configFile: string;
  readonly dataDir: string;
  /** The running process's id (the broker itself); changes on restart. */
  readonly pid: number;
  /** The ports of the last "listening" line. */
  readonly ports: NodePorts;
  /** Its `which` port as a HAProxy backend checked by GET /readyz on its HTTP port (test/helpers/haproxy.ts). */
  backend(which: "xmpp" | "mqtt" | "mqttTls"): { port: number; readyz: number };
  /** Every JSON log line the node wrote, across restarts, in order. */
  readonly logLines: Array<Record<string, unknown>>;
  /** Whether its process is running (or frozen). */
  readonly running: boolean;
  /** The current process's end: exit code or signal, and what it wrote. */
  readonly exited: Promise<Run>;
  /**
   * Sends `signal` (SIGKILL by default: `kill -9`) to the node's process. SIGSTOP and
   * SIGCONT resolve at once; any other signal resolves once the process has exited
   * (rejects if it has not within 15 s).
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGTERM (SIGCONT first, in case it is frozen) and waits for the exit; SIGKILL after 15 s. Its exit. */
  stop(): Promise<Run | null>;
  /** Stops it if running, then starts it again on the same config, dataDir and ports. */
  restart(): Promise<void>;
  /** The `switchboard` CLI on this node's config (`device add …`): `--config FILE` is appended. */
  cli(...args: string[]): Promise<Run>;
  /** Stops it and removes its temp dir. */
  close(): Promise<void>;
}

/** Fills in what two nodes on one machine must not share: ports and dataDir. */
async function placed(config: Record<string, any>, dir: string): Promise<Record<string, any>> {
  const out = structuredClone(config);
  out.dataDir ??= join(dir, "data");
  for (const [section, keys] of [
    ["xmpp", ["port"]],
    ["mqtt", ["port", "tlsPort"]],
    ["http", ["port"]],
  ] as const) {
    const s: Record<string, unknown> = (out[section] ??= {});
    s.host ??= "127.0.0.1";
    for (const key of keys) if (s[key] === undefined) s[key] = await freePort();
  }
  return out;
}

/**
 * Writes `config` (src/config.ts) to a file in a temp dir and starts `switchboard start
 * --config FILE` as its own process; resolves once the node has logged "listening".
 * The caller closes it (`t.teardown(() => node.close())`).
 */
export async function startNode(config: Record<string, unknown> = {}, opts: NodeOptions = {}): Promise<TestNode> {
  const name = opts.name ?? "node";
  const dir = mkdtempSync(join(tmpdir(), `sb-${name.replace(/[^A-Za-z0-9_-]/g, "_")}-`));
  const full = await placed(config, dir);
  const format = opts.format ?? "yaml";
  const configFile = join(dir, `switchboard.${format}`);
  writeFileSync(configFile, format === "json" ? JSON.stringify(full, null, 2) : toYaml(full));
  const startMs = opts.startMs ?? 30_000;

  let proc: Proc | null = null;
  let ports: NodePorts | null = null;
  /** Log lines of the runs before this one. */
  const earlier: Array<Record<string, unknown>> = [];
  const isRunning = (p: Proc | null): boolean => p !== null && p.child.exitCode === null && p.child.signalCode === null;
  const describe = (p: Proc) => `\n--- ${name} stdout ---\n${p.stdout.slice(-4000)}\n--- ${name} stderr ---\n${p.stderr.slice(-4000)}`;

  async function launch(): Promise<void> {
    if (proc) earlier.push(...logRecords(proc.stdout));
    const p = spawnCli(["start", "--config", configFile], { env: opts.env });
    proc = p;
    const listening = await waitListening(p, startMs);
    if (!listening) {
      const exit = p.child.exitCode ?? p.child.signalCode;
      killCli(p);
      await p.exited;
      throw new Error(`${name}: ${exit === null ? `no "listening" line within ${startMs} ms` : `exited (${exit}) before its "listening" line`}${describe(p)}`);
    }
    const line = listening[listening.length - 1]!;
    const port = (key: string) => (typeof line[key] === "number" ? (line[key] as number) : null);
    const [xmpp, mqtt, http] = [port("xmpp"), port("mqtt"), port("http")];
    if (xmpp === null || mqtt === null || http === null) {
      killCli(p);
      throw new Error(`${name}: the "listening" line lacks a port: ${JSON.stringify(line)}`);
    }
    ports = { xmpp, mqtt, http, mqttTls: port("mqttTls") };
  }

  async function stop(): Promise<Run | null> {
    const p = proc;
    if (!p) return null;
    if (!isRunning(p)) return p.exited;
    p.child.kill("SIGCONT");
    p.child.kill("SIGTERM");
    const timer = setTimeout(() => killCli(p), 15_000);
    const run = await p.exited;
    clearTimeout(timer);
    return run;
  }

  await launch().catch((err: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });

  const current = () => proc!;
  return {
    name,
    config: full,
    configFile,
    dataDir: full.dataDir as string,
    get pid() {
      return current().child.pid!;
    },
    get ports() {
      return ports!;
    },
    backend(which) {
      const port = ports![which];
      if (port === null) throw new Error(`${name}: no ${which} port (it is null in the config)`);
      return { port, readyz: ports!.http };
    },
    get logLines() {
      return [...earlier, ...logRecords(current().stdout)];
    },
    get running() {
      return isRunning(proc);
    },
    get exited() {
      return current().exited;
    },
    async kill(signal: NodeJS.Signals = "SIGKILL") {
      const p = current();
      if (!isRunning(p)) return;
      // By pid: the broker is this very process (spawnCli spawns node, not a shell).
      process.kill(p.child.pid!, signal);
      if (signal === "SIGSTOP" || signal === "SIGCONT") return;
      let timer: NodeJS.Timeout | undefined;
      const exited = await Promise.race([p.exited.then(() => true), new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), 15_000)))]);
      clearTimeout(timer);
      if (!exited) throw new Error(`${name}: still running 15 s after ${signal}${describe(p)}`);
    },
    stop,
    async restart() {
      await stop();
      await launch();
    },
    cli: (...args: string[]) => spawnCli([...args, "--config", configFile]).exited,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Closes every node given, together (for one teardown). */
export async function closeNodes(nodes: Array<TestNode | undefined>): Promise<void> {
  await Promise.all(nodes.map((n) => n?.close()));
}
