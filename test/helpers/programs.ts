// Programs no one here wrote, run as real peers: Debian's tools and Python packages.
// A missing one is a failure, never a skip (.ci/test installs them).
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";

/** The only interpreter that sees Debian's python3-* packages. */
export const PYTHON = "/usr/bin/python3";

/** Something a test needs installed, and the Debian package that brings it. */
export type Tool =
  | { python: string; debian: string }
  | { command: string; args: string[]; debian: string; /** What its output must show. */ expect?: RegExp; env?: NodeJS.ProcessEnv };

/** The tool's version line, or what is wrong. */
function probe(tool: Tool): { version: string } | { problem: string } {
  if ("python" in tool) {
    const m = tool.python;
    const r = spawnSync(PYTHON, ["-c", `import ${m}, sys; sys.stdout.write(${m}.__version__)`], { encoding: "utf8", timeout: 10_000 });
    if (r.status === 0) return { version: `${m} ${r.stdout}` };
    return { problem: `${m} is not importable by ${PYTHON} (install the Debian package ${tool.debian}; it is only visible to ${PYTHON}): ${r.error?.message ?? r.stderr.trim()}` };
  }
  const r = spawnSync(tool.command, tool.args, { encoding: "utf8", timeout: 10_000, env: tool.env });
  const output = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  if (!r.error && (!tool.expect || tool.expect.test(output))) return { version: (output.split("\n").find((l) => /version/i.test(l)) ?? tool.command).trim() };
  return { problem: `${tool.command} is missing (install the Debian package ${tool.debian}): ${r.error?.message ?? (r.stderr.trim() || "unexpected output")}` };
}

/** Fails `t` once for each missing tool, notes the version of each one found; true when all are there. */
export function requireTools(t: { fail(message: string): void; comment(message: string): void }, tools: Tool[]): boolean {
  let ok = true;
  for (const found of tools.map(probe)) {
    if ("problem" in found) {
      t.fail(found.problem);
      ok = false;
    } else t.comment(found.version);
  }
  return ok;
}

/** A Python script under /usr/bin/python3, unbuffered, leaving no bytecode behind. */
export function spawnPython(script: string, args: string[]): ChildProcessWithoutNullStreams {
  return spawn(PYTHON, [script, ...args], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1" } });
}

/** Runs a program to its end (bounded); a program that cannot be started rejects. */
export function runProgram(cmd: string, args: string[], ms = 10_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" } });
    let stdout = "";
    let stderr = "";
    proc.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    proc.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`${cmd} ${args.join(" ")} did not finish within ${ms} ms; stdout: ${stdout} stderr: ${stderr}`));
    }, ms);
    proc.on("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${cmd}: ${err.message}`));
    });
    proc.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
