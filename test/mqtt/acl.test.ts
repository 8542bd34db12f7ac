// The MQTT ACL (docs/mqtt.md, Topics and ACL) against a real broker: a device
// subscribes and publishes only under its own topics, a service publishes commands and
// reads telemetry, replies and errors. A forbidden publish is dropped, counted and
// reported on the device's errors topic, a forbidden filter gets 0x80 in its SUBACK
// (MQTT 3.1.1 §3.9.3), and the connection stays up.
import t from "tap";
import { NO_SLOWDOWN, startMqttKit, stillServing, suback, telemetry, telemetryWatcher } from "../helpers/mqtt-kit.js";
import { connectPacket, publishPacket, subscribePacket } from "../helpers/mqtt-bytes.js";
import { RawMqtt } from "../helpers/raw-mqtt.js";
import { sleep, withTimeout } from "../helpers/wait.js";

const kit = await startMqttKit(NO_SLOWDOWN);
t.teardown(() => kit.close());

t.test("ACL: forbidden publishes are dropped, reported on errors, the connection stays up", async (t) => {
  const { aedes, counters } = kit.broker.mqtt;
  const svc = await telemetryWatcher(kit);
  // In-process spies on every topic, `$` topics included (a `#` filter does not match them, §4.7.2).
  const spied: string[] = [];
  const spy = (p: { topic: string }, cb: () => void) => (spied.push(p.topic), cb());
  const spyOn = (filter: string) => new Promise<void>((resolve) => aedes.subscribe(filter, spy, resolve));
  await Promise.all([spyOn("#"), spyOn("$SYS/#"), spyOn("$SYS")]);
  t.teardown(() => {
    for (const f of ["#", "$SYS/#", "$SYS"]) aedes.unsubscribe(f, spy, () => {});
  });

  const dev2 = await kit.device("dev2");
  await withTimeout(dev2.c.subscribeAsync("devices/dev2/commands/#", { qos: 1 }), "dev2 subscribes to its commands");
  const dev1 = await kit.device("dev1");

  // One SUBSCRIBE, five filters: the device's own are granted, the others get 0x80 (§3.9.3).
  const refusedBefore = counters.refusedSubscriptions;
  const granted = await suback(dev1.c, { "#": 1, "devices/dev1/commands/#": 1, "devices/+/telemetry": 1, "devices/dev1/errors": 1, "devices/dev2/commands/#": 1 });
  t.same(
    granted,
    { "#": 128, "devices/dev1/commands/#": 1, "devices/+/telemetry": 128, "devices/dev1/errors": 1, "devices/dev2/commands/#": 128 },
    "SUBACK: 0x80 for #, devices/+/telemetry and dev2's commands; own commands/# and errors granted",
  );
  t.equal(counters.refusedSubscriptions - refusedBefore, 3, "refused subscriptions are counted");

  const droppedBefore = counters.droppedPublishes;
  const forbidden = ["devices/dev2/telemetry", "$SYS/x", "devices/dev1/commands/x", "devices/dev2/commands/reboot", "devices/dev1/other", "elsewhere/x"];
  for (const topic of forbidden) {
    // QoS 1: the broker still acknowledges, the device is not disconnected.
    await withTimeout(dev1.c.publishAsync(topic, telemetry(30), { qos: 1 }), `dev1 publishes to ${topic} (PUBACK)`);
    const report = await dev1.wait(`the error report for ${topic}`, (m) => m.topic === "devices/dev1/errors" && (JSON.parse(m.payload) as { topic?: string }).topic === topic);
    const body = JSON.parse(report.payload) as { topic: string; error: string; issues: unknown[] };
    t.equal(body.topic, topic, `errors names ${topic}`);
    t.ok(typeof body.error === "string" && body.error.length > 0, `with a reason: ${body.error}`);
    t.same(body.issues, [], "and an empty issues list");
  }
  t.equal(counters.droppedPublishes - droppedBefore, forbidden.length, "every forbidden publish is counted");

  // The connection is up and works.
  await stillServing(t, dev1, svc, "dev1", 24);
  await sleep(100);
  for (const topic of forbidden) {
    t.notOk(svc.on(topic).length, `the service got nothing on ${topic}`);
    t.notOk(dev2.on(topic).length, `dev2 got nothing on ${topic}`);
    t.notOk(dev1.on(topic).length, `dev1 did not get its own ${topic} back`);
    t.notOk(spied.includes(topic), `no subscription anywhere in the broker saw ${topic}`);
  }
  t.ok(spied.includes("devices/dev1/telemetry"), "(the spy works: it saw the allowed telemetry)");

  // A service may publish commands; the subscribed device receives them, and only it.
  const command = JSON.stringify({ id: "a-1", params: {} });
  await withTimeout(svc.c.publishAsync("devices/dev1/commands/reboot", command, { qos: 1 }), "service publishes a command");
  t.equal((await dev1.wait("the service's command", (m) => m.topic === "devices/dev1/commands/reboot")).payload, command);
  t.notOk(dev2.msgs.some((m) => m.topic.startsWith("devices/dev1/")), "dev2 got none of dev1's traffic");

  // A service may not subscribe to commands (read access: telemetry, replies, errors).
  const svcGrant = await suback(svc.c, { "devices/+/commands/#": 1, "devices/+/replies": 1 });
  t.same(svcGrant, { "devices/+/commands/#": 128, "devices/+/replies": 1 }, "service: commands refused, replies granted");

  for (const p of [dev1, dev2, svc]) await p.end();
});

t.test("ACL: a publish to a wildcard topic name is dropped and reported, the connection stays up", async (t) => {
  const svc = await telemetryWatcher(kit);
  const raw = await RawMqtt.open(kit.port);
  t.teardown(() => raw.destroy());
  raw.socket.write(connectPacket({ clientId: "dev3", username: "dev3", password: kit.pw("dev3") }));
  t.equal(await raw.connack(), 0, "dev3 connected");
  raw.socket.write(subscribePacket("devices/dev3/errors"));
  await sleep(100);
  raw.received = Buffer.alloc(0);
  // The mqtt package refuses to send such a topic name (MQTT 3.1.1 §4.7.1), so the bytes go out raw.
  raw.socket.write(publishPacket("devices/+/telemetry", telemetry(30)));
  await sleep(300);
  t.notOk(raw.closed, "the connection stays up after a PUBLISH to devices/+/telemetry");
  t.match(raw.received.toString("latin1"), /devices\/dev3\/errors.*"topic":"devices\/\+\/telemetry"/s, "the refusal is reported on devices/dev3/errors");
  t.notOk(svc.msgs.some((m) => m.topic.includes("+")), "nothing delivered");
  await svc.end();
});
