// XMPP Ping, XEP-0199 §4.2: the server answers pings addressed to it.
import xml from "@xmpp/xml";
import type { Router } from "../router.js";
import type { Disco } from "./disco.js";

export const NS_PING = "urn:xmpp:ping";

export function pingModule(deps: { router: Router; disco: Disco }): void {
  deps.disco.addFeature("host", NS_PING);
  deps.router.events.on(`iq-get/host/${NS_PING}:ping`, (event) => {
    deps.router.reply(event, xml("iq", { type: "result", id: event.stanza.attrs.id }));
    return true;
  });
}
