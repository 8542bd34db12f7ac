// Unified presence (CONTRACT §5, issue 3 points 2, 5, 6, 7): an MQTT device is an
// XMPP resource `<id>@localhost/mqtt` in every operator's roster. The operator is
// @xmpp/client (a client no one here wrote) or, where the byte order of a whole
// stream matters, a RawClient; devices are the `mqtt` package or raw sockets.
// Available within 100 ms of CONNECT; unavailable on DISCONNECT, socket loss,
// keepalive expiry and broker shutdown; no flap on takeover; XEP-0012, disco,
// ping and XEP-0203 delays; two resources for a device on both protocols; the
// right final state after 100 reconnects.
import t from "tap";
import net from "node:net";
import { rmSync } from "node:fs";
import { client, xml, type Client } from "@xmpp/client";
import type { Element } from "@xmpp/xml";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { startTestBroker, type TestBroker, type TestAccount } from "../helpers/broker.js";
import { RawClient } from "../helpers/raw.js";
import { connectPacket } from "../helpers/mqtt-bytes.js";
import { addAccount } from "../../src/provision.js";
import { openSqliteRegistry } from "../../src/registry/sqlite.js";

/** The bound of every single wait. */
const STEP_MS = 10_000;
const NS_LAST = "jabber:iq:last";
const NS_PING = "urn:xmpp:ping";
const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";
const NS_DELAY = "urn:xmpp:delay";

const accounts: TestAccount[] = [
  { name: "op1", role: "operator", password: "op pw" },
  { name: "op2", role: "operator", password: "op2 pw" },
  ...["dev1", "dev2", "dev3", "dev4", "dev5", "dev6", "dev7"].map((name) => ({ name, role: "device" as const, type: "thermostat", password: `${name} pw` })),
];
const pw = (name: string) => accounts.find((a) => a.name === name)!.password;
const devices = accounts.filter((a) => a.role === "device").map((a) => a.name);

let broker: TestBroker;
const mqttClients: MqttClient[] = [];
const xmppClients: Client[] = [];
const sockets: Array<{ destroy(): void }> = [];
t.before(async () => {
  // The generated certificate is self-signed; this test process trusts it blindly.
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
  // Every login pays its PBKDF2 here: "a refused or dead takeover attempt" needs the
  // window between a CONNECT and its verdict, which a remembered password closes
  // (test/unit/verified-cache.test.ts covers the cache; the bench measures both).
  broker = await startTestBroker({ auth: { verifiedCacheSize: 0 } }, accounts);
});
t.teardown(async () => {
  for (const c of mqttClients) c.end(true);
  for (const s of sockets) s.destroy();
  for (const c of xmppClients) await withTimeout(c.stop(), "@xmpp/client stop", 5000).catch(() => {});
  await broker.close();
});

// ---------------------------------------------------------------- helpers

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function withTimeout<T>(p: Promise<T>, what: string, ms = STEP_MS): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    p.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (e: unknown) => (clearTimeout(timer), reject(e)),
    );
  });
}

interface Seen {
  el: Element;
  at: number;
}

