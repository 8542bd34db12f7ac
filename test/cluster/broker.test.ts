// A broker on a cluster's PostgreSQL registry and Redis (docs/cluster.md), with real
// MQTT and XMPP clients: accounts added by another process log in at once; while
// PostgreSQL is down a device that logged in before reconnects, one that did not is
// told to retry (CONNACK 3, SASL temporary-auth-failure) and is not counted as a
// failed login; guesses counted by another node ban here too.
import t from "tap";
import mqtt from "mqtt";
import { createCredentials } from "../../src/auth/credentials.js";
import { openPostgresRegistry } from "../../src/registry/postgres.js";
import { startTestBroker } from "../helpers/broker.js";
import { startClusterEngines } from "../helpers/cluster-engines.js";
import { createFailureLimiter } from "../../src/auth/limiter.js";
import { shareFailures } from "../../src/auth/shared-limiter.js";
import { createLogger } from "../../src/log.js";
import { Writable } from "node:stream";
import { RawClient } from "../helpers/raw.js";
import { scramClient } from "../helpers/scram-client.js";
import { waitFor } from "../helpers/wait.js";

const SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const { postgres, redis, url, config } = await startClusterEngines();

const broker = await startTestBroker(
  { ...config("a"), xmpp: { requireTls: false } },
  [
    { name: "dev1", role: "device", type: "thermostat", password: "dev1 pw" },
    { name: "dev2", role: "device", type: "thermostat", password: "dev2 pw" },
  ],
);
t.teardown(() => broker.close());

/** The CONNACK return code of an MQTT 3.1.1 login (0 = accepted). */
async function mqttLogin(id: string, password: string): Promise<number> {
  try {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: id, username: id, password, reconnectPeriod: 0, connectTimeout: 10_000 });
    await c.endAsync();
    return 0;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

/** A SCRAM-SHA-256 login: "success" or the SASL failure condition. */
async function xmppLogin(user: string, password: string): Promise<string> {
  const c = await RawClient.connect(broker.ports.xmpp);
  try {
    c.send("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>");
    await c.expect(/<\/stream:features>/);
    const scram = scramClient("sha256", user, password);
    c.send(`<auth xmlns='${SASL}' mechanism='SCRAM-SHA-256'>${scram.first}</auth>`);
    const first = (await c.expect(/<challenge[^>]*>([^<]+)<\/challenge>|<failure[^>]*>.*?<\/failure>/s))!;
    if (!first[1]) return /<failure[^>]*>\s*<([a-z-]+)/.exec(first[0])?.[1] ?? first[0];
    c.send(`<response xmlns='${SASL}'>${scram.final(first[1])}</response>`);
    const answer = (await c.expect(/<success[^>]*>.*?<\/success>|<success[^>]*\/>|<failure[^>]*>.*?<\/failure>/s))[0];
    return /<success/.test(answer) ? "success" : (/<failure[^>]*>\s*<([a-z-]+)/.exec(answer)?.[1] ?? answer);
  } finally {
    c.close();
  }
}

t.test("an account added by another process logs in at once, over MQTT and XMPP", async (t) => {
  const cli = await openPostgresRegistry({ url });
  await cli.add({ name: "fresh", role: "device", type: "thermostat", credentials: await createCredentials("fresh pw", 4096) });
  await cli.close();
  t.equal(await mqttLogin("fresh", "fresh pw"), 0, "MQTT CONNACK 0 right after the add");
  t.equal(await xmppLogin("fresh", "fresh pw"), "success", "XMPP SCRAM-SHA-256 too");
  t.equal(await mqttLogin("fresh", "wrong"), 4, "a wrong password: CONNACK 4");
});

t.test("PostgreSQL down: known devices reconnect, others are told to retry, nothing counted as a failure; back up, all log in", async (t) => {
  t.equal(await mqttLogin("dev1", "dev1 pw"), 0, "dev1 logs in while PostgreSQL is up");
  await postgres.stop();
  t.equal(await mqttLogin("dev1", "dev1 pw"), 0, "dev1 reconnects while it is down");
  const failuresBefore = broker.mqtt.counters.authFailures;
  t.equal(await mqttLogin("dev2", "dev2 pw"), 3, "dev2, never logged in: CONNACK 3 (server unavailable)");
  t.equal(await xmppLogin("dev2", "dev2 pw"), "temporary-auth-failure", "over XMPP: temporary-auth-failure");
  t.equal(broker.mqtt.counters.authFailures, failuresBefore, "not counted as a failed login");
  t.ok(broker.logs.some((l) => l.includes("the registry cannot be reached")), "logged");
  await postgres.start();
  await waitFor(async () => (await mqttLogin("dev2", "dev2 pw")) === 0, 15_000, "dev2 logs in once PostgreSQL is back");
  t.equal(await xmppLogin("dev2", "dev2 pw"), "success");
});

t.test("guesses counted by another node ban the address here", async (t) => {
  const limits = { maxFailures: 10, maxAccountFailures: 10, windowMs: 600_000, banMs: 600_000 };
  const other = await shareFailures(createFailureLimiter(limits), { url: redis.url, ...limits, log: createLogger(new Writable({ write: (_c, _e, done) => done() })) });
  t.teardown(() => other.close());
  for (let i = 0; i < 10; i++) other.failed("127.0.0.1", `guess-${i}`);
  await waitFor(async () => (await mqttLogin("dev1", "dev1 pw")) === 5, 5000, "the right password refused here (CONNACK 5)");
  t.equal(await xmppLogin("dev1", "dev1 pw"), "temporary-auth-failure", "and over XMPP");
});
