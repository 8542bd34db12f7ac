// Interop with an XMPP client no one here wrote: Debian's python3-slixmpp, run by
// /usr/bin/python3 as a subprocess (test/xmpp/slixmpp_client.py), against a real
// broker. slixmpp logs in with SCRAM-SHA-256 after STARTTLS (RFC 6120 §5, §6;
// RFC 7677), verifying the broker's certificate for 'localhost'; it chats with an
// @xmpp/client session in this process, answers its XEP-0199 ping, reads its
// roster (RFC 6121 §2) and pings the server.
import t from "tap";
import { X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { TLSSocket } from "node:tls";
import { fileURLToPath } from "node:url";
import { xml, type Client } from "@xmpp/client";
import type { Element } from "@xmpp/xml";
import { generate } from "selfsigned";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { JsonLineProcess } from "../helpers/line-process.js";
import { requireTools, spawnPython } from "../helpers/programs.js";
import { withTimeout } from "../helpers/wait.js";
import { xmppClient, XmppSession } from "../helpers/xmpp-session.js";

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), "slixmpp_client.py");
/** Each step's bound. */
const STEP_MS = 10_000;

/** slixmpp_client.py logged in to `port` as op1, trusting only `cafile`. */
const slixmpp = (port: number, cafile: string) => new JsonLineProcess("slixmpp", spawnPython(SCRIPT, ["127.0.0.1", String(port), "op1@localhost", "pw", cafile]), ["fatal", "failed_auth"], STEP_MS);

const fingerprint = (cert: X509Certificate | undefined) => cert?.fingerprint256.replace(/:/g, "").toLowerCase();

