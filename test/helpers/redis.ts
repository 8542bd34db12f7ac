// A real Redis (Debian's redis-server) for tests: its own temp dir and a free loopback
// port, nothing saved to disk, stoppable and restartable for outage tests.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { daemon } from "./daemon.js";
import { freePort } from "./ports.js";

export interface TestRedis {
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

const REDIS = "/usr/bin/redis-server";

/** Whether a Redis answers PING on `port`. */
function pong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1", () => s.write("PING\r\n"));
    s.setTimeout(1000, () => (s.destroy(), resolve(false)));
    s.on("data", (d) => (s.destroy(), resolve(d.toString().startsWith("+PONG"))));
    s.on("error", () => resolve(false));
  });
}

export async function startRedis(): Promise<TestRedis> {
  if (!existsSync(REDIS)) throw new Error("redis-server not found: install Debian's redis-server package (npm test does)");
  const dir = mkdtempSync(join(tmpdir(), "sb-redis-"));
  const port = await freePort();
  const server = daemon("redis-server", REDIS, ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no"], () => pong(port), { startMs: 10_000, pollMs: 50 });
  await server.start();
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: () => server.stop(),
    start: () => server.start(),
    async close() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
