import t from "tap";
import mqtt from "mqtt";
import type { Client } from "aedes";
import { startTestBroker } from "../helpers/broker.js";
import { waitFor } from "../helpers/wait.js";
import { memoryPersistence } from "../../bridges/mqtt/persistence-adapter.js";

// bridges/mqtt/persistence-adapter.ts answers "no stored subscription matches" without walking
// the topic trie while no persistent session has stored one; every other answer is the store's.
type ByTopic = (topic: string) => Promise<Array<{ clientId: string; topic: string; qos: number }>>;
type Change = (client: Pick<Client, "id">, subs: unknown) => Promise<void>;

t.test("memoryPersistence: the shortcut holds only while nothing is stored", async (t) => {
  const p = memoryPersistence() as unknown as { subscriptionsByTopic: ByTopic; addSubscriptions: Change; removeSubscriptions: Change; cleanSubscriptions: (c: Pick<Client, "id">) => Promise<void> };
  const svc = { id: "svc1" };
  t.same(await p.subscriptionsByTopic("devices/d1/telemetry"), [], "nothing stored: nobody");
  // Not awaited: a publish routed while the subscription is being stored asks the store.
  const adding = p.addSubscriptions(svc, [{ topic: "devices/+/telemetry", qos: 1 }]);
  t.match(await p.subscriptionsByTopic("devices/d1/telemetry"), [{ clientId: "svc1", topic: "devices/+/telemetry", qos: 1 }], "seen while being stored");
  await adding;
  t.match(await p.subscriptionsByTopic("devices/d1/telemetry"), [{ clientId: "svc1", qos: 1 }], "and once stored");
  t.same(await p.subscriptionsByTopic("other/topic"), [], "a topic it does not match");
  await p.addSubscriptions({ id: "svc2" }, [{ topic: "devices/#", qos: 1 }]);
  await p.removeSubscriptions(svc, ["devices/+/telemetry"]);
  t.match(await p.subscriptionsByTopic("devices/d1/telemetry"), [{ clientId: "svc2" }], "one removed, the other still matches");
  await p.cleanSubscriptions({ id: "svc2" });
  t.same(await p.subscriptionsByTopic("devices/d1/telemetry"), [], "all gone: nobody again");
  // QoS 0 subscriptions are stored but never queued for: the store's own answer is also nobody.
  await p.addSubscriptions(svc, [{ topic: "devices/+/telemetry", qos: 0 }]);
  t.same(await p.subscriptionsByTopic("devices/d1/telemetry"), [], "QoS 0: nothing to queue");
});

t.test("a persistent session gets the telemetry published while it was away (MQTT 3.1.1 §3.1.2.4)", async (t) => {
  const b = await startTestBroker({}, [
    { name: "svc1", role: "service", password: "p1" },
    { name: "dev1", role: "device", type: "thermostat", password: "p2" },
  ]);
  t.teardown(() => b.close());
  const url = `mqtt://127.0.0.1:${b.ports.mqtt}`;
  const service = { clientId: "svc1", username: "svc1", password: "p1", clean: false, reconnectPeriod: 0 };
  const first = await mqtt.connectAsync(url, service);
  await first.subscribeAsync("devices/+/telemetry", { qos: 1 });
  await first.endAsync();

  const dev = await mqtt.connectAsync(url, { clientId: "dev1", username: "dev1", password: "p2", reconnectPeriod: 0 });
  t.teardown(() => dev.endAsync());
  await dev.publishAsync("devices/dev1/telemetry", JSON.stringify({ temperature: 20.5, humidity: 31 }), { qos: 1 });

  const again = mqtt.connect(url, service);
  t.teardown(() => again.endAsync());
  const got = await new Promise<{ topic: string; payload: string; sessionPresent: boolean }>((resolve, reject) => {
    let sessionPresent = false;
    again.once("connect", (connack) => void (sessionPresent = connack.sessionPresent));
    again.once("message", (topic, payload) => resolve({ topic, payload: String(payload), sessionPresent }));
    again.once("error", reject);
    setTimeout(() => reject(new Error("nothing delivered within 5 s")), 5_000).unref();
  });
  t.same(got, { topic: "devices/dev1/telemetry", payload: JSON.stringify({ temperature: 20.5, humidity: 31 }), sessionPresent: true }, "queued while away, delivered on return");

  // A clean session of the same service ends the stored subscription: nothing is queued any more.
  await again.endAsync();
  const clean = await mqtt.connectAsync(url, { ...service, clean: true });
  await clean.endAsync();
  const whileAway = JSON.stringify({ temperature: 20.6, humidity: 31 });
  await dev.publishAsync("devices/dev1/telemetry", whileAway, { qos: 1 });
  // Back, it subscribes again and the device publishes once more. A message queued while
  // it was away would reach it before that one (one sender, one topic: an ordered topic,
  // [MQTT-4.6.0-6]), so receiving the later message alone shows nothing was queued.
  const back = mqtt.connect(url, service);
  t.teardown(() => back.endAsync());
  const received: string[] = [];
  back.on("message", (_topic, payload) => void received.push(String(payload)));
  await new Promise<void>((resolve, reject) => {
    back.once("connect", () => resolve());
    back.once("error", reject);
  });
  await back.subscribeAsync("devices/+/telemetry", { qos: 1 });
  const afterReturn = JSON.stringify({ temperature: 20.7, humidity: 31 });
  await dev.publishAsync("devices/dev1/telemetry", afterReturn, { qos: 1 });
  await waitFor(() => received.length > 0 || undefined, 5_000, "the message published after the return");
  t.same(received, [afterReturn], "only what was published after the return: nothing was queued while away");
});
