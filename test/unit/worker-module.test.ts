// Module-file workers (src/worker-module.ts) started the same way from source, under
// tap's loader and under `node --import tsx`, and from compiled JavaScript.
import t from "tap";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Worker } from "node:worker_threads";
import { siblingModule, startModuleWorker } from "../../src/worker-module.js";
import { childEnv, ROOT } from "../helpers/cli.js";

const ECHO = new URL("../helpers/echo-thread.ts", import.meta.url);

/** The worker's first message, or its error. */
function firstMessage(worker: Worker): Promise<unknown> {
  return new Promise((resolve, reject) => {
    worker.once("message", (m) => {
      resolve(m);
      void worker.terminate();
    });
    worker.once("error", reject);
  });
}

t.test("siblingModule: the module beside the caller, in the caller's form", async (t) => {
  t.equal(siblingModule("file:///a/src/x/caller.ts", "thread").href, "file:///a/src/x/thread.ts");
  t.equal(siblingModule("file:///a/dist/src/x/caller.js", "thread").href, "file:///a/dist/src/x/thread.js");
});

t.test("a .ts module, from tap: it runs, imports TypeScript, and gets its workerData", async (t) => {
  t.same(await firstMessage(startModuleWorker(ECHO, { workerData: { n: 1 } })), { workerData: { n: 1 }, sibling: true });
});

t.test("a .ts module, from `node --import tsx`", async (t) => {
  const script = `import { startModuleWorker } from ${JSON.stringify(new URL("../../src/worker-module.ts", import.meta.url).href)};
const w = startModuleWorker(new URL(${JSON.stringify(ECHO.href)}), { workerData: "tsx" });
w.once("message", (m) => { console.log(JSON.stringify(m)); void w.terminate(); });`;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: ROOT, env: childEnv(), stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  const code = await new Promise((resolve) => child.once("close", resolve));
  t.equal(code, 0, err);
  t.same(JSON.parse(out), { workerData: "tsx", sibling: true });
});

t.test("a .js module (as from dist/) is started as it is, without tsx", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "sb-worker-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "thread.mjs");
  writeFileSync(file, `import { parentPort, workerData } from "node:worker_threads";\nparentPort.postMessage({ workerData, url: import.meta.url });\n`);
  // execArgv [] only to skip tap's own loaders in the thread (seconds); the default is the parent's.
  t.same(await firstMessage(startModuleWorker(pathToFileURL(file), { workerData: 2, execArgv: [] })), { workerData: 2, url: pathToFileURL(file).href }, "run from its own file, not a bootstrap");
});
