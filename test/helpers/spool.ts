// A spool in a temporary directory holding given samples, for the store tests.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSpool } from "../../src/telemetry/spool.js";
import type { Sample, SpooledSample } from "../../src/telemetry/sample.js";

/** A temporary directory, removed when the test ends. */
export function tempDir(t: { teardown(fn: () => void): void }, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Spools `samples` in `dir`; returns them as the drainer would read them back. */
export async function spooled(dir: string, samples: Sample[]): Promise<{ batch: SpooledSample[]; close: () => Promise<void> }> {
  const spool = openSpool({ dataDir: dir, maxBytes: 1 << 30 });
  for (const s of samples) await spool.append(s);
  return { batch: spool.peek(samples.length), close: () => spool.close() };
}
