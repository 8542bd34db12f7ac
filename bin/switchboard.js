#!/usr/bin/env node
// Runs the compiled CLI (`npm install` builds it through the `prepare` script).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const cli = new URL("../dist/src/cli.js", import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write("error: switchboard is not built; run `npm run build` (npm install does it)\n");
  process.exit(1);
}
await import(cli.href);
