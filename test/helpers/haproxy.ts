// A real HAProxy (Debian's /usr/sbin/haproxy) in front of broker nodes, as an operator
// runs one (docs/cluster.md: "N identical nodes behind an ordinary TCP load balancer"):
// TCP mode, one loopback frontend per entry on a free port, each with its own backend of
// the given ports on 127.0.0.1, health-checked twice a second so that a node killed with
// SIGKILL leaves the rotation within about a second; with a backend's `readyz` port the
// check is the node's own GET /readyz, which also takes out a node that is frozen
// (SIGSTOP) or not ready. Its own temp dir holds the config and an admin socket, read by
// `servers()` for each backend server's state and session counts. Never the packaged
// haproxy service.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { daemon } from "./daemon.js";
import { canConnect, freePort } from "./ports.js";

/**
 * A server of a backend: a port on 127.0.0.1 (a node's xmpp, mqtt, … port), checked by
 * a TCP connect; or that port and the node's HTTP port, checked by GET /readyz there
 * (200 is up). The TCP check sees a killed node but not a frozen one: the kernel still
 * accepts connections for a stopped process.
 */
export type HaproxyBackend = number | { port: number; readyz: number };

export interface HaproxyFrontend {
  /** The frontend's name, and the key of its port in `ports`: [A-Za-z0-9_-]. */
  name: string;
  /** One server each; all of one frontend checked the same way (all numbers, or all with `readyz`). */
  backends: HaproxyBackend[];
  /** Each connection to a server opens with a PROXY protocol v2 header naming the client (`send-proxy-v2`). */
  sendProxy?: boolean;
}

/** One backend server as HAProxy sees it now (`show stat`). */
export interface HaproxyServer {
  /** The backend port on 127.0.0.1. */
  port: number;
  /** "UP", "DOWN", "MAINT", "no check", or a transition such as "UP 1/2". */
  status: string;
  /** Sessions open through it now. */
  current: number;
  /** Sessions it has been given since HAProxy started. */
  total: number;
}

export interface TestHaproxy {
  /** Each frontend's port on 127.0.0.1, by name. */
  ports: Record<string, number>;
  /** The config HAProxy runs, and where it is. */
  configFile: string;
  config: string;
  /** The servers of one frontend's backend, in the order given. */
  servers(name: string): Promise<HaproxyServer[]>;
  /** Waits (bounded) until the server on `port` behind `name` has the status (UP or DOWN); its state then. */
  waitServer(name: string, port: number, status: "UP" | "DOWN", ms?: number): Promise<HaproxyServer>;
  stop(): Promise<void>;
  /** Starts it again on the same config and ports, after `stop()`. */
  start(): Promise<void>;
  /** Stops it and removes its temp dir. */
  close(): Promise<void>;
}

const HAPROXY = "/usr/sbin/haproxy";

export type Balance = "leastconn" | "roundrobin";

/** The server's name in the config and in `show stat`: its port. */
const serverName = (port: number) => `p${port}`;
const portOf = (b: HaproxyBackend) => (typeof b === "number" ? b : b.port);

/** HAProxy's config; every setting says why it is there. */
export function haproxyConfig(dir: string, frontends: Array<HaproxyFrontend & { port: number }>, balance: Balance = "leastconn"): string {
  const sections = frontends.map((f) => {
    const readyz = f.backends.every((b) => typeof b !== "number");
    return `frontend ${f.name}
    bind 127.0.0.1:${f.port}
    default_backend ${f.name}

backend ${f.name}
    # leastconn: XMPP and MQTT connections last hours, so the node with the fewest open
    # ones gets the next (HAProxy's advice for long sessions); roundrobin would count
    # new connections only.
    balance ${balance}
${
  readyz
    ? `    # The check asks the node itself (its HTTP port, 'check port'): GET /readyz, up on 200
    # only. A frozen node never answers within the check's 500 ms, a node that is not
    # ready answers 503: either leaves the rotation. The traffic itself stays TCP.
    option httpchk
    http-check send meth GET uri /readyz
    http-check expect status 200
`
    : `    # The check is a TCP connect to the server's own port (mode tcp's default).
`
}${f.backends.map((b) => `    server ${serverName(portOf(b))} 127.0.0.1:${portOf(b)}${typeof b === "number" ? "" : ` check port ${b.readyz}`}${f.sendProxy ? " send-proxy-v2" : ""}`).join("\n")}
`;
  });
  return `global
    # No 'daemon': HAProxy stays in the foreground (-db too), the child of the test, so
    # SIGTERM stops it and nothing is left behind.
    # Its own admin socket in the temp dir, never the packaged service's: the state
    # and session count of each server (servers()), and a way to drain one by hand.
    stats socket ${join(dir, "admin.sock")} mode 600 level admin
    # One thread: a handful of test connections, and tests run in parallel on few CPUs.
    nbthread 1
    # No 'maxconn': HAProxy derives it from the open-files limit it runs under (about
    # half of it, two sockets a connection); a fixed one above what that limit allows
    # makes it refuse to start ("Cannot raise FD limit"), even as root in a container.

defaults
    # TCP, not HTTP: HAProxy passes bytes (XMPP, MQTT, TLS or not) without reading them,
    # as an operator's load balancer in front of the nodes does.
    mode tcp
    # Nothing logged per connection; state changes (a server DOWN or UP) still go to
    # stderr as warnings, which a failed start reports.
    no log
    # A node on loopback answers a connect at once, or refuses it (RST) at once: one
    # second is a generous bound.
    timeout connect 1s
    # XMPP and MQTT connections are long-lived and may be silent for a long time (an
    # MQTT keepalive of minutes, an idle XMPP stream): HAProxy must not be the one to
    # cut them, so the idle timeouts on both sides are an hour.
    timeout client 1h
    timeout server 1h
    # A connection refused by a node that has just died but is not marked down yet is
    # tried again (retries) on another server (redispatch 1: on every retry, not only
    # the last), so the client sees a node that is up, as behind a real load balancer.
    retries 3
    option redispatch 1
    # Every server is health-checked every 500 ms (inter; a check gets those 500 ms in
    # all, as 'timeout check' is not set); one failed check marks it DOWN (fall 1), one
    # good one UP again (rise 1). A node killed with SIGKILL refuses connections at once
    # and leaves the rotation within about 0.5 s, a frozen one (with /readyz checks)
    # within about 1 s.
    # on-marked-down shutdown-sessions: when a server is marked DOWN, the sessions it
    # still holds are closed, so its clients reconnect (to a node that is up) instead of
    # waiting on a node that may be frozen or cut off.
    default-server check inter 500 fall 1 rise 1 on-marked-down shutdown-sessions

${sections.join("\n")}`;
}

