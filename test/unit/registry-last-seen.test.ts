// Last-seen times are written behind (one transaction per SEEN_WRITE_MS): a read
// sees a pending time at once, another process (the CLI) sees it after that, a
// removed account gets no row back, and close() writes what is still pending.
import t from "tap";
import { createCredentials } from "../../src/auth/credentials.js";
import { SEEN_WRITE_MS, openSqliteRegistry } from "../../src/registry/sqlite.js";
import { tempDir } from "../helpers/temp-dir.js";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const writeInterval = () => sleep(SEEN_WRITE_MS + 50);

t.test("last seen: visible at once, on disk after the write interval, flushed on close", async (t) => {
  const dataDir = tempDir(t, "sb-registry-");
  const registry = openSqliteRegistry({ dataDir });
  const other = openSqliteRegistry({ dataDir }); // stands for the CLI
  t.teardown(() => other.close());
  const credentials = await createCredentials("pw-1", 4096);
  for (const name of ["d1", "d2", "d3"]) await registry.add({ name, role: "device", type: "thermostat", credentials });

  registry.setLastSeen("d1", { at: 1000, status: null });
  registry.setLastSeen("d1", { at: 2000, status: "gone" });
  t.same(registry.lastSeen("d1"), { at: 2000, status: "gone" }, "the newest pending time is read back before it is written");
  t.equal(other.lastSeen("d1"), undefined, "not yet on disk at once");
  await sleep(SEEN_WRITE_MS / 4);
  t.equal(other.lastSeen("d1"), undefined, "nor a few turns later: the write waits for more");
  await writeInterval();
  t.same(other.lastSeen("d1"), { at: 2000, status: "gone" }, "written once the interval is over");

  registry.setLastSeen("d2", { at: 3000, status: null });
  await registry.remove("d2");
  await writeInterval();
  t.equal(other.lastSeen("d2"), undefined, "a pending time of an account removed here is dropped");

  registry.setLastSeen("d3", { at: 4000, status: null });
  await other.remove("d3"); // removed by another process before the write
  await writeInterval();
  t.equal(registry.lastSeen("d3"), undefined, "no last_seen row is written for an account another process removed");

  registry.setLastSeen("d1", { at: 5000, status: null });
  await registry.close();
  t.same(other.lastSeen("d1"), { at: 5000, status: null }, "close() writes what is pending");
});
