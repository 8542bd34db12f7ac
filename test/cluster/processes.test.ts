// Three broker nodes as separate OS processes (test/helpers/nodes.ts: `switchboard start
// --config FILE`), a cluster on a real PostgreSQL, Redis and InfluxDB behind a real
// HAProxy (TCP mode, GET /readyz checks) in front of their XMPP and MQTT ports
// (docs/cluster.md). Accounts are added with the CLI against the shared registry.
//
// 1. The README walk-through across nodes: the CLI on node a adds alice and thermo-1,
//    alice logs in on node b and has thermo-1 in her roster, Debian's mosquitto_pub
//    publishes a sample on node a, alice sees thermo-1 come and go, node c's CLI reads
//    the sample back from InfluxDB, and a command from alice on b completes through a
//    device on c.
// 2. kill -9 of the node HAProxy gave an MQTT device: its direct device is unavailable
//    exactly once within nodeTimeoutMs + 1 s, the balanced device reconnects to a
//    survivor and is available, `cluster status` and Redis forget the dead node, and a
//    command reaches the device on its new node.
// 3. Nothing acknowledged is lost: 20 samples PUBACKed by that node while InfluxDB was
//    down, then the kill; InfluxDB back and the node restarted on its dataDir, all 20
//    reach InfluxDB.
// 4. Redis restarted: /readyz 503 within 3 s, 200 again within 5 s once it is back; an
//    XMPP device that left meanwhile is unavailable after, an MQTT device that stayed is
//    never reported unavailable.
//
// Every wait is bounded and every measured time is in the assertion's message.
import t from "tap";
import mqtt, { type MqttClient } from "mqtt";
import { xml } from "@xmpp/client";
import type { Element } from "@xmpp/xml";
import { Redis } from "ioredis";
import { migrate } from "../../src/registry/postgres-schema.js";
import { startHaproxy, type TestHaproxy } from "../helpers/haproxy.js";
import { startInflux, type TestInflux } from "../helpers/influx.js";
import { startNode, closeNodes, type TestNode } from "../helpers/nodes.js";
import { startPostgres, type TestPostgres } from "../helpers/postgres.js";
import { requireTools, runProgram } from "../helpers/programs.js";
import { startRedis, type TestRedis } from "../helpers/redis.js";
import { lines, type Run } from "../helpers/cli.js";
import { XmppSession, xmppClient } from "../helpers/xmpp-session.js";
import { sleep, waitFor, withTimeout } from "../helpers/wait.js";

// The nodes' certificates are self-signed; @xmpp/client upgrades with STARTTLS.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";

const HEARTBEAT_MS = 250;
const NODE_TIMEOUT_MS = 1500;
const NS_COMMANDS = "http://jabber.org/protocol/commands";
const NS_DATA = "jabber:x:data";
const NS_ROSTER = "jabber:iq:roster";

const PW: Record<string, string> = { alice: "alice pw", svc: "svc pw", dev1: "dev1 pw", dev2: "dev2 pw", dev3: "dev3 pw" };

const setupStarted = Date.now();
const tools = requireTools(t, [
  { command: "/usr/sbin/haproxy", args: ["-v"], debian: "haproxy", expect: /HAProxy version/ },
  { command: "mosquitto_pub", args: ["--help"], debian: "mosquitto-clients", expect: /mosquitto/ },
]);

let postgres: TestPostgres | undefined;
let influx: TestInflux | undefined;
let redis: TestRedis | undefined;
let haproxy: TestHaproxy | undefined;
const nodes: TestNode[] = [];
// One teardown, in order: the balancer, the nodes, then what they stand on.
t.teardown(async () => {
  await haproxy?.close();
  await closeNodes(nodes);
  await Promise.all([influx?.close(), redis?.close(), postgres?.close()]);
});

const services = await Promise.allSettled([startPostgres(), startInflux(), startRedis()]);
for (const s of services) if (s.status === "rejected") t.fail(`a service did not start: ${(s.reason as Error).message}`);
[postgres, influx, redis] = services.map((s) => (s.status === "fulfilled" ? s.value : undefined)) as [TestPostgres?, TestInflux?, TestRedis?];

/** The last log lines of a node worth reading when something went wrong. */
function logsOf(node: TestNode, n = 25): string {
  const shown = node.logLines.filter((l) => (typeof l.level === "number" && l.level >= 40) || /cluster|Redis|node/.test(String(l.msg)));
  return `\n--- ${node.name} (last ${n} warn/cluster lines) ---\n${shown.slice(-n).map((l) => JSON.stringify(l)).join("\n")}`;
}

