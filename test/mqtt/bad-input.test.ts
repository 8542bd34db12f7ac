// Bad input at the MQTT edge (docs/mqtt.md, Limits), each case on its own against a
// real broker: a packet over mqtt.maxPacketBytes, garbage and non-CONNECT first
// packets, bad credentials, QoS 2 packets never released. Each ends only its own
// connection: a device and a service connected meanwhile keep working.
import t from "tap";
import { connectPacket, packet, publishPacket, remainingLength, subscribePacket, u16, utf8 } from "../helpers/mqtt-bytes.js";
import { NO_SLOWDOWN, startMqttKit, stillServing, telemetry, telemetryWatcher, type MqttKit, STEP_MS } from "../helpers/mqtt-kit.js";
import { RawMqtt } from "../helpers/raw-mqtt.js";
import { sleep, withTimeout } from "../helpers/wait.js";

const MAX_PACKET = 4096;

const kit = await startMqttKit({ ...NO_SLOWDOWN, mqtt: { maxPacketBytes: MAX_PACKET } });
t.teardown(() => kit.close());

t.test("a PUBLISH announcing 10 MB closes that connection before its body is buffered", async (t) => {
  const svc = await telemetryWatcher(kit);
  const other = await kit.device("dev1");
  const refusedPackets = () => Object.values(kit.broker.mqtt.counters.rejectedByVerdict).reduce((a, b) => a + b, 0);
  const rejectedBefore = refusedPackets();

  const raw = await RawMqtt.open(kit.port);
  t.teardown(() => raw.destroy());
  raw.socket.write(connectPacket({ clientId: "dev2", username: "dev2", password: kit.pw("dev2") }));
  t.equal(await raw.connack(), 0, "dev2 connected (raw CONNECT)");

  const announced = 10 * 1024 * 1024;
  const header = Buffer.concat([Buffer.from([0x30]), remainingLength(announced)]);
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const rssBefore = process.memoryUsage().rss;
  let rssMax = rssBefore;
  const started = Date.now();
  raw.socket.write(header);
  let sent = 0;
  while (!raw.closed && sent < announced && Date.now() - started < STEP_MS) {
    const more = raw.socket.write(chunk);
    sent += chunk.length;
    rssMax = Math.max(rssMax, process.memoryUsage().rss);
    // The broker runs in this process: let it read between chunks.
    await new Promise((r) => setImmediate(r));
    if (!more) {
      await new Promise<void>((resolve) => {
        const done = () => (clearTimeout(timer), raw.socket.off("drain", done), raw.socket.off("close", done), resolve());
        const timer = setTimeout(done, 1000);
        raw.socket.once("drain", done);
        raw.socket.once("close", done);
      });
    }
  }
  await raw.waitClosed(STEP_MS).catch(() => {});
  rssMax = Math.max(rssMax, process.memoryUsage().rss);
  t.ok(raw.closed, "the broker closed the connection");
  t.ok(sent < announced / 4, `it was closed long before 10 MB were sent (${(sent / 1024).toFixed(0)} KiB written)`);
  const growth = rssMax - rssBefore;
  t.ok(growth < 5 * 1024 * 1024, `the process's memory grew by less than 5 MB (${(growth / 1024 / 1024).toFixed(2)} MB)`);
  t.ok(refusedPackets() > rejectedBefore, "the refused packet is counted");

  await stillServing(t, other, svc, "dev1", 25);

  // The same through the WebSocket endpoint: an oversize packet ends only that connection.
  const ws = await kit.connect(kit.wsUrl, { clientId: "dev3", username: "dev3", password: kit.pw("dev3") });
  ws.c.publish("devices/dev3/telemetry", Buffer.alloc(MAX_PACKET * 4, 0x62), { qos: 0 });
  const deadline = Date.now() + STEP_MS;
  while (!ws.closed && Date.now() < deadline) await sleep(20);
  t.ok(ws.closed, "an oversize PUBLISH over WebSocket closes that connection");
  await stillServing(t, other, svc, "dev1", 25.5);

  // A packet just under the limit is fine.
  const big = JSON.stringify({ temperature: 20, humidity: 40 }).padEnd(MAX_PACKET - 100, " ");
  await withTimeout(other.c.publishAsync("devices/dev1/telemetry", big, { qos: 1 }), "a packet under the limit");
  t.notOk(other.closed, "a packet under maxPacketBytes is accepted");
  for (const p of [other, svc]) await p.end();
});

