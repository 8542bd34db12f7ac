// Broker shutdown with MQTT devices online (docs/mqtt.md, Presence; docs/operations.md):
// every device's unavailable reaches an operator before the server ends its stream,
// and each device's last-seen time is stored.
import t from "tap";
import { rmSync } from "node:fs";
import { openSqliteRegistry } from "../../src/registry/sqlite.js";
import { DEVICES, startPresenceKit } from "../helpers/presence-kit.js";
import { RawClient } from "../helpers/raw.js";
import { STEP_MS } from "../helpers/mqtt-kit.js";
import { withTimeout } from "../helpers/wait.js";

t.test("broker shutdown: each MQTT device's unavailable reaches the operator before its stream ends", async (t) => {
  const kit = await startPresenceKit({});
  const b = kit.broker;
  let stopped = false;
  t.teardown(() => kit.close(stopped));
  const op = await RawClient.connect(b.ports.xmpp);
  kit.keep({ destroy: () => op.close() });
  await op.login("op1", kit.pw("op1"), { resource: "shutdown" });
  op.send("<presence/>");
  for (const d of DEVICES) await op.expect(new RegExp(`<presence[^>]*from="${d}@localhost"`));
  const devs = ["dev1", "dev2", "dev3"];
  for (const d of devs) {
    await kit.device(d);
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
