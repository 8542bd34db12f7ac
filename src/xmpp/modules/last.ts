// Last Activity, XEP-0012: on a bare JID, seconds since the account was last seen
// (0 while online); on the server, its uptime (§6).
import xml from "@xmpp/xml";
import { StanzaError } from "../errors.js";
import type { Router } from "../router.js";
import type { Registry } from "../../registry/registry.js";
import { receivesPresenceOf } from "../visibility.js";
import type { Disco } from "./disco.js";

export const NS_LAST = "jabber:iq:last";

export function lastActivityModule(deps: { router: Router; registry: Registry; disco: Disco; now?: () => number }): void {
  const { router, registry, disco, now = Date.now } = deps;
  const started = now();
  const seconds = (since: number) => String(Math.max(0, Math.floor((now() - since) / 1000)));
  disco.addFeature("host", NS_LAST);
  disco.addFeature("account", NS_LAST);

  router.events.on(`iq-get/host/${NS_LAST}:query`, (event) => {
    router.reply(event, xml("iq", { type: "result", id: event.stanza.attrs.id }, xml("query", { xmlns: NS_LAST, seconds: seconds(started) })));
    return true;
  });

  router.events.on(`iq-get/bare/${NS_LAST}:query`, (event) => {
    const contact = registry.get(event.to.local);
    const viewer = event.origin?.account;
    if (!contact) return (router.error(event, new StanzaError("service-unavailable")), true);
    // §4: only for an entity allowed to see the contact's presence (or the account itself).
    if (viewer && viewer.name !== contact.name && !receivesPresenceOf(viewer, contact))
      return (router.error(event, new StanzaError("forbidden", "not subscribed to this account's presence")), true);
    const online = router.sessions.ofAccount(event.to.toString()).some((s) => s.presence);
    const seen = registry.lastSeen(contact.name);
    if (!online && !seen) return (router.error(event, new StanzaError("item-not-found", "never seen")), true);
    const query = xml("query", { xmlns: NS_LAST, seconds: online ? "0" : seconds(seen!.at) }, online ? null : (seen!.status ?? null));
    router.reply(event, xml("iq", { type: "result", id: event.stanza.attrs.id }, query));
    return true;
  });
}
