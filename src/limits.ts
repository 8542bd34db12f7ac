// Shapers, like ejabberd's shapers and EMQX's limiters: token buckets with a burst.
// A connection over its byte rate is paused (reads stop, TCP pushes back on the
// peer), never cut and never made to lose data; an address opening connections
// faster than its rate has the extra ones closed at once.
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = burst;
    this.last = now();
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
  }

  /** Spends `n` tokens (possibly going into debt); returns how long to wait, ms, until the debt is paid. */
  take(n: number): number {
    this.refill();
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.rate) * 1000);
  }

  /** Spends one token if there is one. */
  tryTake(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export interface Pausable {
  pause(): unknown;
  resume(): unknown;
}

/** Returns the function to call with each chunk's size: it pauses `stream` while over the rate. */
export function byteShaper(stream: Pausable, bytesPerSecond: number, burstBytes: number): (bytes: number) => void {
  const bucket = new TokenBucket(bytesPerSecond, burstBytes);
  let paused = false;
  return (bytes) => {
    const wait = bucket.take(bytes);
    if (wait === 0 || paused) return;
    paused = true;
    stream.pause();
    setTimeout(() => {
      paused = false;
      stream.resume();
    }, wait).unref();
  };
}

/** Connection attempts per remote address. */
export function connectionRateLimiter(perSecond: number, burst: number): { allow(address: string): boolean } {
  const buckets = new Map<string, TokenBucket>();
  // Idle addresses are forgotten: a full bucket is the same as no bucket.
  setInterval(() => buckets.clear(), Math.max(10_000, (burst / perSecond) * 1000)).unref();
  return {
    allow(address) {
      let bucket = buckets.get(address);
      if (!bucket) buckets.set(address, (bucket = new TokenBucket(perSecond, burst)));
      return bucket.tryTake();
    },
  };
}
