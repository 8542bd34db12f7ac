// The failed-login limiter alone, on a fake clock: bans by address and by account,
// the clean-address rule, expiry, bounded records and bounded concurrent checks.
import t from "tap";
import { addressKey, createFailureLimiter, type LimiterOptions } from "../../src/auth/limiter.js";

function limiter(opts: Partial<LimiterOptions> = {}) {
  let now = 1_000_000;
  const bans: string[] = [];
  const l = createFailureLimiter({ maxFailures: 3, maxAccountFailures: 5, windowMs: 60_000, banMs: 600_000, now: () => now, log: { warn: (b: Record<string, string>) => void bans.push(`${b.scope}:${b[b.scope!]}`) } as never, ...opts });
  t.teardown(() => l.close());
  return { l, bans, advance: (ms: number) => void (now += ms) };
}

t.test("an address is banned after maxFailures, for banMs, whatever the account", async (t) => {
  const { l, bans, advance } = limiter();
  for (let i = 0; i < 2; i++) l.failed("10.0.0.1", `a${i}`);
  t.equal(l.banned("10.0.0.1", "anyone"), null, "two failures: not yet");
  l.failed("10.0.0.1", "a2");
  const ban = l.banned("10.0.0.1", "someone-else");
  t.equal(ban?.scope, "address");
  t.equal(ban?.until, 1_000_000 + 600_000);
  t.same(bans, ["address:10.0.0.1"], "one ban, logged once");
  t.equal(l.bansStarted.get("address"), 1, "and counted");
  l.failed("10.0.0.1", "a3");
  t.same(bans, ["address:10.0.0.1"], "failures while banned start no second ban");
  t.equal(l.banned("10.0.0.2", "a0"), null, "another address is not affected");
  advance(600_001);
  t.equal(l.banned("10.0.0.1", "a0"), null, "the ban ends");
});

t.test("failures older than the window are forgotten", async (t) => {
  const { l, advance } = limiter();
  l.failed("10.0.0.1", "a");
  l.failed("10.0.0.1", "a");
  advance(60_000);
  l.failed("10.0.0.1", "a");
  t.equal(l.banned("10.0.0.1", "a"), null);
});

t.test("an account attacked from many addresses is banned for addresses that failed, never for a clean one", async (t) => {
  const { l, bans } = limiter();
  for (let i = 0; i < 5; i++) l.failed(`10.0.1.${i}`, "dev1");
  t.ok(bans.includes("account:dev1"));
  t.equal(l.banned("10.0.1.0", "dev1")?.scope, "account", "an address that failed is refused for the account");
  t.equal(l.banned("10.0.9.9", "dev1"), null, "a clean address may still log in");
  t.equal(l.banned("10.0.1.0", "dev2"), null, "other accounts are not affected");
  l.failed("10.0.9.9", "dev1");
  t.equal(l.banned("10.0.9.9", "dev1")?.scope, "account", "once it fails, that address is refused too");
});

t.test("records are capped: a flood of addresses costs bounded memory", async (t) => {
  const { l } = limiter({ maxRecords: 1000 });
  for (let i = 0; i < 50_000; i++) l.failed(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, `u${i}`);
  t.ok(l.size.records <= 4000, `records ${l.size.records} (two scopes, counts and bans each capped at 1000)`);
});

t.test("concurrent checks are bounded per address and per account", async (t) => {
  const { l } = limiter();
  const turns = await Promise.all([l.turn("10.0.0.1", "a"), l.turn("10.0.0.1", "b"), l.turn("10.0.0.1", "c")]);
  let fourth = false;
  const waiting = l.turn("10.0.0.1", "d").then((release) => ((fourth = true), release));
  await new Promise((r) => setImmediate(r));
  t.notOk(fourth, "a fourth check from the address waits");
  const other = await l.turn("10.0.0.2", "e");
  t.pass("another address does not wait");
  turns[0]!();
  (await waiting)();
  t.ok(fourth, "it runs once one ends");
  turns[1]!();
  turns[2]!();
  other();
});

t.test("address keys: IPv4-mapped is IPv4; IPv6 counts per /64", async (t) => {
  t.equal(addressKey("::ffff:10.1.2.3"), "10.1.2.3");
  t.equal(addressKey("10.1.2.3"), "10.1.2.3");
  t.equal(addressKey("2001:db8:0:1:a::1"), addressKey("2001:0db8:0000:0001:ffff:ffff:ffff:ffff"));
  t.not(addressKey("2001:db8:0:1::1"), addressKey("2001:db8:0:2::1"));
  t.equal(addressKey("::1"), "0:0:0:0::/64");
});
