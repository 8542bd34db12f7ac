// Failed-login bans against a real broker, driven as an attacker would: guessers that
// give up on any answer slower than 0.3 s, bursts of concurrent guesses, one account
// guessed from many addresses, and MQTT failures that ban the same address on XMPP
// (TCP and WebSocket). Connections come from distinct loopback addresses (127.x.y.z).
import t from "tap";
import net from "node:net";
import WebSocket from "ws";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { RawClient } from "../helpers/raw.js";
import { connectPacket } from "../helpers/mqtt-bytes.js";
import { scramClient } from "../helpers/scram-client.js";

const N = 5;
const SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const accounts = [
  { name: "dev1", role: "device" as const, type: "thermostat", password: "right pw 1" },
  { name: "dev2", role: "device" as const, type: "thermostat", password: "right pw 2" },
  { name: "dev3", role: "device" as const, type: "thermostat", password: "right pw 3" },
  { name: "dev4", role: "device" as const, type: "thermostat", password: "right pw 4" },
  { name: "op1", role: "operator" as const, password: "op pw" },
  { name: "op2", role: "operator" as const, password: "op2 pw" },
];

let broker: TestBroker;
t.before(async () => {
  // 127.0.14.1 counts as behind a TLS proxy for XMPP over WebSocket, so PLAIN is offered to it.
  broker = await startTestBroker({ auth: { maxFailures: N, maxAccountFailures: N, banMs: 120_000 }, xmpp: { websocketSecureFrom: ["127.0.14.1"] } }, accounts);
});
t.teardown(() => broker.close());

/** One MQTT CONNECT from `from`; the CONNACK return code, or "gave up" after `giveUpMs`. */
function mqttAttempt(from: string, user: string, password: string, giveUpMs = 300): Promise<number | "gave up"> {
  return new Promise((resolve) => {
    const socket = net.connect({ port: broker.ports.mqtt, host: "127.0.0.1", localAddress: from });
    const timer = setTimeout(() => finish("gave up"), giveUpMs);
    let got = Buffer.alloc(0);
    function finish(result: number | "gave up"): void {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    }
    socket.on("connect", () => socket.write(connectPacket({ clientId: user, username: user, password })));
    socket.on("data", (d) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 4 && got[0] === 0x20) finish(got[3]!);
    });
    socket.on("error", () => finish("gave up"));
  });
}

/** A SCRAM-SHA-256 login over STARTTLS from `from`: the SASL answer, or "gave up". */
async function xmppAttempt(from: string, user: string, password: string, giveUpMs = 300): Promise<string> {
  const c = await RawClient.connect(broker.ports.xmpp, from);
  try {
    await c.secureStream();
    const scram = scramClient("sha256", user, password);
    c.send(`<auth xmlns='${SASL}' mechanism='SCRAM-SHA-256'>${scram.first}</auth>`);
    const first = await c.expect(/<challenge[^>]*>([^<]+)<\/challenge>|<failure[^>]*>.*?<\/failure>/s, giveUpMs).catch(() => null);
    if (!first) return "gave up";
    if (!first[1]) return first[0];
    c.send(`<response xmlns='${SASL}'>${scram.final(first[1])}</response>`);
    const answer = await c.expect(/<success[^>]*>.*?<\/success>|<success[^>]*\/>|<failure[^>]*>.*?<\/failure>/s, giveUpMs).catch(() => null);
    return answer ? answer[0] : "gave up";
  } finally {
    c.close();
  }
}

const kind = (answer: string) => (/<success/.test(answer) ? "success" : (/<failure[^>]*>\s*<([a-z-]+)/.exec(answer)?.[1] ?? answer));

t.test("an MQTT guesser that gives up after 0.3 s gets at most N+1 answers, and never the right one", async (t) => {
  const from = "127.0.10.1";
  const answers: Array<number | "gave up"> = [];
  for (let i = 0; i < 60; i++) answers.push(await mqttAttempt(from, "dev1", i === 20 ? "right pw 1" : `guess ${i}`));
  const informative = answers.filter((a) => a === 4 || a === 0);
  t.ok(informative.length <= N + 1, `answers that tell right from wrong: ${informative.length} (N = ${N})`);
  t.equal(answers[20], 5, "the right password, planted as guess 20, is refused as banned (5)");
  t.notOk(answers.includes(0), "no guess was accepted");
  t.notOk(answers.includes("gave up"), "every refusal came at once: nothing for a guesser to time");
});

