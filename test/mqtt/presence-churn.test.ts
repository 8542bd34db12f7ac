// An MQTT device's presence under churn (docs/mqtt.md, Presence): 100 sequential
// connects and drops, 100 overlapping takeovers with the same client id, and drops at
// random moments end in the right final state, with available and unavailable
// alternating in between (changes may be coalesced, never repeated or reordered).
import t from "tap";
import type { MqttClient } from "mqtt";
import { alternates, letters, ping, startPresenceKit } from "../helpers/presence-kit.js";
import { sleep, withTimeout } from "../helpers/wait.js";

const kit = await startPresenceKit();
t.teardown(() => kit.close());

t.test("churn: 100 sequential connects and drops end in the right state", async (t) => {
  const { op, full } = await kit.watcher("dev6");

  for (const final of ["connected", "disconnected"] as const) {
    const since = op.mark();
    for (let i = 0; i < 100; i++) {
      const c = await kit.device("dev6");
      // Alternate socket loss and clean DISCONNECT.
      if (i % 2) c.stream.destroy();
      else c.end(true);
    }
    let last: MqttClient | null = null;
    if (final === "connected") last = await kit.device("dev6");
    await op.settle(full, 500);
    const list = op.states(full, since);
    const expected = final === "connected" ? "available" : "unavailable";
    t.equal(list.at(-1), expected, `final ${final}: the last presence of ${full} is ${expected} (${list.length} presence stanzas)`);
    t.ok(alternates("unavailable", list), `available and unavailable alternate: ${letters(list)}`);
    if (final === "connected") {
      await op.iq("get", full, ping());
      t.equal(await op.lastSeconds("dev6@localhost"), 0, "online for the broker too");
      const before = op.mark();
      await withTimeout(last!.endAsync(), "final DISCONNECT");
      await op.unavailable(full, before);
      await op.settle(full, 300);
    } else {
      t.equal(await op.iqError(full, ping()), "service-unavailable", "offline for the broker too");
    }
  }
});

t.test("churn: 100 overlapping connects with the same client id end in the right state", async (t) => {
  const { op, full } = await kit.watcher("dev7");

  // Takeover storm: every connection takes over from the one before; one survives.
  let since = op.mark();
  const storm = await Promise.allSettled(Array.from({ length: 100 }, () => kit.device("dev7")));
  const accepted = storm.filter((r): r is PromiseFulfilledResult<MqttClient> => r.status === "fulfilled").map((r) => r.value);
  t.ok(accepted.length > 0, `${accepted.length} of 100 overlapping connects were accepted`);
  await op.settle(full, 500);
  const open = accepted.filter((c) => c.connected);
  t.equal(open.length, 1, "exactly one connection survives the takeovers");
  let list = op.states(full, since);
  t.equal(list.at(-1), "available", `final state connected: last presence available (${list.join(",")})`);
  t.same(list, ["available"], "a takeover storm is one available and nothing else (no flap)");
  await op.iq("get", full, ping());

  // Drops at random moments, overlapping with new connects; all gone at the end.
  since = op.mark();
  const churn = await Promise.allSettled(
    Array.from({ length: 100 }, async (_, i) => {
      await sleep(i % 10);
      const c = await kit.device("dev7");
      await sleep(Math.floor(Math.random() * 15));
      if (i % 2) c.stream.destroy();
      else c.end(true);
    }),
  );
  for (const c of open) c.end(true);
  t.comment(`churn: ${churn.filter((r) => r.status === "rejected").length} of 100 connects were cut short by the overlap`);
  await op.settle(full, 500);
  list = op.states(full, since);
  t.equal(list.at(-1), "unavailable", `final state disconnected: last presence unavailable (${list.length} stanzas)`);
  t.ok(alternates("available", list), `available and unavailable alternate: ${letters(list)}`);
  t.equal(await op.iqError(full, ping()), "service-unavailable", "offline for the broker too");

  // The same churn, then one final connection that stays.
  since = op.mark();
  await Promise.allSettled(
    Array.from({ length: 100 }, async (_, i) => {
      await sleep(i % 10);
      const c = await kit.device("dev7");
      await sleep(Math.floor(Math.random() * 15));
      c.stream.destroy();
    }),
  );
  const survivor = await kit.device("dev7");
  await op.settle(full, 500);
  list = op.states(full, since);
  t.equal(list.at(-1), "available", `final state connected: last presence available (${list.length} stanzas)`);
  t.ok(alternates("unavailable", list), `available and unavailable alternate: ${letters(list)}`);
  t.ok(survivor.connected, "the final connection is up");
  await op.iq("get", full, ping());
  since = op.mark();
  await withTimeout(survivor.endAsync(), "DISCONNECT");
  await op.unavailable(full, since);
});