t.test("slixmpp (python3-slixmpp) against the XMPP server", async (t) => {
  if (!requireTools(t, [{ python: "slixmpp", debian: "python3-slixmpp" }])) return;

  let broker: TestBroker | null = null;
  let slix: JsonLineProcess | null = null;
  let op2: Client | null = null;
  t.teardown(async () => {
    slix?.kill();
    if (op2 && op2.status !== "offline") await withTimeout(op2.stop(), "@xmpp/client stop", 5000).catch(() => {});
    await broker?.close();
  });

  broker = await startTestBroker({}, [
    { name: "op1", role: "operator", password: "pw" },
    { name: "op2", role: "operator", password: "pw-op2" },
    { name: "dev1", role: "device", type: "thermostat", password: "pw2" },
  ]);
  const certFile = join(broker.dataDir, "tls", "cert.pem");
  const brokerCert = fingerprint(new X509Certificate(readFileSync(certFile)));

  // The second client, in this process. @xmpp/starttls passes no TLS options, so
  // certificate checking is turned off for this one connection only (node reads the
  // variable when the TLS socket is made) and the certificate is pinned afterwards.
  op2 = xmppClient(broker.ports.xmpp, "op2", "pw-op2", "node");
  const op2Session = new XmppSession(op2, STEP_MS);
  const op2Received = async (what: string, match: (el: Element) => boolean) => (await op2Session.waitFor(what, match)).el;
  const saved = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
  let op2Jid: string;
  try {
    op2Jid = String(await withTimeout(op2.start(), "@xmpp/client login"));
  } finally {
    if (saved === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    else process.env.NODE_TLS_REJECT_UNAUTHORIZED = saved;
  }
  t.equal(op2Jid, "op2@localhost/node");
  const op2Tls = op2.socket?.socket;
  t.ok(op2Tls instanceof TLSSocket, "@xmpp/client is on TLS");
  if (op2Tls instanceof TLSSocket) t.equal(fingerprint(op2Tls.getPeerX509Certificate()), brokerCert, "pinned: the broker's certificate");
  // Available, so that a message to the bare JID reaches this resource (RFC 6121 §8.5.2.1.1).
  await op2.send(xml("presence"));

  // slixmpp: SCRAM-SHA-256 only, STARTTLS required, the broker's certificate as the only trust anchor.
  slix = slixmpp(broker.ports.xmpp, certFile);
  const s = slix;

  let slixJid = "";
  await t.test("logs in with SCRAM-SHA-256 over STARTTLS", async (t) => {
    const tls = await s.event("tls");
    t.equal(tls.verified, true, "slixmpp verified the certificate for 'localhost'");
    t.equal(tls.peer_cert_sha256, brokerCert, "the certificate is the broker's");

    const auth = await s.event("auth");
    t.ok(s.lines.indexOf(tls) < s.lines.indexOf(auth), "TLS came before authentication");
    t.equal(auth.mechanism, "SCRAM-SHA-256", "the <auth/> slixmpp sent names SCRAM-SHA-256");
    t.equal(auth.encrypted, true, "and was sent over TLS");
    t.match(auth.tls_version, /^TLSv1\.[23]$/);
    t.equal(auth.starttls, true, "negotiated with STARTTLS");
    // slixmpp supports channel binding; with no -PLUS offered it sends "y" (RFC 5802 §6).
    t.match(auth.gs2_header, /^[ny],,$/);
    t.equal(s.lines.filter((l) => l.event === "auth").length, 1, "one attempt, no fallback");

    await s.event("sasl_success");
    const start = await s.event("session_start");
    t.equal(start.mechanism, "SCRAM-SHA-256");
    t.equal(start.encrypted, true);
    t.equal(start.starttls, true);
    t.equal(start.authenticated, true, "slixmpp checked the server signature (v=) and accepted it");
    t.match(start.jid, /^op1@localhost\/.+$/, "a full JID was bound");
    slixJid = String(start.jid);
    t.ok(broker!.xmpp.sessions.get(slixJid), "the broker has the session");
  });

  await t.test("each stream restart gets a new stream ID (RFC 6120 §4.3.3)", async (t) => {
    // Initial stream, after STARTTLS (§5.4.3.3), after SASL success (§6.4.6).
    const headers = s.lines.filter((l) => l.event === "stream");
    t.equal(headers.length, 3, "three response stream headers");
    for (const h of headers) {
      t.equal(h.from, "localhost");
      t.equal(h.version, "1.0");
      t.match(h.id, /^.{8,}$/, "a stream ID");
    }
    // §4.3.3: "When the receiving entity receives the new initial stream header, it MUST
    // generate a new stream ID (instead of re-using the old stream ID) before sending a
    // new response stream header."
    t.equal(new Set(headers.map((h) => h.id)).size, headers.length, `a new stream ID for each stream: ${headers.map((h) => h.id).join(", ")}`);
  });

  await t.test("slixmpp chats with an @xmpp/client session", async (t) => {
    if (!slixJid) return void t.fail("slixmpp never came online (see the login step)");
    const toBare = await s.command({ cmd: "send", to: "op2@localhost", body: "hello from slixmpp (bare)", type: "chat" });
    t.equal(toBare.ok, true);
    const m1 = await op2Received("the message to the bare JID", (el) => el.is("message") && el.getChildText("body") === "hello from slixmpp (bare)");
    t.equal(m1.attrs.from, slixJid, "from is slixmpp's full JID");
    t.equal(m1.attrs.type, "chat");
    t.match(m1.attrs.to, /^op2@localhost(\/node)?$/);

    const toFull = await s.command({ cmd: "send", to: op2Jid, body: "hello from slixmpp (full) <&>", type: "chat" });
    t.equal(toFull.ok, true);
    const m2 = await op2Received("the message to the full JID", (el) => el.is("message") && el.getChildText("body") === "hello from slixmpp (full) <&>");
    t.equal(m2.attrs.from, slixJid);
    t.equal(m2.attrs.to, op2Jid);

    // And back: the answer reaches slixmpp.
    await op2.send(xml("message", { to: slixJid, type: "chat" }, xml("body", {}, "hello from xmpp.js")));
    const back = (await s.waitFor("the reply from @xmpp/client", (l) => l.event === "message" && l.body === "hello from xmpp.js")).line;
    t.equal(back.from, op2Jid);
    t.equal(back.to, slixJid);
    t.equal(back.type, "chat");
  });

  await t.test("slixmpp answers an XEP-0199 ping from @xmpp/client", async (t) => {
    if (!slixJid) return void t.fail("slixmpp never came online (see the login step)");
    const res = await op2.iqCaller.request(xml("iq", { type: "get", to: slixJid }, xml("ping", { xmlns: "urn:xmpp:ping" })), STEP_MS);
    t.equal(res.attrs.type, "result");
    t.equal(res.attrs.from, slixJid);
    const pinged = await s.event("pinged");
    t.equal(pinged.from, op2Jid, "the ping reached slixmpp from op2's full JID");
  });

  await t.test("slixmpp reads its roster: the provisioned device", async (t) => {
    if (!slixJid) return void t.fail("slixmpp never came online (see the login step)");
    const roster = await s.command({ cmd: "roster" });
    t.equal(roster.ok, true, JSON.stringify(roster));
    t.equal(roster.type, "result");
    t.same(roster.items, { "dev1@localhost": { name: "dev1", subscription: "to", groups: ["thermostat"] } });
    t.same(roster.client_roster, { "dev1@localhost": { subscription: "to", groups: ["thermostat"] } }, "slixmpp's roster object agrees");
  });

  await t.test("a device provisioned now is pushed to slixmpp's roster (RFC 6121 §2.1.6)", async (t) => {
    if (!slixJid) return void t.fail("slixmpp never came online (see the login step)");
    await broker!.add({ name: "dev2", role: "device", type: "power-meter", password: "pw3" });
    const push = await s.event("roster_push");
    t.ok(push.from === undefined || push.from === null || push.from === "op1@localhost", "from the account's bare JID or none (RFC 6121 §2.1.6)");
    t.same(push.items, [{ jid: "dev2@localhost", subscription: "to", name: "dev2", groups: ["power-meter"] }]);
    // slixmpp acknowledged the push and kept it.
    const roster = await s.command({ cmd: "roster" });
    t.same(roster.items, {
      "dev1@localhost": { name: "dev1", subscription: "to", groups: ["thermostat"] },
      "dev2@localhost": { name: "dev2", subscription: "to", groups: ["power-meter"] },
    });
  });

  await t.test("slixmpp pings the server", async (t) => {
    if (!slixJid) return void t.fail("slixmpp never came online (see the login step)");
    const ping = await s.command({ cmd: "ping", to: "localhost" });
    t.equal(ping.ok, true, JSON.stringify(ping));
    t.equal(ping.type, "result");
    t.equal(ping.from, "localhost");
  });

  await t.test("everything closes cleanly", async (t) => {
    s.quit();
    const gone = await s.event("disconnected");
    t.equal(gone.clean, true);
    await withTimeout(s.exited, "slixmpp exit");
    t.same(s.exit, { code: 0, signal: null }, `slixmpp exited cleanly${s.exit?.code ? s.describe() : ""}`);
    // SLIXMPP_DEBUG=1 makes slixmpp log every byte it sends and receives to stderr.
    if (process.env.SLIXMPP_DEBUG) t.comment(s.stderr);
    else t.notMatch(s.stderr, /Traceback|ERROR|WARNING/, "slixmpp logged no warning or error");
    // The broker dropped the session and op2 saw no error.
    const deadline = Date.now() + STEP_MS;
    while (broker!.xmpp.sessions.get(slixJid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    t.notOk(broker!.xmpp.sessions.get(slixJid), "the broker ended slixmpp's session");
    await withTimeout(op2!.stop(), "@xmpp/client stop");
    t.equal(op2!.status, "offline");
  });

  await t.test("slixmpp refuses a certificate it was not given (the check above is real)", async (t) => {
    // Same name, another key: the handshake must fail before any authentication.
    const other = await generate([{ name: "commonName", value: "localhost" }], {
      keyType: "ec",
      curve: "P-256",
      algorithm: "sha256",
      extensions: [{ name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }] }],
    });
    const wrongCa = join(broker!.dataDir, "other-ca.pem");
    writeFileSync(wrongCa, other.cert);
    const p = slixmpp(broker!.ports.xmpp, wrongCa);
    t.teardown(() => p.kill());
    await withTimeout(p.exited, "slixmpp giving up");
    t.ok(p.lines.some((l) => l.event === "fatal" && /certificate rejected/i.test(String(l.error))), `it reported the rejected certificate${p.describe()}`);
    t.notOk(p.lines.some((l) => l.event === "tls" || l.event === "auth"), "no TLS session, no <auth/>");
    t.equal(p.exit?.code, 2);
  });
});
