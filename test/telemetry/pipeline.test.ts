// The ingest pipeline end to end with a real InfluxDB: MQTT and XMPP samples,
// validation errors back to the sender, batches, live fan-out.
import t from "tap";
import mqtt from "mqtt";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { startInflux, type TestInflux } from "../helpers/influx.js";
import { RawClient } from "../helpers/raw.js";

let influx: TestInflux;
let broker: TestBroker;
const DB = "sbtest";

t.before(async () => {
  influx = await startInflux();
  broker = await startTestBroker({ tsdb: { kind: "influx", influx: { url: influx.url, database: DB }, batchSize: 50, flushMs: 100 } }, [
    { name: "op1", role: "operator", password: "pw1" },
    { name: "svc", role: "service", password: "pw2" },
    { name: "dev1", role: "device", type: "thermostat", password: "pw3" },
    { name: "door1", role: "device", type: "door-sensor", password: "pw4" },
  ]);
});
t.teardown(async () => {
  await broker?.close();
  await influx?.close();
});

async function waitFor<T>(fn: () => Promise<T | undefined> | T | undefined, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test("MQTT telemetry is validated, stored in InfluxDB and fanned out; bad samples are reported", async (t) => {
  const service = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: "svc-1", username: "svc", password: "pw2", reconnectPeriod: 0 });
  const seen: Array<{ topic: string; payload: string }> = [];
  service.on("message", (topic, payload) => seen.push({ topic, payload: payload.toString() }));
  await service.subscribeAsync("devices/+/telemetry");
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: "dev1", username: "dev1", password: "pw3", reconnectPeriod: 0 });
  const errors: any[] = [];
  dev.on("message", (topic, payload) => topic === "devices/dev1/errors" && errors.push(JSON.parse(payload.toString())));
  await dev.subscribeAsync("devices/dev1/errors");

  await dev.publishAsync("devices/dev1/telemetry", JSON.stringify({ temperature: 21.5, humidity: 40, ts: 1_700_000_000_000 }), { qos: 1 });
  const bad: Array<[string, RegExp]> = [
    ["not json", /payload is not JSON/],
    ["[1,2]", /telemetry must be an object/],
    [JSON.stringify({ temperature: "hot", humidity: 40 }), /temperature/],
    [JSON.stringify({ temperature: 200, humidity: 40 }), /temperature/],
    [JSON.stringify({ temperature: 20, humidity: 40, colour: "red" }), /colour/],
    [JSON.stringify({ humidity: 40 }), /temperature/],
    [JSON.stringify({ temperature: 20, humidity: 40, ts: "yesterday" }), /ts/],
    [JSON.stringify({ temperature: 20, humidity: 40, ts: Date.now() + 3 * 86_400_000 }), /ts/],
  ];
  for (const [payload] of bad) await dev.publishAsync("devices/dev1/telemetry", payload, { qos: 1 });
  await waitFor(() => errors.length >= bad.length || undefined);
  bad.forEach(([payload, pattern], i) => t.match(JSON.stringify(errors[i]), pattern, `error for ${payload.slice(0, 40)}`));
  t.match(errors[2], { topic: "devices/dev1/telemetry", issues: [{ path: "temperature", message: "expected number, received string" }] });
  t.same(errors[5].issues, [{ path: "temperature", message: "required" }], "a missing key is reported as required, a wrong type as its type");
  t.match(errors[3].issues[0].message, /125/, "names the rule");
  t.same(errors[6].issues.map((i: { message: string }) => i.message), ["Invalid ISO datetime"], "a ts that is not a time is reported as that alone, not also as in the future");
  t.equal(errors[6].error, "invalid ts");
  t.match(errors[7].issues, [{ path: "ts", message: /more than one day in the future/ }]);

  await waitFor(async () => (await influx.count("thermostat", DB)) === 1 || undefined);
  const rows = await influx.query(`SELECT * FROM thermostat`, DB);
  const [time, device, humidity, temperature] = [0, 1, 2, 3].map((i) => rows.results[0].series[0].values[0][rows.results[0].series[0].columns.indexOf(["time", "device", "humidity", "temperature"][i])]);
  t.equal(device, "dev1");
  t.equal(temperature, 21.5);
  t.equal(humidity, 40);
  t.equal(Math.floor(Number(time) / 1e6), 1_700_000_000_000, "time from ts, ms precision");
  t.equal(seen.filter((m) => m.topic === "devices/dev1/telemetry").length, 1, "only the accepted sample reached the subscriber");
  t.equal(broker.ingest.counters.accepted, 1);
  await dev.endAsync();
  await service.endAsync();
});

