// The harness of the cluster tests, proved on two standalone nodes (no `cluster` key:
// each its own dataDir and registry, so every account is added to both): real broker
// processes (test/helpers/nodes.ts) behind a real HAProxy (test/helpers/haproxy.ts).
// XMPP and MQTT reach the nodes through HAProxy; after `kill -9` of the node holding an
// MQTT client, HAProxy marks it down within about a second, the client's reconnect and
// every new connection reach the other node, and they are logged in there.
import t from "tap";
import mqtt from "mqtt";
import { startHaproxy, type TestHaproxy } from "../helpers/haproxy.js";
import { closeNodes, startNode, type TestNode } from "../helpers/nodes.js";
import { requireTools } from "../helpers/programs.js";
import { RawClient, STREAM_OPEN } from "../helpers/raw.js";
import { RawMqtt } from "../helpers/raw-mqtt.js";
import { sleep, waitFor, withTimeout } from "../helpers/wait.js";

t.setTimeout(60_000);

const DEVICES = { dev1: "dev1 pw", probe: "probe pw" };

/** A CONNECT through `port` as `probe` answered with CONNACK 0 within `ms`. */
async function probeLogin(port: number, ms: number): Promise<boolean> {
  let c: RawMqtt | undefined;
  try {
    c = await RawMqtt.open(port);
    await c.login({ clientId: "probe", username: "probe", password: DEVICES.probe }, ms);
    return true;
  } catch {
    return false;
  } finally {
    c?.destroy();
  }
}

const nodes: TestNode[] = [];
t.teardown(() => closeNodes(nodes));
let haproxy: TestHaproxy | undefined;
t.teardown(() => haproxy?.close());

