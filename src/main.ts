// `switchboard start`: runs the broker until SIGTERM/SIGINT, then stops it cleanly
// (docs/deployment.md). A second signal exits at once. Started by npm or npx, the broker
// also stops cleanly when the process npm started is orphaned (docs/deployment.md).
import type { Config } from "./config.js";
import { createLogger } from "./log.js";
import { startBroker } from "./index.js";
import { handleUnhandledRejections } from "./unhandled-rejection.js";
import { watchParent, type ParentWatch } from "./parent-watch.js";

/**
 * A signal this soon after the first is the same request delivered twice: a terminal's
 * Ctrl-C (or a process manager's SIGTERM to the whole process group) reaches both
 * this process and `npm start`, which forwards it to its child.
 */
const SAME_REQUEST_MS = 500;

export async function runBroker(config: Config): Promise<number> {
  const log = createLogger();
  handleUnhandledRejections(log);
  const broker = await startBroker(config, { log });
  await new Promise<void>((resolve) => {
    let stopping = false;
    let firstSignal: number | null = null;
    let parent: ParentWatch | null = null;
    function stop(why: Record<string, unknown>): void {
      if (stopping) return;
      stopping = true;
      parent?.stop();
      log.info(why, "shutting down");
      broker.stop().then(resolve, (err) => {
        log.error({ err }, "shutdown failed");
        resolve();
      });
    }
    function onSignal(signal: NodeJS.Signals): void {
      if (firstSignal === null) {
        firstSignal = Date.now();
        return stop({ signal });
      }
      if (Date.now() - firstSignal >= SAME_REQUEST_MS) process.exit(130);
    }
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    // npm sets npm_lifecycle_event in the environment of every script it runs (`npm start`, `npx`).
    if (process.env.npm_lifecycle_event !== undefined) parent = watchParent((pid) => stop({ parent: pid, reason: "parent process exited" }));
  });
  return 0;
}