t.test("an XMPP SCRAM guesser that gives up after 0.3 s gets at most N+1 answers", async (t) => {
  const from = "127.0.11.1";
  const answers: string[] = [];
  for (let i = 0; i < 20; i++) answers.push(kind(await xmppAttempt(from, "op1", i === 12 ? "op pw" : `guess ${i}`)));
  t.ok(answers.filter((a) => a === "not-authorized" || a === "success").length <= N + 1, `answers: ${answers.join(" ")}`);
  t.equal(answers[12], "temporary-auth-failure", "the right password is refused while banned");
  t.notOk(answers.includes("success"));
});

t.test("a burst of concurrent guesses from one address is bounded too", async (t) => {
  const from = "127.0.12.1";
  const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => mqttAttempt(from, "dev2", `burst ${i}`, 10_000)));
  const wrong = answers.filter((a) => a === 4).length;
  t.ok(wrong <= N, `${wrong} of 100 concurrent guesses were checked (N = ${N}); the rest refused as banned`);
  t.equal(answers.filter((a) => a === 5).length, 100 - wrong);
});

t.test("one account guessed from many addresses: banned for those addresses, not for a clean one", async (t) => {
  for (let i = 1; i <= N; i++) t.equal(await mqttAttempt(`127.0.13.${i}`, "dev3", `spread ${i}`, 10_000), 4, `address ${i}: one wrong guess`);
  t.equal(await mqttAttempt("127.0.13.1", "dev3", "right pw 3", 10_000), 5, "an address that failed is refused for the account, right password or not");
  t.equal(kind(await xmppAttempt("127.0.13.2", "dev3", "right pw 3", 10_000)), "temporary-auth-failure", "over XMPP as well");
  t.equal(await mqttAttempt("127.0.13.99", "dev3", "right pw 3", 10_000), 0, "the real device, from an address with no failures, still connects");
  t.equal(await mqttAttempt("127.0.13.1", "dev4", "right pw 4", 10_000), 0, "the failed addresses may still log in to other accounts");
});

t.test("MQTT failures ban the address on XMPP over WebSocket too; metrics and one log line per ban", async (t) => {
  const from = "127.0.14.1";
  // Unknown names count like existing ones.
  for (let i = 0; i < N; i++) t.equal(await mqttAttempt(from, `nobody-${i}`, `ws ${i}`, 10_000), 4);
  const ws = new WebSocket(`ws://127.0.0.1:${broker.ports.http}/xmpp-websocket`, "xmpp", { localAddress: from });
  const frames: string[] = [];
  ws.on("message", (d) => frames.push(String(d)));
  await new Promise((resolve, reject) => (ws.once("open", resolve), ws.once("error", reject)));
  const next = async (pattern: RegExp) => {
    for (let i = 0; i < 100; i++) {
      const found = frames.find((f) => pattern.test(f));
      if (found) return found;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no frame matching ${pattern}: ${frames.join("\n")}`);
  };
  ws.send("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>");
  await next(/<stream:features/);
  ws.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>${Buffer.from("\0op2\0op2 pw").toString("base64")}</auth>`);
  t.match(await next(/<failure|<success/), /temporary-auth-failure/, "refused over WebSocket: the counters are shared");
  ws.close();

  const bans = broker.logs.filter((l) => /"msg":"login banned"/.test(l));
  const failures = broker.logs.filter((l) => /"msg":"authentication failed"/.test(l));
  t.ok(bans.length >= 5 && bans.length <= 8, `one log line per ban (${bans.length}), not per refusal`);
  t.ok(failures.length < 40, `failures logged only until the ban (${failures.length} lines after ~200 attempts)`);
  const metrics = await (await fetch(`http://127.0.0.1:${broker.ports.http}/metrics`)).text();
  // [^}]*: a node of a cluster labels every series with its id as well.
  t.match(metrics, /switchboard_auth_bans_total\{[^}]*scope="address"[^}]*\} [1-9]/);
  t.match(metrics, /switchboard_auth_bans_total\{[^}]*scope="account"[^}]*\} [1-9]/);
  t.match(metrics, /switchboard_auth_refused_banned_total\{[^}]*protocol="mqtt"[^}]*\} [1-9]/);
  t.match(metrics, /switchboard_auth_banned\{[^}]*scope="address"[^}]*\} [1-9]/);
});