/** An @xmpp/client operator session that records every stanza with its arrival time. */
class Operator {
  readonly seen: Seen[] = [];
  private waiters: Array<() => void> = [];
  constructor(readonly c: Client) {
    c.on("stanza", (el: Element) => {
      this.seen.push({ el, at: performance.now() });
      for (const w of this.waiters.splice(0)) w();
    });
  }
  get jid(): string {
    return String(this.c.jid);
  }
  mark(): number {
    return this.seen.length;
  }
  /** Presence stanzas from `from` received since `since`. */
  presences(from: string, since = 0): Seen[] {
    return this.seen.slice(since).filter((s) => s.el.name === "presence" && s.el.attrs.from === from);
  }
  async waitFor(what: string, match: (el: Element) => boolean, since = 0, ms = STEP_MS): Promise<Seen> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.seen.slice(since).find((s) => match(s.el));
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`timed out after ${ms} ms waiting for ${what}; received since: ${this.seen.slice(since).map((s) => s.el.toString()).join("\n").slice(-3000)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
  available(full: string, since = 0, ms = STEP_MS): Promise<Seen> {
    return this.waitFor(`available presence from ${full}`, (el) => isPresence(el, full, "available"), since, ms);
  }
  unavailable(full: string, since = 0, ms = STEP_MS): Promise<Seen> {
    return this.waitFor(`unavailable presence from ${full}`, (el) => isPresence(el, full, "unavailable"), since, ms);
  }
  /** Waits until no presence from `from` has arrived for `quietMs` since this call or the last one (bounded). */
  async settle(from: string, quietMs = 500, ms = STEP_MS): Promise<void> {
    const deadline = Date.now() + ms;
    const start = performance.now();
    for (;;) {
      const last = Math.max(start, this.presences(from).at(-1)?.at ?? 0);
      const quiet = performance.now() - last;
      if (quiet >= quietMs) return;
      if (Date.now() > deadline) throw new Error(`presence from ${from} did not settle within ${ms} ms`);
      await sleep(quietMs - quiet + 5);
    }
  }
  iq(type: "get" | "set", to: string, payload: Element): Promise<Element> {
    return withTimeout(this.c.iqCaller.request(xml("iq", { type, to }, payload)), `IQ ${payload.attrs.xmlns} to ${to}`);
  }
}

const presenceType = (el: Element) => (el.attrs.type as string | undefined) ?? "available";
const isPresence = (el: Element, from: string, type: string) => el.name === "presence" && el.attrs.from === from && presenceType(el) === type;

/** An operator logged in with @xmpp/client (SCRAM over STARTTLS), after initial presence and its probe answers. */
async function operator(name = "op1", resource = `r${Math.random().toString(36).slice(2, 8)}`, b: TestBroker = broker): Promise<Operator> {
  const c = client({ service: `xmpp://127.0.0.1:${b.ports.xmpp}`, domain: "localhost", username: name, password: pw(name), resource });
  c.reconnect.stop();
  c.on("error", () => {});
  xmppClients.push(c);
  const op = new Operator(c);
  await withTimeout(c.start(), `@xmpp/client login as ${name}`);
  await c.send(xml("presence"));
  // RFC 6121 §4.2.2: the initial presence is answered with every device's presence.
  for (const d of devices) await op.waitFor(`the initial presence of ${d}`, (el) => el.name === "presence" && String(el.attrs.from).startsWith(`${d}@localhost`));
  return op;
}

