// The `switchboard` command as a user runs it: a real subprocess from the checkout
// (through tsx, no build needed), with a user's environment; the checks every CLI
// test makes of its output; a test's own config and data dir; a started broker's
// "listening" log line.
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Test } from "tap";
import { openSqliteRegistry } from "../../src/registry/sqlite.js";
import { tempDir } from "./temp-dir.js";
import { sleep } from "./wait.js";

/** The test object tap passes to a subtest callback. */
export type TT = Test;

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface Proc {
  child: ChildProcess;
  readonly stdout: string;
  readonly stderr: string;
  exited: Promise<Run>;
}

/** A user's shell: no tap loader or settings, no password in the environment unless `extra` puts one there. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(NODE_OPTIONS|TAP|_TAPJS_|LOG_LEVEL$|SWITCHBOARD_PASSWORD$)/.test(k)) env[k] = v;
  return { ...env, ...extra };
}

/**
 * Starts the CLI. With `umask`, under that umask through `sh -c 'umask … && exec …'`:
 * exec keeps the pid, so `ps` of the child is the CLI itself.
 */
export function spawnCli(args: string[], opts: { env?: Record<string, string>; stdin?: "pipe" | "ignore"; umask?: string } = {}): Proc {
  const started = Date.now();
  const command = [process.execPath, "--import", "tsx", "src/cli.ts", ...args];
  const [file, ...argv] = opts.umask ? ["/bin/sh", "-c", `umask ${opts.umask} && exec "$0" "$@"`, ...command] : command;
  const child = spawn(file!, argv, { cwd: ROOT, env: childEnv(opts.env), stdio: [opts.stdin ?? "ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const exited = new Promise<Run>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - started }));
  });
  return {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    exited,
  };
}

export const lines = (text: string) => text.split("\n").filter((l) => l.trim() !== "");

/** Exit 0, exactly one JSON line on stdout, nothing on stderr; the parsed line. */
export function okJson(t: TT, r: Run, what: string): any {
  t.equal(r.code, 0, `${what}: exit 0 (stderr: ${r.stderr.trim()})`);
  t.equal(r.stderr, "", `${what}: nothing on stderr`);
  const out = lines(r.stdout);
  t.equal(out.length, 1, `${what}: exactly one line on stdout`);
  try {
    return JSON.parse(out[0] ?? "");
  } catch {
    t.fail(`${what}: stdout is not JSON: ${r.stdout}`);
    return undefined;
  }
}

/** Exit 1, nothing on stdout, exactly one line on stderr matching every pattern, no stack trace. */
export function badInput(t: TT, r: Run, what: string, ...patterns: RegExp[]): void {
  t.equal(r.code, 1, `${what}: exit code 1`);
  t.equal(r.stdout.trim(), "", `${what}: nothing on stdout`);
  const err = lines(r.stderr);
  t.equal(err.length, 1, `${what}: exactly one line on stderr, got: ${JSON.stringify(r.stderr)}`);
  for (const p of patterns) t.match(err[0] ?? "", p, `${what}: stderr names the problem (${p})`);
  t.notMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`);
}

/** Kills the CLI unless it has exited. */
export function kill(p: Proc): void {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
}

/** The JSON log records in `text`, one a line; other lines are left out. */
export function logRecords(text: string): Array<Record<string, unknown>> {
  return lines(text).flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

/** The broker's "listening" log records; undefined if it exits or `timeoutMs` pass first. */
export async function waitListening(p: Proc, timeoutMs = 30_000): Promise<Array<Record<string, unknown>> | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = logRecords(p.stdout).filter((r) => r.msg === "listening");
    if (found.length) return found;
    if (p.child.exitCode !== null || p.child.signalCode !== null || Date.now() > deadline) return undefined;
    await sleep(50);
  }
}

/** A test's own config file and data dir, removed when the test ends. */
export interface CliEnv {
  dir: string;
  dataDir: string;
  configFile: string;
  /** Runs the CLI with `--config` pointing at this test's config. */
  run(...args: string[]): Promise<Run>;
  /** Reads the registry the CLI wrote, in process. */
  registry<T>(fn: (r: ReturnType<typeof openSqliteRegistry>) => T | Promise<T>): Promise<T>;
  /** Writes `text` to `name` in the test's directory; its path. */
  file(name: string, text: string): string;
  /** The ids of the devices in the registry, sorted. */
  deviceIds(): Promise<string[]>;
  /** The names of all accounts in the registry, sorted. */
  allNames(): Promise<string[]>;
}

export function cliEnv(t: TT, extraConfig = ""): CliEnv {
  const dir = tempDir(t, "sb-cli-");
  const dataDir = join(dir, "data");
  const configFile = join(dir, "switchboard.yaml");
  writeFileSync(configFile, `dataDir: ${JSON.stringify(dataDir)}\n${extraConfig}`);
  const registry: CliEnv["registry"] = async (fn) => {
    const r = openSqliteRegistry({ dataDir, pollMs: 60_000 });
    try {
      return await fn(r);
    } finally {
      await r.close();
    }
  };
  return {
    dir,
    dataDir,
    configFile,
    run: (...args: string[]) => spawnCli([...args, "--config", configFile]).exited,
    registry,
    file(name, text) {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
    deviceIds: () => registry((r) => r.list("device").map((a) => a.name).sort()),
    allNames: () => registry((r) => r.list().map((a) => a.name).sort()),
  };
}
