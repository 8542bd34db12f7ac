// XMPP over WebSocket (RFC 7395): @xmpp/client with a ws:// service logs in and
// routes like over TCP; a raw WebSocket checks the framing and its bad inputs.
import t from "tap";
import WebSocket from "ws";
import { client, xml } from "@xmpp/client";
import type { Element } from "@xmpp/xml";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { RawClient } from "../helpers/raw.js";
import { waitFor } from "../helpers/wait.js";

let broker: TestBroker;
// @xmpp/websocket uses the WHATWG WebSocket global, which Node 20 lacks; ws provides it.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;
t.before(async () => {
  broker = await startTestBroker({}, [
    { name: "op1", role: "operator", password: "pw1" },
    { name: "op2", role: "operator", password: "pw2" },
    { name: "th1", role: "device", type: "thermostat", password: "pw3" },
  ]);
});
t.teardown(() => broker.close());

t.test("@xmpp/client over ws:// logs in, gets its roster, exchanges messages with a TCP client", async (t) => {
  const ws = client({ service: `ws://127.0.0.1:${broker.ports.http}/xmpp-websocket`, domain: "localhost", username: "op1", password: "pw1", resource: "browser" });
  ws.reconnect.stop();
  ws.on("error", () => {});
  const got: Element[] = [];
  ws.on("stanza", (el: Element) => got.push(el));
  t.teardown(() => ws.stop().catch(() => {}));
  await ws.start();
  t.equal(ws.jid?.toString(), "op1@localhost/browser");
  const roster = await ws.iqCaller.get(xml("query", { xmlns: "jabber:iq:roster" }));
  t.match(roster!.toString(), /jid="th1@localhost"/);
  await ws.send(xml("presence"));
  const tcp = await RawClient.connect(broker.ports.xmpp);
  await tcp.login("op2", "pw2", { resource: "desk" });
  tcp.send("<message to='op1@localhost/browser' type='chat' id='w1'><body>over the bridge</body></message>");
  const m = await waitFor(() => got.find((el) => el.attrs.id === "w1"));
  t.equal(m.getChildText("body"), "over the bridge");
  t.equal(m.attrs.from, "op2@localhost/desk");
  await ws.send(xml("message", { to: "op2@localhost/desk", type: "chat", id: "w2" }, xml("body", {}, "back")));
  t.match((await tcp.expect(/<message[^>]*id="w2".*?<\/message>/s))[0], /from="op1@localhost\/browser"/);
  tcp.close();
});

function raw(protocols: string[] = ["xmpp"]): Promise<{ ws: WebSocket; frames: string[]; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${broker.ports.http}/xmpp-websocket`, protocols);
    const frames: string[] = [];
    const closed = new Promise<void>((r) => ws.on("close", () => r()));
    ws.on("message", (d) => frames.push(d.toString()));
    ws.on("open", () => resolve({ ws, frames, closed }));
    ws.on("error", reject);
    ws.on("unexpected-response", (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
  });
}
const OPEN = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";

t.test("framing: <open/> and features; without the xmpp subprotocol the upgrade is refused", async (t) => {
  const refused = await raw(["mqtt"]).catch((e) => e);
  t.equal(refused.status, 400);
  const { ws, frames } = await raw();
  t.equal(ws.protocol, "xmpp");
  ws.send(OPEN);
  await waitFor(() => frames.length >= 2 || undefined);
  t.match(frames[0], /^<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" id="[^"]+" from="localhost" version="1.0" xml:lang="en"\/>$/);
  t.match(frames[1], /^<stream:features xmlns:stream="http:\/\/etherx.jabber.org\/streams">.*<mechanism>PLAIN<\/mechanism>/, "loopback counts as secure: mechanisms offered");
  t.notMatch(frames[1], /starttls/);
  ws.send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
  await waitFor(() => frames.some((f) => /<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"\/>/.test(f)) || undefined);
});

t.test("bad frames: two stanzas, an incomplete element, restricted XML → stream error, other sessions unaffected", async (t) => {
  const witness = await RawClient.connect(broker.ports.xmpp);
  await witness.login("op2", "pw2");
  for (const [frame, condition] of [
    ["<presence/><presence/>", "not-well-formed"],
    ["<message><body>half", "not-well-formed"],
    ["<!-- c --><presence/>", "restricted-xml"],
    ["<open xmlns='urn:wrong' to='localhost' version='1.0'/>", "invalid-namespace"],
  ] as const) {
    const { ws, frames, closed } = await raw();
    if (!frame.startsWith("<open")) {
      ws.send(OPEN);
      await waitFor(() => frames.length >= 2 || undefined);
    }
    ws.send(frame);
    await closed;
    t.ok(frames.some((f) => f.includes(`<${condition} xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>`)), `${condition} for ${frame}`);
    witness.send("<iq type='get' id='alive' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    await witness.expect(/id="alive"/);
  }
  witness.close();
});
