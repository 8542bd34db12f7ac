// Drains the spool to the store (docs/telemetry.md, "Durability"): in order, a batch at a time
// (`tsdb.batchSize`, at least every `tsdb.flushMs`), acknowledging only what the
// store confirmed. A store that is down is retried with backoff while the spool
// keeps accepting; a batch the store calls invalid (InfluxDB 400) is split until the
// bad points are isolated, which go to the dead-letter file, so the rest still lands.
import { appendFileSync } from "node:fs";
import { FILE_MODE, privateFile } from "../private-files.js";
import type { Logger } from "../log.js";
import type { Spool } from "./spool.js";
import { StoreError, type TelemetryStore } from "./store.js";
import type { SpooledSample } from "./sample.js";

export interface DrainerState {
  /** The store failed on its last attempt and is being retried. */
  failing: boolean;
  lastError: string | null;
  written: number;
  deadLettered: number;
  writeFailures: number;
  /** Duration of the last successful write, ms. */
  lastWriteMs: number;
}

export interface Drainer {
  readonly state: DrainerState;
  /** Called on append: writes at once when a full batch is waiting. */
  kick(): void;
  /** Stops, after draining what it can within `timeoutMs`; the rest stays in the spool. */
  stop(timeoutMs: number): Promise<void>;
  /** stop() within the drainer's `shutdownFlushMs`. */
  close(): Promise<void>;
  /** Observes each successful write's latency (ms) and size. */
  onWrite(listener: (ms: number, points: number) => void): void;
}

export function startDrainer(deps: { spool: Spool; store: TelemetryStore; batchSize: number; flushMs: number; shutdownFlushMs?: number; deadLetterFile: string; log: Logger }): Drainer {
  const { spool, store, batchSize, flushMs, deadLetterFile, log } = deps;
  const state: DrainerState = { failing: false, lastError: null, written: 0, deadLettered: 0, writeFailures: 0, lastWriteMs: 0 };
  const writeListeners: Array<(ms: number, points: number) => void> = [];
  let running = true;
  let busy: Promise<void> | null = null;
  let backoffMs = 0;
  let retryTimer: NodeJS.Timeout | null = null;
  // One left open to group or others by an earlier version is narrowed at start.
  privateFile(deadLetterFile, { create: false });

  function deadLetter(sample: SpooledSample, reason: string): void {
    const { tagsJson: _tags, fieldsJson: _fields, ...plain } = sample;
    appendFileSync(deadLetterFile, `${JSON.stringify({ at: new Date().toISOString(), reason, sample: plain })}\n`, { mode: FILE_MODE });
    state.deadLettered++;
    log.warn({ device: sample.device, seq: sample.seq, reason }, "sample refused by the store; moved to the dead-letter file");
  }

  async function writeBatch(batch: SpooledSample[]): Promise<void> {
    const started = performance.now();
    try {
      await store.write(batch);
    } catch (err) {
      if (!(err instanceof StoreError) || !err.invalidPoints) throw err;
      if (batch.length === 1) {
        deadLetter(batch[0]!, err.message);
        spool.ack(batch[0]!.seq);
        return;
      }
      // Bisect: each half is written (or split again) in order, so the spool's order holds.
      const half = Math.ceil(batch.length / 2);
      await writeBatch(batch.slice(0, half));
      await writeBatch(batch.slice(half));
      return;
    }
    const ms = performance.now() - started;
    state.lastWriteMs = ms;
    state.written += batch.length;
    spool.ack(batch[batch.length - 1]!.seq);
    for (const listener of writeListeners) listener(ms, batch.length);
  }

  async function drain(): Promise<void> {
    // Committed samples only: ones still being committed cannot be read yet, and
    // waiting for them here would spin (the commit's reply is a macrotask).
    while (running && spool.committed > 0 && !retryTimer) {
      const batch = spool.peek(batchSize);
      if (batch.length === 0) return;
      try {
        await writeBatch(batch);
        if (state.failing) log.info({ store: store.kind }, "store is back; draining the spool");
        state.failing = false;
        state.lastError = null;
        backoffMs = 0;
      } catch (err) {
        state.writeFailures++;
        const message = (err as Error).message;
        if (!state.failing || state.lastError !== message) log.warn({ store: store.kind, err: message, spooled: spool.depth }, "store write failed; retrying with backoff");
        state.failing = true;
        state.lastError = message;
        backoffMs = Math.min(10_000, backoffMs ? backoffMs * 2 : 100);
        retryTimer = setTimeout(() => {
          retryTimer = null;
          run();
        }, backoffMs * (0.75 + Math.random() / 2));
        return;
      }
    }
  }

  function run(): void {
    if (busy || !running) return;
    busy = drain().finally(() => {
      busy = null;
      // Samples that arrived during the write and fill a batch go at once.
      if (running && spool.committed >= batchSize && !retryTimer) run();
    });
  }

  const timer = setInterval(run, flushMs);
  run();

  const drainer: Drainer = {
    state,
    close: () => drainer.stop(deps.shutdownFlushMs ?? 5000),
    kick() {
      if (spool.committed >= batchSize) run();
    },
    onWrite: (listener) => void writeListeners.push(listener),
    async stop(timeoutMs) {
      clearInterval(timer);
      const deadline = Date.now() + timeoutMs;
      if (retryTimer) {
        clearTimeout(retryTimer);
        retryTimer = null;
      }
      while (Date.now() < deadline) {
        if (busy) await Promise.race([busy, new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())))]);
        if (spool.depth === 0 || state.failing) break;
        if (spool.committed === 0) {
          // Only commits in flight: their replies are macrotasks, so wait a little.
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        run();
        if (!busy) break;
      }
      running = false;
      if (busy) await Promise.race([busy, new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())))]);
    },
  };
  return drainer;
}