/** A CLI run that must exit 0 with one JSON line on stdout; the parsed line. */
function json(r: Run, what: string): any {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code} (${r.ms} ms); stderr: ${r.stderr.trim()}; stdout: ${r.stdout.trim()}`);
  const out = lines(r.stdout);
  if (out.length !== 1) throw new Error(`${what}: expected one JSON line, got: ${r.stdout}`);
  return JSON.parse(out[0]!);
}

if (tools && postgres && influx && redis) {
  const pg = postgres;
  const tsdb = influx;
  const rd = redis;
  const url = await pg.database();
  await migrate(url);
  const nodeConfig = (nodeId: string) => ({
    cluster: { nodeId, redis: { url: rd.url }, postgres: { url }, heartbeatMs: HEARTBEAT_MS, nodeTimeoutMs: NODE_TIMEOUT_MS },
    tsdb: { kind: "influx", influx: { url: tsdb.url } },
    xmpp: { requireTls: false },
    mqtt: { tlsPort: null },
  });
  const nodesStarted = Date.now();
  const started = await Promise.allSettled(["a", "b", "c"].map((id) => startNode(nodeConfig(id), { name: id })));
  for (const r of started) if (r.status === "fulfilled") nodes.push(r.value);
  for (const r of started) if (r.status === "rejected") t.fail(`a node did not start: ${(r.reason as Error).message}`);
  if (nodes.length === 3) {
    t.comment(`services up in ${nodesStarted - setupStarted} ms, three nodes in ${Date.now() - nodesStarted} ms`);
    await run(nodes as [TestNode, TestNode, TestNode]);
  }
}

async function run([a, b, c]: [TestNode, TestNode, TestNode]): Promise<void> {
  const all = [a, b, c];
  const tsdb = influx!;
  const rd = redis!;
  const hp = (haproxy = await startHaproxy([
    { name: "xmpp", backends: all.map((n) => n.backend("xmpp")) },
    { name: "mqtt", backends: all.map((n) => n.backend("mqtt")) },
  ]));
  for (const n of all) for (const which of ["xmpp", "mqtt"] as const) await hp.waitServer(which, n.ports[which], "UP", 5000);
  // The devices of tests 2 and 3, added once on the shared registry (each through another node's CLI).
  const added = await Promise.all(["dev1", "dev2", "dev3"].map((id, i) => all[i]!.cli("device", "add", id, "--type", "thermostat", "--password", PW[id]!)));
  added.forEach((r, i) => json(r, `device add dev${i + 1}`));
  json(await c.cli("account", "add", "svc", "--role", "service", "--password", PW.svc!), "account add svc");
  t.comment(`HAProxy up, dev1-3 added; setup took ${Date.now() - setupStarted} ms`);

  /** alice (or another operator) logged in directly on `node`, with initial presence sent. */
  async function operator(t: Tap, node: TestNode, name: string, resource: string): Promise<XmppSession> {
    const client = xmppClient(node.ports.xmpp, name, PW[name]!, resource);
    const session = new XmppSession(client);
    t.teardown(() => client.stop().catch(() => {}));
    await withTimeout(client.start(), `${name}'s login on node ${node.name}`, 10_000);
    await client.send(xml("presence"));
    return session;
  }

  /** A thermostat on the mqtt package that answers set_setpoint with the value it was given. */
  async function device(t: Tap, port: number, id: string, password: string, reconnectPeriod: number, where: string, will?: { topic: string; payload: string }): Promise<MqttClient & { commands: string[] }> {
    const client = (await withTimeout(
      mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: id, username: id, password, reconnectPeriod, connectTimeout: 2000, will: will && { ...will, qos: 0, retain: false } }),
      `${id}'s MQTT connection to ${where}`,
      5000,
    )) as MqttClient & { commands: string[] };
    client.on("error", () => {});
    t.teardown(() => client.endAsync(true).catch(() => {}));
    client.commands = [];
    client.on("message", (topic, payload) => {
      if (!topic.startsWith(`devices/${id}/commands/`)) return;
      const req = JSON.parse(payload.toString()) as { id: string; params: { value?: unknown } };
      client.commands.push(topic.split("/")[3]!);
      void client.publishAsync(`devices/${id}/replies`, JSON.stringify({ id: req.id, ok: true, result: { setpoint: req.params.value } }), { qos: 1 }).catch(() => {});
    });
    await client.subscribeAsync(`devices/${id}/commands/#`, { qos: 1 });
    return client;
  }

  /** XEP-0050 set_setpoint with a submitted form (as test/cluster/nodes.test.ts); the command element of the answer. */
  async function setSetpoint(op: XmppSession, to: string, value: number): Promise<Element> {
    const form = xml(
      "x",
      { xmlns: NS_DATA, type: "submit" },
      xml("field", { var: "FORM_TYPE" }, xml("value", {}, "urn:xmpp:switchboard:command:thermostat:set_setpoint")),
      xml("field", { var: "value" }, xml("value", {}, String(value))),
    );
    let res: Element;
    try {
      res = await op.iq("set", to, xml("command", { xmlns: NS_COMMANDS, node: "set_setpoint" }, form));
    } catch (err) {
      throw new Error(`set_setpoint to ${to} failed: ${(err as Error).message} ${(err as { element?: Element }).element?.toString() ?? ""}`);
    }
    const command = res.getChild("command", NS_COMMANDS);
    if (!command) throw new Error(`no <command/> in ${res.toString()}`);
    return command;
  }
  const resultField = (command: Element, name: string) =>
    command
      .getChild("x", NS_DATA)
      ?.getChildren("field")
      .find((f) => f.attrs.var === name)
      ?.getChildText("value");

  // ---------------------------------------------------------------------------
  await t.test("README walk-through across nodes: CLI on a, alice on b, mosquitto_pub on a, telemetry from c, a command through c", async (t) => {
    const [alice, thermo] = await Promise.all([a.cli("account", "add", "alice", "--role", "operator", "--password", PW.alice!), a.cli("device", "add", "thermo-1", "--type", "thermostat")]);
    t.match(json(alice, "account add alice"), { name: "alice", jid: "alice@localhost", role: "operator" }, "account add alice --role operator");
    t.notOk("password" in json(alice, "account add alice"), "a given password is not printed");
    const th = json(thermo, "device add thermo-1");
    t.match(th, { id: "thermo-1", jid: "thermo-1@localhost", type: "thermostat", password: String }, "device add thermo-1 prints its generated password");
    const thermoPw = String(th.password);

    // alice logs in directly on node b; her roster has thermo-1 (README: within half a second).
    const op = await operator(t, b, "alice", "desk");
    const rosterAsked = Date.now();
    let items: string[] = [];
    await waitFor(
      async () => {
        const res = await withTimeout(op.c.iqCaller.request(xml("iq", { type: "get" }, xml("query", { xmlns: NS_ROSTER }))), "alice's roster", 5000);
        items = (res.getChild("query", NS_ROSTER)?.getChildren("item") ?? []).map((i) => String(i.attrs.jid));
        return items.includes("thermo-1@localhost") || undefined;
      },
      2000,
      "thermo-1 in alice's roster",
    ).catch(() => {});
    const inRoster = items.includes("thermo-1@localhost");
    t.ok(inRoster, `alice's roster on node b has thermo-1 (${Date.now() - rosterAsked} ms; items: ${items.join(", ")})${inRoster ? "" : logsOf(b)}`);

    // The device publishes with Debian's mosquitto_pub, directly to node a's MQTT port.
    const since = op.mark();
    const sample = '{"temperature":21.5,"humidity":40}';
    const published = Date.now();
    const publishedAt = performance.now();
    const pub = await runProgram("mosquitto_pub", ["-h", "127.0.0.1", "-p", String(a.ports.mqtt), "-i", "thermo-1", "-u", "thermo-1", "-P", thermoPw, "-t", "devices/thermo-1/telemetry", "-m", sample, "-q", "1"]);
    t.equal(pub.code, 0, `mosquitto_pub to node a exits 0 in ${Date.now() - published} ms (stderr: ${pub.stderr.trim()})`);
    const full = "thermo-1@localhost/mqtt";
    const up = await op.available(full, since, 5000).catch((err: Error) => (t.fail(`${err.message}${logsOf(a)}${logsOf(b)}`), null));
    const down = await op.unavailable(full, since, 5000).catch((err: Error) => (t.fail(`${err.message}${logsOf(a)}${logsOf(b)}`), null));
    if (up && down) {
      await op.settle(full, 500);
      t.same(op.states(full, since), ["available", "unavailable"], `alice on b sees thermo-1 on a come (${Math.round(up.at - publishedAt)} ms after mosquitto_pub started) and go (${Math.round(down.at - publishedAt)} ms), each once`);
    }

    // `telemetry thermo-1 --json` on node c reads the sample back from InfluxDB.
    let rows: Array<Record<string, unknown>> = [];
    let runs = 0;
    await waitFor(
      async () => {
        runs++;
        rows = json(await c.cli("telemetry", "thermo-1", "--json"), "telemetry thermo-1 --json");
        return rows.length > 0 || undefined;
      },
      10_000,
      "the sample in node c's telemetry",
    ).catch(() => {});
    t.match(rows, [{ temperature: 21.5, humidity: 40, ts: String }], `node c's CLI returns the sample from InfluxDB ${Date.now() - published} ms after the publish (${runs} runs): ${JSON.stringify(rows)}`);
    t.equal(rows.length, 1, "exactly one sample");

    // A device on node c answers a command from alice on node b.
    const mark = op.mark();
    const dev = await device(t, c.ports.mqtt, "thermo-1", thermoPw, 0, "node c");
    await op.available(full, mark, 5000);
    const asked = Date.now();
    const command = await setSetpoint(op, "thermo-1@localhost", 22.5);
    t.equal(command.attrs.status, "completed", `set_setpoint from b to thermo-1 on c: ${command.attrs.status} in ${Date.now() - asked} ms: ${command.toString()}`);
    t.equal(resultField(command, "setpoint"), "22.5", "with the device's result");
    t.same(dev.commands, ["set_setpoint"], "the device got the command once");
    await dev.endAsync();
  });

  // ---------------------------------------------------------------------------
  let victim: TestNode | undefined;
  /** Samples dev3 had PUBACKed by the victim before it was killed. */
  const acked: number[] = [];
  /** Whether test 2 left InfluxDB stopped. */
  let tsdbStopped = false;

  await t.test("kill -9 of the node HAProxy gave dev1: dev2 unavailable once within nodeTimeoutMs + 1 s, dev1 back through HAProxy, the dead node forgotten", async (t) => {
    const dev1 = await device(t, hp.ports.mqtt!, "dev1", PW.dev1!, 300, "HAProxy");
    const holding = await waitFor(async () => {
      const on = (await hp.servers("mqtt")).filter((s) => s.current > 0);
      return on.length === 1 ? on : undefined;
    }, 2000, "one node holding dev1 behind HAProxy").catch(async () => (await hp.servers("mqtt")).filter((s) => s.current > 0));
    t.equal(holding.length, 1, `exactly one node holds dev1 behind HAProxy (${JSON.stringify(await hp.servers("mqtt"))})`);
    const v = all.find((n) => n.ports.mqtt === holding[0]?.port);
    if (!v) return;
    victim = v;
    const survivors = all.filter((n) => n !== v);
    const watchNode = survivors[0]!;
    t.comment(`HAProxy sent dev1 to node ${v.name} (the victim); alice watches from node ${watchNode.name}`);

    const op = await operator(t, watchNode, "alice", "watch");
    // dev2's will: published by a surviving node once aedes counts the victim dead (3 of the cluster's heartbeats).
    const WILL = JSON.stringify({ temperature: -1, humidity: 1 });
    const dev2 = await device(t, v.ports.mqtt, "dev2", PW.dev2!, 0, `node ${v.name}`, { topic: "devices/dev2/telemetry", payload: WILL });
    const willWatcher = await withTimeout(mqtt.connectAsync(`mqtt://127.0.0.1:${watchNode.ports.mqtt}`, { clientId: "svc-will", username: "svc", password: PW.svc!, reconnectPeriod: 0 }), "a service's MQTT connection", 5000);
    t.teardown(() => willWatcher.endAsync(true).catch(() => {}));
    const willAt = new Promise<number>((resolve) => willWatcher.on("message", (_topic, payload) => payload.toString() === WILL && resolve(performance.now())));
    await willWatcher.subscribeAsync("devices/dev2/telemetry", { qos: 0 });
    const dev3 = await device(t, v.ports.mqtt, "dev3", PW.dev3!, 0, `node ${v.name}`);
    for (const id of ["dev1", "dev2", "dev3"]) await op.available(`${id}@localhost/mqtt`, 0, 5000);

    // For test 3: InfluxDB down, 20 samples accepted (PUBACKed) by the victim, which spools them.
    await tsdb.stop();
    tsdbStopped = true;
    for (let i = 0; i < 20; i++) {
      await withTimeout(dev3.publishAsync("devices/dev3/telemetry", JSON.stringify({ temperature: 10 + i / 2, humidity: 50 }), { qos: 1 }), `PUBACK of dev3's sample ${i}`, 5000);
      acked.push(10 + i / 2);
    }
    t.equal(acked.length, 20, "the victim PUBACKed 20 samples of dev3 while InfluxDB was down");

    const since = op.mark();
    const reconnected = new Promise<number>((resolve) => dev1.once("close", () => dev1.once("connect", () => resolve(performance.now()))));
    const pid = v.pid;
    const killedAt = performance.now();
    await v.kill("SIGKILL");
    t.throws(() => process.kill(pid, 0), { code: "ESRCH" }, `node ${v.name} (pid ${pid}) is gone`);

    // dev2 (reconnectPeriod 0, directly on the victim): unavailable once, within nodeTimeoutMs + 1 s.
    const bound = NODE_TIMEOUT_MS + 1000;
    const gone = await op.unavailable("dev2@localhost/mqtt", since, 10_000).catch((err: Error) => (t.fail(`${err.message}${logsOf(watchNode)}`), null));
    if (gone) t.ok(gone.at - killedAt <= bound, `alice saw dev2 unavailable ${Math.round(gone.at - killedAt)} ms after the kill (bound ${bound} ms)${gone.at - killedAt <= bound ? "" : logsOf(watchNode)}`);

    const willBound = NODE_TIMEOUT_MS + 10_000;
    const will = await withTimeout(willAt, "dev2's will, published by a surviving node", willBound).catch((err: Error) => (t.fail(err.message), null));
    if (will !== null) t.ok(true, `dev2's will reached a service on node ${watchNode.name} ${Math.round(will - killedAt)} ms after the kill`);

    // dev1 reconnects through HAProxy, to a survivor, and alice sees it available.
    const back = await withTimeout(reconnected, "dev1's reconnect through HAProxy", 10_000).catch((err: Error) => (t.fail(err.message), null));
    if (back !== null) t.comment(`dev1 reconnected through HAProxy ${Math.round(back - killedAt)} ms after the kill`);
    const dev1Full = "dev1@localhost/mqtt";
    const lastAvailable = await waitFor(() => op.states(dev1Full, since).at(-1) === "available" || undefined, 10_000, "dev1 available again").catch(() => false);
    await op.settle(dev1Full, 1000);
    await op.settle("dev2@localhost/mqtt", 500);
    const states = op.states(dev1Full, since);
    const availableAt = op.presences(dev1Full, since).at(-1)?.at;
    const endsAvailable = lastAvailable !== false && states.at(-1) === "available";
    t.ok(endsAvailable, `dev1's states since the kill end with available (${JSON.stringify(states)}; last ${availableAt === undefined ? "never" : `${Math.round(availableAt - killedAt)} ms after the kill`})${endsAvailable ? "" : logsOf(watchNode)}`);
    t.ok(states.filter((s) => s === "unavailable").length <= 1, `at most one unavailable for dev1 (${JSON.stringify(states)})`);
    t.same(op.states("dev2@localhost/mqtt", since), ["unavailable"], "dev2's unavailable exactly once");
    t.same(op.states("dev3@localhost/mqtt", since), ["unavailable"], "dev3's unavailable exactly once");
    const holdingNow = (await hp.servers("mqtt")).filter((s) => s.current > 0).map((s) => all.find((n) => n.ports.mqtt === s.port)!.name);
    t.same(holdingNow.length === 1 && holdingNow[0] !== v.name, true, `dev1 is on a survivor now (${holdingNow.join(", ")})`);

    // `cluster status` lists only the survivors; Redis holds nothing of the dead node.
    const status = json(await watchNode.cli("cluster", "status"), "cluster status");
    t.same(
      (status.nodes as Array<{ node: string }>).map((n) => n.node).sort(),
      survivors.map((n) => n.name).sort(),
      `cluster status lists only the survivors ${Math.round(performance.now() - killedAt)} ms after the kill: ${JSON.stringify(status)}`,
    );
    const r = new Redis(rd.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await r.connect();
      t.equal(await r.exists(`switchboard:sessions:${v.name}`), 0, `no switchboard:sessions:${v.name} in Redis (${JSON.stringify(await r.hgetall(`switchboard:sessions:${v.name}`))})`);
      t.equal(await r.exists(`switchboard:alive:${v.name}`), 0, `no switchboard:alive:${v.name} in Redis`);
    } finally {
      r.disconnect();
    }

    // A command from alice reaches dev1 on its new node.
    const asked = Date.now();
    const command = await setSetpoint(op, "dev1@localhost", 19);
    t.equal(command.attrs.status, "completed", `set_setpoint to dev1 on a survivor: ${command.attrs.status} in ${Date.now() - asked} ms`);
    t.equal(resultField(command, "setpoint"), "19", "with dev1's result");
    t.same(dev1.commands, ["set_setpoint"], "dev1 got it once");
  });

  // ---------------------------------------------------------------------------
  await t.test("nothing acknowledged is lost: InfluxDB back, the killed node restarted on its dataDir, all 20 samples stored", async (t) => {
    t.ok(victim && acked.length === 20, `the previous test killed a node holding 20 acknowledged samples (${acked.length})`);
    const v = victim;
    if (tsdbStopped) await tsdb.start();
    tsdbStopped = false;
    if (!v || acked.length === 0) return;
    const restarted = Date.now();
    await v.restart();
    t.comment(`node ${v.name} restarted in ${Date.now() - restarted} ms (pid ${v.pid})`);
    const q = `SELECT "temperature" FROM "thermostat" WHERE "device" = 'dev3'`;
    const stored = async () => ((await tsdb.query(q, "switchboard")).results?.[0]?.series?.[0]?.values ?? []) as Array<[number, number]>;
    let values: number[] = [];
    await waitFor(
      async () => {
        values = (await stored()).map((row) => row[1]);
        return values.length >= acked.length || undefined;
      },
      15_000,
      "dev3's 20 samples in InfluxDB",
    ).catch(() => {});
    t.same(
      [...values].sort((x, y) => x - y),
      acked,
      `all ${acked.length} acknowledged samples in InfluxDB ${Date.now() - restarted} ms after the restart began (found ${values.length})${values.length === acked.length ? "" : logsOf(v)}`,
    );
    const rows = json(await (all.find((n) => n !== v) ?? v).cli("telemetry", "dev3", "--json", "--limit", "100"), "telemetry dev3");
    t.equal(rows.length, 20, `the CLI on another node returns the 20 samples (${rows.length})`);
    await hp.waitServer("mqtt", v.ports.mqtt, "UP", 5000);
    t.pass(`HAProxy has node ${v.name} UP again`);
  });

  // ---------------------------------------------------------------------------
  await t.test("Redis restarted: /readyz 503 within 3 s and 200 within 5 s after; an XMPP device that left meanwhile is unavailable after, an MQTT device that stayed is never unavailable", async (t) => {
    const running = all.filter((n) => n.running);
    t.equal(running.length, 3, `three nodes running (${running.map((n) => n.name).join(", ")})`);
    if (running.length < 2) return;
    // alice watches from one node; the devices are on another, directly (not through HAProxy, which drains every node while Redis is away).
    const [watchNode, devNode] = running as [TestNode, TestNode];
    const readyz = async (node: TestNode) => {
      try {
        return (await fetch(`http://127.0.0.1:${node.ports.http}/readyz`, { signal: AbortSignal.timeout(1000) })).status;
      } catch {
        return 0;
      }
    };
    const op = await operator(t, watchNode, "alice", "redis");
    // alice on each other node too: a node that wrongly takes devNode for lost tells its own watchers.
    const others = await Promise.all(running.slice(2).map(async (n) => ({ node: n, op: await operator(t, n, "alice", `redis-${n.name}`) })));
    const dev1 = await device(t, devNode.ports.mqtt, "dev1", PW.dev1!, 0, `node ${devNode.name}`);
    const xdev = xmppClient(devNode.ports.xmpp, "dev2", PW.dev2!, "xmpp"); // a device that is an XMPP client
    const dev2 = new XmppSession(xdev);
    t.teardown(() => xdev.stop().catch(() => {}));
    await withTimeout(xdev.start(), `dev2's XMPP login on node ${devNode.name}`, 10_000);
    await xdev.send(xml("presence"));
    await op.available("dev1@localhost/mqtt", 0, 5000);
    await op.available("dev2@localhost/xmpp", 0, 5000);
    for (const o of others) await o.op.available("dev1@localhost/mqtt", 0, 5000);
    t.same([await readyz(watchNode), await readyz(devNode)], [200, 200], "both nodes ready before");

    const since = op.mark();
    const othersSince = others.map((o) => o.op.mark());
    const logsBefore = new Map(running.map((n) => [n, n.logLines.length]));
    const stopped = Date.now();
    const stoppedAt = performance.now();
    await rd.stop();
    const notReady = await waitFor(async () => (await readyz(devNode)) === 503 || undefined, 3000, "503").then(
      () => Date.now() - stopped,
      () => null,
    );
    t.ok(notReady !== null, `node ${devNode.name}'s /readyz answers 503 ${notReady ?? "> 3000"} ms after Redis stopped${notReady === null ? logsOf(devNode) : ""}`);
    // The node serves its own sessions meanwhile; the XMPP device then leaves, which no other node can hear of now.
    const pong = await dev2.iq("get", "localhost", xml("ping", { xmlns: "urn:xmpp:ping" })).then(
      (r) => r.attrs.type,
      (err: Error) => err.message,
    );
    t.equal(pong, "result", "node's own XMPP session served while Redis is away");
    await xdev.stop();
    await sleep(300);

    const startedAt = Date.now();
    await rd.start();
    const ready = await waitFor(async () => (await readyz(devNode)) === 200 && (await readyz(watchNode)) === 200 || undefined, 5000, "200").then(
      () => Date.now() - startedAt,
      () => null,
    );
    t.ok(ready !== null, `nodes ${devNode.name} and ${watchNode.name} answer /readyz 200 ${ready ?? "> 5000"} ms after Redis was back${ready === null ? logsOf(devNode) + logsOf(watchNode) : ""}`);
    const gone = await op.unavailable("dev2@localhost/xmpp", since, 10_000).then(
      (s) => s.at,
      () => null,
    );
    t.ok(gone !== null, `alice on ${watchNode.name} sees dev2/xmpp unavailable after the resynchronisation${gone === null ? logsOf(watchNode) : ""}`);
    // dev1 never left: no unavailable for it across the outage, on any node.
    await sleep(NODE_TIMEOUT_MS);
    await op.settle("dev1@localhost/mqtt", 500);
    for (const o of others) await o.op.settle("dev1@localhost/mqtt", 500);
    const states = op.states("dev1@localhost/mqtt", since);
    t.notOk(states.includes("unavailable"), `dev1 stayed connected to ${devNode.name}: alice on ${watchNode.name} never saw it unavailable (${JSON.stringify(states)})${states.includes("unavailable") ? logsOf(watchNode) : ""}`);
    others.forEach((o, i) => {
      const st = o.op.states("dev1@localhost/mqtt", othersSince[i]);
      const flapped = st.includes("unavailable");
      t.notOk(flapped, `alice on ${o.node.name} never saw dev1 unavailable either (${JSON.stringify(st)}${flapped ? `; unavailable ${Math.round(o.op.presences("dev1@localhost/mqtt", othersSince[i]).find((p) => p.el.attrs.type === "unavailable")!.at - stoppedAt)} ms after Redis stopped` : ""})${flapped ? logsOf(o.node) : ""}`);
    });
    t.ok(dev1.connected, "dev1 is still connected");
    // And it is still reachable from another node: a command completes.
    const asked = Date.now();
    const outcome = await setSetpoint(op, "dev1@localhost", 21).then(
      (c) => String(c.attrs.status),
      (err: Error) => err.message,
    );
    t.equal(outcome, "completed", `set_setpoint from alice on ${watchNode.name} to dev1 on ${devNode.name} after the Redis restart: ${outcome} (${Date.now() - asked} ms)`);
    // No node that stayed up is taken for lost (or restarted) because Redis was.
    const lost = running.flatMap((n) => n.logLines.slice(logsBefore.get(n)).filter((l) => /cluster: node (lost|restarted)/.test(String(l.msg))).map((l) => `${n.name}: ${JSON.stringify(l)}`));
    t.same(lost, [], `no node declared another lost across the Redis restart`);
    const upAgain = Date.now();
    await Promise.all(all.flatMap((n) => (["xmpp", "mqtt"] as const).map((w) => hp.waitServer(w, n.ports[w], "UP", 5000))));
    t.pass(`HAProxy has every node UP again (${Date.now() - upAgain} ms after the checks above)`);
  });
}

type Tap = { teardown(fn: () => unknown): void };
