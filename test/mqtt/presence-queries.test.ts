// What the broker answers for an MQTT device's JIDs (docs/mqtt.md, Presence):
// XEP-0012 last activity, disco#info and ping on <id>@localhost/mqtt while it is
// connected and after, dated presence for an offline device (XEP-0203), and two
// resources for a device connected over XMPP and MQTT at once. Operators are
// @xmpp/client sessions, devices the `mqtt` package or a raw XMPP socket.
import t from "tap";
import { xml } from "@xmpp/client";
import { NS_DELAY, NS_DISCO_INFO, NS_PING, ping, startPresenceKit } from "../helpers/presence-kit.js";
import { RawClient } from "../helpers/raw.js";
import { sleep, withTimeout } from "../helpers/wait.js";
import { presenceType } from "../helpers/xmpp-session.js";

const kit = await startPresenceKit();
t.teardown(() => kit.close());

t.test("XEP-0012 last activity, disco#info and ping on the device's JIDs", async (t) => {
  const { op, full, since } = await kit.watcher("dev4");
  const bare = "dev4@localhost";
  const dev = await kit.device("dev4");
  await op.available(full, since);

  t.equal(await op.lastSeconds(bare), 0, "while connected: 0 seconds");
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
  const s1 = await op.lastSeconds(bare);
  t.ok(s1 >= 0 && s1 <= 1, `just after the disconnect: ${s1} s`);
  await sleep(2100);
  const s2 = await op.lastSeconds(bare);
  t.ok(s2 > s1 && s2 >= 2 && s2 <= 4, `and it grows: ${s2} s`);
  t.equal(await op.iqError(full, ping()), "service-unavailable", "ping after disconnect: service-unavailable");
  t.equal(await op.iqError(full, xml("query", { xmlns: NS_DISCO_INFO })), "service-unavailable", "disco#info after disconnect: service-unavailable");

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
  const op2 = await kit.operator("op2");
  const initial = op2.presences(bare).at(-1)!;
  t.equal(presenceType(initial.el), "unavailable");
  t.ok(initial.el.getChild("delay", NS_DELAY), "initial presence answer for an offline, seen device carries <delay>");
});

t.test("a device on XMPP and MQTT at once has two resources", async (t) => {
  const op = await kit.operator();
  const bare = "dev5@localhost";
  const since = op.mark();
  const x = await RawClient.connect(kit.broker.ports.xmpp);
  kit.keep({ destroy: () => x.close() });
  await x.login("dev5", kit.pw("dev5"), { resource: "fw" });
  x.send("<presence/>");
  await op.available(`${bare}/fw`, since);
  const dev = await kit.device("dev5");
  await op.available(`${bare}/mqtt`, since);
  t.pass("the operator sees dev5@localhost/fw and dev5@localhost/mqtt");
  // RFC 6121 §4.2.2: the device's XMPP resource learns of its other resource.
  await x.expect(/<presence[^>]*from="dev5@localhost\/mqtt"/);
  t.pass("the XMPP resource sees the MQTT resource");

  const op2 = await kit.operator("op2");
  t.ok(op2.presences(`${bare}/fw`).some((s) => presenceType(s.el) === "available"), "a new operator session gets /fw on its initial presence");
  t.ok(op2.presences(`${bare}/mqtt`).some((s) => presenceType(s.el) === "available"), "and /mqtt");

  const since2 = op.mark();
  await withTimeout(dev.endAsync(), "MQTT DISCONNECT");
  await op.unavailable(`${bare}/mqtt`, since2);
  await sleep(200);
  t.same(op.presences(`${bare}/fw`, since2).length, 0, "the XMPP resource stays available");
  t.same(op.presences(bare, since2).length, 0, "no presence from the bare JID");
  t.equal(await op.lastSeconds(bare), 0, "last activity: 0, the device is still online over XMPP");
  x.send("</stream:stream>");
  await op.unavailable(`${bare}/fw`, since2);
});
