// Three nodes of a cluster in one process, on a real PostgreSQL, Redis and InfluxDB
// (docs/cluster.md): presence is global, stanzas route between nodes with the RFC's
// errors, XEP-0050 commands reach a device on another node, live telemetry reaches
// subscribers on every node, a full JID bound on another node ends the first with
// <conflict/>, and `cluster status` lists the nodes. Real clients: @xmpp/client, a
// raw XMPP client and the mqtt package. (Separate processes, kill -9 and HAProxy:
// processes.test.ts.)
import t from "tap";
import mqtt, { type MqttClient } from "mqtt";
import { xml } from "@xmpp/client";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { testAccounts, passwordOf } from "../helpers/accounts.js";
import { startClusterEngines } from "../helpers/cluster-engines.js";
import { RawClient } from "../helpers/raw.js";
import { XmppSession, xmppClient } from "../helpers/xmpp-session.js";
import { spawnCli } from "../helpers/cli.js";
import { sleep, waitFor } from "../helpers/wait.js";
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// The test brokers' certificates are self-signed; @xmpp/client upgrades with STARTTLS.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
const { redis, config } = await startClusterEngines();

const ACCOUNTS = testAccounts({ op1: "operator", op2: "operator", svc: "service", dev1: "thermostat", dev2: "thermostat" });
const pw = (name: string) => passwordOf(ACCOUNTS, name);
const nodeConfig = (nodeId: string) => ({
  ...config(nodeId, { heartbeatMs: 200, nodeTimeoutMs: 1000 }),
  xmpp: { requireTls: false },
  commands: { timeoutMs: 1500 },
  auth: { verifiedCacheSize: 0 },
});

const nodes: Record<string, TestBroker> = {};
for (const id of ["a", "b", "c"]) {
  nodes[id] = await startTestBroker(nodeConfig(id), id === "a" ? ACCOUNTS : []);
}
t.teardown(async () => {
  for (const node of Object.values(nodes)) await node.close();
});
const { a, b, c } = nodes as { a: TestBroker; b: TestBroker; c: TestBroker };

async function operator(node: TestBroker, name: string, resource = "desk"): Promise<XmppSession> {
  const client = xmppClient(node.ports.xmpp, name, pw(name), resource);
  const session = new XmppSession(client);
  await client.start();
  await client.send(xml("presence"));
  return session;
}

async function mqttDevice(node: TestBroker, id: string, onCommand?: (command: string, req: { id: string; params: Record<string, unknown> }) => object | null): Promise<MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${node.ports.mqtt}`, { clientId: id, username: id, password: pw(id), reconnectPeriod: 0 });
  client.on("error", () => {});
  if (onCommand) {
    client.on("message", (topic, payload) => {
      const req = JSON.parse(payload.toString());
      const reply = onCommand(topic.split("/")[3]!, req);
      if (reply) void client.publishAsync(`devices/${id}/replies`, JSON.stringify(reply), { qos: 1 });
    });
    await client.subscribeAsync(`devices/${id}/commands/#`, { qos: 1 });
  }
  return client;
}

t.test("presence is global: a device on node a, operators on b and c; jabber:iq:last from any node", async (t) => {
  const op1 = await operator(b, "op1");
  const op2 = await operator(c, "op2");
  t.teardown(() => Promise.all([op1.c.stop(), op2.c.stop()]));
  const since = [op1.mark(), op2.mark()];
  const dev = await mqttDevice(a, "dev1");
  await op1.available("dev1@localhost/mqtt", since[0]);
  await op2.available("dev1@localhost/mqtt", since[1]);
  t.equal(await op2.lastSeconds("dev1@localhost"), 0, "online, as node c sees it");
  await dev.endAsync();
  await op1.unavailable("dev1@localhost/mqtt", since[0]);
  await op2.unavailable("dev1@localhost/mqtt", since[1]);
  await op1.settle("dev1@localhost/mqtt", 600);
  t.same(op1.states("dev1@localhost/mqtt", since[0]), ["available", "unavailable"], "each once, on b");
  t.same(op2.states("dev1@localhost/mqtt", since[1]), ["available", "unavailable"], "each once, on c");
  const seconds = await op1.lastSeconds("dev1@localhost");
  t.ok(seconds >= 0 && seconds < 5, `last seen just now, as node b sees it (${seconds} s)`);
  // An operator logging in later, on another node, learns the device's presence by probe.
  const dev2 = await mqttDevice(c, "dev2");
  const late = await operator(a, "op1", "late");
  t.teardown(() => late.c.stop());
  await late.available("dev2@localhost/mqtt");
  t.ok(late.presences("op1@localhost/desk").length > 0, "and the other resource of its own account, on node b");
  await dev2.endAsync();
});