t.test("XMPP devices publish to their pubsub node; subscribers get XEP-0335 items", async (t) => {
  const op = await RawClient.connect(broker.ports.xmpp);
  await op.login("op1", "pw1", { resource: "c" });
  op.send("<iq type='set' id='sub' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='telemetry/door1' jid='op1@localhost/c'/></pubsub></iq>");
  t.match((await op.expect(/<iq[^>]*id="sub".*?<\/iq>/s))[0], /subscription="subscribed"/);
  const door = await RawClient.connect(broker.ports.xmpp);
  await door.login("door1", "pw4", { resource: "fw" });
  door.send("<iq type='set' id='pub' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='telemetry/door1'><item><json xmlns='urn:xmpp:json:0'>{\"open\":true}</json></item></publish></pubsub></iq>");
  t.match((await door.expect(/<iq[^>]*id="pub".*?<\/iq>/s))[0], /type="result"/);
  const note = (await op.expect(/<message[^>]*from="pubsub.localhost".*?<\/message>/s))[0];
  const json = JSON.parse(/<json xmlns="urn:xmpp:json:0">(.*?)<\/json>/.exec(note)![1]!.replace(/&quot;/g, '"'));
  t.match(json, { device: "door1", open: true });
  t.ok(Date.parse(json.ts) > 0, "ts carried");
  door.send("<iq type='set' id='bad' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='telemetry/door1'><item><json xmlns='urn:xmpp:json:0'>{\"open\":\"maybe\"}</json></item></publish></pubsub></iq>");
  const err = (await door.expect(/<iq[^>]*id="bad".*?<\/iq>/s))[0];
  t.match(err, /<bad-request /);
  t.match(err, /open: /, "names the field");
  door.send("<iq type='set' id='other' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='telemetry/dev1'><item><json xmlns='urn:xmpp:json:0'>{}</json></item></publish></pubsub></iq>");
  t.match((await door.expect(/<iq[^>]*id="other".*?<\/iq>/s))[0], /<forbidden /);
  door.send("<iq type='set' id='dsub' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='telemetry' jid='door1@localhost/fw'/></pubsub></iq>");
  t.match((await door.expect(/<iq[^>]*id="dsub".*?<\/iq>/s))[0], /<forbidden /, "devices may not subscribe");
  op.send("<iq type='get' id='items' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='telemetry/door1' max_items='5'/></pubsub></iq>");
  t.match((await op.expect(/<iq[^>]*id="items".*?<\/iq>/s))[0], /<item id="\d+"><json xmlns="urn:xmpp:json:0">/);
  // The node keeps its newest 20 items (XEP-0060 §6.5.7 items retrieval): publish 45 more.
  for (let i = 0; i < 45; i++) {
    door.send(`<iq type='set' id='p${i}' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='telemetry/door1'><item><json xmlns='urn:xmpp:json:0'>{"open":${i % 2 === 0}}</json></item></publish></pubsub></iq>`);
    await door.expect(new RegExp(`<iq[^>]*id="p${i}"[^>]*type="result"|<iq[^>]*type="result"[^>]*id="p${i}"`));
  }
  op.send("<iq type='get' id='all' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='telemetry/door1'/></pubsub></iq>");
  const all = (await op.expect(/<iq[^>]*id="all".*?<\/iq>/s))[0];
  const ids = [...all.matchAll(/<item id="(\d+)"/g)].map((m) => Number(m[1]));
  t.equal(ids.length, 20, "the newest 20 items are kept");
  t.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]!), "oldest first");
  op.send("<iq type='get' id='two' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='telemetry/door1' max_items='2'/></pubsub></iq>");
  const two = [...(await op.expect(/<iq[^>]*id="two".*?<\/iq>/s))[0].matchAll(/<item id="(\d+)"/g)].map((m) => Number(m[1]));
  t.same(two, ids.slice(-2), "max_items takes the newest");
  op.send("<iq type='get' id='nodes' to='pubsub.localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
  const nodes = (await op.expect(/<iq[^>]*id="nodes".*?<\/iq>/s))[0];
  t.match(nodes, /node="telemetry"/);
  t.match(nodes, /node="telemetry\/dev1"/);
  await waitFor(async () => (await influx.count("door_sensor", DB)) === 46 || undefined);
  op.close();
  door.close();
});

t.test("XEP-0323 read-outs: momentary from the last sample, historical from InfluxDB", async (t) => {
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: "dev1", username: "dev1", password: "pw3", reconnectPeriod: 0 });
  await dev.publishAsync("devices/dev1/telemetry", JSON.stringify({ temperature: 23.25, humidity: 41, ts: 1_700_000_100_000 }), { qos: 1 });
  const op = await RawClient.connect(broker.ports.xmpp);
  await op.login("op1", "pw1", { resource: "r" });
  op.send("<iq type='get' id='m1' to='dev1@localhost/mqtt'><req xmlns='urn:xmpp:iot:sensordata' seqnr='7' momentary='true'/></iq>");
  t.match((await op.expect(/<iq[^>]*id="m1".*?<\/iq>/s))[0], /<accepted xmlns="urn:xmpp:iot:sensordata" seqnr="7"\/>/);
  const fields = (await op.expect(/<message[^>]*>.*?<\/message>/s))[0];
  t.match(fields, /from="dev1@localhost\/mqtt"/);
  t.match(fields, /<fields xmlns="urn:xmpp:iot:sensordata" seqnr="7" done="true"><node nodeId="dev1"><timestamp value="2023-11-14T22:15:00.000Z">/);
  t.match(fields, /<numeric name="temperature" automaticReadout="true" momentary="true" value="23.25" unit="°C"\/>/);
  await waitFor(async () => (await influx.count("thermostat", DB)) >= 2 || undefined);
  op.send("<iq type='get' id='h1' to='dev1@localhost'><req xmlns='urn:xmpp:iot:sensordata' seqnr='8' historical='true' from='2023-11-14T00:00:00Z' to='2023-11-15T00:00:00Z'/></iq>");
  t.match((await op.expect(/<iq[^>]*id="h1".*?<\/iq>/s))[0], /<accepted /);
  const history = (await op.expect(/<message[^>]*>.*?<\/message>/s))[0];
  t.equal((history.match(/<timestamp /g) ?? []).length, 2, "both stored samples of that day");
  t.match(history, /value="21.5"/);
  op.close();
  await dev.endAsync();
});
