// Slows down password guessing: one failure counter per remote address, shared by
// every protocol that checks passwords. Past `freeFailures` failures within a
// minute, each further answer waits longer (linear, capped), instead of locking
// the account out (which would let anyone lock out a device).
export interface FailureLimiter {
  /** Records a failed login and returns how long to wait before answering it. */
  failure(address: string): number;
  /** The delay a next failure from this address would get, without recording one. */
  pending(address: string): number;
}

export function createFailureLimiter(opts: { freeFailures: number; delayMs: number; windowMs?: number; maxDelayMs?: number; now?: () => number }): FailureLimiter {
  const { freeFailures, delayMs, windowMs = 60_000, maxDelayMs = 30_000, now = Date.now } = opts;
  const failures = new Map<string, number[]>();

  function recent(address: string): number[] {
    const cutoff = now() - windowMs;
    const list = (failures.get(address) ?? []).filter((t) => t > cutoff);
    if (list.length) failures.set(address, list);
    else failures.delete(address);
    return list;
  }
  const delayFor = (count: number) => (count > freeFailures ? Math.min(maxDelayMs, delayMs * (count - freeFailures)) : 0);

  // Forget quiet addresses so the map cannot grow without bound.
  setInterval(() => {
    for (const address of failures.keys()) recent(address);
  }, windowMs).unref();

  return {
    failure(address) {
      const list = recent(address);
      list.push(now());
      failures.set(address, list);
      return delayFor(list.length);
    },
    pending: (address) => delayFor(recent(address).length + 1),
  };
}