t.test("routing between nodes: full and bare JIDs, IQs to a device's agent, errors", async (t) => {
  const op1 = await operator(b, "op1");
  const svc = await RawClient.connect(c.ports.xmpp);
  t.teardown(() => (op1.c.stop(), svc.close()));
  await svc.login("svc", pw("svc"), { resource: "r" });
  svc.send("<presence/>");
  await waitFor(() => Boolean(c.xmpp.sessions.get("op1@localhost/desk")?.presence), 5000, "node c to know op1's presence");
  const since = op1.mark();
  svc.send("<message to='op1@localhost/desk' type='chat' id='m1'><body>to the full JID</body></message>");
  await op1.waitFor("the message to the full JID", (el) => el.name === "message" && el.getChildText("body") === "to the full JID", since);
  svc.send("<message to='op1@localhost' type='chat' id='m2'><body>to the bare JID</body></message>");
  const got = await op1.waitFor("the message to the bare JID", (el) => el.name === "message" && el.getChildText("body") === "to the bare JID", since);
  t.equal(got.el.attrs.from, "svc@localhost/r", "stamped with the sender's full JID on its node");
  // An IQ answered by the device agent of node a, asked from node c.
  const dev = await mqttDevice(a, "dev1");
  await waitFor(() => Boolean(c.xmpp.sessions.get("dev1@localhost/mqtt")?.presence), 5000, "node c to know dev1");
  svc.send("<iq type='get' id='i1' to='dev1@localhost/mqtt'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
  t.match((await svc.expect(/<iq[^>]*id="i1".*?<\/iq>/s))[0], /type="result"/);
  // An IQ to a resource that is on no node: service-unavailable (RFC 6121 §8.5.3.2.1).
  svc.send("<iq type='get' id='i2' to='op1@localhost/nowhere'><ping xmlns='urn:xmpp:ping'/></iq>");
  t.match((await svc.expect(/<iq[^>]*id="i2".*?<\/iq>/s))[0], /<service-unavailable /);
  await dev.endAsync();
});

t.test("XEP-0050 commands from node b to a device on node a: completed, device error, timeout, offline", async (t) => {
  const op = await RawClient.connect(b.ports.xmpp);
  t.teardown(() => op.close());
  await op.login("op1", pw("op1"), { resource: "cmd" });
  let n = 0;
  // set_setpoint: the thermostat's command with the broker's default timeout (1.5 s here).
  const FORM = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:switchboard:command:thermostat:set_setpoint</value></field><field var='value'><value>20</value></field></x>";
  const exec = async (to = "dev1@localhost") => {
    const id = `c${++n}`;
    op.send(`<iq type='set' id='${id}' to='${to}'><command xmlns='http://jabber.org/protocol/commands' node='set_setpoint'>${FORM}</command></iq>`);
    return (await op.expect(new RegExp(`<iq[^>]*id="${id}".*?</iq>`, "s"), 8000))[0];
  };
  t.match(await exec(), /<recipient-unavailable /, "offline: connected to no node");
  let mode = "ok";
  const seen: string[] = [];
  const dev = await mqttDevice(a, "dev1", (command, req) => {
    seen.push(command);
    if (mode === "silent") return null;
    if (mode === "error") return { id: req.id, ok: false, error: "valve stuck" };
    return { id: req.id, ok: true, result: { setpoint: req.params.value } };
  });
  await waitFor(() => Boolean(b.xmpp.sessions.get("dev1@localhost/mqtt")?.presence), 5000, "node b to know dev1");
  const done = await exec();
  t.match(done, /status="completed"/, "completed through node a");
  t.match(done, /<field var="setpoint"[^>]*><value>20<\/value>/, "with the device's result");
  mode = "error";
  const err = await exec();
  t.match(err, /<undefined-condition /);
  t.match(err, /valve stuck/);
  mode = "silent";
  t.match(await exec(), /<remote-server-timeout /, "timeout kept by node b");
  t.same(seen, ["set_setpoint", "set_setpoint", "set_setpoint"], "each command delivered once");
  // Disconnecting with a command pending fails it at once, not at the timeout.
  const pending = exec();
  await waitFor(() => b.dispatcher.pending === 1 || undefined);
  const cut = Date.now();
  await dev.endAsync(true);
  t.match(await pending, /<recipient-unavailable /);
  t.ok(Date.now() - cut < 1200, "not at the timeout");
});

t.test("XEP-0050 from node b to a device that is an XMPP client on node c: its answer completes the command on b", async (t) => {
  const NS_COMMANDS = "http://jabber.org/protocol/commands";
  const client = xmppClient(c.ports.xmpp, "dev2", pw("dev2"), "fw");
  const seen: string[] = [];
  client.iqCallee.set(NS_COMMANDS, "command", (ctx) => {
    seen.push(ctx.element.attrs.node!);
    return xml("command", { xmlns: NS_COMMANDS, node: ctx.element.attrs.node, sessionid: "d1", status: "completed" });
  });
  await client.start();
  await client.send(xml("presence"));
  t.teardown(() => client.stop());
  await waitFor(() => Boolean(b.xmpp.sessions.get("dev2@localhost/fw")?.presence), 5000, "node b to know dev2/fw");
  const op = await RawClient.connect(b.ports.xmpp);
  t.teardown(() => op.close());
  await op.login("op1", pw("op1"), { resource: "xcmd" });
  op.send(`<iq type='set' id='x1' to='dev2@localhost'><command xmlns='${NS_COMMANDS}' node='reboot'/></iq>`);
  t.match((await op.expect(/<iq[^>]*id="x1".*?<\/iq>/s, 8000))[0], /status="completed"/, "completed on node b");
  t.same(seen, ["reboot"], "the device executed it once, on node c");
});

t.test("live telemetry: a sample accepted on node a reaches XMPP subscribers on b and MQTT subscribers on c", async (t) => {
  const op = await RawClient.connect(b.ports.xmpp);
  t.teardown(() => op.close());
  await op.login("op1", pw("op1"), { resource: "tel" });
  op.send("<iq type='set' id='s1' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='telemetry/dev1' jid='op1@localhost/tel'/></pubsub></iq>");
  t.match((await op.expect(/<iq[^>]*id="s1".*?<\/iq>/s))[0], /subscription="subscribed"/);
  const watcher = await mqtt.connectAsync(`mqtt://127.0.0.1:${c.ports.mqtt}`, { clientId: "svc-watch", username: "svc", password: pw("svc"), reconnectPeriod: 0 });
  t.teardown(() => watcher.endAsync());
  const mqttSeen: string[] = [];
  watcher.on("message", (_topic, payload) => mqttSeen.push(payload.toString()));
  await watcher.subscribeAsync("devices/dev1/telemetry", { qos: 0 });
  await sleep(300);
  const dev = await mqttDevice(a, "dev1");
  await dev.publishAsync("devices/dev1/telemetry", JSON.stringify({ temperature: 23.5, humidity: 40 }), { qos: 1 });
  const event = (await op.expect(/<message[^>]*from="pubsub.localhost".*?<\/message>/s, 5000))[0];
  t.match(event, /telemetry\/dev1/);
  t.match(event, /23\.5/);
  await waitFor(() => mqttSeen.length > 0 || undefined, 5000, "the sample over MQTT on node c");
  t.match(mqttSeen[0], /23\.5/);
  await sleep(300);
  t.equal(mqttSeen.length, 1, "once");
  // The sample in node b's memory as dev1's last one: a XEP-0323 momentary read-out there answers with it.
  op.send("<iq type='get' id='r1' to='dev1@localhost'><req xmlns='urn:xmpp:iot:sensordata' seqnr='1' momentary='true'/></iq>");
  t.match((await op.expect(/<message[^>]*>.*?urn:xmpp:iot:sensordata.*?<\/message>/s, 5000))[0], /value="23\.5"/, "read out on node b");
  // Each node counts what it accepted itself.
  const accepted = async (n: typeof a) => (await (await fetch(`http://127.0.0.1:${n.ports.http}/metrics`)).text()).match(/switchboard_telemetry_accepted_total\{[^}]*source="mqtt"[^}]*\} (\d+)/)?.[1];
  t.ok(Number(await accepted(a)) >= 1, "node a counts the sample it accepted");
  t.equal(await accepted(b), undefined, "node b, which only heard of it, does not");
  await dev.endAsync();
});

