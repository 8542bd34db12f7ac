// The PROXY protocol behind a load balancer (src/proxy-protocol.ts, docs/cluster.md):
// a real HAProxy with send-proxy-v2 in front of a broker with xmpp.proxyProtocol and
// mqtt.proxyProtocol (its TCP and TLS ports). The
// broker sees each client's own address, so a guesser behind the balancer is banned
// alone and everyone else behind it still logs in; a connection that skips the
// balancer (no header, a forged or broken one) is closed. Plus the parser on its own:
// versions 1 and 2, LOCAL, partial headers and bad input.
import t from "tap";
import net from "node:net";
import tls from "node:tls";
import { connectPacket } from "../helpers/mqtt-bytes.js";
import { parseProxyHeader, ProxyHeaderError } from "../../src/proxy-protocol.js";
import { startTestBroker } from "../helpers/broker.js";
import { startHaproxy } from "../helpers/haproxy.js";
import { RawClient } from "../helpers/raw.js";
import { waitFor } from "../helpers/wait.js";

const SIG = Buffer.from("0d0a0d0a000d0a515549540a", "hex");
const v2 = (cmd: number, fam: number, addr: number[]) => Buffer.concat([SIG, Buffer.from([0x20 | cmd, fam, addr.length >> 8, addr.length & 0xff]), Buffer.from(addr)]);
const IPV4 = [192, 0, 2, 7, 10, 0, 0, 1, 0x30, 0x39, 0x14, 0x66];
const IPV6 = [0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 0x05, ...Array(15).fill(0), 1, 0x30, 0x39, 0x14, 0x66];

t.test("the parser: versions 1 and 2, LOCAL, partial headers, what follows the header", async (t) => {
  t.same(parseProxyHeader(Buffer.from("PROXY TCP4 192.0.2.7 10.0.0.1 12345 5222\r\n<stream")), { header: 42, address: "192.0.2.7" });
  t.same(parseProxyHeader(Buffer.from("PROXY TCP6 2001:DB8:0:0:0:0:0:5 ::1 12345 5222\r\n")), { header: 48, address: "2001:db8::5" }, "IPv6 as Node writes it");
  t.same(parseProxyHeader(Buffer.from("PROXY UNKNOWN\r\n")), { header: 15, address: null });
  t.same(parseProxyHeader(Buffer.concat([v2(1, 0x11, IPV4), Buffer.from("rest")])), { header: 28, address: "192.0.2.7" });
  t.same(parseProxyHeader(v2(1, 0x21, IPV6)), { header: 52, address: "2001:db8::5" });
  t.same(parseProxyHeader(v2(0, 0x00, [])), { header: 16, address: null }, "LOCAL: the balancer's own connection");
  t.equal(parseProxyHeader(Buffer.from("PROXY TCP4 192.0")), "more");
  t.equal(parseProxyHeader(Buffer.from("PRO")), "more");
  t.equal(parseProxyHeader(v2(1, 0x11, IPV4).subarray(0, 20)), "more");
});

t.test("bad input: each refused with an error that says what was wrong", async (t) => {
  const cases: Array<[string, Buffer, RegExp]> = [
    ["an XMPP stream without a header", Buffer.from("<?xml version='1.0'?><stream:stream"), /did not start with a PROXY protocol header/],
    ["an MQTT CONNECT without a header", Buffer.from([0x10, 0x10, 0, 4, 0x4d, 0x51, 0x54, 0x54]), /did not start with a PROXY protocol header/],
    ["a v1 line with no end", Buffer.from(`PROXY TCP4 ${"1".repeat(120)}`), /longer than 107 bytes/],
    ["a v1 line with a bad address", Buffer.from("PROXY TCP4 999.1.1.1 10.0.0.1 1 2\r\n"), /bad PROXY v1/],
    ["a v1 line with a bad protocol", Buffer.from("PROXY UDP9 1.1.1.1 10.0.0.1 1 2\r\n"), /bad PROXY v1/],
    ["a v2 header claiming 60,000 bytes", Buffer.concat([SIG, Buffer.from([0x21, 0x11, 0xea, 0x60])]), /PROXY v2 header of 60000 bytes/],
    ["a v2 header of version 3", Buffer.concat([SIG, Buffer.from([0x31, 0x11, 0, 12]), Buffer.from(IPV4)]), /bad PROXY v2 header/],
    ["a v2 header shorter than its addresses", Buffer.concat([SIG, Buffer.from([0x21, 0x11, 0, 4, 1, 2, 3, 4])]), /bad PROXY v2 header/],
    ["a v2 header from a UNIX socket", v2(1, 0x31, Array(216).fill(0)), /without an IPv4 or IPv6 source/],
  ];
  for (const [what, bytes, error] of cases) t.throws(() => parseProxyHeader(bytes), { constructor: ProxyHeaderError, message: error }, what);
});

const broker = await startTestBroker({ xmpp: { proxyProtocol: true, requireTls: false }, mqtt: { proxyProtocol: true }, auth: { maxFailures: 3, maxAccountFailures: 100, banMs: 60_000 }, limits: { tlsHandshakeMs: 2000 } }, [
  { name: "op1", role: "operator", password: "op pw" },
  { name: "dev1", role: "device", type: "thermostat", password: "dev pw" },
]);
t.teardown(() => broker.close());
const backend = (port: number) => [{ port, readyz: broker.ports.http }];
const haproxy = await startHaproxy([
  { name: "xmpp", backends: backend(broker.ports.xmpp), sendProxy: true },
  { name: "mqtt", backends: backend(broker.ports.mqtt), sendProxy: true },
  { name: "mqtts", backends: backend(broker.ports.mqttTls!), sendProxy: true },
]);
t.teardown(() => haproxy.close());
for (const [name, port] of [["xmpp", broker.ports.xmpp], ["mqtt", broker.ports.mqtt], ["mqtts", broker.ports.mqttTls!]] as const) await haproxy.waitServer(name, port, "UP");

