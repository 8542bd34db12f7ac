// TokenBucket: the shapers' arithmetic on a fake clock.
import t from "tap";
import { TokenBucket } from "../../src/limits.js";

t.test("a bucket lends its burst, then makes a debtor wait for its rate", async (t) => {
  let now = 0;
  const bucket = new TokenBucket(1000, 500, () => now);
  t.equal(bucket.take(500), 0, "the burst is free");
  t.equal(bucket.take(250), 250, "250 bytes over at 1000 B/s wait 250 ms");
  now += 250;
  t.equal(bucket.take(0), 0, "paid off after 250 ms");
  now += 10_000;
  t.equal(bucket.take(600), 100, "refills no further than the burst");
});

t.test("reshape keeps a debt and pays it at the new rate", async (t) => {
  let now = 0;
  const bucket = new TokenBucket(1000, 1000, () => now);
  t.equal(bucket.take(2000), 1000, "1000 bytes of debt at 1000 B/s");
  bucket.reshape(100_000, 1_000_000);
  t.equal(bucket.take(0), 10, "the same debt at 100 kB/s is 10 ms");
  now += 10_000;
  t.equal(bucket.take(900_000), 0, "and the new, larger burst fills");
  bucket.reshape(1000, 1000);
  t.equal(bucket.take(1000), 0, "a smaller burst caps what was saved");
  t.equal(bucket.take(1), 1, "then the new rate applies");
});

t.test("tryTake admits one per token", async (t) => {
  let now = 0;
  const bucket = new TokenBucket(1, 2, () => now);
  t.same([bucket.tryTake(), bucket.tryTake(), bucket.tryTake()], [true, true, false]);
  now += 1000;
  t.ok(bucket.tryTake(), "one more after a second");
});
