// Bridging devices that live on another broker (docs/bridges.md), against a real Mosquitto
// with a password file and an ACL: telemetry through the same pipeline, presence from
// retained status topics, commands over the remote topics, outages, bad input.
import t from "tap";
import mqtt, { type MqttClient } from "mqtt";
import { execFileSync } from "node:child_process";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { startMosquitto, type TestMosquitto } from "../helpers/mosquitto.js";
import { RawClient } from "../helpers/raw.js";
import { waitFor } from "../helpers/wait.js";
import { parseConfig } from "../../src/config.js";

const ACL = `user bridge
topic readwrite plant/#

pattern readwrite plant/%u/#
`;
let mosq: TestMosquitto;
t.before(async () => {
  mosq = await startMosquitto({ bridge: "bridge-pw", p1: "p1-pw", p2: "p2-pw", ghost: "ghost-pw" }, ACL);
});
t.teardown(() => mosq.close());

const bridgeConfig = (extra: Record<string, unknown> = {}) => ({
  name: "plant",
  url: mosq.url,
  username: "bridge",
  password: "bridge-pw",
  deviceType: "thermostat",
  topics: { telemetry: "plant/{device}/data", status: "plant/{device}/status", commands: "plant/{device}/cmd/{command}", replies: "plant/{device}/reply", errors: "plant/{device}/errors" },
  ...extra,
});

async function remoteDevice(id: string, pw: string, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(mosq.url, { clientId: id, username: id, password: pw, reconnectPeriod: 0, will: { topic: `plant/${id}/status`, payload: Buffer.from("offline"), qos: 1, retain: true }, ...opts });
}

let broker: TestBroker;
t.test("setup", async () => {
  broker = await startTestBroker({ bridges: [bridgeConfig()], tsdb: { batchSize: 10, flushMs: 50 } }, [
    { name: "op1", role: "operator", password: "pw" },
    { name: "p1", role: "device", type: "thermostat", password: "x" },
  ]);
  await waitFor(() => broker.logs.some((l) => l.includes('"msg":"bridge connected"')) || undefined);
});
t.teardown(() => broker?.close());

t.test("telemetry, presence and commands of a bridged device", async (t) => {
  const op = await RawClient.connect(broker.ports.xmpp);
  await op.login("op1", "pw", { resource: "c" });
  op.send("<presence/>");
  const p1 = await remoteDevice("p1", "p1-pw");
  await p1.publishAsync("plant/p1/status", "online", { qos: 1, retain: true });
  await op.expect(/<presence from="p1@localhost\/plant" to="op1@localhost\/c"\/>/);
  // mosquitto_pub, as a device the bridge sees.
  execFileSync("mosquitto_pub", ["-h", "127.0.0.1", "-p", String(mosq.port), "-i", "p1-cli", "-u", "p1", "-P", "p1-pw", "-q", "1", "-t", "plant/p1/data", "-m", '{"temperature":19.5,"humidity":55}']);
  await waitFor(() => broker.ingest.lastSample("p1") || undefined);
  t.match(broker.ingest.lastSample("p1"), { fields: { temperature: 19.5, humidity: 55 } });
  await waitFor(async () => (await broker.store.query("p1", "thermostat", 0, Date.now() + 1000, 10)).length === 1 || undefined);
  t.pass("stored through the same pipeline");

  // An XEP-0050 command goes out on the remote commands template; the reply completes it.
  p1.on("message", (topic, payload) => {
    if (!topic.startsWith("plant/p1/cmd/")) return;
    const req = JSON.parse(payload.toString());
    void p1.publishAsync("plant/p1/reply", JSON.stringify({ id: req.id, ok: true, result: { setpoint: req.params.value } }), { qos: 1 });
  });
  await p1.subscribeAsync("plant/p1/cmd/#", { qos: 1 });
  op.send(`<iq type='set' id='cmd' to='p1@localhost/plant'><command xmlns='http://jabber.org/protocol/commands' node='set_setpoint'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:switchboard:command:thermostat:set_setpoint</value></field><field var='value'><value>23</value></field></x></command></iq>`);
  const done = (await op.expect(/<iq[^>]*id="cmd".*?<\/iq>/s, 8000))[0];
  t.match(done, /status="completed"/);
  t.match(done, /<value>23<\/value>/);

  // The device's will (offline, retained) ends its presence.
  p1.stream.destroy();
  await op.expect(/<presence type="unavailable" from="p1@localhost\/plant"/, 8000);
  op.close();
});

t.test("unknown devices, invalid samples and loops are counted, nothing stored, the bridge stays up", async (t) => {
  const before = broker.ingest.counters.accepted;
  const ghost = await remoteDevice("ghost", "ghost-pw");
  // ghost may publish only under plant/ghost/ (mosquitto ACL pattern).
  await ghost.publishAsync("plant/ghost/data", JSON.stringify({ temperature: 20, humidity: 20 }), { qos: 1 });
  const p2 = await remoteDevice("p2", "p2-pw");
  const errors: string[] = [];
  p2.on("message", (_t, m) => errors.push(m.toString()));
  await p2.subscribeAsync("plant/p2/errors");
  await broker.add({ name: "p2", role: "device", type: "thermostat", password: "x" });
  await p2.publishAsync("plant/p2/data", JSON.stringify({ temperature: 500, humidity: 20 }), { qos: 1 });
  await p2.publishAsync("plant/p2/cmd/reboot", JSON.stringify({ id: "x", params: {} }), { qos: 1 });
  await waitFor(() => errors.length === 1 || undefined);
  t.match(errors[0], /temperature/, "the invalid sample is reported on the errors template");
  const bridge = (await fetch(`http://127.0.0.1:${broker.ports.http}/metrics`).then((r) => r.text())).match(/switchboard_bridge_connected\{bridge="plant"\} (\d)/);
  t.equal(bridge?.[1], "1", "still connected");
  t.equal(broker.ingest.counters.accepted, before, "nothing accepted");
  t.ok(broker.registry.get("ghost") === undefined, "unknown device not provisioned without autoProvision");
  t.ok(broker.logs.some((l) => /unknown device/.test(l) && /ghost/.test(l)), "logged");
  await ghost.endAsync();
  await p2.endAsync();
});