const base: IClientOptions = { reconnectPeriod: 0, connectTimeout: STEP_MS, protocolVersion: 4 };
function mqttPort(b: TestBroker = broker): number {
  if (b.ports.mqtt === null) throw new Error("the MQTT listener is off");
  return b.ports.mqtt;
}
async function device(id: string, b: TestBroker = broker, opts: IClientOptions = {}): Promise<MqttClient> {
  const c = await withTimeout(mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort(b)}`, { ...base, clientId: id, username: id, password: pw(id), ...opts }), `MQTT connect as ${id}`);
  c.on("error", () => {});
  mqttClients.push(c);
  return c;
}
/** Resolves when the client's connection is closed. */
const closed = (c: MqttClient) => withTimeout(new Promise<void>((resolve) => (c.connected ? c.once("close", () => resolve()) : resolve())), "MQTT connection closed");

/** Opens a raw socket, sends CONNECT, resolves on CONNACK 0 with the socket and its close promise. */
async function rawDevice(id: string, keepalive: number, b: TestBroker = broker): Promise<{ socket: net.Socket; connackAt: number; closedAt: Promise<number> }> {
  const socket = net.connect(mqttPort(b), "127.0.0.1");
  sockets.push(socket);
  socket.on("error", () => {});
  const closedAt = new Promise<number>((resolve) => socket.once("close", () => resolve(performance.now())));
  let got = Buffer.alloc(0);
  const connackAt = await withTimeout(
    new Promise<number>((resolve, reject) => {
      socket.on("data", (d: Buffer) => {
        got = Buffer.concat([got, d]);
        if (got.length >= 4) {
          if (got[0] === 0x20 && got[3] === 0) resolve(performance.now());
          else reject(new Error(`no CONNACK 0: ${got.toString("hex")}`));
        }
      });
      socket.once("close", () => reject(new Error(`closed before CONNACK: ${got.toString("hex")}`)));
      socket.once("connect", () => socket.write(connectPacket({ clientId: id, username: id, password: pw(id), keepalive })));
    }),
    `raw CONNECT as ${id}`,
  );
  return { socket, connackAt, closedAt };
}

const lastQuery = () => xml("query", { xmlns: NS_LAST });
const ping = () => xml("ping", { xmlns: NS_PING });
async function lastSeconds(op: Operator, bare: string): Promise<number> {
  const res = await op.iq("get", bare, lastQuery());
  const seconds = Number(res.getChild("query", NS_LAST)?.attrs.seconds);
  if (!Number.isInteger(seconds)) throw new Error(`no seconds in ${res.toString()}`);
  return seconds;
}
async function iqError(op: Operator, to: string, payload: Element): Promise<string> {
  const outcome = await withTimeout(
    op.c.iqCaller.request(xml("iq", { type: "get", to }, payload)).then(
      (res) => ({ ok: true as const, res }),
      (err: { condition?: string }) => ({ ok: false as const, condition: err.condition }),
    ),
    `IQ to ${to}`,
  );
  if (outcome.ok) throw new Error(`expected an error, got ${outcome.res.toString()}`);
  return outcome.condition ?? "(none)";
}

/** The states ("available"/"unavailable") of `full` seen by `op` since `since`. */
const states = (op: Operator, full: string, since: number) => op.presences(full, since).map((s) => presenceType(s.el));
/**
 * True when, starting from the state the watcher knew, no two neighbours are equal:
 * changes may be coalesced under churn, but never reported twice or out of order.
 */
const alternates = (prior: "available" | "unavailable", list: string[]) => [prior, ...list].every((s, i, all) => i === 0 || s !== all[i - 1]);
const letters = (list: string[]) => list.map((s) => s[0]).join("") || "(none)";

// ---------------------------------------------------------------- tests

t.test("CONNECT → available within 100 ms; clean DISCONNECT → unavailable; refused CONNECT → nothing", async (t) => {
  const op = await operator();
  const full = "dev1@localhost/mqtt";

  // A refused CONNECT changes nothing (issue 3, bad input table).
  const since0 = op.mark();
  const refused = await withTimeout(
    mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort()}`, { ...base, clientId: "dev1", username: "dev1", password: "wrong" }).then(
      (c) => (c.end(true), "accepted"),
      (err: { code?: number }) => err.code,
    ),
    "refused connect",
  );
  t.ok(refused === 4 || refused === 5, `wrong password refused (${refused})`);
  await sleep(300);
  t.same(op.presences(full, since0).length + op.presences("dev1@localhost", since0).length, 0, "no presence for a refused CONNECT");

  const since = op.mark();
  const started = performance.now();
  const dev = await device("dev1");
  const connackAt = performance.now();
  const seen = await op.available(full, since);
  const latency = seen.at - started;
  t.ok(latency < 100, `available ${latency.toFixed(1)} ms after the device started connecting (CONNACK after ${(connackAt - started).toFixed(1)} ms)`);
  t.equal(seen.el.attrs.to, op.jid, "addressed to the operator's full JID");
  t.notOk(seen.el.getChild("delay", NS_DELAY), "a live change carries no delay");

  const since2 = op.mark();
  await withTimeout(dev.endAsync(), "DISCONNECT");
  const gone = await op.unavailable(full, since2);
  t.pass(`unavailable after DISCONNECT: ${gone.el.toString()}`);
  t.same(states(op, full, since), ["available", "unavailable"], "exactly one available, then one unavailable");
});

t.test("killed socket → unavailable", async (t) => {
  const op = await operator();
  const full = "dev1@localhost/mqtt";
  const since = op.mark();
  const dev = await device("dev1");
  await op.available(full, since);
  const since2 = op.mark();
  dev.stream.destroy();
  const gone = await op.unavailable(full, since2, 5000);
  t.pass(`unavailable after socket loss: ${gone.el.toString()}`);
  await op.settle(full, 200);
  t.same(states(op, full, since), ["available", "unavailable"]);
});

