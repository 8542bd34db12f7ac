// A storm of bad MQTT passwords (docs/operations.md, Failed logins and bans): 30
// refused CONNECTs while a good device publishes every 20 ms. The good device keeps
// its low latency, and the failures count on the same per-address counter as XMPP
// logins, so the address ends up banned on XMPP too.
import t from "tap";
import { MQTT_ACCOUNTS, startMqttKit, telemetry, telemetryWatcher, STEP_MS } from "../helpers/mqtt-kit.js";
import { RawClient } from "../helpers/raw.js";
import { sleep } from "../helpers/wait.js";

t.test("30 bad-password connects: good clients keep low latency, the address is banned on XMPP too", async (t) => {
  const kit = await startMqttKit({ auth: { maxFailures: 3 } }, MQTT_ACCOUNTS);
  t.teardown(() => kit.close());
  const xmppFailure = async (): Promise<{ ms: number; answer: string }> => {
    const x = await RawClient.connect(kit.broker.ports.xmpp);
    try {
      await x.secureStream();
      const start = performance.now();
      const answer = await x.plainAuth("dev1", "wrong", STEP_MS);
      return { ms: performance.now() - start, answer };
    } finally {
      x.close();
    }
  };
  const baseline = await xmppFailure();
  t.ok(baseline.ms < 500 && /not-authorized/.test(baseline.answer), `a first XMPP failure is answered at once (${baseline.ms.toFixed(0)} ms)`);

  const svc = await telemetryWatcher(kit);
  const dev = await kit.device("dev1");
  const sentAt = new Map<string, number>();
  let seq = 0;
  const ticker = setInterval(() => {
    const payload = telemetry(20, { ts: Date.now() + seq++ });
    sentAt.set(payload, performance.now());
    dev.c.publish("devices/dev1/telemetry", payload, { qos: 1 });
  }, 20);
  t.teardown(() => clearInterval(ticker));

  await sleep(200);
  const stormStart = performance.now();
  const codes = await Promise.all(Array.from({ length: 30 }, (_, i) => kit.refusal({ clientId: "dev2", username: "dev2", password: `wrong ${i}` })));
  const stormMs = performance.now() - stormStart;
  await sleep(200);
  clearInterval(ticker);
  t.ok(codes.every((c) => c === 4 || c === 5), `all 30 refused with 4 or 5 (${[...new Set(codes)].join(",")}) in ${stormMs.toFixed(0)} ms`);

  await svc.wait("the last telemetry", (m) => m.payload === [...sentAt.keys()].at(-1));
  const latencies = svc.on("devices/dev1/telemetry").map((m) => m.at - sentAt.get(m.payload)!).filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  t.equal(latencies.length, sentAt.size, `every telemetry message arrived (${latencies.length})`);
  const p95 = latencies[Math.floor(latencies.length * 0.95)] ?? Infinity;
  const max = latencies.at(-1) ?? Infinity;
  t.ok(p95 < 50 && max < 250, `the good device kept low latency during the storm: p95 ${p95.toFixed(1)} ms, max ${max.toFixed(1)} ms`);
  t.notOk(dev.closed, "the good device stayed connected");

  t.ok(codes.filter((c) => c === 5).length >= 25, "once banned, the address gets 5 (not authorized) at once");
  // The MQTT failures count on the same per-address counter as XMPP logins.
  const banned = await xmppFailure();
  t.match(banned.answer, /temporary-auth-failure/, "after the MQTT failures, an XMPP login from 127.0.0.1 is refused as banned");
});