t.test("pubsub subscriptions are shared: a bare-JID subscription made on b notifies the account's resources on a and c once each", async (t) => {
  const onA = await RawClient.connect(a.ports.xmpp);
  const onC = await RawClient.connect(c.ports.xmpp);
  const onB = await RawClient.connect(b.ports.xmpp);
  t.teardown(() => (onA.close(), onC.close(), onB.close()));
  await onA.login("op2", pw("op2"), { resource: "pa" });
  await onC.login("op2", pw("op2"), { resource: "pc" });
  await onB.login("op2", pw("op2"), { resource: "pb-sub" });
  for (const r of [onA, onC]) r.send("<presence/>");
  await waitFor(() => Boolean(a.xmpp.sessions.get("op2@localhost/pc")?.presence && c.xmpp.sessions.get("op2@localhost/pa")?.presence), 5000, "both resources known everywhere");
  // Subscribed from node b (the subscribing resource sends no presence: it gets nothing itself).
  onB.send("<iq type='set' id='ps1' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='telemetry/dev2' jid='op2@localhost'/></pubsub></iq>");
  t.match((await onB.expect(/<iq[^>]*id="ps1".*?<\/iq>/s))[0], /subscription="subscribed"/);
  await sleep(200);
  const dev = await mqttDevice(a, "dev2");
  t.teardown(() => dev.endAsync());
  await dev.publishAsync("devices/dev2/telemetry", JSON.stringify({ temperature: 19.25, humidity: 40 }), { qos: 1 });
  for (const [name, r] of [["a", onA], ["c", onC]] as const) t.match((await r.expect(/<message[^>]*from="pubsub.localhost".*?<\/message>/s, 5000))[0], /19\.25/, `the resource on node ${name} notified`);
  await sleep(500);
  for (const [name, r] of [["a", onA], ["c", onC]] as const) t.notMatch(r.buffer, /19\.25/, `once on node ${name}`);
  // Unsubscribed from node c: gone everywhere.
  onC.send("<iq type='set' id='ps2' to='pubsub.localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><unsubscribe node='telemetry/dev2' jid='op2@localhost'/></pubsub></iq>");
  t.match((await onC.expect(/<iq[^>]*id="ps2"[^>]*>/))[0], /type="result"/);
  await sleep(200);
  await dev.publishAsync("devices/dev2/telemetry", JSON.stringify({ temperature: 19.75, humidity: 40 }), { qos: 1 });
  await sleep(800);
  for (const r of [onA, onC]) t.notMatch(r.log, /19\.75/, "no notification after the unsubscribe");
});