const started = Date.now();
const results = await Promise.allSettled(["a", "b"].map((name) => startNode({ xmpp: { requireTls: false }, mqtt: { tlsPort: null } }, { name })));
for (const r of results) if (r.status === "fulfilled") nodes.push(r.value);
const [a, b] = nodes;
for (const r of results) if (r.status === "rejected") t.fail(`a node did not start: ${(r.reason as Error).message}`);
if (a && b) {
  t.comment(`two nodes up in ${Date.now() - started} ms: a ${JSON.stringify(a.ports)} pid ${a.pid}, b ${JSON.stringify(b.ports)} pid ${b.pid}`);

  t.test("each node: its own process, dataDir and ports; the CLI adds the devices to each registry", async (t) => {
    t.not(a.pid, b.pid, "two processes");
    t.not(a.dataDir, b.dataDir, "two dataDirs");
    t.not(a.ports.mqtt, b.ports.mqtt, "two MQTT ports");
    for (const n of [a, b]) t.ok(n.logLines.some((l) => l.msg === "listening" && l.dataDir !== undefined), `${n.name} logged its listening line`);
    const runs = await Promise.all([a, b].flatMap((n) => Object.entries(DEVICES).map(async ([id, pw]) => ({ n, id, r: await n.cli("device", "add", id, "--type", "thermostat", "--password", pw) }))));
    for (const { n, id, r } of runs) t.equal(r.code, 0, `device add ${id} on ${n.name} (stderr: ${r.stderr.trim()})`);
  });

  t.test("HAProxy in front of both nodes: XMPP and MQTT through it; kill -9 of a node, and new connections reach the other within 2 s", async (t) => {
    if (!requireTools(t, [{ command: "/usr/sbin/haproxy", args: ["-v"], debian: "haproxy", expect: /HAProxy version/ }])) return;
    haproxy = await startHaproxy([
      // Both kinds of check: a TCP connect (xmpp), the node's GET /readyz (mqtt).
      { name: "xmpp", backends: [a.ports.xmpp, b.ports.xmpp] },
      { name: "mqtt", backends: [a.backend("mqtt"), b.backend("mqtt")] },
    ]);
    const hp = haproxy;
    for (const name of ["xmpp", "mqtt"]) for (const n of [a, b]) await hp.waitServer(name, n.ports[name as "xmpp" | "mqtt"], "UP");
    t.pass("HAProxy's health checks see every node UP");

    // XMPP: a stream opened through HAProxy gets a node's stream features.
    const x = await RawClient.connect(hp.ports.xmpp!);
    x.send(STREAM_OPEN());
    await x.expect(/<stream:features>.*<\/stream:features>/s);
    x.close();
    t.pass("an XMPP stream through HAProxy gets its features");

    // MQTT: a device logs in through HAProxy and stays connected.
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${hp.ports.mqtt}`, { clientId: "dev1", username: "dev1", password: DEVICES.dev1, reconnectPeriod: 100, connectTimeout: 2000 });
    t.teardown(() => client.endAsync(true));
    const holding = (await hp.servers("mqtt")).filter((s) => s.current === 1);
    t.equal(holding.length, 1, "exactly one node holds the MQTT session");
    const victim = holding[0]!.port === a.ports.mqtt ? a : b;
    const survivor = victim === a ? b : a;
    t.comment(`the MQTT client is on node ${victim.name}`);
    const survivorBefore = (await hp.servers("mqtt")).find((s) => s.port === survivor.ports.mqtt)!.total;

    const reconnected = new Promise<number>((resolve) => client.once("close", () => client.once("connect", () => resolve(Date.now()))));
    const victimPid = victim.pid;
    const killedAt = Date.now();
    await victim.kill("SIGKILL");
    t.throws(() => process.kill(victimPid, 0), { code: "ESRCH" }, `node ${victim.name} (pid ${victimPid}) is gone`);

    // A new connection, right after the kill: a CONNACK 0 from the other node within 2 s.
    let firstOk: number | null = null;
    while (Date.now() - killedAt < 2000) {
      if (await probeLogin(hp.ports.mqtt!, 1000)) {
        firstOk = Date.now();
        break;
      }
      await sleep(50);
    }
    t.ok(firstOk !== null, `a new MQTT login through HAProxy succeeds within 2 s of the kill (${firstOk === null ? "none" : `${firstOk - killedAt} ms`})`);

    const down = await hp.waitServer("mqtt", victim.ports.mqtt, "DOWN", Math.max(100, killedAt + 2000 - Date.now()));
    t.pass(`HAProxy marked node ${victim.name} DOWN (${Date.now() - killedAt} ms after the kill; status ${down.status})`);
    await hp.waitServer("xmpp", victim.ports.xmpp, "DOWN", 1000);
    t.pass("its XMPP port too");

    // The long-lived client's automatic reconnect lands on the survivor.
    const back = await withTimeout(reconnected, "the MQTT client's reconnect through HAProxy", 3000);
    t.ok(back - killedAt < 2500, `the MQTT client reconnected ${back - killedAt} ms after the kill`);

    // Every new connection now: logged in, and on the survivor.
    for (let i = 0; i < 5; i++) t.ok(await probeLogin(hp.ports.mqtt!, 1000), `login ${i + 1} of 5 through HAProxy after the kill`);
    // The probes' sessions end in HAProxy a moment after their sockets are destroyed.
    const s = await waitFor(async () => (await hp.servers("mqtt")).find((x) => x.port === survivor.ports.mqtt && x.current === 1), 2000, `node ${survivor.name} holding only the MQTT client`);
    t.pass(`node ${survivor.name} now holds the MQTT client`);
    t.ok(s.total >= survivorBefore + 6, `node ${survivor.name} took the reconnect and every probe (${s.total - survivorBefore} sessions)`);
    t.ok(survivor.running && !victim.running, "one node running, the killed one not");

    const x2 = await RawClient.connect(hp.ports.xmpp!);
    x2.send(STREAM_OPEN());
    await x2.expect(/<stream:features>.*<\/stream:features>/s);
    x2.close();
    t.pass("a new XMPP stream through HAProxy reaches the surviving node");
  });
}
