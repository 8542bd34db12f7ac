// No answer tells an existing account from an unknown one: SCRAM's salt and
// iteration count for every spelling of a name (and across a restart), and every
// authzid answer, compared side by side for `op1` (exists) and `ghost` (does not).
import t from "tap";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";
import { RawClient } from "../helpers/raw.js";
import { scramClient } from "../helpers/scram-client.js";

const SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const accounts = [{ name: "op1", role: "operator" as const, password: "op pw" }];
const dataDir = mkdtempSync(join(tmpdir(), "sb-enum-"));
t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));

const start = () => startTestBroker({ auth: { maxFailures: 1000, maxAccountFailures: 1000 } }, accounts, { dataDir });

async function opened(broker: TestBroker): Promise<RawClient> {
  const c = await RawClient.connect(broker.ports.xmpp);
  await c.secureStream();
  return c;
}

/** The server-first message's salt and iteration count for `username`. */
async function saltOf(broker: TestBroker, hash: "sha1" | "sha256", username: string): Promise<string> {
  const c = await opened(broker);
  try {
    c.send(`<auth xmlns='${SASL}' mechanism='SCRAM-SHA-${hash === "sha1" ? "1" : "256"}'>${scramClient(hash, username, "x").first}</auth>`);
    const m = await c.expect(/<challenge[^>]*>([^<]+)<\/challenge>/);
    const attrs = Object.fromEntries(Buffer.from(m[1]!, "base64").toString().split(",").map((p) => [p[0], p.slice(2)]));
    return `s=${attrs.s},i=${attrs.i}`;
  } finally {
    c.close();
  }
}

/** The SASL answer's condition (or `challenge`) for an exchange that may carry an authzid. */
async function answerTo(broker: TestBroker, mechanism: "PLAIN" | "SCRAM-SHA-256", username: string, authzid: string): Promise<string> {
  const c = await opened(broker);
  try {
    const payload = mechanism === "PLAIN" ? Buffer.from(`${authzid}\0${username}\0wrong`).toString("base64") : scramClient("sha256", username, "wrong", authzid).first;
    c.send(`<auth xmlns='${SASL}' mechanism='${mechanism}'>${payload}</auth>`);
    const m = await c.expect(/<challenge[^>]*>([^<]*)<\/challenge>|<failure[^>]*>\s*<([a-z-]+)/);
    return m[2] ?? "challenge";
  } finally {
    c.close();
  }
}

t.test("the decoy salt of an unknown name is as stable as a real one, across spellings and restarts", async (t) => {
  let broker = await start();
  const spellings = (name: string) => [name, name.toUpperCase(), `${name}@localhost`, `${name[0]!.toUpperCase()}${name.slice(1)}@LOCALHOST`];
  const before: Record<string, string[]> = {};
  for (const hash of ["sha1", "sha256"] as const)
    for (const name of ["op1", "ghost"]) {
      const salts = [];
      for (const spelling of spellings(name)) salts.push(await saltOf(broker, hash, spelling));
      t.equal(new Set(salts).size, 1, `${hash} ${name}: one salt and count for every spelling (${salts[0]})`);
      before[`${hash} ${name}`] = salts;
    }
  t.not(before["sha256 ghost"]![0], before["sha256 op1"]![0], "different names, different salts");
  t.equal(before["sha256 ghost"]![0]!.split(",i=")[1], before["sha256 op1"]![0]!.split(",i=")[1], "the same iteration count");
  t.equal(Buffer.from(before["sha256 ghost"]![0]!.slice(2).split(",")[0]!, "base64").length, Buffer.from(before["sha256 op1"]![0]!.slice(2).split(",")[0]!, "base64").length, "salts of the same length");
  await broker.stop();
  broker = await start();
  t.equal(await saltOf(broker, "sha256", "ghost"), before["sha256 ghost"]![0], "the decoy survives a restart");
  t.equal(await saltOf(broker, "sha256", "op1"), before["sha256 op1"]![0]);
  await broker.stop();
});

t.test("authzid answers are the same for existing and unknown accounts", async (t) => {
  const broker = await start();
  t.teardown(() => broker.stop());
  for (const mechanism of ["PLAIN", "SCRAM-SHA-256"] as const) {
    const own = [await answerTo(broker, mechanism, "op1", "op1"), await answerTo(broker, mechanism, "ghost", "ghost")];
    t.equal(own[0], own[1], `${mechanism}, authzid = own name: '${own[0]}' for both`);
    const ownJid = [await answerTo(broker, mechanism, "op1", "op1@localhost"), await answerTo(broker, mechanism, "ghost", "ghost@localhost")];
    t.equal(ownJid[0], ownJid[1], `${mechanism}, authzid = own JID: '${ownJid[0]}' for both`);
    const other = [await answerTo(broker, mechanism, "op1", "someone"), await answerTo(broker, mechanism, "ghost", "someone")];
    t.same(other, ["invalid-authzid", "invalid-authzid"], `${mechanism}, authzid = another name: invalid-authzid for both`);
  }
});