/** Runs one command on HAProxy's admin socket; its answer. */
function adminCommand(socket: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(socket, () => c.end(`${command}\n`));
    let out = "";
    c.setEncoding("utf8");
    c.setTimeout(2000, () => c.destroy(new Error(`haproxy admin socket: no answer to '${command}' within 2 s`)));
    c.on("data", (d: string) => (out += d));
    c.on("end", () => resolve(out));
    c.on("error", reject);
  });
}

export async function startHaproxy(frontends: HaproxyFrontend[], opts: { balance?: Balance } = {}): Promise<TestHaproxy> {
  if (!existsSync(HAPROXY)) throw new Error("haproxy not found: install Debian's haproxy package (npm test does)");
  if (!frontends.length) throw new Error("startHaproxy: no frontend");
  for (const f of frontends) {
    if (!/^[A-Za-z0-9_-]+$/.test(f.name)) throw new Error(`startHaproxy: frontend name '${f.name}' must match [A-Za-z0-9_-]+`);
    if (!f.backends.length) throw new Error(`startHaproxy: frontend '${f.name}' has no backend`);
    if (new Set(f.backends.map((b) => typeof b)).size > 1) throw new Error(`startHaproxy: frontend '${f.name}': every backend with a readyz port, or none`);
    if (new Set(f.backends.map(portOf)).size !== f.backends.length) throw new Error(`startHaproxy: frontend '${f.name}': a backend port is given twice`);
  }
  if (new Set(frontends.map((f) => f.name)).size !== frontends.length) throw new Error("startHaproxy: a frontend name is used twice");

  const dir = mkdtempSync(join(tmpdir(), "sb-haproxy-"));
  const placed: Array<HaproxyFrontend & { port: number }> = [];
  for (const f of frontends) placed.push({ ...f, port: await freePort() });
  const ports = Object.fromEntries(placed.map((f) => [f.name, f.port]));
  const config = haproxyConfig(dir, placed, opts.balance);
  const configFile = join(dir, "haproxy.cfg");
  writeFileSync(configFile, config);
  const socket = join(dir, "admin.sock");

  // -db: foreground, no daemon; -f: this config only.
  const haproxy = daemon("haproxy", HAPROXY, ["-db", "-f", configFile], async () => (await Promise.all(placed.map((f) => canConnect(f.port)))).every(Boolean) && existsSync(socket), {
    startMs: 10_000,
    pollMs: 50,
  });
  try {
    await haproxy.start();
  } catch (err) {
    await haproxy.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  const servers = async (name: string): Promise<HaproxyServer[]> => {
    const frontend = placed.find((f) => f.name === name);
    if (!frontend) throw new Error(`haproxy: no frontend '${name}'`);
    // CSV: "# pxname,svname,qcur,qmax,scur,smax,slim,stot,…,status,…"
    const [head, ...rows] = (await adminCommand(socket, "show stat")).trim().split("\n");
    const columns = head!.replace(/^# /, "").split(",");
    const col = (row: string[], key: string) => row[columns.indexOf(key)] ?? "";
    const parsed = rows.map((r) => r.split(",")).filter((r) => col(r, "pxname") === name);
    return frontend.backends.map(portOf).map((port) => {
      const row = parsed.find((r) => col(r, "svname") === serverName(port));
      if (!row) throw new Error(`haproxy: no server for port ${port} behind '${name}'`);
      return { port, status: col(row, "status"), current: Number(col(row, "scur")), total: Number(col(row, "stot")) };
    });
  };

  return {
    ports,
    configFile,
    config,
    servers,
    async waitServer(name, port, status, ms = 5000) {
      const deadline = Date.now() + ms;
      let last: HaproxyServer | undefined;
      for (;;) {
        last = (await servers(name)).find((s) => s.port === port);
        if (last?.status === status) return last;
        if (Date.now() > deadline) throw new Error(`haproxy: server ${port} behind '${name}' not ${status} within ${ms} ms (it is ${last?.status ?? "not there"})`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    stop: () => haproxy.stop(),
    start: () => haproxy.start(),
    async close() {
      await haproxy.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
