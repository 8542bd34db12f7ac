// Shapers (docs/operations.md, Limits): a flooding client is slowed to its byte rate without losing
// data, while another client's latency stays low; an address opening connections
// too fast has the extra ones closed.
import t from "tap";
import net from "node:net";
import { startTestBroker } from "../helpers/broker.js";
import { RawClient } from "../helpers/raw.js";
import mqtt from "mqtt";

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

/** Offers messages to itself for `ms` as fast as the socket takes them; returns the echoed bytes/s. */
async function xmppEchoRate(port: number, user: string, password: string, ms: number): Promise<number> {
  const client = await RawClient.connect(port);
  const jid = await client.login(user, password, { resource: "f" });
  const stanza = `<message to='${jid}' type='chat'><body>${"x".repeat(1000)}</body></message>`;
  const started = Date.now();
  const end = started + ms;
  while (Date.now() < end) {
    // A throttled socket may not drain before the end: wait for drain or the end.
    if (!client.socket.write(stanza)) {
      await new Promise<void>((resolve) => {
        const done = () => (clearTimeout(timer), client.socket.off("drain", done), resolve());
        const timer = setTimeout(done, end - Date.now());
        client.socket.once("drain", done);
      });
    }
    else await new Promise((r) => setImmediate(r));
  }
  const echoed = (client.log.match(/<message /g) ?? []).length * stanza.length;
  client.close();
  return echoed / ((Date.now() - started) / 1000);
}

t.test("service accounts get limits.serviceBytesPerSecond once authenticated, over XMPP and MQTT", async (t) => {
  const limits = { bytesPerSecond: 100_000, burstBytes: 100_000, serviceBytesPerSecond: 50_000_000, serviceBurstBytes: 50_000_000 };
  const broker = await startTestBroker({ limits, xmpp: { maxStanzaBytes: 65536 } }, [
    { name: "svc", role: "service", password: "pw1" },
    { name: "ops", role: "operator", password: "pw2" },
    { name: "d1", role: "device", type: "thermostat", password: "pw3" },
  ]);
  t.teardown(() => broker.close());

  const service = await xmppEchoRate(broker.ports.xmpp, "svc", "pw1", 1500);
  const operator = await xmppEchoRate(broker.ports.xmpp, "ops", "pw2", 1500);
  t.ok(service > 1_000_000, `XMPP service echoed ${Math.round(service / 1000)} kB/s, over 10× the 100 kB/s device/operator rate`);
  t.ok(operator < 300_000, `XMPP operator echoed ${Math.round(operator / 1000)} kB/s: its limit, 100 kB/s plus a 100 kB burst`);

  // MQTT: a service publishing commands is not held to the device rate.
  const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: "d1", username: "d1", password: "pw3", reconnectPeriod: 0 });
  t.teardown(() => device.end(true));
  await device.subscribeAsync("devices/d1/commands/#", { qos: 0 });
  let received = 0;
  device.on("message", (_topic, payload) => void (received += payload.length));
  const svc = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: "svc-1", username: "svc", password: "pw1", reconnectPeriod: 0 });
  t.teardown(() => svc.end(true));
  const payload = JSON.stringify({ id: "x", params: { pad: "y".repeat(4000) } });
  const started = Date.now();
  while (Date.now() - started < 1500) {
    svc.publish("devices/d1/commands/set_setpoint", payload, { qos: 0 });
    await new Promise((r) => setImmediate(r));
  }
  await new Promise((r) => setTimeout(r, 200));
  const rate = received / ((Date.now() - started) / 1000);
  t.ok(rate > 1_000_000, `MQTT service's commands reached the device at ${Math.round(rate / 1000)} kB/s`);
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