t.test("keepalive expiry (1.5 × keepalive) → unavailable with a status", async (t) => {
  const op = await operator();
  const full = "dev2@localhost/mqtt";
  const since = op.mark();
  // keepalive = 1 s and never a PINGREQ: the broker must give up after ≈ 1.5 s (§3.1.2.10).
  const dev = await rawDevice("dev2", 1);
  await op.available(full, since);
  const gone = await op.unavailable(full, since, 5000);
  const after = gone.at - dev.connackAt;
  t.ok(after >= 1000 && after <= 3000, `unavailable ${after.toFixed(0)} ms after CONNACK (expected ≈ 1500)`);
  const status = gone.el.getChildText("status");
  t.ok(status && status.length > 0, `with a status: ${status}`);
  t.match(status ?? "", /keep ?alive|timeout|timed out/i, "the status says why");
  const closedAt = await withTimeout(dev.closedAt, "the broker closes the socket");
  t.ok(closedAt - dev.connackAt < 3000, "and the socket is closed");
});

t.test("takeover by a second connection with the same client id: no flap", async (t) => {
  const op = await operator();
  const full = "dev1@localhost/mqtt";
  const since = op.mark();
  const first = await device("dev1");
  await op.available(full, since);
  const firstClosed = closed(first);

  const since2 = op.mark();
  const second = await device("dev1");
  await firstClosed;
  t.pass("the first connection was closed by the broker (§3.1.4)");
  await sleep(500);
  t.same(op.presences(full, since2).map((s) => s.el.toString()), [], "no presence from dev1@localhost/mqtt in the 500 ms after the takeover");
  t.same(op.presences("dev1@localhost", since2).length, 0, "nor from the bare JID");
  // Still available: the broker answers for it and last activity says online.
  await op.iq("get", full, ping());
  t.pass("ping to dev1@localhost/mqtt answered after the takeover");
  t.equal(await lastSeconds(op, "dev1@localhost"), 0, "last activity: 0 (online)");

  // A takeover over another transport (WebSocket) does not flap either.
  const ws = await withTimeout(
    mqtt.connectAsync(`ws://127.0.0.1:${broker.ports.http}/mqtt`, { ...base, clientId: "dev1", username: "dev1", password: pw("dev1") }),
    "WebSocket takeover",
  );
  ws.on("error", () => {});
  mqttClients.push(ws);
  await closed(second);
  await sleep(300);
  t.same(op.presences(full, since2).length, 0, "no presence after the WebSocket takeover either");

  const since3 = op.mark();
  await withTimeout(ws.endAsync(), "DISCONNECT");
  await op.unavailable(full, since3);
  await op.settle(full, 200);
  t.same(states(op, full, since), ["available", "unavailable"], "one available, one unavailable, nothing in between");
});

