// Start and stop in order. Parts are opened one after the other; if one fails to
// open, what was opened is closed again before the error goes on, so a broker that
// cannot start leaves no port open. On stop, parts close in the order they were
// opened (links first, so devices' unavailable presence goes out while the XMPP
// streams still carry it), then what must close last (the stores, flushed).
import type { Logger } from "./log.js";

export interface Closable {
  close(): Promise<void> | void;
}

export interface Lifecycle {
  /** A part that is open once `opening` resolves; closed on stop. */
  open<T extends Closable>(opening: Promise<T> | T): Promise<T>;
  /** Closed after every opened part, in the order given. */
  atEnd(part: Closable): void;
  stop(): Promise<void>;
}

export function lifecycle(log: Pick<Logger, "info">): Lifecycle {
  const opened: Closable[] = [];
  const last: Closable[] = [];
  let stopping: Promise<void> | null = null;

  async function stop(): Promise<void> {
    for (const part of [...opened, ...last]) await part.close();
    log.info("stopped");
  }

  return {
    async open(opening) {
      try {
        const part = await opening;
        opened.push(part);
        return part;
      } catch (err) {
        await (stopping ??= stop());
        throw err;
      }
    },
    atEnd: (part) => void last.push(part),
    stop: () => (stopping ??= stop()),
  };
}
