// The `mqtt` npm package (a client no one here wrote) against a real broker on real
// sockets (docs/mqtt.md): a device by its id or its bare JID over TCP, over WebSocket
// at /mqtt on the HTTP port and over TLS on mqtt.tlsPort with the broker's certificate
// as the only trust anchor; telemetry reaches a service, commands reach the device.
import t from "tap";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { NO_SLOWDOWN, startMqttKit, stillServing, telemetryWatcher } from "../helpers/mqtt-kit.js";
import { withTimeout } from "../helpers/wait.js";

const kit = await startMqttKit(NO_SLOWDOWN);
t.teardown(() => kit.close());

t.test("mqtt package: device id or bare JID as user name, publish and receive commands", async (t) => {
  const svc = await telemetryWatcher(kit);

  const byId = await kit.connect(kit.tcpUrl, { clientId: "dev1", username: "dev1", password: kit.pw("dev1") });
  t.ok(byId.c.connected, "client id = user name = device id: accepted");
  await stillServing(t, byId, svc, "dev1", 21.5);
  await byId.end();

  const byJid = await kit.connect(kit.tcpUrl, { clientId: "dev1", username: "dev1@localhost", password: kit.pw("dev1") });
  t.ok(byJid.c.connected, "user name = bare JID dev1@localhost: accepted");
  const granted = await withTimeout(byJid.c.subscribeAsync("devices/dev1/commands/#", { qos: 1 }), "device subscribes to its commands");
  t.same(granted.map((g) => g.qos), [1], "own commands/# granted at QoS 1");
  await stillServing(t, byJid, svc, "dev1", 22);

  // A service publishes a command; the device receives it (docs/commands.md).
  const command = JSON.stringify({ id: "c-1", params: {} });
  await withTimeout(svc.c.publishAsync("devices/dev1/commands/reboot", command, { qos: 1 }), "service publishes a command");
  const got = await byJid.wait("the command", (m) => m.topic === "devices/dev1/commands/reboot");
  t.equal(got.payload, command);
  await byJid.end();
  await svc.end();
});

t.test("mqtt package over WebSocket at /mqtt on the HTTP port", async (t) => {
  const svc = await telemetryWatcher(kit);
  const ws = await kit.connect(kit.wsUrl, { clientId: "dev2", username: "dev2", password: kit.pw("dev2") });
  t.ok(ws.c.connected, "connected over WebSocket");
  await stillServing(t, ws, svc, "dev2", 23);
  // Commands reach a WebSocket device too.
  await withTimeout(ws.c.subscribeAsync("devices/dev2/commands/#", { qos: 1 }), "subscribe over WebSocket");
  await withTimeout(svc.c.publishAsync("devices/dev2/commands/reboot", JSON.stringify({ id: "w-1", params: {} }), { qos: 1 }), "command");
  await ws.wait("the command over WebSocket", (m) => m.topic === "devices/dev2/commands/reboot");
  // Bad credentials over WebSocket are refused as on TCP.
  const code = await kit.refusal({ clientId: "dev2", username: "dev2", password: "wrong" }, kit.wsUrl);
  t.ok(code === 4 || code === 5, `wrong password over WebSocket: CONNACK ${code}`);
  await ws.end();
  await svc.end();
});

t.test("mqtt package over TLS (mqtt.tlsPort, the broker's certificate as the only CA)", async (t) => {
  const ca = readFileSync(join(kit.broker.dataDir, "tls", "cert.pem"));
  const svc = await telemetryWatcher(kit);
  const secure = await kit
    .connect(`mqtts://localhost:${kit.broker.ports.mqttTls}`, { clientId: "dev3", username: "dev3", password: kit.pw("dev3"), ca, rejectUnauthorized: true })
    .catch((err: Error) => err);
  if (secure instanceof Error) {
    t.fail(`TLS connect to mqtt.tlsPort failed: ${secure.message}`);
    await svc.end();
    return;
  }
  await stillServing(t, secure, svc, "dev3", 22.5);
  await secure.end();
  await svc.end();
});

