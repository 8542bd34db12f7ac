// No secret is ever logged (docs/operations.md, Logs): every password used in logins, good and
// bad, over XMPP (PLAIN, SCRAM) and MQTT, is absent from the whole log.
import t from "tap";
import mqtt from "mqtt";
import { startTestBroker } from "../helpers/broker.js";
import { RawClient } from "../helpers/raw.js";

t.test("passwords never reach the log", async (t) => {
  const secrets = { op: "Op-S3cret-Pw!", dev: "Dev-S3cret-Pw!", wrong: "Wrong-S3cret-Pw!" };
  const broker = await startTestBroker({}, [
    { name: "op1", role: "operator", password: secrets.op },
    { name: "th1", role: "device", type: "thermostat", password: secrets.dev },
  ]);
  t.teardown(() => broker.close());
  const ok = await RawClient.connect(broker.ports.xmpp);
  await ok.login("op1", secrets.op);
  const bad = await RawClient.connect(broker.ports.xmpp);
  await bad.secureStream();
  bad.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0op1\0${secrets.wrong}`).toString("base64")}</auth>`);
  await bad.expect(/<failure/);
  const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: "th1", username: "th1", password: secrets.dev, reconnectPeriod: 0 });
  await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: "th1", username: "th1", password: secrets.wrong, reconnectPeriod: 0 }).catch(() => {});
  await dev.endAsync();
  ok.close();
  bad.close();
  await broker.close();
  const log = broker.logs.join("\n");
  t.ok(broker.logs.length > 5, `${broker.logs.length} log lines`);
  t.match(log, /authentication failed/);
  for (const secret of Object.values(secrets)) {
    t.notOk(log.includes(secret), `${secret} is not in the log`);
    t.notOk(log.includes(Buffer.from(secret).toString("base64")), "nor its base64");
  }
});
