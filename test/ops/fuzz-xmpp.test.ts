// Seeded fuzzing of the XMPP port (test/helpers/fuzz.ts): streams of mutated stanzas
// (RFC 6120 §8), logged in or not, many at once; then the broker must still serve a
// good device, service and operator.
import t from "tap";
import { ACCOUNTS, fuzzPart, ROUNDS, type Rng } from "../helpers/fuzz.js";
import { mutate, stanza } from "../helpers/fuzz-input.js";
import { RawClient, STREAM_OPEN } from "../helpers/raw.js";

async function xmppRound(r: Rng, port: number): Promise<void> {
  const c = await RawClient.connect(port);
  try {
    if (r.chance(0.7)) {
      const who = r.pick(ACCOUNTS);
      await c.login(who.name, who.password, { resource: r.pick(["fz", "mqtt", "a/b", ""]) || undefined, tls: false });
    } else {
      c.send(r.chance(0.8) ? STREAM_OPEN() : mutate(r, STREAM_OPEN(r.pick(["localhost", "other", ""]))));
    }
    for (let i = 1 + r.int(8); i > 0 && !c.closed; i--) {
      c.send(mutate(r, stanza(r)));
      if (r.chance(0.3)) await new Promise((res) => setTimeout(res, r.int(15)));
    }
    if (r.chance(0.3) && !c.closed) c.send(r.pick(["</stream:stream>", "</stream>", "<", "\u0000"]));
    await new Promise((res) => setTimeout(res, r.int(40)));
  } catch {
    // A login refused or a stream closed by the server is an expected outcome here.
  } finally {
    c.close();
  }
}

fuzzPart(t, `XMPP: ${ROUNDS} streams of mutated stanzas`, xmppRound, (b) => b.ports.xmpp);
