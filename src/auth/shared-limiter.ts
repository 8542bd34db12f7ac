// Failed-login bans shared by the nodes of a cluster through Redis (docs/cluster.md),
// so that a guesser cannot spread guesses over nodes. Each node keeps its own limiter
// (limiter.ts), which answers every check without waiting for Redis; failures are
// also counted in Redis, and a count that reaches the limit there bans on every node:
// the node that reached it publishes the ban, each node imposes it on its own limiter,
// and a node that starts later reads the bans in force. With Redis away, each node
// goes on with its own counts; that is logged once, and once more when Redis is back.
import { Redis } from "ioredis";
import type { Logger } from "../log.js";
import { addressKey, type Ban, type BanScope, type FailureLimiter } from "./limiter.js";

const CHANNEL = "switchboard:bans";
const prefix = (scope: BanScope) => `switchboard:${scope}:`;

// KEYS[1] the failure count, KEYS[2] the ban; ARGV: limit, window ms, ban ms, now, the
// ban message. One round trip, atomic: the count that reaches the limit bans once.
const COUNT_FAILURE = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n < tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[4] + ARGV[3], 'PX', ARGV[3])
redis.call('PUBLISH', '${CHANNEL}', ARGV[5])
return n`;

export interface SharedLimiterOptions {
  url: string;
  maxFailures: number;
  maxAccountFailures: number;
  windowMs: number;
  banMs: number;
  log: Pick<Logger, "warn" | "info">;
  now?: () => number;
}

export async function shareFailures(local: FailureLimiter, opts: SharedLimiterOptions): Promise<FailureLimiter> {
  const now = opts.now ?? Date.now;
  // Commands fail at once while Redis is away (no queue of stale failures to replay).
  const settings = { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 };
  const redis = new Redis(opts.url, settings);
  const subscriber = new Redis(opts.url, { ...settings, enableOfflineQueue: true });
  let reachable = true;
  const lost = (err: Error) => {
    if (!reachable) return;
    reachable = false;
    opts.log.warn({ err: err.message }, "Redis cannot be reached: failed logins are counted on this node only until it is back");
  };
  const back = () => {
    if (reachable) return;
    reachable = true;
    opts.log.info({}, "Redis is back: failed logins are counted for the whole cluster again");
  };
  redis.on("error", lost).on("ready", back);
  subscriber.on("error", lost);

  const impose = (message: string) => {
    const { scope, key, until } = JSON.parse(message) as Ban & { key: string };
    local.impose(scope, key, until);
  };
  subscriber.on("message", (channel: string, message: string) => channel === CHANNEL && impose(message));
  async function loadBans(): Promise<void> {
    for (const scope of ["address", "account"] as const) {
      for (let cursor = "0"; ; ) {
        const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix(scope)}ban:*`, "COUNT", 1000);
        for (const k of keys) {
          const until = Number(await redis.get(k));
          if (until > now()) local.impose(scope, k.slice(`${prefix(scope)}ban:`.length), until);
        }
        if ((cursor = next) === "0") break;
      }
    }
  }
  // Subscribed before the bans in force are read: one decided in between is seen twice,
  // never missed; read again whenever the connection comes back (ioredis subscribes again).
  const catchUp = () => void loadBans().catch(lost);
  // Away at start: the node starts all the same, on its own counts, and ioredis keeps trying.
  await Promise.all([redis.connect(), subscriber.connect()].map((p) => p.catch(lost)));
  await subscriber.subscribe(CHANNEL).then(catchUp, lost);
  redis.on("ready", catchUp);

  /** `loggedHere`: this node's own limiter started the same ban with this failure and logged it: one line per ban. */
  function count(scope: BanScope, key: string, limit: number, loggedHere: boolean): void {
    const at = now();
    const message = JSON.stringify({ scope, key, until: at + opts.banMs });
    redis.eval(COUNT_FAILURE, 2, `${prefix(scope)}fail:${key}`, `${prefix(scope)}ban:${key}`, limit, opts.windowMs, opts.banMs, at, message).then(
      (failures) => {
        if (Number(failures) > 0 && !loggedHere) opts.log.warn({ scope, [scope]: key, failures, until: new Date(at + opts.banMs).toISOString(), cluster: true }, "login banned");
      },
      lost,
    );
  }

  return {
    banned: (address, account) => local.banned(address, account),
    failed(address, account) {
      const started = (scope: BanScope) => local.bansStarted.get(scope) ?? 0;
      const before = { address: started("address"), account: started("account") };
      local.failed(address, account);
      count("address", addressKey(address), opts.maxFailures, started("address") > before.address);
      count("account", account, opts.maxAccountFailures, started("account") > before.account);
    },
    impose: (scope, key, until) => local.impose(scope, key, until),
    turn: (address, account) => local.turn(address, account),
    get size() {
      return local.size;
    },
    bansStarted: local.bansStarted,
    close() {
      local.close();
      redis.disconnect();
      subscriber.disconnect();
    },
  };
}
