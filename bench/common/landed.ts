// A poller of a "landed so far" count (points in the store, samples written), for
// the benches that measure what arrives at the end of a pipeline.
import { sleep } from './timing.js';

/** Polls `read` every `intervalMs`; each poll is stamped mid-request on `clock` (epoch ms). */
export class Landed {
  /** [time, count], starting with [start, 0]. */
  readonly polls: Array<[number, number]>;
  /** When the count last changed. */
  lastChange: number;
  private running = true;
  private readonly done: Promise<void>;

  constructor(read: () => Promise<number>, intervalMs: number, clock: () => number = Date.now) {
    this.polls = [[clock(), 0]];
    this.lastChange = clock();
    this.done = this.poll(read, intervalMs, clock);
  }

  private async poll(read: () => Promise<number>, intervalMs: number, clock: () => number): Promise<void> {
    while (this.running) {
      const t0 = clock();
      try {
        const n = await read();
        if (n !== this.last) this.lastChange = clock();
        this.polls.push([(t0 + clock()) / 2, n]);
      } catch { /* server busy or not up yet: next poll */ }
      await sleep(Math.max(0, intervalMs - (clock() - t0)));
    }
  }

  get last(): number { return this.polls[this.polls.length - 1]![1]; }

  /** Landed count at time t, interpolated between polls. */
  at(t: number): number {
    const p = this.polls;
    for (let i = 1; i < p.length; i++) {
      if (p[i]![0] >= t) {
        const [t0, n0] = p[i - 1]!, [t1, n1] = p[i]!;
        return t1 === t0 ? n1 : n0 + ((n1 - n0) * (t - t0)) / (t1 - t0);
      }
    }
    return this.last;
  }

  /** Time of the first poll that saw at least n. */
  firstAtLeast(n: number): number | undefined { return this.polls.find(([, c]) => c >= n)?.[0]; }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}
