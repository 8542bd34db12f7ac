// A spool holding given samples, for the store tests.
import { openSpool } from "../../src/telemetry/spool.js";
import type { Sample, SpooledSample } from "../../src/telemetry/sample.js";

/** Spools `samples` in `dir`; returns them as the drainer would read them back. */
export async function spooled(dir: string, samples: Sample[]): Promise<{ batch: SpooledSample[]; close: () => Promise<void> }> {
  const spool = openSpool({ dataDir: dir, maxBytes: 1 << 30 });
  for (const s of samples) await spool.append(s);
  return { batch: spool.peek(samples.length), close: () => spool.close() };
}
