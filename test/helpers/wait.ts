// Bounded waits for tests: every wait ends, and a wait that runs out says what never came.

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `fn` until it returns something other than undefined/false. */
export async function waitFor<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, ms = 10_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** `p`, or a rejection naming `what` once `ms` have passed. */
export function withTimeout<T>(p: Promise<T>, what: string, ms = 10_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    p.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (e: unknown) => (clearTimeout(timer), reject(e)),
    );
  });
}

/**
 * For a recorder of arrivals (lines, stanzas, packets): `wake()` on each arrival, and
 * `until()` looks again at every wake instead of polling.
 */
export class Wakeup {
  private waiters: Array<() => void> = [];

  wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /**
   * Calls `check` now and after every wake until it returns something other than
   * undefined (it may throw to give up early); past `ms`, throws `timeout()`.
   */
  async until<T>(check: () => T | undefined, ms: number, timeout: () => Error): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = check();
      if (v !== undefined) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw timeout();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}
