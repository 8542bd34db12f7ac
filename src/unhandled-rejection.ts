// The running broker's last resort for a promise that nobody handled: one JSON error
// line with the reason and its stack, and the broker goes on.
//
// Kept running rather than crashed and restarted: such a rejection ends one piece of
// work (a stanza, a publish) whose caller has already moved on, while a crash would
// drop every connected device and operator, lose in-flight commands and, for a
// rejection a client can trigger at will, let one client restart the broker in a
// loop. The log line is the alert; the rejection is still a bug to fix where it began.
import { inspect } from "node:util";
import type { Logger } from "./log.js";

export function logUnhandledRejection(log: Logger): (reason: unknown) => void {
  return (reason) => {
    // An Error brings its stack (pino's err serializer); anything else has none to give.
    if (reason instanceof Error) log.error({ reason: reason.message, err: reason }, "unhandled rejection");
    else log.error({ reason: inspect(reason, { depth: 3, breakLength: Infinity }) }, "unhandled rejection");
  };
}

/** Installs the handler for this process: with a listener, Node no longer ends the process on an unhandled rejection. */
export function handleUnhandledRejections(log: Logger): void {
  process.on("unhandledRejection", logUnhandledRejection(log));
}
