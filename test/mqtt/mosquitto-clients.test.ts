// Debian's mosquitto_pub and mosquitto_sub (mosquitto-clients, clients no one here
// wrote) against a real broker: over TCP, and over TLS with the broker's certificate
// as the only trust anchor (docs/mqtt.md); wrong passwords and client ids are refused
// with the CONNACK codes they expect, and an MQTT 5 client with 0x84. A missing
// Debian tool is a failure, never a skip.
import t from "tap";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { NO_SLOWDOWN, startMqttKit, telemetry, telemetryWatcher } from "../helpers/mqtt-kit.js";
import { requireTools, runProgram } from "../helpers/programs.js";
import { withTimeout } from "../helpers/wait.js";

const kit = await startMqttKit(NO_SLOWDOWN);
t.teardown(() => kit.close());

t.test("Debian mosquitto_pub / mosquitto_sub over TLS with --cafile", async (t) => {
  if (!requireTools(t, [{ command: "mosquitto_pub", args: ["--help"], debian: "mosquitto-clients" }])) return;
  const cafile = join(kit.broker.dataDir, "tls", "cert.pem");
  const tlsArgs = ["--cafile", cafile, "-h", "localhost", "-p", String(kit.broker.ports.mqttTls)];
  /** mosquitto_pub of one QoS 1 message to dev1's telemetry, as `id` with `user` and `password`. */
  const pub = (server: string[], id: string, user: string, password: string, payload: string) =>
    runProgram("mosquitto_pub", [...server, "-i", id, "-u", user, "-P", password, "-t", "devices/dev1/telemetry", "-m", payload, "-q", "1"]);

  const svc = await telemetryWatcher(kit);

  // Plain TCP first, so that a TLS problem does not hide everything else.
  const plain = telemetry(20.5);
  const tcp = await pub(["-h", "127.0.0.1", "-p", String(kit.port)], "dev1", "dev1", kit.pw("dev1"), plain);
  t.equal(tcp.code, 0, `mosquitto_pub over TCP exits 0 (stderr: ${tcp.stderr.trim()})`);
  if (tcp.code === 0) await svc.wait("mosquitto_pub's telemetry over TCP", (m) => m.topic === "devices/dev1/telemetry" && m.payload === plain);

  // mosquitto_pub, QoS 1, over TLS, verifying the broker's certificate for 'localhost'.
  const payload = telemetry(21);
  const ok = await pub(tlsArgs, "dev1", "dev1", kit.pw("dev1"), payload);
  t.equal(ok.code, 0, `mosquitto_pub over TLS exits 0 (stderr: ${ok.stderr.trim()})`);
  if (ok.code === 0) {
    await svc.wait("mosquitto_pub's telemetry at the service", (m) => m.topic === "devices/dev1/telemetry" && m.payload === payload);
    t.pass("the service subscribed with the mqtt package receives it");
  }

  // The bare JID as user name works from mosquitto_pub too.
  const payload2 = telemetry(21.25);
  const ok2 = await pub(tlsArgs, "dev1", "dev1@localhost", kit.pw("dev1"), payload2);
  t.equal(ok2.code, 0, `mosquitto_pub with the bare JID exits 0 (stderr: ${ok2.stderr.trim()})`);
  if (ok2.code === 0) await svc.wait("the second telemetry", (m) => m.payload === payload2);

  // Wrong password: refused with 4 (bad user name or password) or 5 (not authorised).
  const bad = await pub(tlsArgs, "dev1", "dev1", "wrong", telemetry(1));
  t.not(bad.code, 0, "wrong password: mosquitto_pub exits non-zero");
  t.match(bad.stderr, /not authori[sz]ed|bad user ?name or password/i, `wrong password reported: ${bad.stderr.trim()}`);

  // A client id that is not the device's id: 2 (identifier rejected) or 5.
  const wrongId = await pub(tlsArgs, "not-dev1", "dev1", kit.pw("dev1"), telemetry(1));
  t.not(wrongId.code, 0, "client id ≠ device id: mosquitto_pub exits non-zero");
  t.match(wrongId.stderr, /identifier rejected|not authori[sz]ed/i, `client id refusal reported: ${wrongId.stderr.trim()}`);
  t.notOk(svc.msgs.some((m) => m.payload === telemetry(1)), "nothing from the refused clients was delivered");

  // mosquitto_sub as a service over TLS receives a device's telemetry. Its stdout is
  // block-buffered on a pipe, so the broker itself tells when it has subscribed.
  const aedes = kit.broker.mqtt.aedes;
  const subscribed = new Promise<void>((resolve) => {
    const onSubscribe = (_subs: unknown, client: { id: string }) => {
      if (client.id !== "svc-sub") return;
      aedes.off("subscribe", onSubscribe);
      resolve();
    };
    aedes.on("subscribe", onSubscribe);
  });
  const sub = spawn("mosquitto_sub", [...tlsArgs, "-i", "svc-sub", "-u", "svc", "-P", kit.pw("svc"), "-t", "devices/+/telemetry", "-q", "1", "-v", "-d", "-C", "1", "-W", "8"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let subOut = "";
  let subErr = "";
  sub.stdout.setEncoding("utf8").on("data", (d: string) => (subOut += d));
  sub.stderr.setEncoding("utf8").on("data", (d: string) => (subErr += d));
  const subExit = new Promise<number | null>((resolve) => sub.on("close", (code) => resolve(code)));
  sub.on("error", () => {});
  t.teardown(() => void sub.kill("SIGKILL"));
  await withTimeout(
    Promise.race([subscribed, subExit.then((code) => Promise.reject(new Error(`mosquitto_sub exited (${code}) before subscribing: ${subOut} ${subErr}`)))]),
    "mosquitto_sub subscribes",
  );
  const dev = await kit.device("dev3");
  const payload3 = telemetry(19.5);
  await withTimeout(dev.c.publishAsync("devices/dev3/telemetry", payload3, { qos: 1 }), "dev3 publishes");
  t.equal(await withTimeout(subExit, "mosquitto_sub exits after one message"), 0, `mosquitto_sub exits 0 (stdout: ${subOut.trim()} stderr: ${subErr.trim()})`);
  t.match(subOut, `devices/dev3/telemetry ${payload3}`, "mosquitto_sub printed the topic and the payload");
  await dev.end();
  await svc.end();
});

t.test("an MQTT 5 CONNECT is refused with 0x84 (unsupported protocol version), and the broker goes on", async (t) => {
  if (!requireTools(t, [{ command: "mosquitto_pub", args: ["--help"], debian: "mosquitto-clients" }])) return;
  const svc = await telemetryWatcher(kit);
  const v5 = await runProgram("mosquitto_pub", ["-V", "mqttv5", "-d", "-h", "127.0.0.1", "-p", String(kit.port), "-i", "dev1", "-u", "dev1", "-P", kit.pw("dev1"), "-t", "devices/dev1/telemetry", "-m", telemetry(2), "-q", "1"]);
  t.not(v5.code, 0, "mosquitto_pub -V mqttv5 exits non-zero");
  // MQTT 5.0 §3.2.2.2: 0x84 = 132; docs/mqtt.md, "MQTT 5".
  t.match(v5.stdout + v5.stderr, /received CONNACK \(132\)/, `CONNACK 132 (output: ${(v5.stdout + v5.stderr).trim()})`);
  const v311 = await runProgram("mosquitto_pub", ["-h", "127.0.0.1", "-p", String(kit.port), "-i", "dev1", "-u", "dev1", "-P", kit.pw("dev1"), "-t", "devices/dev1/telemetry", "-m", telemetry(3), "-q", "1"]);
  t.equal(v311.code, 0, "the same device over 3.1.1 right after is accepted");
  await svc.wait("the 3.1.1 sample", (m) => m.payload === telemetry(3));
  t.notOk(svc.msgs.some((m) => m.payload === telemetry(2)), "nothing from the refused MQTT 5 client was delivered");
  await svc.end();
});