t.test("the same full JID bound on another node ends the first with <conflict/> (RFC 6120 §7.7.2.2)", async (t) => {
  const first = await RawClient.connect(a.ports.xmpp);
  await first.login("op2", pw("op2"), { resource: "same" });
  await waitFor(() => Boolean(c.xmpp.sessions.get("op2@localhost/same")), 5000, "node c to know the first session");
  const second = await RawClient.connect(c.ports.xmpp);
  t.teardown(() => (first.close(), second.close()));
  await second.login("op2", pw("op2"), { resource: "same" });
  t.match((await first.expect(/<conflict xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/, 5000))[0], /conflict/);
  await waitFor(() => a.xmpp.sessions.get("op2@localhost/same")?.node === "c" || undefined, 5000, "node a to route op2/same to node c");
  second.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  t.match((await second.expect(/<iq[^>]*id="p1"[^>]*>/))[0], /type="result"/, "the second session goes on");
});

t.test("the same MQTT client id connecting on another node takes over, without an unavailable/available flap for watchers", async (t) => {
  const op1 = await operator(b, "op1", "flap");
  const op2 = await operator(a, "op2", "flap");
  t.teardown(() => Promise.all([op1.c.stop(), op2.c.stop()]));
  const first = await mqttDevice(a, "dev1");
  let firstClosed = false;
  first.on("close", () => (firstClosed = true));
  await op1.available("dev1@localhost/mqtt");
  await op2.available("dev1@localhost/mqtt");
  const since = [op1.mark(), op2.mark()];
  const second = await mqttDevice(c, "dev1");
  t.teardown(() => second.endAsync());
  await waitFor(() => firstClosed || undefined, 5000, "the connection on node a closed");
  await waitFor(() => c.xmpp.sessions.get("dev1@localhost/mqtt")?.node === undefined || undefined, 5000, "node c holding dev1");
  // Past the grace period of a hand-over (presence.ts, 2 s).
  await sleep(2600);
  t.notOk(op1.states("dev1@localhost/mqtt", since[0]).includes("unavailable"), `no unavailable on node b (${op1.states("dev1@localhost/mqtt", since[0]).join(", ") || "nothing"})`);
  t.notOk(op2.states("dev1@localhost/mqtt", since[1]).includes("unavailable"), `no unavailable on node a, where the first connection was (${op2.states("dev1@localhost/mqtt", since[1]).join(", ") || "nothing"})`);
  t.equal(b.xmpp.sessions.get("dev1@localhost/mqtt")?.node, "c", "node b routes dev1 to node c");
  t.ok(b.xmpp.sessions.get("dev1@localhost/mqtt")?.presence, "available as node b sees it");
  const sinceEnd = op1.mark();
  await second.endAsync();
  await op1.unavailable("dev1@localhost/mqtt", sinceEnd);
});

