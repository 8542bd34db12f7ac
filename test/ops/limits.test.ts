// Shapers (issue 6 §8): a flooding client is slowed to its byte rate without losing
// data, while another client's latency stays low; an address opening connections
// too fast has the extra ones closed.
import t from "tap";
import net from "node:net";
import { startTestBroker } from "../helpers/broker.js";
import { RawClient } from "../helpers/raw.js";

t.test("a client flooding far over its rate is throttled; others are not slowed", async (t) => {
  const broker = await startTestBroker({ limits: { bytesPerSecond: 200_000, burstBytes: 200_000 }, xmpp: { maxStanzaBytes: 65536 } }, [
    { name: "flood", role: "operator", password: "pw1" },
    { name: "calm", role: "operator", password: "pw2" },
  ]);
  t.teardown(() => broker.close());
  const flood = await RawClient.connect(broker.ports.xmpp);
  const jid = await flood.login("flood", "pw1", { resource: "f" });
  const calm = await RawClient.connect(broker.ports.xmpp);
  await calm.login("calm", "pw2");
  // ~10 MB offered as fast as the socket takes it: messages to itself.
  const body = "x".repeat(1000);
  const stanza = `<message to='${jid}' type='chat'><body>${body}</body></message>`;
  let offered = 0;
  let stop = false;
  (async () => {
    while (!stop && offered < 10_000_000) {
      offered += stanza.length;
      if (!flood.socket.write(stanza)) await new Promise((r) => flood.socket.once("drain", r));
    }
  })();
  const started = Date.now();
  const latencies: number[] = [];
  for (let i = 0; i < 40; i++) {
    const sent = performance.now();
    calm.send(`<iq type='get' id='p${i}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await calm.expect(new RegExp(`id="p${i}"`));
    latencies.push(performance.now() - sent);
    await new Promise((r) => setTimeout(r, 50));
  }
  stop = true;
  const seconds = (Date.now() - started) / 1000;
  const echoed = (flood.log.match(/<message /g) ?? []).length * stanza.length;
  const rate = echoed / seconds;
  t.ok(rate < 200_000 * 1.5 + 200_000 / seconds, `echoed ${Math.round(rate / 1000)} kB/s over ${seconds.toFixed(1)} s, limit 200 kB/s`);
  t.ok(offered > echoed * 2, `the flooder offered ${Math.round(offered / 1e6)} MB, far more than it got through`);
  latencies.sort((a, b) => a - b);
  const p99 = latencies[Math.floor(latencies.length * 0.99) - 0]!;
  t.ok(p99 < 100, `the other client's ping p99 is ${p99.toFixed(1)} ms`);
  t.notOk(flood.closed, "the flooder is slowed, not disconnected");
  flood.close();
  calm.close();
});

t.test("connections over the per-address rate are closed at once", async (t) => {
  const broker = await startTestBroker({ limits: { connectionsPerSecond: 1, connectionBurst: 5 } }, []);
  t.teardown(() => broker.close());
  const outcomes = await Promise.all(
    Array.from({ length: 8 }, () =>
      new Promise<string>((resolve) => {
        const s = net.connect(broker.ports.mqtt, "127.0.0.1");
        s.on("error", () => resolve("closed"));
        s.on("close", () => resolve("closed"));
        s.setTimeout(500, () => {
          resolve("open");
          s.destroy();
        });
      }),
    ),
  );
  t.equal(outcomes.filter((o) => o === "open").length, 5, `burst of 5 admitted: ${outcomes.join(",")}`);
});