t.test("a refused or dead takeover attempt does not pin the presence", async (t) => {
  // An account whose password check takes long (200,000 PBKDF2 iterations instead of
  // 4096) makes the window between CONNECT and its authentication wide enough to hit
  // every time; a loaded broker or a slow device link opens the same window.
  const slow = "slowdev";
  await addAccount(broker.registry, { name: slow, role: "device", type: "thermostat", password: "slow pw" }, 200_000);
  const op = await operator();
  const full = `${slow}@localhost/mqtt`;
  const since = op.mark();
  const first = await withTimeout(
    mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort()}`, { ...base, clientId: slow, username: slow, password: "slow pw" }),
    "first connection",
  );
  first.on("error", () => {});
  mqttClients.push(first);
  await op.available(full, since);

  // A takeover with a wrong password takes nothing over and changes nothing.
  const wrong = await withTimeout(
    mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort()}`, { ...base, clientId: slow, username: slow, password: "wrong" }).then(
      (c) => (c.end(true), "accepted"),
      (err: { code?: number }) => err.code,
    ),
    "refused takeover",
  );
  t.ok(wrong === 4 || wrong === 5, `a takeover with a wrong password is refused (${wrong})`);
  await sleep(300);
  t.ok(first.connected, "the first connection is still up");
  t.same(states(op, full, since), ["available"], "no presence change");

  // A CONNECT with the right password whose socket is gone before the password is checked.
  const dead = net.connect(mqttPort(), "127.0.0.1", () => {
    dead.write(connectPacket({ clientId: slow, username: slow, password: "slow pw", keepalive: 30 }));
    dead.destroy();
  });
  dead.on("error", () => {});
  sockets.push(dead);
  await sleep(500);
  t.ok(first.connected, "the first connection is still up (the dead CONNECT never completed)");
  t.same(states(op, full, since), ["available"], "no presence change");

  // The device now leaves: every watcher must see it go.
  await withTimeout(first.endAsync(), "DISCONNECT");
  await op.settle(full, 500);
  const list = states(op, full, since);
  t.equal(list.at(-1), "unavailable", `the last presence of ${full} is unavailable (${letters(list)})`);
  t.equal(await iqError(op, full, ping()), "service-unavailable", "and the broker no longer answers for it");
});

t.test("XEP-0012 last activity, disco#info and ping on the device's JIDs", async (t) => {
  const op = await operator();
  const full = "dev4@localhost/mqtt";
  const bare = "dev4@localhost";
  const since = op.mark();
  const dev = await device("dev4");
  await op.available(full, since);

  t.equal(await lastSeconds(op, bare), 0, "while connected: 0 seconds");
  const info = (await op.iq("get", full, xml("query", { xmlns: NS_DISCO_INFO }))).getChild("query", NS_DISCO_INFO)!;
  const identities = info.getChildren("identity").map((i) => i.attrs.category as string);
  t.ok(identities.includes("client"), `disco#info identity category client (${identities.join(",")})`);
  const features = info.getChildren("feature").map((f) => f.attrs.var as string);
  t.ok(features.includes(NS_PING), `features include ${NS_PING}`);
  t.ok(features.includes(NS_DISCO_INFO), `features include ${NS_DISCO_INFO}`);
  const pong = await op.iq("get", full, ping());
  t.equal(pong.attrs.type, "result", "ping answered while connected");
  t.equal(pong.attrs.from, full, "from the device's full JID");

  const since2 = op.mark();
  await withTimeout(dev.endAsync(), "DISCONNECT");
  await op.unavailable(full, since2);
  const s1 = await lastSeconds(op, bare);
  t.ok(s1 >= 0 && s1 <= 1, `just after the disconnect: ${s1} s`);
  await sleep(2100);
  const s2 = await lastSeconds(op, bare);
  t.ok(s2 > s1 && s2 >= 2 && s2 <= 4, `and it grows: ${s2} s`);
  t.equal(await iqError(op, full, ping()), "service-unavailable", "ping after disconnect: service-unavailable");
  t.equal(await iqError(op, full, xml("query", { xmlns: NS_DISCO_INFO })), "service-unavailable", "disco#info after disconnect: service-unavailable");

  // A probe of the offline device that was seen before: unavailable, dated (XEP-0203).
  const since3 = op.mark();
  await op.c.send(xml("presence", { type: "probe", to: bare }));
  const answer = await op.waitFor("the probe's answer", (el) => el.name === "presence" && String(el.attrs.from).startsWith(bare), since3);
  t.equal(presenceType(answer.el), "unavailable", `probe answered: ${answer.el.toString()}`);
  const delay = answer.el.getChild("delay", NS_DELAY);
  t.ok(delay, "with <delay xmlns='urn:xmpp:delay'>");
  const stamp = Date.parse(String(delay?.attrs.stamp));
  t.ok(Number.isFinite(stamp) && stamp <= Date.now() && Date.now() - stamp < 10_000, `stamped when the device left (${delay?.attrs.stamp})`);
  t.ok(stamp <= Date.now() - 2000, "a past time (the device left more than 2 s ago)");

  // A new operator session gets the same dated presence on its initial presence.
  const op2 = await operator("op2");
  const initial = op2.presences(bare).at(-1)!;
  t.equal(presenceType(initial.el), "unavailable");
  t.ok(initial.el.getChild("delay", NS_DELAY), "initial presence answer for an offline, seen device carries <delay>");
});

