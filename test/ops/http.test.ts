// The HTTP side (docs/operations.md, Metrics; docs/deployment.md, Health and
// monitoring): health, readiness with the telemetry backlog, Prometheus metrics that
// move with what happens, and JSON errors.
import t from "tap";
import mqtt from "mqtt";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { RawClient } from "../helpers/raw.js";
import { waitFor } from "../helpers/wait.js";

let broker: TestBroker;
let base: string;
t.before(async () => {
  broker = await startTestBroker({}, [
    { name: "op1", role: "operator", password: "pw1" },
    { name: "th1", role: "device", type: "thermostat", password: "pw2" },
  ]);
  base = `http://127.0.0.1:${broker.ports.http}`;
});
t.teardown(() => broker.close());

function metric(text: string, name: string, labels = ""): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ""} `));
  return line ? Number(line.split(" ").pop()) : Number.NaN;
}

t.test("healthz, readyz, 404 and 405 as JSON", async (t) => {
  const health = await fetch(`${base}/healthz`);
  t.equal(health.status, 200);
  t.same(await health.json(), { status: "ok" });
  const ready = await fetch(`${base}/readyz`);
  t.equal(ready.status, 200);
  t.match(await ready.json(), { status: "ready", spooled: 0, storeFailing: false });
  const missing = await fetch(`${base}/nope`);
  t.equal(missing.status, 404);
  t.match(await missing.json(), { error: "not found", path: "/nope" });
  const post = await fetch(`${base}/metrics`, { method: "POST" });
  t.equal(post.status, 405);
  t.match(await post.json(), { error: "method not allowed", method: "POST" });
});

t.test("metrics move with connections, routing, telemetry, auth failures", async (t) => {
  const before = await (await fetch(`${base}/metrics`)).text();
  t.match(before, /# TYPE switchboard_connections gauge/);
  t.match(before, /switchboard_process_resident_memory_bytes \d+/);
  const op = await RawClient.connect(broker.ports.xmpp);
  await op.login("op1", "pw1");
  op.send("<presence/>");
  op.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  await op.expect(/id="p"/);
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: "th1", username: "th1", password: "pw2", reconnectPeriod: 0 });
  await dev.publishAsync("devices/th1/telemetry", JSON.stringify({ temperature: 20, humidity: 30 }), { qos: 1 });
  await dev.publishAsync("devices/th1/telemetry", "nope", { qos: 1 });
  await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: "th1", username: "th1", password: "wrong", reconnectPeriod: 0 }).catch(() => {});
  await waitFor(() => broker.drainer.state.written >= 1 || undefined);
  const text = await (await fetch(`${base}/metrics`)).text();
  t.equal(metric(text, "switchboard_connections", 'protocol="xmpp"'), 1);
  t.equal(metric(text, "switchboard_connections", 'protocol="mqtt"'), 1);
  t.equal(metric(text, "switchboard_devices_online"), 1);
  t.ok(metric(text, "switchboard_stanzas_routed_total", 'kind="iq"') >= 1);
  t.equal(metric(text, "switchboard_telemetry_accepted_total", 'source="mqtt"'), 1);
  t.equal(metric(text, "switchboard_telemetry_rejected_total", 'reason="payload is not JSON",source="mqtt"'), 1);
  t.equal(metric(text, "switchboard_store_written_samples_total"), 1);
  t.equal(metric(text, "switchboard_store_backlog_samples"), 0);
  t.equal(metric(text, "switchboard_auth_failures_total", 'protocol="mqtt"'), 1);
  t.ok(metric(text, "switchboard_store_write_seconds_count") >= 1);
  t.equal(metric(text, "switchboard_mqtt_publishes_dropped_total"), 1);
  t.equal(metric(text, "switchboard_mqtt_telemetry_tapped_total"), 2, "both samples on the telemetry path");
  op.close();
  await dev.endAsync();
});