/** One MQTT CONNECT as dev1 through HAProxy from `from`, over TLS when `secure`: the CONNACK return code. */
function mqttLogin(from: string, password: string, secure = false): Promise<number | string> {
  return new Promise((resolve) => {
    const port = secure ? haproxy.ports.mqtts! : haproxy.ports.mqtt!;
    const tcp = net.connect({ port, host: "127.0.0.1", localAddress: from });
    const socket: net.Socket = secure ? tls.connect({ socket: tcp, rejectUnauthorized: false }) : tcp;
    const timer = setTimeout(() => finish("no CONNACK"), 5000);
    let got = Buffer.alloc(0);
    function finish(result: number | string): void {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    }
    socket.once(secure ? "secureConnect" : "connect", () => socket.write(connectPacket({ clientId: "dev1", username: "dev1", password })));
    socket.on("data", (d) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 4 && got[0] === 0x20) finish(got[3]!);
    });
    socket.on("error", (err) => finish(err.message));
    socket.on("close", () => finish("closed"));
  });
}

/** A SASL PLAIN login through HAProxy from `from` (another 127.x address): the SASL answer. */
async function login(from: string, password: string): Promise<string> {
  const c = await RawClient.connect(haproxy.ports.xmpp!, from);
  try {
    c.send("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>");
    await c.expect(/<\/stream:features>/);
    return await c.plainAuth("op1", password);
  } finally {
    c.close();
  }
}

t.test("through HAProxy (send-proxy-v2): the broker sees each client's address; a guesser is banned alone", async (t) => {
  for (let i = 0; i < 3; i++) t.match(await login("127.0.21.1", `guess ${i}`), /not-authorized/, `guess ${i + 1} from 127.0.21.1`);
  t.match(await login("127.0.21.1", "op pw"), /temporary-auth-failure/, "then 127.0.21.1 is banned, even with the right password");
  t.match(await login("127.0.21.2", "op pw"), /<success/, "another client behind the same balancer logs in");
  t.ok(broker.logs.some((l) => /"msg":"login banned"/.test(l) && /127\.0\.21\.1/.test(l)), "the ban names the client's address, not the balancer's");
  t.notOk(broker.logs.some((l) => /"msg":"login banned"/.test(l) && /"address":"127\.0\.0\.1"/.test(l)), "the balancer's address is never banned");
});

t.test("MQTT through HAProxy, plain and TLS: each client's own address; a guesser banned alone", async (t) => {
  for (let i = 0; i < 3; i++) t.equal(await mqttLogin("127.0.22.1", `guess ${i}`), 4, `guess ${i + 1} from 127.0.22.1: bad user name or password`);
  t.equal(await mqttLogin("127.0.22.1", "dev pw"), 5, "then 127.0.22.1 is banned (not authorized)");
  t.equal(await mqttLogin("127.0.22.2", "dev pw"), 0, "another client behind the balancer is accepted");
  t.equal(await mqttLogin("127.0.22.3", "dev pw", true), 0, "and over TLS, the handshake after the header");
  for (let i = 0; i < 3; i++) await mqttLogin("127.0.22.4", `tls guess ${i}`, true);
  t.equal(await mqttLogin("127.0.22.4", "dev pw", true), 5, "a guesser over TLS is banned by its own address");
  t.equal(await mqttLogin("127.0.22.5", "dev pw", true), 0, "and only it");
});

t.test("a connection that skips the balancer is closed: no header, a broken one, or none in time", async (t) => {
  const direct = async (bytes: Buffer | null, port = broker.ports.xmpp) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.on("error", () => {});
    await new Promise((resolve) => socket.once("connect", resolve));
    if (bytes) socket.write(bytes);
    let got = "";
    socket.on("data", (d) => (got += d));
    await new Promise((resolve) => socket.once("close", resolve));
    return got;
  };
  t.equal(await direct(Buffer.from("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")), "", "a plain XMPP stream: closed with nothing said");
  t.equal(await direct(Buffer.from("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3 4 5\r\n")), "", "a broken v1 line");
  t.equal(await direct(connectPacket({ clientId: "direct", username: "dev1", password: "dev pw" }), broker.ports.mqtt), "", "an MQTT CONNECT straight to the node: no CONNACK");
  t.equal(await direct(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 0, 0, 1, 0]), broker.ports.mqttTls!), "", "a ClientHello straight to the TLS port");
  const started = Date.now();
  await direct(null);
  t.ok(Date.now() - started >= 1900, `silent: closed after limits.tlsHandshakeMs, 2 s here (${Date.now() - started} ms)`);
  await waitFor(() => broker.logs.some((l) => /PROXY protocol header refused/.test(l) && /did not start with a PROXY protocol header/.test(l)), 2000, "the refusal logged with its reason");
  t.ok(broker.logs.some((l) => /no PROXY protocol header in time/.test(l)), "and the silent one");
  // A forged header from a client that reaches the node directly is a header like any
  // other: docs/cluster.md says to let only the balancer reach the nodes' ports.
});
