// A real Debian mosquitto for tests: its own temp dir, free port, password file and
// ACL, persistence on (so a restart keeps queued QoS 1 messages); stoppable and
// restartable on the same data.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { daemon } from "./daemon.js";
import { canConnect, freePort } from "./ports.js";

export interface TestMosquitto {
  url: string;
  port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

const MOSQUITTO = "/usr/sbin/mosquitto";

export async function startMosquitto(users: Record<string, string>, acl: string): Promise<TestMosquitto> {
  if (!existsSync(MOSQUITTO)) throw new Error("mosquitto not found: install Debian's mosquitto package (npm test does)");
  const dir = mkdtempSync(join(tmpdir(), "sb-mosq-"));
  const port = await freePort();
  const passwords = join(dir, "passwd");
  writeFileSync(passwords, "");
  for (const [user, pw] of Object.entries(users)) execFileSync("mosquitto_passwd", ["-b", passwords, user, pw]);
  writeFileSync(join(dir, "acl"), acl);
  for (const f of ["passwd", "acl"]) chmodSync(join(dir, f), 0o600);
  const config = join(dir, "mosquitto.conf");
  writeFileSync(
    config,
    `${process.getuid?.() === 0 ? "# As root, mosquitto would drop to its own user, who cannot read this temp dir.\nuser root\n" : ""}listener ${port} 127.0.0.1
allow_anonymous false
password_file ${passwords}
acl_file ${join(dir, "acl")}
persistence true
persistence_location ${dir}/
autosave_interval 1
max_queued_messages 100000
log_type error
log_dest stderr
`,
  );
  const mosquitto = daemon("mosquitto", MOSQUITTO, ["-c", config], () => canConnect(port), { startMs: 10_000, pollMs: 50 });
  await mosquitto.start();
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    stop: mosquitto.stop,
    start: mosquitto.start,
    async close() {
      await mosquitto.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