t.test("config errors name the bridge and the key", async (t) => {
  t.throws(() => parseConfig({ bridges: [bridgeConfig({ topics: { telemetry: "plant/data" } })] }), /bridges\.0\.topics\.telemetry: bridge 'plant': template 'plant\/data' must contain \{device\}/);
  t.throws(() => parseConfig({ bridges: [bridgeConfig(), bridgeConfig({ name: "again" })] }), /bridges\.1\.topics\.telemetry: bridge 'again': .* maps the same topics as bridge 'plant'/);
  t.throws(() => parseConfig({ bridges: [bridgeConfig({ url: "http://x" })] }), /bridges\.0\.url/);
});

t.test("remote broker unreachable or refusing credentials: the broker starts, the bridge retries, logs once per change", async (t) => {
  const b = await startTestBroker({ bridges: [bridgeConfig({ name: "bad", password: "wrong" }), bridgeConfig({ name: "nowhere", url: "mqtt://127.0.0.1:1", topics: { telemetry: "x/{device}/d" }, required: true })] }, []);
  t.teardown(() => b.close());
  await new Promise((r) => setTimeout(r, 4000));
  const downs = b.logs.filter((l) => l.includes("bridge link down"));
  t.ok(downs.length >= 2 && downs.length <= 4, `${downs.length} log lines for two failing bridges over several retries`);
  const ready = await fetch(`http://127.0.0.1:${b.ports.http}/readyz`);
  t.equal(ready.status, 503, "a required bridge that is down: not ready");
  t.match(await ready.json(), { reason: /nowhere/ });
});

t.test("auto-provisioning creates unknown devices of the bridge's type", async (t) => {
  const b = await startTestBroker({ bridges: [bridgeConfig({ name: "auto", clientId: "sb-auto", autoProvision: true })] }, []);
  t.teardown(() => b.close());
  await waitFor(() => b.logs.some((l) => l.includes('"msg":"bridge connected"')) || undefined);
  const ghost = await remoteDevice("ghost", "ghost-pw");
  await ghost.publishAsync("plant/ghost/data", JSON.stringify({ temperature: 20, humidity: 20 }), { qos: 1 });
  await waitFor(() => b.registry.get("ghost") || undefined);
  t.match(b.registry.get("ghost"), { role: "device", type: "thermostat" });
  await waitFor(() => b.ingest.counters.accepted === 1 || undefined);
  await ghost.endAsync();
});

t.test("remote broker restarted during load: everything published at QoS 1 is stored", async (t) => {
  const b = await startTestBroker({ bridges: [bridgeConfig({ name: "load", clientId: "sb-load" })], tsdb: { batchSize: 50, flushMs: 50 } }, [{ name: "p1", role: "device", type: "thermostat", password: "x" }]);
  t.teardown(() => b.close());
  await waitFor(() => b.logs.some((l) => l.includes('"msg":"bridge connected"')) || undefined);
  let acked = 0;
  let running = true;
  // A device publishing at QoS 1 as fast as Mosquitto acknowledges, reconnecting when it drops.
  const load = (async () => {
    while (running) {
      const dev = await mqtt.connectAsync(mosq.url, { clientId: "p1-load", username: "p1", password: "p1-pw", reconnectPeriod: 0, clean: true }).catch(() => null);
      if (!dev) {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      let up = true;
      dev.on("close", () => (up = false));
      while (running && up) {
        const ok = await Promise.race([
          dev.publishAsync("plant/p1/data", JSON.stringify({ temperature: 20, humidity: 40, ts: 1_700_000_000_000 + acked }), { qos: 1 }).then(() => true),
          new Promise<boolean>((r) => dev.once("close", () => r(false))),
        ]).catch(() => false);
        // A publish refused at once (the client is going down but has not emitted
        // 'close' yet) must not spin this loop in microtasks: reconnect instead.
        if (!ok) break;
        acked++;
      }
      dev.end(true);
    }
  })();
  await waitFor(() => acked >= 300 || undefined, 10_000);
  await mosq.stop();
  await new Promise((r) => setTimeout(r, 500));
  await mosq.start();
  await waitFor(() => acked >= 600 || undefined, 15_000, "publishing again");
  running = false;
  await load;
  await waitFor(async () => (await b.store.query("p1", "thermostat", 0, Date.now(), 100_000)).length === acked || undefined, 20_000, `${acked} stored`).catch(async (e) => {
    t.comment(`stored ${(await b.store.query("p1", "thermostat", 0, Date.now(), 100_000)).length} of ${acked}`);
    throw e;
  });
  t.pass(`all ${acked} samples acknowledged by Mosquitto are stored, once`);
});
