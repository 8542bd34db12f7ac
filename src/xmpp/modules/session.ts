// The session IQ of RFC 3921 §3, gone from RFC 6121 but still sent by old clients;
// advertised as <optional/> in the stream features and acknowledged here.
import xml from "@xmpp/xml";
import type { Router, StanzaEvent } from "../router.js";

export const NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session";

export function sessionModule(deps: { router: Router }): void {
  const ack = (event: StanzaEvent) => {
    deps.router.reply(event, xml("iq", { type: "result", id: event.stanza.attrs.id }));
    return true;
  };
  deps.router.events.on(`iq-set/host/${NS_SESSION}:session`, ack);
  deps.router.events.on(`iq-set/bare/${NS_SESSION}:session`, (event) => event.origin?.bare === event.to.toString() && ack(event));
}
