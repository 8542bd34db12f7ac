// A server program that tests start for real (influxd, mosquitto, postgres): started and waited
// for until it answers, stopped with SIGTERM (SIGKILL after 5 s), restartable on the
// same files; a start that fails says what the program wrote on stderr.
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { sleep } from "./wait.js";

export interface Daemon {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Sends `signal` to the running program, if any. */
  signal(signal: NodeJS.Signals): void;
}

export function daemon(
  name: string,
  command: string,
  args: string[],
  answers: () => Promise<boolean>,
  opts: { startMs: number; pollMs: number; spawn?: Pick<SpawnOptions, "uid" | "gid" | "env"> },
): Daemon {
  let child: ChildProcess | null = null;
  return {
    async start() {
      const c = spawn(command, args, { ...opts.spawn, stdio: ["ignore", "ignore", "pipe"] });
      child = c;
      let stderr = "";
      c.stderr!.on("data", (d) => (stderr = (stderr + d).slice(-4000)));
      const deadline = Date.now() + opts.startMs;
      for (;;) {
        if (await answers()) return;
        if (c.exitCode !== null) throw new Error(`${name} exited: ${stderr}`);
        if (Date.now() > deadline) throw new Error(`${name} did not start: ${stderr}`);
        await sleep(opts.pollMs);
      }
    },
    async stop() {
      const c = child;
      child = null;
      if (!c || c.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        c.once("exit", () => resolve());
        c.kill("SIGCONT"); // in case it was paused
        c.kill("SIGTERM"); // mosquitto saves its persistence file on SIGTERM
        setTimeout(() => c.kill("SIGKILL"), 5000).unref();
      });
    },
    signal(signal) {
      child?.kill(signal);
    },
  };
}
