// Device isolation (CONTRACT §5): a device may address only the broker, services and
// operators (and its own account); any stanza to another device is `forbidden`.
import { StanzaError } from "../errors.js";
import type { Router, StanzaEvent } from "../router.js";
import type { Registry } from "../../registry/registry.js";

export function policyModule(deps: { router: Router; registry: Registry }): void {
  const { router, registry } = deps;
  function isolate(event: StanzaEvent): boolean {
    const sender = event.origin?.account;
    if (sender?.role !== "device" || (event.target !== "bare" && event.target !== "full")) return false;
    if (event.to.local === sender.name) return false;
    if (registry.get(event.to.local)?.role !== "device") return false;
    router.error(event, new StanzaError("forbidden", "devices may not address other devices"));
    return true;
  }
  for (const kind of ["message", "presence", "iq"]) router.events.on(`pre/${kind}`, isolate, 100);
}
