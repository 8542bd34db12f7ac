// Resource binding, RFC 6120 §7: the resource a client asks for, or one the server picks.
import { randomBytes } from "node:crypto";
import type { Element } from "@xmpp/xml";
import { StanzaError } from "./errors.js";
import { validResource } from "./jid.js";

export const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";

/** RFC 6120 §7: the resource a bind asks for (null: none, the server picks), or why it is refused. */
export function requestedResource(iq: Element): string | null | StanzaError {
  if (iq.attrs.type !== "set" || !iq.attrs.id) return new StanzaError("bad-request", "bind is an IQ set with an id");
  const requested = iq.getChild("bind", NS_BIND)!.getChildText("resource");
  if (!requested) return null;
  const resource = validResource(requested);
  if (resource === null) return new StanzaError("bad-request", "invalid resource");
  // `mqtt` is the resource of a device's MQTT connection; an XMPP client gets its own.
  return resource === "mqtt" ? `mqtt-${generatedResource()}` : resource;
}

export const generatedResource = () => `sb-${randomBytes(6).toString("hex")}`;
