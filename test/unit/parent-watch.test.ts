// watchParent alone: a process run through `sh -c` (as npx runs a bin) learns when
// that shell is gone, and not before.
import t from "tap";
import { spawn } from "node:child_process";
import { childEnv, ROOT } from "../helpers/cli.js";
import { waitFor } from "../helpers/wait.js";

t.setTimeout(60_000);

t.test("fires once the parent has exited, with the parent's pid", async (t) => {
  const script = [
    `import { watchParent } from ${JSON.stringify(`${ROOT}src/parent-watch.ts`)};`,
    "process.stdout.write(`watching ${process.ppid}\\n`);",
    "watchParent((pid) => { process.stdout.write(`gone ${pid}\\n`); process.exit(0); }, 50);",
    // Kept alive by this timer only: watchParent's own timer does not hold the process.
    "setTimeout(() => process.exit(3), 20_000);",
  ].join("\n");
  // `; true` keeps the shell in between (it cannot exec the last command).
  const shell = spawn("/bin/sh", ["-c", `"$0" --import tsx --input-type=module -e "$1"; true`, process.execPath, script], { cwd: ROOT, env: childEnv(), stdio: ["ignore", "pipe", "inherit"], detached: true });
  t.teardown(() => {
    try {
      process.kill(-shell.pid!, "SIGKILL");
    } catch {
      // already gone
    }
  });
  let out = "";
  shell.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  await waitFor(() => out.includes("watching") || undefined, 30_000, "the child to start");
  t.equal(out, `watching ${shell.pid}\n`, "its parent is the shell");
  await new Promise((r) => setTimeout(r, 300));
  t.notMatch(out, /gone/, "nothing while the parent lives");
  const killed = Date.now();
  shell.kill("SIGKILL");
  await waitFor(() => out.includes("gone") || undefined, 5000, "the child to notice");
  t.equal(out, `watching ${shell.pid}\ngone ${shell.pid}\n`);
  t.ok(Date.now() - killed < 2000, "within a few intervals");
});
