// A remote broker that forwards a topic that is not UTF-8 (Mosquitto refuses them, so
// a bare aedes plays the remote here, fed raw bytes): counted and logged, nothing
// stored, the bridge stays up and keeps bridging.
import t from "tap";
import net from "node:net";
import mqtt from "mqtt";
import { generate } from "mqtt-packet";
import { Aedes } from "aedes";
import { startTestBroker } from "../helpers/broker.js";
import { waitFor } from "../helpers/wait.js";

t.test("a non-UTF-8 topic from the remote broker is counted and ignored", async (t) => {
  const remote = await Aedes.createBroker();
  const server = net.createServer((s) => remote.handle(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as net.AddressInfo).port;
  t.teardown(() => new Promise<void>((r) => (server.close(), remote.close(() => r()))));
  const broker = await startTestBroker(
    { bridges: [{ name: "raw", url: `mqtt://127.0.0.1:${port}`, deviceType: "thermostat", topics: { telemetry: "plant/{device}/data" } }] },
    [{ name: "p1", role: "device", type: "thermostat", password: "x" }],
  );
  t.teardown(() => broker.close());
  await waitFor(() => broker.logs.some((l) => l.includes('"msg":"bridge connected"')) || undefined);
  await new Promise((r) => setTimeout(r, 300)); // the bridge's SUBSCRIBE

  // CONNECT, then a PUBLISH whose topic holds a byte sequence that is not UTF-8.
  const raw = net.connect(port, "127.0.0.1");
  await new Promise((r) => raw.once("connect", r));
  raw.write(generate({ cmd: "connect", protocolId: "MQTT", protocolVersion: 4, clean: true, clientId: "raw-device", keepalive: 0 }));
  const bad = Buffer.concat([Buffer.from("plant/"), Buffer.from([0xff, 0xfe]), Buffer.from("/data")]);
  const payload = Buffer.from(JSON.stringify({ temperature: 20, humidity: 40 }));
  const header = Buffer.from([0x30, 2 + bad.length + payload.length, 0, bad.length]);
  raw.write(Buffer.concat([header, bad, payload]));
  await waitFor(() => broker.logs.some((l) => /not UTF-8/.test(l)) || undefined, 5000, "the log line");
  t.equal(broker.ingest.counters.accepted, 0, "nothing stored");

  // The bridge is still up and still bridging.
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: "p1", reconnectPeriod: 0 });
  await dev.publishAsync("plant/p1/data", JSON.stringify({ temperature: 21, humidity: 41 }), { qos: 1 });
  await waitFor(() => broker.ingest.counters.accepted === 1 || undefined, 5000, "the good sample");
  t.pass("a good sample after it is bridged");
  raw.destroy();
  await dev.endAsync();
});
