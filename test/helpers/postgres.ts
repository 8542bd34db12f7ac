// A real PostgreSQL (Debian's postgresql package) for tests: initdb into a temp dir
// and the server on a free loopback port, run as the `postgres` user when the tests
// run as root (initdb refuses root). Each test takes a fresh database of its own.
import { execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { daemon } from "./daemon.js";
import { freePort } from "./ports.js";

export interface TestPostgres {
  port: number;
  /** A new empty database; its URL. */
  database(name?: string): Promise<string>;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

/** The newest installed server's bin directory. */
function serverBin(): string {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, "bin", "postgres"))) : [];
  if (versions.length === 0) throw new Error("PostgreSQL server not found: install Debian's postgresql package (npm test does)");
  return join(root, versions.sort((a, b) => Number(b) - Number(a))[0]!, "bin");
}

/** Who runs the server: the postgres user when we are root. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
  return { uid: id("-u"), gid: id("-g") };
}

let databases = 0;

export async function startPostgres(): Promise<TestPostgres> {
  const bin = serverBin();
  const user = runAs();
  const dir = mkdtempSync(join(tmpdir(), "sb-pg-"));
  if (user) chownSync(dir, user.uid, user.gid);
  const data = join(dir, "data");
  execFileSync(join(bin, "initdb"), ["-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"], { stdio: "pipe", ...user });
  const port = await freePort();
  const admin = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const answers = async () => {
    const c = new pg.Client({ connectionString: admin });
    c.on("error", () => {});
    try {
      await c.connect();
      await c.end();
      return true;
    } catch {
      return false;
    }
  };
  const server = daemon(
    "postgres",
    join(bin, "postgres"),
    ["-D", data, "-p", String(port), "-k", dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
    answers,
    { startMs: 30_000, pollMs: 100, spawn: user },
  );
  await server.start();
  return {
    port,
    async database(name = `sb_test_${process.pid}_${++databases}`) {
      const c = new pg.Client({ connectionString: admin });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
      } finally {
        await c.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    stop: () => server.stop(),
    start: () => server.start(),
    async close() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
