// IQs the broker itself sends (RFC 6120 §8.2.3): each request waits for the result or
// error with its id from the entity it addressed, or gives up after a timeout.
import xml, { type Element } from "@xmpp/xml";
import { randomId } from "../ids.js";
import type { Router } from "./router.js";

export interface IqCaller {
  /** Sends `payload` in an IQ of `type` to `to` from the domain; resolves with the answer (type result or error). */
  request(to: string, type: "get" | "set", payload: Element, timeoutMs: number): Promise<Element>;
}

export function iqCaller(router: Router): IqCaller {
  const pending = new Map<string, { to: string; resolve: (answer: Element) => void; timer: NodeJS.Timeout }>();
  // Answers addressed to the domain itself, ahead of the fallback that drops them.
  router.events.on("iq/host", (event) => {
    if (event.type !== "result" && event.type !== "error") return false;
    const p = pending.get(event.stanza.attrs.id ?? "");
    // §8.2.3: only the addressed entity's answer counts.
    if (!p || event.from.toString() !== p.to) return false;
    pending.delete(event.stanza.attrs.id!);
    clearTimeout(p.timer);
    p.resolve(event.stanza);
    return true;
  }, 10);
  return {
    request(to, type, payload, timeoutMs) {
      const id = `sb-${randomId()}`;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`no answer from ${to} within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, { to, resolve, timer });
        try {
          router.routeFromServer(xml("iq", { type, id, to, from: router.domain }, payload));
        } catch (err) {
          clearTimeout(timer);
          pending.delete(id);
          reject(err as Error);
        }
      });
    },
  };
}
