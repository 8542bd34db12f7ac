// `switchboard/client`: commandDevice() against a real broker and a real MQTT device,
// and the runnable example from docs/ run as it is documented.
import t from "tap";
import mqtt from "mqtt";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { connectService, commandDevice, CommandError } from "../../src/client/index.js";

const run = promisify(execFile);
const ROOT = new URL("../..", import.meta.url).pathname;
let broker: TestBroker;
t.before(async () => {
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
  broker = await startTestBroker({ commands: { timeoutMs: 1000 } }, [
    { name: "backend", role: "service", password: "svc pw" },
    { name: "thermo-1", role: "device", type: "thermostat", password: "dev pw" },
  ]);
});
t.teardown(() => broker.close());

t.test("commandDevice returns the typed result or throws a typed error", async (t) => {
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: "thermo-1", username: "thermo-1", password: "dev pw", reconnectPeriod: 0 });
  dev.on("message", (_topic, payload) => {
    const req = JSON.parse(payload.toString());
    void dev.publishAsync("devices/thermo-1/replies", JSON.stringify({ id: req.id, ok: true, result: req.params.value === undefined ? {} : { setpoint: req.params.value } }));
  });
  await dev.subscribeAsync("devices/thermo-1/commands/#", { qos: 1 });
  const xmpp = await connectService({ service: `xmpp://127.0.0.1:${broker.ports.xmpp}`, domain: "localhost", username: "backend", password: "svc pw" });
  t.teardown(() => xmpp.stop());
  t.same(await commandDevice(xmpp, { device: "thermo-1", command: "set_setpoint", params: { value: 19.5 } }), { setpoint: 19.5 });
  t.same(await commandDevice(xmpp, { device: "thermo-1@localhost/mqtt", command: "reboot" }), {});
  const bad = await commandDevice(xmpp, { device: "thermo-1", command: "set_setpoint", params: { value: 99 } }).catch((e) => e);
  t.ok(bad instanceof CommandError);
  t.match(bad, { condition: "bad-request", text: /value/ });

  // The documented example, run as a user would.
  const env = { ...process.env, SB_SERVICE: `xmpp://127.0.0.1:${broker.ports.xmpp}`, SB_DOMAIN: "localhost", SB_USER: "backend", SB_PASSWORD: "svc pw", NODE_OPTIONS: "" };
  const { stdout } = await run(process.execPath, [`${ROOT}docs/examples/set-setpoint.mjs`, "thermo-1", "23"], { env, cwd: ROOT });
  t.same(JSON.parse(stdout.trim().split("\n").pop()!), { ok: true, result: { setpoint: 23 } });
  await dev.endAsync();
  const offline = await commandDevice(xmpp, { device: "thermo-1", command: "reboot" }).catch((e) => e);
  t.match(offline, { condition: "recipient-unavailable" });
});