t.test("a device on XMPP and MQTT at once has two resources", async (t) => {
  const op = await operator();
  const bare = "dev5@localhost";
  const since = op.mark();
  const x = await RawClient.connect(broker.ports.xmpp);
  sockets.push({ destroy: () => x.close() });
  await x.login("dev5", pw("dev5"), { resource: "fw" });
  x.send("<presence/>");
  await op.available(`${bare}/fw`, since);
  const dev = await device("dev5");
  await op.available(`${bare}/mqtt`, since);
  t.pass("the operator sees dev5@localhost/fw and dev5@localhost/mqtt");
  // RFC 6121 §4.2.2: the device's XMPP resource learns of its other resource.
  await x.expect(/<presence[^>]*from="dev5@localhost\/mqtt"/);
  t.pass("the XMPP resource sees the MQTT resource");

  const op2 = await operator("op2");
  t.ok(op2.presences(`${bare}/fw`).some((s) => presenceType(s.el) === "available"), "a new operator session gets /fw on its initial presence");
  t.ok(op2.presences(`${bare}/mqtt`).some((s) => presenceType(s.el) === "available"), "and /mqtt");

  const since2 = op.mark();
  await withTimeout(dev.endAsync(), "MQTT DISCONNECT");
  await op.unavailable(`${bare}/mqtt`, since2);
  await sleep(200);
  t.same(op.presences(`${bare}/fw`, since2).length, 0, "the XMPP resource stays available");
  t.same(op.presences(bare, since2).length, 0, "no presence from the bare JID");
  t.equal(await lastSeconds(op, bare), 0, "last activity: 0, the device is still online over XMPP");
  x.send("</stream:stream>");
  await op.unavailable(`${bare}/fw`, since2);
});

t.test("churn: 100 sequential connects and drops end in the right state", async (t) => {
  const op = await operator();
  const full = "dev6@localhost/mqtt";

  for (const final of ["connected", "disconnected"] as const) {
    const since = op.mark();
    for (let i = 0; i < 100; i++) {
      const c = await device("dev6");
      // Alternate socket loss and clean DISCONNECT.
      if (i % 2) c.stream.destroy();
      else c.end(true);
    }
    let last: MqttClient | null = null;
    if (final === "connected") last = await device("dev6");
    await op.settle(full, 500);
    const list = states(op, full, since);
    const expected = final === "connected" ? "available" : "unavailable";
    t.equal(list.at(-1), expected, `final ${final}: the last presence of ${full} is ${expected} (${list.length} presence stanzas)`);
    t.ok(alternates("unavailable", list), `available and unavailable alternate: ${letters(list)}`);
    if (final === "connected") {
      await op.iq("get", full, ping());
      t.equal(await lastSeconds(op, "dev6@localhost"), 0, "online for the broker too");
      const before = op.mark();
      await withTimeout(last!.endAsync(), "final DISCONNECT");
      await op.unavailable(full, before);
      await op.settle(full, 300);
    } else {
      t.equal(await iqError(op, full, ping()), "service-unavailable", "offline for the broker too");
    }
  }
});

