// Router rules with in-memory sessions: no sockets, no parser.
import t from "tap";
import xml, { type Element } from "@xmpp/xml";
import { createRouter } from "../../src/xmpp/router.js";
import { createLocalSessionTable, type Session } from "../../src/xmpp/sessions.js";
import { parseJid } from "../../src/xmpp/jid.js";
import type { Account } from "../../src/registry/registry.js";

function fakeSession(full: string, role: Account["role"] = "operator"): Session & { got: Element[] } {
  const jid = parseJid(full)!;
  const got: Element[] = [];
  return {
    id: full,
    jid,
    full,
    bare: `${jid.local}@${jid.domain}`,
    account: { name: jid.local, role, type: role === "device" ? "thermostat" : null, createdAt: 0 },
    protocol: "test",
    presence: null,
    priority: 0,
    rosterRequested: false,
    got,
    send: (s) => void got.push(xml(s.name, { ...s.attrs }, ...(s.children as Element[]))),
    close: () => {},
  };
}

t.test("events are fired by kind, target and payload; the fallback answers service-unavailable", async (t) => {
  const sessions = createLocalSessionTable();
  const router = createRouter({ domain: "localhost", sessions });
  const a = fakeSession("a@localhost/r");
  sessions.add(a);
  const fired: string[] = [];
  router.events.on("iq-get/host/urn:xmpp:ping:ping", (e) => {
    fired.push(`ping from ${e.from.toString()}`);
    return true;
  });
  router.events.on("message/bare", (e) => void fired.push(`message to ${e.to.toString()}`));

  router.route(a, xml("iq", { type: "get", id: "1", to: "localhost", from: "spoof@localhost/x" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
  router.route(a, xml("message", { to: "B@LOCALHOST" }, xml("body", {}, "hi")));
  t.same(fired, ["ping from a@localhost/r", "message to b@localhost"], "from stamped, to normalized");
  // message/bare did not claim it: the fallback bounced it.
  t.equal(a.got[0]?.attrs.type, "error");
  t.ok(a.got[0]?.getChild("error")?.getChild("service-unavailable"));
  // An IQ without a `to` is for the sender's own account (RFC 6120 §10.3).
  let target = "";
  router.events.on("iq-get/bare/jabber:iq:roster:query", (e) => ((target = `${e.target} ${e.to.toString()}`), true));
  router.route(a, xml("iq", { type: "get", id: "2" }, xml("query", { xmlns: "jabber:iq:roster" })));
  t.equal(target, "bare a@localhost");
});

t.test("higher priority handlers run first and can claim the stanza", async (t) => {
  const sessions = createLocalSessionTable();
  const router = createRouter({ domain: "localhost", sessions });
  const a = fakeSession("a@localhost/r");
  const order: string[] = [];
  // Registered lowest first, so the order they run in can only come from their priorities.
  router.events.on("message/full", () => (order.push("low"), true));
  router.events.on("message/full", () => (order.push("middle"), true), 50);
  router.events.on("message/full", () => void order.push("high"), 100);
  router.route(a, xml("message", { to: "b@localhost/x" }));
  t.same(order, ["high", "middle"], "highest first; the middle one claimed it, so the lowest never ran");
});

t.test("the pre/ event of a stanza kind runs before its delivery event", async (t) => {
  const sessions = createLocalSessionTable();
  const router = createRouter({ domain: "localhost", sessions });
  const a = fakeSession("a@localhost/r");
  const order: string[] = [];
  router.events.on("message/full", () => (order.push("deliver"), true), 100);
  router.events.on("pre/message", () => void order.push("policy"));
  router.route(a, xml("message", { to: "b@localhost/x" }));
  t.same(order, ["policy", "deliver"], "whatever the priorities: pre/ is a stage of its own");
});

t.test("session table: newest wins the full JID; bare lookups list resources", async (t) => {
  const table = createLocalSessionTable();
  const one = fakeSession("a@localhost/r");
  const two = fakeSession("a@localhost/r");
  const other = fakeSession("a@localhost/s");
  t.equal(table.add(one), undefined);
  t.equal(table.add(two), one, "the displaced session is returned");
  table.add(other);
  t.same(table.ofAccount("a@localhost"), [two, other]);
  t.notOk(table.remove(one), "removing a displaced session is a no-op");
  t.ok(table.remove(two));
  t.same(table.ofAccount("a@localhost"), [other]);
  t.equal(table.size, 1);
});
