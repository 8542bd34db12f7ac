// One JSON line per event (docs/operations.md, "Logs"). Secrets never reach the logger: callers log
// names and outcomes, never credentials; the redact list is a second line of defence.
import pino, { type Logger, type DestinationStream } from "pino";

export type { Logger };

export function createLogger(destination?: DestinationStream): Logger {
  return pino(
    {
      level: process.env.LOG_LEVEL ?? "info",
      base: { pid: process.pid },
      redact: ["password", "*.password", "credentials", "*.credentials"],
    },
    // Asynchronous: lines written while one write is under way go out together, not a
    // write per line (one per command at thousands of commands/s); pino flushes what is
    // pending when the process exits.
    destination ?? pino.destination({ sync: false }),
  );
}

/** A callback that logs an error's message as one line (for parts that report errors they retry). */
export const errorLogger =
  (log: Pick<Logger, "error">, msg: string) =>
  (err: Error): void =>
    log.error({ err: err.message }, msg);
