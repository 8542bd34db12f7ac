// A real Debian mosquitto for tests: its own temp dir, free port, password file and
// ACL, persistence on (so a restart keeps queued QoS 1 messages); stoppable and
// restartable on the same data.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./influx.js";

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
  let child: ChildProcess | null = null;
  async function start(): Promise<void> {
    child = spawn(MOSQUITTO, ["-c", config], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr += d));
    const deadline = Date.now() + 10_000;
    for (;;) {
      const up = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, "127.0.0.1", () => (s.destroy(), resolve(true)));
        s.on("error", () => resolve(false));
      });
      if (up) return;
      if (child.exitCode !== null) throw new Error(`mosquitto exited: ${stderr}`);
      if (Date.now() > deadline) throw new Error(`mosquitto did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  async function stop(): Promise<void> {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once("exit", () => resolve());
      c.kill("SIGTERM"); // mosquitto saves its persistence file on SIGTERM
      setTimeout(() => c.kill("SIGKILL"), 5000).unref();
    });
  }
  await start();
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    stop,
    start,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
