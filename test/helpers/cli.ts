// The `switchboard` command as a user runs it: a real subprocess from the checkout
// (through tsx, no build needed), with a user's environment, and the checks every
// CLI test makes of its output.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Test } from "tap";

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
