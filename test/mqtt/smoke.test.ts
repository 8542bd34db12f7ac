import t from "tap";
import mqtt from "mqtt";
import { startTestBroker } from "../helpers/broker.js";
import { RawClient } from "../helpers/raw.js";
import { openSqliteRegistry } from "../../src/registry/sqlite.js";
import { addAccount } from "../../src/provision.js";

t.test("smoke", async (t) => {
  const b = await startTestBroker({}, [
    { name: "op1", role: "operator", password: "pw1" },
    { name: "dev1", role: "device", type: "thermostat", password: "pw2" },
  ]);
  t.teardown(() => b.close());
  const op = await RawClient.connect(b.ports.xmpp);
  await op.login("op1", "pw1", { resource: "c" });
  op.send("<presence/>");
  await op.expect(/from="dev1@localhost"/);
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.ports.mqtt}`, { clientId: "dev1", username: "dev1", password: "pw2", reconnectPeriod: 0 });
  await op.expect(/<presence from="dev1@localhost\/mqtt" to="op1@localhost\/c"\/>/);
  op.send("<iq type='get' id='p' to='dev1@localhost/mqtt'><ping xmlns='urn:xmpp:ping'/></iq>");
  t.match((await op.expect(/<iq[^>]*id="p"[^>]*\/>/))[0], /type="result"/);
  await dev.endAsync();
  await op.expect(/<presence type="unavailable" from="dev1@localhost\/mqtt"/);
  op.close();
});

t.test("a device added by another process (the CLI) can connect at once, before the broker's next poll", async (t) => {
  const b = await startTestBroker({}, []);
  t.teardown(() => b.close());
  const cli = openSqliteRegistry({ dataDir: b.dataDir });
  t.teardown(() => cli.close());
  await addAccount(cli, { name: "fresh1", role: "device", type: "thermostat", password: "fresh pw" }, 4096);
  // No wait: the broker reads the change log when it meets a name it does not know.
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.ports.mqtt}`, { clientId: "fresh1", username: "fresh1", password: "fresh pw", reconnectPeriod: 0 });
  t.ok(dev.connected, "accepted right after it was added");
  await dev.endAsync();
  const unknown = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.ports.mqtt}`, { clientId: "nobody", username: "nobody", password: "x", reconnectPeriod: 0 }).then(() => null, (e: Error) => e);
  t.match(unknown?.message ?? "", /Bad username or password/i, "a name that really is unknown is still refused");
});

t.test("retained telemetry: an accepted sample is retained for later subscribers, a refused one never", async (t) => {
  const b = await startTestBroker({}, [
    { name: "svc1", role: "service", password: "p1" },
    { name: "dev1", role: "device", type: "thermostat", password: "p2" },
  ]);
  t.teardown(() => b.close());
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.ports.mqtt}`, { clientId: "dev1", username: "dev1", password: "p2", reconnectPeriod: 0 });
  await dev.publishAsync("devices/dev1/telemetry", JSON.stringify({ temperature: 19.5, humidity: 30 }), { qos: 1, retain: true });
  // Refused (out of range): dropped before aedes sees it, so it cannot replace the retained sample.
  await dev.publishAsync("devices/dev1/telemetry", JSON.stringify({ temperature: 999, humidity: 30 }), { qos: 1, retain: true });
  const svc = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.ports.mqtt}`, { clientId: "svc1", username: "svc1", password: "p1", reconnectPeriod: 0 });
  const got = new Promise<{ payload: string; retain: boolean }>((resolve) => svc.on("message", (_topic, payload, packet) => resolve({ payload: String(payload), retain: packet.retain })));
  await svc.subscribeAsync("devices/+/telemetry", { qos: 1 });
  t.same(await got, { payload: JSON.stringify({ temperature: 19.5, humidity: 30 }), retain: true }, "the accepted sample, flagged retained");
  await dev.endAsync();
  await svc.endAsync();
});
