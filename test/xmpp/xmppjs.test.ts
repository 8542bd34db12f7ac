// A real client no one here wrote, from npm: @xmpp/client logs in with SCRAM-SHA-1
// over STARTTLS, binds, fetches its roster, and exchanges messages and IQs with a
// second client.
import t from "tap";
import { client, xml, type Client } from "@xmpp/client";
import type { Element } from "@xmpp/xml";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";

let broker: TestBroker;
const clients: Client[] = [];
t.before(async () => {
  // The generated certificate is self-signed; this test process trusts it blindly.
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
  broker = await startTestBroker({}, [
    { name: "alice", role: "operator", password: "alice pw" },
    { name: "backend", role: "service", password: "backend pw" },
    { name: "thermo", role: "device", type: "thermostat", password: "thermo pw" },
  ]);
});
t.teardown(async () => {
  for (const c of clients) await c.stop().catch(() => {});
  await broker.close();
});

async function connect(username: string, password: string, resource: string) {
  const c = client({ service: `xmpp://127.0.0.1:${broker.ports.xmpp}`, domain: "localhost", username, password, resource });
  clients.push(c);
  c.reconnect.stop();
  const sent: Element[] = [];
  const stanzas: Element[] = [];
  c.on("send", (el: Element) => sent.push(el));
  c.on("stanza", (el: Element) => stanzas.push(el));
  c.on("error", () => {});
  await c.start();
  return { c, sent, stanzas };
}

async function waitFor(list: Element[], match: (el: Element) => boolean, ms = 5000): Promise<Element> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = list.find(match);
    if (found) return found;
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}

t.test("login with SCRAM-SHA-1 over STARTTLS, bind, roster", async (t) => {
  const a = await connect("alice", "alice pw", "laptop");
  t.equal(a.c.jid?.toString(), "alice@localhost/laptop");
  const auth = a.sent.find((el) => el.name === "auth");
  t.equal(auth?.attrs.mechanism, "SCRAM-SHA-1", "SCRAM-SHA-1 was used");
  t.ok(a.sent.findIndex((el) => el.name === "starttls") < a.sent.indexOf(auth!), "after STARTTLS");
  const socket = a.c.socket?.socket as { encrypted?: boolean } | undefined;
  t.equal(socket?.encrypted, true, "the stream is encrypted");
  const roster = await a.c.iqCaller.get(xml("query", { xmlns: "jabber:iq:roster" }));
  const items = roster!.getChildren("item").map((i) => `${i.attrs.jid} ${i.attrs.subscription} ${i.getChildText("group")}`);
  t.same(items, ["thermo@localhost to thermostat"]);
});

t.test("messages and IQs between two clients", async (t) => {
  const a = await connect("alice", "alice pw", "desk");
  const b = await connect("backend", "backend pw", "worker");
  await a.c.send(xml("presence"));
  await b.c.send(xml("presence"));
  await a.c.send(xml("message", { to: "backend@localhost/worker", type: "chat", id: "m1" }, xml("body", {}, "hello backend")));
  const got = await waitFor(b.stanzas, (el) => el.name === "message" && el.attrs.id === "m1");
  t.equal(got.attrs.from, "alice@localhost/desk");
  t.equal(got.getChildText("body"), "hello backend");
  await b.c.send(xml("message", { to: "alice@localhost", type: "chat", id: "m2" }, xml("body", {}, "hi alice")));
  const back = await waitFor(a.stanzas, (el) => el.name === "message" && el.attrs.id === "m2");
  t.equal(back.attrs.from, "backend@localhost/worker");

  // b answers a custom IQ; a's iqCaller matches the result.
  b.c.on("stanza", (el: Element) => {
    if (el.name === "iq" && el.attrs.type === "get" && el.getChild("echo", "urn:example:echo"))
      void b.c.send(xml("iq", { type: "result", id: el.attrs.id, to: el.attrs.from }, xml("echo", { xmlns: "urn:example:echo" }, el.getChildText("echo", "urn:example:echo") ?? "")));
  });
  const res = await a.c.iqCaller.request(xml("iq", { type: "get", to: "backend@localhost/worker" }, xml("echo", { xmlns: "urn:example:echo" }, "ping!")));
  t.equal(res.getChild("echo")?.getText(), "ping!");
  t.equal(res.attrs.from, "backend@localhost/worker");
  // The server answers its own features.
  await a.c.iqCaller.get(xml("ping", { xmlns: "urn:xmpp:ping" }), "localhost");
  // An IQ to an absent resource comes back as service-unavailable.
  const err = await a.c.iqCaller.get(xml("ping", { xmlns: "urn:xmpp:ping" }), "backend@localhost/gone").catch((e: { condition?: string }) => e);
  t.equal((err as { condition?: string }).condition, "service-unavailable");
});
