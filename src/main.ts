// `switchboard start`: runs the broker until SIGTERM/SIGINT, then stops it cleanly
// (CONTRACT §1). A second signal exits at once.
import type { Config } from "./config.js";
import { createLogger } from "./log.js";
import { startBroker } from "./index.js";

export async function runBroker(config: Config): Promise<number> {
  const log = createLogger();
  const broker = await startBroker(config, { log });
  await new Promise<void>((resolve) => {
    let signalled = false;
    const onSignal = (signal: string) => {
      if (signalled) process.exit(130);
      signalled = true;
      log.info({ signal }, "shutting down");
      broker.stop().then(resolve, (err) => {
        log.error({ err }, "shutdown failed");
        resolve();
      });
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
  return 0;
}