t.test("a node that stops cleanly: its device is unavailable for watchers on other nodes once, and it leaves at once", async (t) => {
  const d = await startTestBroker(nodeConfig("d"));
  const op1 = await operator(b, "op1", "stop");
  t.teardown(() => op1.c.stop());
  const dev = await mqttDevice(d, "dev2");
  dev.on("error", () => {});
  await op1.available("dev2@localhost/mqtt");
  const since = op1.mark();
  const stopped = Date.now();
  await d.close();
  await op1.unavailable("dev2@localhost/mqtt", since, 3000);
  t.ok(Date.now() - stopped < 3000, `unavailable ${Date.now() - stopped} ms after the stop began, not after nodeTimeoutMs`);
  await op1.settle("dev2@localhost/mqtt", 600);
  t.same(op1.states("dev2@localhost/mqtt", since), ["unavailable"], "once");
  t.notOk(b.xmpp.sessions.get("dev2@localhost/mqtt"), "node b holds no copy of it");
  await sleep(1500); // past nodeTimeoutMs: a node that left is not then reported lost
  t.ok(b.logs.some((l) => /"msg":"cluster: node left"/.test(l) && /"node":"d"/.test(l)), `node b logs that d left ${b.logs.filter((l) => /"node":"d"/.test(l)).join(" | ")} D: ${d.logs.slice(-6).join(" | ")}`);
  t.notOk(b.logs.some((l) => /node lost/.test(l) && /"node":"d"/.test(l)), "and never that it was lost");
  await dev.endAsync(true);
});

t.test("bad input on the cluster's channels (garbage, forged or broken messages): refused, counted, nothing else disturbed", async (t) => {
  const { Redis } = await import("ioredis");
  const r = new Redis(redis.url);
  t.teardown(() => r.disconnect());
  const op1 = await operator(b, "op1", "garbage");
  t.teardown(() => op1.c.stop());
  await waitFor(() => Boolean(a.xmpp.sessions.get("op1@localhost/garbage")?.presence), 5000, "node a to know op1/garbage");
  const forged = [
    "not json at all",
    "[1,2,3]",
    JSON.stringify({ t: "d" }),
    JSON.stringify({ t: "d", n: "evil", e: "1", f: "op1@localhost/garbage", x: "<message><unclosed" }),
    JSON.stringify({ t: "b", n: "evil", e: "1", s: 1, f: "not a jid", a: "nobody", p: "xmpp", at: "soon" }),
    JSON.stringify({ t: "p", n: "evil", e: "1", s: "x", f: "op1@localhost/garbage", x: "<presence><bad" }),
    JSON.stringify({ t: "s", n: "evil", e: "1", x: null }),
    JSON.stringify({ t: "s", n: "evil", e: "1", b: [[null, "mqtt"], 7] }),
    JSON.stringify({ t: "mf+", n: "evil", e: "1", f: { not: "a filter" }, k: 1 }),
    JSON.stringify({ t: "cmd-reply", n: "evil", e: "1", i: "nope", d: "dev1", r: { id: "nope", ok: true } }),
    JSON.stringify({ t: "c", n: "evil", e: "1", f: "op1@localhost/garbage", s: "not its id", c: "conflict" }),
    JSON.stringify({ t: "sync", n: "evil", e: "1" }),
  ];
  const before = (await (await fetch(`http://127.0.0.1:${b.ports.http}/metrics`)).text()).match(/switchboard_cluster_messages_total\{[^}]*direction="refused"[^}]*\} (\d+)/)?.[1] ?? "0";
  for (const message of forged) {
    await r.publish("switchboard:all", message);
    await r.publish("switchboard:node:b", message);
  }
  await sleep(500);
  const after = (await (await fetch(`http://127.0.0.1:${b.ports.http}/metrics`)).text()).match(/switchboard_cluster_messages_total\{[^}]*direction="refused"[^}]*\} (\d+)/)?.[1] ?? "0";
  t.ok(Number(after) > Number(before), `refused messages counted on node b (${before} → ${after})`);
  // Everything still works: a message from node a's session to op1 on node b.
  const svc = await RawClient.connect(a.ports.xmpp);
  t.teardown(() => svc.close());
  await svc.login("svc", pw("svc"), { resource: "after" });
  const since = op1.mark();
  svc.send("<message to='op1@localhost/garbage' type='chat'><body>still routed</body></message>");
  await op1.waitFor("a message after the garbage", (el) => el.getChildText("body") === "still routed", since);
  t.notOk(op1.c.status === "offline", "op1's session was not closed by the forged close");
});

