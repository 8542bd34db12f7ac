// An MQTT device's presence through its connection's life (docs/mqtt.md, Presence):
// it is the XMPP resource `<id>@localhost/mqtt` in every operator's roster, available
// within 100 ms of CONNECT, unavailable on DISCONNECT, socket loss and keepalive
// expiry; a takeover by the same client id does not flap, and a refused or dead
// takeover attempt changes nothing. Operators are @xmpp/client sessions, devices the
// `mqtt` package or raw sockets.
import t from "tap";
import net from "node:net";
import type { MqttClient } from "mqtt";
import { addAccount } from "../../src/provision.js";
import { connectPacket } from "../helpers/mqtt-bytes.js";
import { letters, NS_DELAY, ping, startPresenceKit } from "../helpers/presence-kit.js";
import { sleep, withTimeout } from "../helpers/wait.js";

const kit = await startPresenceKit();
t.teardown(() => kit.close());

/** Resolves when the client's connection is closed. */
const closed = (c: MqttClient) => withTimeout(new Promise<void>((resolve) => (c.connected ? c.once("close", () => resolve()) : resolve())), "MQTT connection closed");

/** Opens a raw socket, sends CONNECT, resolves on CONNACK 0 with the socket and its close promise. */
async function rawDevice(id: string, keepalive: number): Promise<{ socket: net.Socket; connackAt: number; closedAt: Promise<number> }> {
  const socket = kit.keep(net.connect(kit.port, "127.0.0.1"));
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
      socket.once("connect", () => socket.write(connectPacket({ clientId: id, username: id, password: kit.pw(id), keepalive })));
    }),
    `raw CONNECT as ${id}`,
  );
  return { socket, connackAt, closedAt };
}

t.test("CONNECT → available within 100 ms; clean DISCONNECT → unavailable; refused CONNECT → nothing", async (t) => {
  const { op, full } = await kit.watcher("dev1");

  // A refused CONNECT changes nothing (docs/mqtt.md, CONNECT).
  const since0 = op.mark();
  const refused = await kit.refusal({ clientId: "dev1", username: "dev1", password: "wrong" });
  t.ok(refused === 4 || refused === 5, `wrong password refused (${refused})`);
  await sleep(300);
  t.same(op.presences(full, since0).length + op.presences("dev1@localhost", since0).length, 0, "no presence for a refused CONNECT");

  const since = op.mark();
  const started = performance.now();
  const dev = await kit.device("dev1");
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
  t.same(op.states(full, since), ["available", "unavailable"], "exactly one available, then one unavailable");
});

t.test("killed socket → unavailable", async (t) => {
  const { op, full, since } = await kit.watcher("dev1");
  const dev = await kit.device("dev1");
  await op.available(full, since);
  const since2 = op.mark();
  dev.stream.destroy();
  const gone = await op.unavailable(full, since2, 5000);
  t.pass(`unavailable after socket loss: ${gone.el.toString()}`);
  await op.settle(full, 200);
  t.same(op.states(full, since), ["available", "unavailable"]);
});

t.test("keepalive expiry (1.5 × keepalive) → unavailable with a status", async (t) => {
  const { op, full, since } = await kit.watcher("dev2");
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
  const { op, full, since } = await kit.watcher("dev1");
  const first = await kit.device("dev1");
  await op.available(full, since);
  const firstClosed = closed(first);

  const since2 = op.mark();
  const second = await kit.device("dev1");
  await firstClosed;
  t.pass("the first connection was closed by the broker (§3.1.4)");
  await sleep(500);
  t.same(op.presences(full, since2).map((s) => s.el.toString()), [], "no presence from dev1@localhost/mqtt in the 500 ms after the takeover");
  t.same(op.presences("dev1@localhost", since2).length, 0, "nor from the bare JID");
  // Still available: the broker answers for it and last activity says online.
  await op.iq("get", full, ping());
  t.pass("ping to dev1@localhost/mqtt answered after the takeover");
  t.equal(await op.lastSeconds("dev1@localhost"), 0, "last activity: 0 (online)");

  // A takeover over another transport (WebSocket) does not flap either.
  const ws = (await kit.connect(kit.wsUrl, { clientId: "dev1", username: "dev1", password: kit.pw("dev1") })).c;
  await closed(second);
  await sleep(300);
  t.same(op.presences(full, since2).length, 0, "no presence after the WebSocket takeover either");

  const since3 = op.mark();
  await withTimeout(ws.endAsync(), "DISCONNECT");
  await op.unavailable(full, since3);
  await op.settle(full, 200);
  t.same(op.states(full, since), ["available", "unavailable"], "one available, one unavailable, nothing in between");
});

t.test("a refused or dead takeover attempt does not pin the presence", async (t) => {
  // An account whose password check takes long (200,000 PBKDF2 iterations instead of
  // 4096) makes the window between CONNECT and its authentication wide enough to hit
  // every time; a loaded broker or a slow device link opens the same window.
  const slow = "slowdev";
  await addAccount(kit.broker.registry, { name: slow, role: "device", type: "thermostat", password: "slow pw" }, 200_000);
  const { op, full, since } = await kit.watcher(slow);
  const first = (await kit.connect(kit.tcpUrl, { clientId: slow, username: slow, password: "slow pw" })).c;
  await op.available(full, since);

  // A takeover with a wrong password takes nothing over and changes nothing.
  const wrong = await kit.refusal({ clientId: slow, username: slow, password: "wrong" });
  t.ok(wrong === 4 || wrong === 5, `a takeover with a wrong password is refused (${wrong})`);
  await sleep(300);
  t.ok(first.connected, "the first connection is still up");
  t.same(op.states(full, since), ["available"], "no presence change");

  // A CONNECT with the right password whose socket is gone before the password is checked.
  const dead = net.connect(kit.port, "127.0.0.1", () => {
    dead.write(connectPacket({ clientId: slow, username: slow, password: "slow pw", keepalive: 30 }));
    dead.destroy();
  });
  dead.on("error", () => {});
  kit.keep(dead);
  await sleep(500);
  t.ok(first.connected, "the first connection is still up (the dead CONNECT never completed)");
  t.same(op.states(full, since), ["available"], "no presence change");

  // The device now leaves: every watcher must see it go.
  await withTimeout(first.endAsync(), "DISCONNECT");
  await op.settle(full, 500);
  const list = op.states(full, since);
  t.equal(list.at(-1), "unavailable", `the last presence of ${full} is unavailable (${letters(list)})`);
  t.equal(await op.iqError(full, ping()), "service-unavailable", "and the broker no longer answers for it");
});
