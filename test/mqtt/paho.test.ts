// Debian's python3-paho-mqtt (a client no one here wrote; test/mqtt/paho_client.py,
// run by /usr/bin/python3) against a real broker (docs/mqtt.md): CONNACK, one
// SUBSCRIBE with a granted and a refused filter, a command, a wrong password.
// A missing Debian package is a failure, never a skip.
import t from "tap";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { JsonLineProcess } from "../helpers/line-process.js";
import { NO_SLOWDOWN, startMqttKit } from "../helpers/mqtt-kit.js";
import { PYTHON, requireTools, runProgram, spawnPython } from "../helpers/programs.js";
import { withTimeout } from "../helpers/wait.js";

const PAHO_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), "paho_client.py");

const kit = await startMqttKit(NO_SLOWDOWN);
t.teardown(() => kit.close());

t.test("Debian python3-paho-mqtt: CONNACK, one SUBSCRIBE with a granted and a refused filter, a command", async (t) => {
  if (!requireTools(t, [{ python: "paho.mqtt", debian: "python3-paho-mqtt" }])) return;

  const svc = await kit.service();
  const paho = new JsonLineProcess(
    "paho",
    spawnPython(PAHO_SCRIPT, ["127.0.0.1", String(kit.port), "dev1", "dev1", kit.pw("dev1"), "subscribe", "devices/dev1/commands/#", "devices/dev2/commands/#"]),
  );
  t.teardown(() => paho.kill());
  t.same(await paho.event("connack"), { event: "connack", rc: 0 }, "paho connected (CONNACK 0)");
  const suback = await paho.event("suback");
  t.same(suback.granted, [1, 128], "SUBACK: own commands/# granted at QoS 1, dev2's commands/# refused (0x80)");

  const command = JSON.stringify({ id: "p-1", params: { value: 21 } });
  await withTimeout(svc.c.publishAsync("devices/dev1/commands/set_setpoint", command, { qos: 1 }), "service publishes a command");
  const msg = await paho.event("message");
  t.same(msg, { event: "message", topic: "devices/dev1/commands/set_setpoint", payload: command, qos: 1 }, "paho received the command");
  // Nothing for dev2's commands reaches dev1.
  await withTimeout(svc.c.publishAsync("devices/dev2/commands/reboot", JSON.stringify({ id: "p-2", params: {} }), { qos: 1 }), "command to dev2");
  await withTimeout(paho.exited, "paho exits");
  t.equal(paho.exit?.code, 0, `paho exits 0 (stderr: ${paho.stderr.trim()})`);
  t.notOk(paho.lines.some((l) => l.event === "message" && l.topic === "devices/dev2/commands/reboot"), "dev1 never got dev2's command");

  // paho with a wrong password: refused, 4 or 5.
  const bad = await runProgram(PYTHON, [PAHO_SCRIPT, "127.0.0.1", String(kit.port), "dev1", "dev1", "wrong", "connect"]);
  const connack = bad.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as { event: string; rc?: number }).find((l) => l.event === "connack");
  t.ok(connack && (connack.rc === 4 || connack.rc === 5), `paho with a wrong password: CONNACK ${connack?.rc} (stdout ${bad.stdout.trim()})`);
  t.equal(bad.code, 1, "paho reports the refusal");
  await svc.end();
});
