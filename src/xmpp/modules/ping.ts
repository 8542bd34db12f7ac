// XMPP Ping, XEP-0199: the server answers pings addressed to it (§4.2), and those a
// client sends with no `to` or to its own bare JID: RFC 6120 §10.3.3 has the server
// process an IQ without `to` on behalf of the sending account, and the note of
// XEP-0199 §4.2 names both forms as pings of the server. Another account's bare JID
// is not answered here (device isolation has refused it already for a device).
import xml from "@xmpp/xml";
import type { Router, StanzaEvent } from "../router.js";
import type { Disco } from "./disco.js";

export const NS_PING = "urn:xmpp:ping";

export function pingModule(deps: { router: Router; disco: Disco }): void {
  const pong = (event: StanzaEvent) => (deps.router.reply(event, xml("iq", { type: "result", id: event.stanza.attrs.id })), true);
  deps.disco.addFeature("host", NS_PING);
  deps.router.events.on(`iq-get/host/${NS_PING}:ping`, pong);
  deps.router.events.on(`iq-get/bare/${NS_PING}:ping`, (event) => event.origin !== null && event.origin.bare === event.to.toString() && pong(event));
}
