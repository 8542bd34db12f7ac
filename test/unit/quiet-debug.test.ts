// src/quiet-debug.ts: mqtt-packet's loggers are no-ops unless DEBUG enables them at
// start-up, and then they log as before. Each case in a process of its own (the
// loggers are made when mqtt-packet loads).
import t from "tap";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const quiet = fileURLToPath(new URL("../../src/quiet-debug.ts", import.meta.url));
// Loads mqtt-packet as aedes does, after quiet-debug; reports the logger it gets and
// parses one PINGREQ.
const script = `
  await import(${JSON.stringify(quiet)});
  const { createRequire } = await import("node:module");
  const require = createRequire(${JSON.stringify(import.meta.url)});
  const path = createRequire(require.resolve("aedes")).resolve("mqtt-packet");
  const logger = createRequire(path)("debug")("mqtt-packet:parser");
  const parser = require(path).parser();
  let parsed = 0;
  parser.on("packet", () => parsed++);
  parser.parse(Buffer.from([0xc0, 0x00]));
  console.log(JSON.stringify({ parsed, real: typeof logger.namespace === "string" }));`;

function run(debug?: string): { parsed: number; real: boolean; stderr: string } {
  const env = { ...process.env };
  delete env.DEBUG;
  if (debug) env.DEBUG = debug;
  const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { env, encoding: "utf8" });
  return { ...JSON.parse(r.stdout.trim()), stderr: r.stderr };
}

t.test("without DEBUG: mqtt-packet gets a logger that does nothing, and parses as before", async (t) => {
  t.match(run(), { parsed: 1, real: false, stderr: "" });
});

t.test("DEBUG=mqtt-packet:parser: the real logger, which logs", async (t) => {
  const r = run("mqtt-packet:parser");
  t.match(r, { parsed: 1, real: true });
  t.match(r.stderr, /mqtt-packet:parser/);
});
