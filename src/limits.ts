// Shapers, like ejabberd's shapers and EMQX's limiters: token buckets with a burst.
// A connection over its byte rate is paused (reads stop, TCP pushes back on the
// peer), never cut and never made to lose data; an address opening connections
// faster than its rate has the extra ones closed at once.
import type { Config } from "./config.js";
import type { Logger } from "./log.js";

/** A byte rate with its burst. */
export interface Shape {
  bytesPerSecond: number;
  burstBytes: number;
}

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private rate: number,
    private burst: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = burst;
    this.last = now();
  }

  /** New rate and burst from now on; a debt already run up stays to be paid, at the new rate. */
  reshape(rate: number, burst: number): void {
    this.refill();
    this.rate = rate;
    this.burst = burst;
    this.tokens = Math.min(this.tokens, burst);
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

export interface ByteShaper {
  /** Counts a chunk read; pauses the stream while over the rate. */
  take(bytes: number): void;
  /** A new rate for this connection, e.g. once its account is known. */
  reshape(shape: Shape): void;
}

export function byteShaper(stream: Pausable, shape: Shape): ByteShaper {
  const bucket = new TokenBucket(shape.bytesPerSecond, shape.burstBytes);
  let paused = false;
  return {
    take(bytes) {
      const wait = bucket.take(bytes);
      if (wait === 0 || paused) return;
      paused = true;
      stream.pause();
      setTimeout(() => {
        paused = false;
        stream.resume();
      }, wait).unref();
    },
    reshape: (next) => bucket.reshape(next.bytesPerSecond, next.burstBytes),
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

/** New connections per address (`limits.connectionsPerSecond`): false closes the new one, logged. */
export function connectionAdmission(limits: Config["limits"], log: Pick<Logger, "warn">): (address: string) => boolean {
  const connections = connectionRateLimiter(limits.connectionsPerSecond, limits.connectionBurst);
  return (address) => {
    const ok = connections.allow(address);
    if (!ok) log.warn({ address }, "connection rate exceeded; connection closed");
    return ok;
  };
}

/** Read rates from `limits`: every connection's, and a service account's once authenticated. */
export function limitShapes(config: Config): { shape: Shape; serviceShape: Shape } {
  return {
    shape: { bytesPerSecond: config.limits.bytesPerSecond, burstBytes: config.limits.burstBytes },
    serviceShape: { bytesPerSecond: config.limits.serviceBytesPerSecond, burstBytes: config.limits.serviceBurstBytes },
  };
}
