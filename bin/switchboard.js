#!/usr/bin/env -S node --max-semi-space-size=32
// Runs the compiled CLI (`npm install` builds it through the `prepare` script).
// --max-semi-space-size=32: V8's young generation at twice its default (2 × 32 MiB).
// At tens of thousands of messages per second most objects of a message (its packet,
// its parsed sample, its promise) die within a spool commit; with the default size a
// scavenge runs before many of them have and copies them (figures in
// docs/benchmarks.md, "Figures behind settings and code choices"). V8 reads the
// size when the process starts, hence here. Costs up to 32 MiB more resident
// memory under load only: V8 grows the young generation with the allocation rate.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const cli = new URL("../dist/src/cli.js", import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write("error: switchboard is not built; run `npm run build` (npm install does it)\n");
  process.exit(1);
}
await import(cli.href);
