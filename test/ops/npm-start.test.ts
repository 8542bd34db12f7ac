// `npm start` and `npx switchboard start` under a process manager
// (docs/deployment.md, Stopping): SIGTERM sent to the npm or npx process alone, SIGINT sent to
// npm alone, or a terminal's Ctrl-C to the whole process group stops the broker
// gracefully: the operator sees the device go unavailable, every acknowledged sample
// is in the store, and no broker is left running. (A SIGINT sent to npx alone is held
// by the shell npx runs the command in and reaches no one: docs/deployment.md.)
//
// Runs the built CLI (bin/switchboard.js runs dist/): run `npm run build` first
// (.ci/test does).
import t from "tap";
import mqtt from "mqtt";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { childEnv, lines, ROOT, type TT } from "../helpers/cli.js";
import { RawClient } from "../helpers/raw.js";
import { waitFor } from "../helpers/wait.js";

t.setTimeout(300_000);

if (!existsSync(join(ROOT, "dist/src/cli.js"))) throw new Error("test/ops/npm-start.test.ts runs the built CLI: run `npm run build` first");

const SAMPLES = 50;

function setup(t: TT) {
  const dir = mkdtempSync(join(tmpdir(), "sb-npm-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, "config.yaml");
  writeFileSync(
    config,
    [
      `dataDir: ${JSON.stringify(join(dir, "data"))}`,
      "xmpp: { host: 127.0.0.1, port: 0, requireTls: false }",
      "mqtt: { host: 127.0.0.1, port: 0, tlsPort: null }",
      "http: { host: 127.0.0.1, port: 0 }",
      "tsdb: { kind: embedded, batchSize: 10, flushMs: 50 }",
    ].join("\n") + "\n",
  );
  const cli = (...args: string[]) => execFileSync(process.execPath, ["--import", "tsx", "src/cli.ts", ...args, "--config", config], { cwd: ROOT, env: childEnv(), encoding: "utf8" });
  cli("device", "add", "d1", "--type", "thermostat", "--password", "pw");
  cli("account", "add", "op1", "--role", "operator", "--password", "pw");
  return { dir, config, cli };
}

/** A project that depends on switchboard, as `npm install switchboard` leaves it: npx finds the bin in node_modules/.bin. */
function consumerProject(dir: string): string {
  const project = join(dir, "project");
  mkdirSync(join(project, "node_modules/.bin"), { recursive: true });
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "uses-switchboard", private: true, dependencies: { switchboard: "*" } }));
  symlinkSync(ROOT, join(project, "node_modules/switchboard"));
  symlinkSync("../switchboard/bin/switchboard.js", join(project, "node_modules/.bin/switchboard"));
  return project;
}

/** Processes whose command line names `config` (zombies show none). */
function processesWith(config: string): string[] {
  return execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" })
    .split("\n")
    .filter((l) => l.includes(config));
}

interface Launched {
  child: ChildProcess;
  out(): string;
  /** npm's exit, once npm and the broker (which holds the same stdout) are both gone. */
  closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function launch(t: TT, how: "npm" | "npx", config: string, dir: string): Launched {
  const [command, args, cwd] =
    how === "npm"
      ? ["npm", ["start", "--", "--config", config], ROOT]
      : // --no: never install; the bin must be the project's own.
        ["npx", ["--no", "switchboard", "start", "--config", config], consumerProject(dir)];
  // detached: its own process group, as under a process manager (and to clean up by group).
  const child = spawn(command, args, { cwd, env: childEnv(), stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d));
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("close", (code, signal) => resolve({ code, signal })));
  t.teardown(() => {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      // the group is gone: nothing left to clean up
    }
  });
  return { child, out: () => out, closed };
}

const logLines = (text: string) =>
  lines(text).flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, any>];
    } catch {
      return [];
    }
  });

async function stopsGracefully(t: TT, how: "npm" | "npx", signal: NodeJS.Signals, target: "process" | "group") {
  const { dir, config, cli } = setup(t);
  const run = launch(t, how, config, dir);
  const listening = await waitFor(() => logLines(run.out()).find((l) => l.msg === "listening"), 60_000, `"listening" from ${how}`);
  const brokerPid = listening.pid as number;
  t.not(brokerPid, run.child.pid, `the broker is not the ${how} process itself`);

  const op = await RawClient.connect(listening.xmpp);
  t.teardown(() => op.close());
  await op.login("op1", "pw", { tls: false });
  op.send("<presence/>");
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${listening.mqtt}`, { clientId: "d1", username: "d1", password: "pw", reconnectPeriod: 0 });
  t.teardown(() => dev.end(true));
  await op.expect(/from="d1@localhost\/mqtt"/);
  for (let i = 0; i < SAMPLES; i++) await dev.publishAsync("devices/d1/telemetry", JSON.stringify({ temperature: 20 + (i % 5), humidity: 50 }), { qos: 1 });

  process.kill(target === "group" ? -run.child.pid! : run.child.pid!, signal);
  // Left running, the broker would keep the pipe open: the teardown kills the group.
  let timer: NodeJS.Timeout | undefined;
  const exit = await Promise.race([run.closed, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), 30_000)))]);
  clearTimeout(timer);
  t.ok(exit, `${how} and the broker are gone within 30 s`);

  const log = logLines(run.out());
  t.ok(log.some((l) => l.msg === "shutting down" && l.pid === brokerPid), "the broker shut down");
  t.ok(log.some((l) => l.msg === "stopped" && l.pid === brokerPid), "and stopped cleanly (its exit 0 follows)");
  t.same(processesWith(config), [], "no process with that config is left");
  if (how === "npm") t.same(exit, { code: 0, signal: null }, "npm waited for the broker and exits with its code, 0");
  await op.expect(/<presence[^>]*type="unavailable"[^>]*from="d1@localhost\/mqtt"|<presence[^>]*from="d1@localhost\/mqtt"[^>]*type="unavailable"/);
  t.pass("the operator saw the device go unavailable");
  const stored = JSON.parse(cli("telemetry", "d1", "--json")) as unknown[];
  t.equal(stored.length, SAMPLES, `all ${SAMPLES} acknowledged samples are in the store`);
}

t.test("npm start, SIGTERM to npm only", (t) => stopsGracefully(t, "npm", "SIGTERM", "process"));
t.test("npm start, SIGINT to npm only", (t) => stopsGracefully(t, "npm", "SIGINT", "process"));
t.test("npm start, Ctrl-C (SIGINT to the whole process group)", (t) => stopsGracefully(t, "npm", "SIGINT", "group"));
t.test("npx switchboard start, SIGTERM to npx only", (t) => stopsGracefully(t, "npx", "SIGTERM", "process"));
t.test("npx switchboard start, Ctrl-C (SIGINT to the whole process group)", (t) => stopsGracefully(t, "npx", "SIGINT", "group"));
