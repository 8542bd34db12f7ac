// Failed-login bans shared by every protocol that checks passwords (XMPP over TCP
// and WebSocket, MQTT over TCP, TLS and WebSocket), in the spirit of ejabberd's
// mod_fail2ban: past `maxFailures` failures within `windowMs`, an address is refused
// outright for `banMs`, whatever the password, so a guesser learns nothing more by
// timing or by answer. An account attacked from many addresses is banned the same
// way, but only for addresses that have failed themselves: a correct login from an
// address with no failures is never refused (no lock-out of the real device).
// Records are capped and expire, so a flood of addresses costs bounded memory.
import type { Logger } from "../log.js";

export type BanScope = "address" | "account";

export interface Ban {
  scope: BanScope;
  /** Epoch ms when the ban ends. */
  until: number;
}

export interface LimiterOptions {
  maxFailures: number;
  maxAccountFailures: number;
  windowMs: number;
  banMs: number;
  /** Most records kept per scope (counting and banned each); the oldest go first. */
  maxRecords?: number;
  now?: () => number;
  /** Where the one line per ban goes. */
  log?: Pick<Logger, "warn">;
}

export interface FailureLimiter {
  /** The ban that refuses this attempt, or null. Checked before any password work. */
  banned(address: string, account: string): Ban | null;
  /** Records one failed login. */
  failed(address: string, account: string): void;
  /** A ban decided elsewhere (another node of a cluster, `src/auth/shared-limiter.ts`); `key` as counted here. */
  impose(scope: BanScope, key: string, until: number): void;
  /**
   * Waits for a turn to check a password: at most `maxFailures` checks run at once
   * per address and per account, so a burst of guesses sent together cannot all be
   * answered before the failures that ban them are counted. Call the release.
   */
  turn(address: string, account: string): Promise<() => void>;
  /** Records held and bans in force, for /metrics. */
  readonly size: { records: number; bannedAddresses: number; bannedAccounts: number };
  /** Bans started, by scope. */
  readonly bansStarted: ReadonlyMap<BanScope, number>;
  close(): void;
}

interface Count {
  failures: number;
  since: number;
}

/**
 * One scope's failure counts and bans. Maps keep insertion order, so the first entry
 * is the oldest: a record is re-inserted when it changes and evicted first when full.
 */
function scope(name: BanScope, limit: number, opts: Required<Pick<LimiterOptions, "windowMs" | "banMs" | "maxRecords" | "now">>, onBan: (ban: Ban & { key: string; failures: number }) => void) {
  const counts = new Map<string, Count>();
  const bans = new Map<string, number>();
  const put = <V>(map: Map<string, V>, key: string, value: V) => {
    map.delete(key);
    if (map.size >= opts.maxRecords) map.delete(map.keys().next().value!);
    map.set(key, value);
  };
  const countOf = (key: string): Count | undefined => {
    const c = counts.get(key);
    if (c && opts.now() - c.since >= opts.windowMs) {
      counts.delete(key);
      return undefined;
    }
    return c;
  };
  return {
    ban(key: string): Ban | null {
      const until = bans.get(key);
      if (until === undefined) return null;
      if (until > opts.now()) return { scope: name, until };
      bans.delete(key);
      return null;
    },
    hasFailed: (key: string) => countOf(key) !== undefined,
    impose(key: string, until: number): void {
      if (until <= opts.now() || (bans.get(key) ?? 0) >= until) return;
      counts.delete(key);
      put(bans, key, until);
    },
    failures: (key: string) => countOf(key)?.failures ?? 0,
    failed(key: string): void {
      if (this.ban(key)) return;
      const c = countOf(key) ?? { failures: 0, since: opts.now() };
      c.failures++;
      if (c.failures < limit) return put(counts, key, c);
      counts.delete(key);
      const until = opts.now() + opts.banMs;
      put(bans, key, until);
      onBan({ scope: name, key, until, failures: c.failures });
    },
    sweep(): void {
      for (const key of counts.keys()) countOf(key);
      for (const key of bans.keys()) this.ban(key);
    },
    get records() {
      return counts.size + bans.size;
    },
    get banned() {
      return bans.size;
    },
  };
}

/**
 * Checks in progress per key, at most `limit` minus the failures already counted for
 * it, so that checks in flight and failures together never pass the ban threshold.
 */
function turns(limit: number, failuresOf: (key: string) => number) {
  const held = new Map<string, { running: number; waiting: Array<() => void> }>();
  const room = (key: string, running: number) => running < Math.max(1, limit - failuresOf(key));
  function next(key: string): void {
    const e = held.get(key);
    if (!e) return;
    while (e.waiting.length && room(key, e.running)) {
      e.running++;
      e.waiting.shift()!();
    }
    if (e.running === 0 && e.waiting.length === 0) held.delete(key);
  }
  return async (key: string): Promise<() => void> => {
    let e = held.get(key);
    if (!e) held.set(key, (e = { running: 0, waiting: [] }));
    if (e.waiting.length === 0 && room(key, e.running)) e.running++;
    else await new Promise<void>((resolve) => e.waiting.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      e.running--;
      next(key);
    };
  };
}

/** IPv4-mapped IPv6 is IPv4; IPv6 is counted per /64, the usual size of one subscriber's network. */
export function addressKey(address: string): string {
  if (address.startsWith("::ffff:") && address.includes(".")) return address.slice(7);
  if (!address.includes(":")) return address;
  const [head = "", tail = ""] = address.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = address.includes("::") ? [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, "")).join(":")}::/64`;
}

export function createFailureLimiter(options: LimiterOptions): FailureLimiter {
  const opts = { maxRecords: 100_000, now: Date.now, ...options };
  const bansStarted = new Map<BanScope, number>();
  const onBan = (ban: Ban & { key: string; failures: number }) => {
    bansStarted.set(ban.scope, (bansStarted.get(ban.scope) ?? 0) + 1);
    opts.log?.warn({ scope: ban.scope, [ban.scope]: ban.key, failures: ban.failures, until: new Date(ban.until).toISOString() }, "login banned");
  };
  const addresses = scope("address", opts.maxFailures, opts, onBan);
  const accounts = scope("account", opts.maxAccountFailures, opts, onBan);
  const addressTurn = turns(opts.maxFailures, addresses.failures);
  const accountTurn = turns(opts.maxAccountFailures, accounts.failures);
  const sweeper = setInterval(() => (addresses.sweep(), accounts.sweep()), Math.min(opts.windowMs, opts.banMs, 60_000));
  sweeper.unref();

  return {
    banned(address, account) {
      const from = addressKey(address);
      const ban = addresses.ban(from);
      if (ban) return ban;
      // An account ban holds only for addresses that have failed themselves.
      return addresses.hasFailed(from) ? accounts.ban(account) : null;
    },
    failed(address, account) {
      addresses.failed(addressKey(address));
      accounts.failed(account);
    },
    impose: (scope, key, until) => (scope === "address" ? addresses : accounts).impose(key, until),
    async turn(address, account) {
      const releaseAddress = await addressTurn(addressKey(address));
      const releaseAccount = await accountTurn(account);
      return () => (releaseAccount(), releaseAddress());
    },
    bansStarted,
    get size() {
      return { records: addresses.records + accounts.records, bannedAddresses: addresses.banned, bannedAccounts: accounts.banned };
    },
    close: () => clearInterval(sweeper),
  };
}
