// Delivery between accounts, RFC 6121 §8.5: messages and IQs to bare and full JIDs,
// with the RFC's answers when nobody can receive them.
import { StanzaError } from "../errors.js";
import type { Router, StanzaEvent } from "../router.js";
import type { Registry } from "../../registry/registry.js";
import type { Session } from "../sessions.js";

export function deliveryModule(deps: { router: Router; registry: Registry }): void {
  const { router, registry } = deps;
  const { events, sessions } = router;
  const unavailable = (event: StanzaEvent) => router.error(event, new StanzaError("service-unavailable"));

  /** RFC 6121 §8.5.2.1.1: the available resources of highest non-negative priority. */
  function bestResources(bare: string): Session[] {
    let best: Session[] = [];
    let top = 0;
    for (const session of sessions.ofAccount(bare)) {
      if (!session.presence || session.priority < 0) continue;
      if (best.length === 0 || session.priority > top) {
        best = [session];
        top = session.priority;
      } else if (session.priority === top) best.push(session);
    }
    return best;
  }

  function messageToAccount(event: StanzaEvent): boolean {
    const { type } = event;
    if (!registry.get(event.to.local)) return (unavailable(event), true);
    // §8.5.2.1.1: groupchat to a bare JID is an error; headline and error are dropped when undeliverable.
    if (type === "groupchat") return (unavailable(event), true);
    const targets = type === "headline" ? sessions.ofAccount(event.to.toString()).filter((s) => s.presence && s.priority >= 0) : bestResources(event.to.toString());
    if (targets.length === 0) {
      // No offline storage: §8.5.2.2.1 allows service-unavailable instead.
      if (type === "normal" || type === "chat") unavailable(event);
      return true;
    }
    for (const session of targets) session.send(event.stanza);
    return true;
  }

  events.on("message/full", (event) => {
    const session = sessions.get(event.to.toString());
    if (session) return (session.send(event.stanza), true);
    // §8.5.3.2.1: a message to a resource that is gone is treated as sent to the bare JID.
    event.to = event.to.bare();
    if (event.type === "groupchat") return (unavailable(event), true);
    return messageToAccount(event);
  });

  events.on("message/bare", messageToAccount);

  events.on("iq/full", (event) => {
    const session = sessions.get(event.to.toString());
    if (session) return (session.send(event.stanza), true);
    // §8.5.3.2.1: an IQ to a resource that is gone gets service-unavailable.
    unavailable(event);
    return true;
  });
}
