import t from "tap";
import { parseJid, validResource } from "../../src/xmpp/jid.js";

t.test("valid JIDs are normalized", async (t) => {
  t.equal(parseJid("Dev1@LocalHost/Res")?.toString(), "dev1@localhost/Res", "localpart and domain case-folded, resource kept");
  t.equal(parseJid("localhost")?.toString(), "localhost");
  t.equal(parseJid("localhost.")?.toString(), "localhost", "trailing dot stripped (RFC 7622 §3.2)");
  t.equal(parseJid("a@b/c/d@e")?.resource, "c/d@e", "the resource may hold / and @");
  t.equal(parseJid("pubsub.localhost")?.domain, "pubsub.localhost");
  t.equal(parseJid("x@[::1]")?.domain, "[::1]");
  t.equal(parseJid("x@127.0.0.1")?.domain, "127.0.0.1");
  t.equal(parseJid("ünïcode@example.org")?.local, "ünïcode");
});

t.test("malformed JIDs are rejected", async (t) => {
  for (const bad of ["", "@localhost", "a@", "a@b@c", "a b@localhost", "a\"b@localhost", "a<b@localhost", "a:b@localhost", "localhost/", "a@-x.com", "a@x..com", "a@x_y.com", `${"a".repeat(1024)}@localhost`, "a@localhost/\u0001"])
    t.equal(parseJid(bad), null, JSON.stringify(bad.slice(0, 40)));
});

t.test("resources at bind time", async (t) => {
  t.equal(validResource("phone"), "phone");
  t.equal(validResource(""), null);
  t.equal(validResource("a\u0000b"), null);
  t.equal(validResource("x".repeat(1024)), null);
});
