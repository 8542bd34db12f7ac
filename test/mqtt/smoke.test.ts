import t from "tap";
import mqtt from "mqtt";
import { startTestBroker } from "../helpers/broker.js";
import { RawClient } from "../helpers/raw.js";

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