t.test("cluster status lists the live nodes with their counts; /metrics and the listening line carry the node id", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "sb-status-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "config.yaml");
  writeFileSync(file, JSON.stringify({ dataDir: dir, ...nodeConfig("cli") }));
  const run = await spawnCli(["cluster", "status", "--config", file]).exited;
  t.equal(run.code, 0, run.stderr);
  const status = JSON.parse(run.stdout) as { nodes: Array<{ node: string; sessions: number; heartbeat: string }> };
  t.same(status.nodes.map((n) => n.node), ["a", "b", "c"]);
  t.ok(status.nodes.every((n) => Date.now() - Date.parse(n.heartbeat) < 2000), "heartbeats are fresh");
  const metrics = await (await fetch(`http://127.0.0.1:${b.ports.http}/metrics`)).text();
  t.match(metrics, /switchboard_cluster_redis_up\{node="b"\} 1/);
  t.match(metrics, /switchboard_cluster_nodes\{node="b"\} 3/);
  t.ok(a.logs.some((l) => /"msg":"listening"/.test(l) && /"nodeId":"a"/.test(l)), "listening line with nodeId");
});

t.test("Redis restarted: nodes answer /readyz 503 meanwhile, keep their own sessions, and resynchronise presence after", async (t) => {
  const op1 = await operator(b, "op1", "watch");
  const dev2 = await operator(a, "dev2", "xmpp"); // a device that is an XMPP client
  t.teardown(() => Promise.all([op1.c.stop(), dev2.c.stop().catch(() => {})]));
  await op1.available("dev2@localhost/xmpp");
  const since = op1.mark();
  await redis.stop();
  const ready = async (node: TestBroker) => (await fetch(`http://127.0.0.1:${node.ports.http}/readyz`)).status;
  await waitFor(async () => (await ready(b)) === 503 || undefined, 5000, "node b not ready");
  const body = await (await fetch(`http://127.0.0.1:${b.ports.http}/readyz`)).json();
  t.match(body, { status: "not ready", reason: /Redis cannot be reached/, node: "b" });
  // Node a's own sessions go on: its XMPP device pings it.
  t.ok(await dev2.iq("get", "localhost", xml("ping", { xmlns: "urn:xmpp:ping" })), "a local session is served");
  // The device leaves while Redis is away: node b cannot hear of it now.
  await dev2.c.stop();
  await sleep(300);
  await redis.start();
  await waitFor(async () => (await ready(b)) === 200 || undefined, 10_000, "node b ready again");
  await op1.unavailable("dev2@localhost/xmpp", since, 10_000);
  t.ok(a.logs.some((l) => /Redis cannot be reached/.test(l)), "the outage is logged");
  await waitFor(() => b.logs.some((l) => /sessions and presence resynchronised/.test(l)), 5000, "the resynchronisation logged").catch(() => t.fail(b.logs.filter((l) => /Redis|cluster/.test(l)).join("\n")));
  const metrics = await (await fetch(`http://127.0.0.1:${b.ports.http}/metrics`)).text();
  t.match(metrics, /switchboard_cluster_redis_up\{node="b"\} 1/);
});
