// Device isolation (docs/xmpp.md): a device may address only the broker, services and
// operators (and its own account); any stanza to another device is `forbidden`. An
// account that does not exist answers the same, so the error never tells a device
// whether another device exists (RFC 6120 §13.11, directory harvesting).
import { StanzaError } from "../errors.js";
import type { Router, StanzaEvent } from "../router.js";
import type { Registry } from "../../registry/registry.js";

export function policyModule(deps: { router: Router; registry: Registry }): void {
  const { router, registry } = deps;
  function isolate(event: StanzaEvent): boolean {
    const sender = event.origin?.account;
    if (sender?.role !== "device" || (event.target !== "bare" && event.target !== "full")) return false;
    if (event.to.local === sender.name) return false;
    const role = registry.get(event.to.local)?.role;
    if (role === "service" || role === "operator") return false;
    router.error(event, new StanzaError("forbidden", "a device may address only the broker, services, operators and itself"));
    return true;
  }
  for (const kind of ["message", "presence", "iq"]) router.events.on(`pre/${kind}`, isolate, 100);
}
