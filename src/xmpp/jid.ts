// XMPP addresses, RFC 7622. @xmpp/jid splits and holds a JID, but it silently
// applies XEP-0106 escaping to a localpart with forbidden characters, which would
// hide a malformed address; so parts are validated here first, then built.
import { JID } from "@xmpp/jid";

export { JID };

const MAX_PART_BYTES = 1023; // RFC 7622 §3.2, §3.3, §3.4
// RFC 7622 §3.3.1: these are disallowed in a localpart, plus spaces and controls.
const BAD_LOCAL = /[\s"&'/:<>@\u0000-\u001f\u007f]/u;
const BAD_RESOURCE = /[\u0000-\u001f\u007f]/u;
const DOMAIN_LABEL = /^[\p{L}\p{N}]([\p{L}\p{N}-]*[\p{L}\p{N}])?$/u;
const IP_LITERAL = /^\[[0-9a-f:.]+\]$|^\d{1,3}(\.\d{1,3}){3}$/i;

const byteLength = (s: string) => Buffer.byteLength(s, "utf8");

function validDomain(domain: string): boolean {
  if (domain.length === 0 || byteLength(domain) > MAX_PART_BYTES) return false;
  if (IP_LITERAL.test(domain)) return true;
  return domain.split(".").every((label) => label.length > 0 && label.length <= 63 && DOMAIN_LABEL.test(label));
}

/** A valid JID, normalized (case-folded localpart and domain, NFC resource), or null. */
export function parseJid(text: string): JID | null {
  if (typeof text !== "string" || text.length === 0 || text.length > 3 * MAX_PART_BYTES + 2) return null;
  const slash = text.indexOf("/");
  const resource = slash >= 0 ? text.slice(slash + 1).normalize("NFC") : null;
  const rest = slash >= 0 ? text.slice(0, slash) : text;
  const at = rest.indexOf("@");
  const local = at >= 0 ? rest.slice(0, at).normalize("NFKC").toLowerCase() : null;
  let domain = (at >= 0 ? rest.slice(at + 1) : rest).toLowerCase();
  if (domain.endsWith(".")) domain = domain.slice(0, -1); // RFC 7622 §3.2: a trailing dot is stripped
  if (!validDomain(domain)) return null;
  if (local !== null && (local.length === 0 || byteLength(local) > MAX_PART_BYTES || BAD_LOCAL.test(local))) return null;
  if (resource !== null && (resource.length === 0 || byteLength(resource) > MAX_PART_BYTES || BAD_RESOURCE.test(resource)))
    return null;
  return new JID(local, domain, resource);
}

/** A resourcepart a client asked for at bind time (RFC 6120 §7.7.2.1), or null. */
export function validResource(resource: string): string | null {
  const normalized = resource.normalize("NFC");
  if (normalized.length === 0 || byteLength(normalized) > MAX_PART_BYTES || BAD_RESOURCE.test(normalized)) return null;
  return normalized;
}

export const bareOf = (jid: JID): string => (jid.local ? `${jid.local}@${jid.domain}` : jid.domain);