t.test("churn: 100 overlapping connects with the same client id end in the right state", async (t) => {
  const op = await operator();
  const full = "dev7@localhost/mqtt";

  // Takeover storm: every connection takes over from the one before; one survives.
  let since = op.mark();
  const storm = await Promise.allSettled(Array.from({ length: 100 }, () => device("dev7")));
  const accepted = storm.filter((r): r is PromiseFulfilledResult<MqttClient> => r.status === "fulfilled").map((r) => r.value);
  t.ok(accepted.length > 0, `${accepted.length} of 100 overlapping connects were accepted`);
  await op.settle(full, 500);
  const open = accepted.filter((c) => c.connected);
  t.equal(open.length, 1, "exactly one connection survives the takeovers");
  let list = states(op, full, since);
  t.equal(list.at(-1), "available", `final state connected: last presence available (${list.join(",")})`);
  t.same(list, ["available"], "a takeover storm is one available and nothing else (no flap)");
  await op.iq("get", full, ping());

  // Drops at random moments, overlapping with new connects; all gone at the end.
  since = op.mark();
  const churn = await Promise.allSettled(
    Array.from({ length: 100 }, async (_, i) => {
      await sleep(i % 10);
      const c = await device("dev7");
      await sleep(Math.floor(Math.random() * 15));
      if (i % 2) c.stream.destroy();
      else c.end(true);
    }),
  );
  for (const c of open) c.end(true);
  t.comment(`churn: ${churn.filter((r) => r.status === "rejected").length} of 100 connects were cut short by the overlap`);
  await op.settle(full, 500);
  list = states(op, full, since);
  t.equal(list.at(-1), "unavailable", `final state disconnected: last presence unavailable (${list.length} stanzas)`);
  t.ok(alternates("available", list), `available and unavailable alternate: ${letters(list)}`);
  t.equal(await iqError(op, full, ping()), "service-unavailable", "offline for the broker too");

  // The same churn, then one final connection that stays.
  since = op.mark();
  await Promise.allSettled(
    Array.from({ length: 100 }, async (_, i) => {
      await sleep(i % 10);
      const c = await device("dev7");
      await sleep(Math.floor(Math.random() * 15));
      c.stream.destroy();
    }),
  );
  const survivor = await device("dev7");
  await op.settle(full, 500);
  list = states(op, full, since);
  t.equal(list.at(-1), "available", `final state connected: last presence available (${list.length} stanzas)`);
  t.ok(alternates("unavailable", list), `available and unavailable alternate: ${letters(list)}`);
  t.ok(survivor.connected, "the final connection is up");
  await op.iq("get", full, ping());
  since = op.mark();
  await withTimeout(survivor.endAsync(), "DISCONNECT");
  await op.unavailable(full, since);
});

t.test("broker shutdown: each MQTT device's unavailable reaches the operator before its stream ends", async (t) => {
  const b = await startTestBroker({}, accounts);
  let stopped = false;
  t.teardown(async () => {
    if (!stopped) await b.close();
  });
  const op = await RawClient.connect(b.ports.xmpp);
  sockets.push({ destroy: () => op.close() });
  await op.login("op1", pw("op1"), { resource: "shutdown" });
  op.send("<presence/>");
  for (const d of devices) await op.expect(new RegExp(`<presence[^>]*from="${d}@localhost"`));
  const devs = ["dev1", "dev2", "dev3"];
  for (const d of devs) {
    await device(d, b);
    await op.expect(new RegExp(`<presence from="${d}@localhost/mqtt"[^>]*/>`));
  }
  const before = op.log.length;
  const stoppedAt = Date.now();
  stopped = true;
  await withTimeout(b.stop(), "broker shutdown");
  // Last-seen times are written behind (one transaction per turn): stop() must still store them.
  const registry = openSqliteRegistry({ dataDir: b.dataDir });
  for (const d of devs) {
    const seen = registry.lastSeen(d);
    t.ok(seen && seen.at >= stoppedAt && seen.status === "broker shutdown", `${d}'s last seen stored at shutdown: ${JSON.stringify(seen)}`);
  }
  registry.close();
  rmSync(b.dataDir, { recursive: true, force: true });
  await op.waitClosed(STEP_MS);
  const tail = op.log.slice(before);
  const end = tail.search(/<stream:error|<\/stream:stream>/);
  t.ok(end >= 0, `the operator's stream was ended by the server: ${tail.slice(end, end + 200)}`);
  for (const d of devs) {
    const m = new RegExp(`<presence type="unavailable" from="${d}@localhost/mqtt"[^>]*(/>|>.*?</presence>)`, "s").exec(tail);
    t.ok(m, `unavailable for ${d}@localhost/mqtt`);
    t.ok(m && m.index < end, `${d}'s unavailable came before the stream ended`);
  }
});
