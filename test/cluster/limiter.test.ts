// Failed-login bans shared through a real Redis (docs/cluster.md): guesses spread
// over nodes ban on every node, a node started later knows the bans in force, and
// with Redis away each node goes on with its own counts and says so once.
import t from "tap";
import { createFailureLimiter, type FailureLimiter } from "../../src/auth/limiter.js";
import { shareFailures } from "../../src/auth/shared-limiter.js";
import type { Logger } from "../../src/log.js";
import { startRedis } from "../helpers/redis.js";
import { waitFor } from "../helpers/wait.js";

const redis = await startRedis();
t.teardown(() => redis.close());

const LIMITS = { maxFailures: 4, maxAccountFailures: 4, windowMs: 60_000, banMs: 60_000 };
const lines: string[] = [];
const record = (o: object, m: string) => void lines.push(`${m} ${JSON.stringify(o)}`);
const log = { warn: record, info: record } as unknown as Pick<Logger, "warn" | "info">;

async function node(t: { teardown(fn: () => void): void }): Promise<FailureLimiter> {
  const shared = await shareFailures(createFailureLimiter(LIMITS), { url: redis.url, ...LIMITS, log });
  t.teardown(() => shared.close());
  return shared;
}

t.test("guesses from one address spread over two nodes ban it on both", async (t) => {
  const [a, b] = [await node(t), await node(t)];
  for (let i = 0; i < 2; i++) a.failed("10.1.0.1", `acct-a${i}`);
  for (let i = 0; i < 2; i++) b.failed("10.1.0.1", `acct-b${i}`);
  await waitFor(() => Boolean(a.banned("10.1.0.1", "anyone") && b.banned("10.1.0.1", "anyone")), 5000, "the address banned on both nodes");
  t.equal(a.banned("10.1.0.1", "x")?.scope, "address");
  t.equal(a.banned("10.1.0.2", "x"), null, "another address is not");
  t.ok(lines.some((l) => l.startsWith("login banned") && l.includes('"cluster":true')), "one node logged the ban");
});

t.test("one account guessed over two nodes from many addresses: banned for the addresses that failed", async (t) => {
  const [a, b] = [await node(t), await node(t)];
  a.failed("10.2.0.1", "victim");
  a.failed("10.2.0.2", "victim");
  b.failed("10.2.0.3", "victim");
  b.failed("10.2.0.4", "victim");
  await waitFor(() => Boolean(a.banned("10.2.0.1", "victim") && b.banned("10.2.0.3", "victim")), 5000, "the account banned on both nodes");
  t.equal(b.banned("10.2.0.9", "victim"), null, "an address with no failures still gets through (no lock-out of the real device)");
});

t.test("a node started later knows the bans in force", async (t) => {
  const a = await node(t);
  for (let i = 0; i < 4; i++) a.failed("10.3.0.1", `acct${i}`);
  await waitFor(() => Boolean(a.banned("10.3.0.1", "x")), 5000, "banned");
  const late = await node(t);
  await waitFor(() => Boolean(late.banned("10.3.0.1", "x")), 5000, "the late node reads the ban");
});

t.test("Redis away: each node counts on its own, says so once, and shares again once Redis is back", async (t) => {
  const a = await node(t);
  await redis.stop();
  for (let i = 0; i < 3; i++) a.failed("10.4.0.1", `acct${i}`);
  await waitFor(() => Boolean(lines.some((l) => l.startsWith("Redis cannot be reached"))), 5000, "the outage logged");
  a.failed("10.4.0.1", "acct3");
  t.ok(a.banned("10.4.0.1", "x"), "the node's own count bans");
  t.equal(lines.filter((l) => l.startsWith("Redis cannot be reached")).length, 1, "logged once");
  await redis.start();
  await waitFor(() => Boolean(lines.some((l) => l.startsWith("Redis is back"))), 15_000, "the recovery logged");
  const b = await node(t);
  for (let i = 0; i < 2; i++) a.failed("10.4.0.2", `acct${i}`);
  for (let i = 0; i < 2; i++) b.failed("10.4.0.2", `acct${i + 2}`);
  await waitFor(() => Boolean(a.banned("10.4.0.2", "x") && b.banned("10.4.0.2", "x")), 5000, "shared again");
});