t.test("garbage bytes and non-CONNECT first packets close that connection only", async (t) => {
  const svc = await telemetryWatcher(kit);
  const other = await kit.device("dev1");
  const cases: Array<[string, Buffer]> = [
    ["PINGREQ first", Buffer.from([0xc0, 0x00])],
    ["PUBLISH first", publishPacket("devices/dev2/telemetry", telemetry(1))],
    ["SUBSCRIBE first", subscribePacket("#")],
    ["zero bytes", Buffer.alloc(64, 0)],
    ["0xff bytes (a malformed remaining length)", Buffer.alloc(64, 0xff)],
    ["CONNECT with another protocol name", connectPacket({ clientId: "dev2", username: "dev2", password: kit.pw("dev2"), protocol: "MQTX" })],
    ["an HTTP request", Buffer.from("GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUser-Agent: garbage\r\nAccept: */*\r\nConnection: keep-alive\r\nX-Padding: " + "x".repeat(80) + "\r\n\r\n")],
    // A "packet" of type 0 whose Remaining Length claims 2,559 bytes: closed on its first byte, not after waiting for the rest.
    ["reserved type 0, then a long claimed length", Buffer.from([0x00, 0xff, 0x13, 0x37])],
    ["PUBLISH first, its claimed length never sent", Buffer.from([0x30, 0xff, 0x13])],
  ];
  for (const [what, bytes] of cases) {
    const raw = await RawMqtt.open(kit.port);
    t.teardown(() => raw.destroy());
    raw.socket.write(bytes);
    const before = Date.now();
    await raw.waitClosed(5000);
    // [MQTT-3.1.0-1]: decided on the first byte, as Mosquitto does.
    t.ok(raw.closed && Date.now() - before < 500, `${what}: closed at once (${Date.now() - before} ms)`);
    t.notOk(raw.received.length > 0 && raw.received[0] === 0x20 && raw.received[3] === 0, `${what}: no CONNACK accepted it`);
  }
  await stillServing(t, other, svc, "dev1", 26);
  t.notOk(svc.on("devices/dev2/telemetry").length, "nothing from the garbage connections was delivered");
  for (const p of [other, svc]) await p.end();
});

t.test("bad credentials: CONNACK 4/5, client id ≠ device id: 2/5, operators: 5", async (t) => {
  const pw = kit.pw;
  // What is wrong, the CONNECT, and the return codes that say so (§3.2.2.3).
  const cases: Array<[string, Parameters<MqttKit["refusal"]>[0], number[]]> = [
    ["wrong password", { clientId: "dev1", username: "dev1", password: "wrong" }, [4, 5]],
    ["wrong password with the bare JID", { clientId: "dev1", username: "dev1@localhost", password: "wrong" }, [4, 5]],
    ["a JID of another domain", { clientId: "dev1", username: "dev1@example.com", password: pw("dev1") }, [4, 5]],
    ["unknown device", { clientId: "nosuch", username: "nosuch", password: "whatever" }, [4, 5]],
    ["no password", { clientId: "dev1", username: "dev1" }, [4, 5]],
    ["no user name", { clientId: "dev1" }, [4, 5]],
    ["client id of another device", { clientId: "dev2", username: "dev1", password: pw("dev1") }, [2, 5]],
  ];
  for (const [what, connect, allowed] of cases) {
    const code = await kit.refusal(connect);
    t.ok(allowed.includes(code), `${what}: ${code}`);
  }
  t.equal(await kit.refusal({ clientId: "op1", username: "op1", password: pw("op1") }), 5, "an operator over MQTT: 5 (not authorized)");

  // An empty client id (§3.1.3.1 lets a server assign one; here it must be the device id).
  const raw = await RawMqtt.open(kit.port);
  t.teardown(() => raw.destroy());
  raw.socket.write(connectPacket({ clientId: "", username: "dev1", password: pw("dev1") }));
  const empty = await raw.connack();
  t.ok([2, 5].includes(empty), `empty client id: ${empty}`);
  await raw.waitClosed();
  t.ok(raw.closed, "the refused connection is closed (§3.2.2.3)");

  // A service connects with its account and any client id.
  const svc = await kit.connect(kit.tcpUrl, { clientId: "backend-7", username: "svc@localhost", password: pw("svc") });
  t.ok(svc.c.connected, "a service with its bare JID connects");
  await svc.end();
});

t.test("QoS 2 PUBLISH packets never released (no PUBREL) are cut off past 100 in flight (GHSA-5jvp-3p2v-5qgf)", async (t) => {
  const svc = await telemetryWatcher(kit);
  const other = await kit.device("dev1");
  const raw = await RawMqtt.open(kit.port);
  t.teardown(() => raw.destroy());
  await raw.login({ clientId: "dev2", username: "dev2", password: kit.pw("dev2") });
  // MQTT 3.1.1 §4.3.3: each is stored until its PUBREL, which never comes.
  const qos2 = (id: number) => packet(0x34, Buffer.concat([utf8("devices/dev2/telemetry"), u16(id), Buffer.from(telemetry(20 + id / 1000))]));
  for (let id = 1; id <= 300 && !raw.closed; id++) raw.socket.write(qos2(id));
  t.ok(await raw.closedWithin(STEP_MS), "the connection is closed");
  t.ok(raw.count(5) <= 100, `at most 100 were taken in (PUBREC: ${raw.count(5)})`);
  await stillServing(t, other, svc, "dev1", 26);
  await other.end();
  await svc.end();
});
