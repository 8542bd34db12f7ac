// Clocks and pacing the load generators and orchestrators share: waiting, the
// measured window of a phase, work shared over lanes, sends on a clock.
import { performance } from 'node:perf_hooks';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export const sleepUntil = (epochMs: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, epochMs - Date.now())));

/** Epoch ms with sub-millisecond resolution, from the monotonic clock. */
export const nowMs = () => performance.timeOrigin + performance.now();

/**
 * A phase's times (epoch ms): everyone starts at startAt, `leadMs` from now; only
 * [from, to) is counted, after `warmupMs`.
 */
export function windowTimes(warmupMs: number, measureMs: number, leadMs = 200): { startAt: number; from: number; to: number } {
  const startAt = Date.now() + leadMs;
  const from = startAt + warmupMs;
  return { startAt, from, to: from + measureMs };
}

/** Runs fn over items with at most `concurrency` in flight. */
export async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

/**
 * Open loop: calls `send(now)` `rate` times a second on a clock, from now until
 * `to` (epoch ms), whatever comes back; `now` is the Date.now() of the tick.
 */
export function onClock(rate: number, to: number, send: (now: number) => void): Promise<void> {
  const t0 = performance.now();
  let sent = 0;
  return new Promise<void>((resolve) => {
    const tick = () => {
      const now = Date.now();
      if (now >= to) return resolve();
      const due = Math.floor(((performance.now() - t0) * rate) / 1000);
      for (; sent < due; sent++) send(now);
      setTimeout(tick, 1);
    };
    tick();
  });
}

/** Reads `read()` at `from` and at `to` (epoch ms); resolves at `to` with both readings. */
export function readingsAt<T>(from: number, to: number, read: () => T): Promise<[T, T]> {
  return new Promise((resolve) => {
    let first: T;
    setTimeout(() => { first = read(); }, from - Date.now());
    setTimeout(() => resolve([first, read()]), to - Date.now());
  });
}
