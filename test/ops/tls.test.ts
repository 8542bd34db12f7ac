// TLS listeners as an attacker meets them: sockets that never send a ClientHello
// (MQTT over TLS) or never finish the handshake after <proceed/> (XMPP STARTTLS) are
// closed within the handshake deadline; only TLS 1.2 ECDHE AEAD suites and TLS 1.3
// are offered (checked with Node's OpenSSL and with the openssl command).
import t from "tap";
import net from "node:net";
import tls from "node:tls";
import { spawn } from "node:child_process";
import mqtt from "mqtt";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { RawClient, STREAM_OPEN } from "../helpers/raw.js";

const DEADLINE_MS = 1000;
let broker: TestBroker;
t.before(async () => {
  broker = await startTestBroker({ limits: { tlsHandshakeMs: DEADLINE_MS } }, [{ name: "dev1", role: "device", type: "thermostat", password: "pw" }]);
});
t.teardown(() => broker.close());

t.test("500 connections to the MQTT TLS port that send nothing are all closed within the deadline", async (t) => {
  const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: "dev1", username: "dev1", password: "pw", reconnectPeriod: 0 });
  t.teardown(() => device.end(true));
  const started = Date.now();
  const closedAt: number[] = [];
  const sockets = await Promise.all(
    Array.from({ length: 500 }, () => new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(broker.ports.mqttTls!, "127.0.0.1", () => resolve(s));
      s.on("error", () => {});
      s.once("error", reject);
      s.on("close", () => closedAt.push(Date.now() - started));
    })),
  );
  const deadline = Date.now() + DEADLINE_MS + 3000;
  while (closedAt.length < sockets.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.equal(closedAt.length, 500, `all 500 closed (the last after ${Math.max(...closedAt)} ms)`);
  t.ok(Math.min(...closedAt) >= DEADLINE_MS - 100, "none closed before the deadline");
  for (const s of sockets) s.destroy();
  // Connected clients were not disturbed.
  await device.publishAsync("devices/dev1/telemetry", JSON.stringify({ temperature: 20, humidity: 30 }), { qos: 1 });
  t.pass("a connected device's QoS 1 publish was acknowledged");
});

t.test("an XMPP stream that never starts its TLS handshake after <proceed/> is closed", async (t) => {
  const c = await RawClient.connect(broker.ports.xmpp);
  c.send(STREAM_OPEN());
  await c.expect(/<\/stream:features>/);
  c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  await c.expect(/<proceed/);
  const started = Date.now();
  await c.waitClosed(DEADLINE_MS + 3000);
  t.ok(Date.now() - started < DEADLINE_MS + 2000, `closed after ${Date.now() - started} ms`);
});

/** Whether a handshake with these client settings succeeds, and what was agreed. */
function handshake(port: number, options: tls.ConnectionOptions, viaStartTls: boolean): Promise<string> {
  return new Promise((resolve) => {
    const go = (socket?: net.Socket) => {
      const s = tls.connect({ host: "127.0.0.1", port, socket, rejectUnauthorized: false, servername: "localhost", ...options }, () => {
        resolve(`${s.getProtocol()} ${s.getCipher().standardName}`);
        s.destroy();
      });
      s.on("error", (err) => resolve(`refused: ${err.message.split("\n")[0]}`));
    };
    if (!viaStartTls) return go();
    const raw = net.connect(port, "127.0.0.1", () => raw.write(STREAM_OPEN()));
    let text = "";
    raw.on("data", (d) => {
      text += d;
      if (/<\/stream:features>/.test(text) && !/starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'\/>/.test(text)) {
        text = "";
        raw.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
      }
      if (/<proceed/.test(text)) {
        raw.removeAllListeners("data");
        go(raw);
      }
    });
  });
}

for (const [name, viaStartTls] of [["MQTT over TLS", false], ["XMPP STARTTLS", true]] as const) {
  t.test(`${name}: only modern suites`, async (t) => {
    const port = viaStartTls ? broker.ports.xmpp : broker.ports.mqttTls!;
    const tls12 = { minVersion: "TLSv1.2", maxVersion: "TLSv1.2" } as const;
    t.match(await handshake(port, tls12, viaStartTls), /^TLSv1\.2 TLS_ECDHE_ECDSA_WITH_(AES_\d+_GCM|CHACHA20_POLY1305)/, "TLS 1.2 agrees an ECDHE AEAD suite");
    t.match(await handshake(port, { minVersion: "TLSv1.3" }, viaStartTls), /^TLSv1\.3 /, "TLS 1.3 works");
    for (const cipher of ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES128-CCM8", "ECDHE-ECDSA-ARIA128-GCM-SHA256", "AES128-GCM-SHA256"])
      t.match(await handshake(port, { ...tls12, ciphers: cipher }, viaStartTls), /^refused/, `${cipher} is refused`);
    t.match(await handshake(port, { minVersion: "TLSv1", maxVersion: "TLSv1.1", ciphers: "DEFAULT@SECLEVEL=0" }, viaStartTls), /^refused/, "TLS 1.0 and 1.1 are refused");
  });
}

t.test("openssl s_client agrees: no CBC suite on the MQTT TLS port", async (t) => {
  // Asynchronously: the broker runs in this process and must answer meanwhile.
  const run = (cipher: string) =>
    new Promise<{ status: number | null; stdout: string }>((resolve) => {
      const p = spawn("openssl", ["s_client", "-connect", `127.0.0.1:${broker.ports.mqttTls}`, "-tls1_2", "-cipher", cipher], { stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      p.stdout.on("data", (d) => (stdout += d));
      const timer = setTimeout(() => p.kill(), 10_000);
      p.on("close", (status) => (clearTimeout(timer), resolve({ status, stdout })));
    });
  const cbc = await run("ECDHE-ECDSA-AES128-SHA");
  t.not(cbc.status, 0, "a CBC-SHA1 suite: handshake failure");
  t.notMatch(cbc.stdout, /Cipher is ECDHE/);
  const gcm = await run("ECDHE-ECDSA-AES128-GCM-SHA256");
  t.match(gcm.stdout, /Cipher is ECDHE-ECDSA-AES128-GCM-SHA256/, "an ECDHE AEAD suite: agreed");
});
