// One error family for the three XMPP error kinds (RFC 6120 §4.9 stream errors,
// §6.5 SASL failures, §8.3 stanza errors), each knowing how to render itself.
import xml, { type Element } from "@xmpp/xml";

export const NS_STREAMS = "http://etherx.jabber.org/streams";
export const NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams";
export const NS_STANZA_ERRORS = "urn:ietf:params:xml:ns:xmpp-stanzas";
export const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";

export class XMPPError extends Error {
  constructor(
    readonly condition: string,
    readonly text?: string,
  ) {
    super(text ? `${condition}: ${text}` : condition);
  }
}

export type StreamCondition =
  | "bad-format" | "connection-timeout" | "conflict" | "host-unknown" | "invalid-namespace" | "invalid-xml"
  | "not-authorized" | "not-well-formed" | "policy-violation" | "reset" | "resource-constraint" | "restricted-xml"
  | "system-shutdown" | "undefined-condition" | "unsupported-encoding" | "unsupported-stanza-type" | "unsupported-version" | "internal-server-error";

/** RFC 6120 §4.9: fatal to the stream; the server closes it after sending. */
export class StreamError extends XMPPError {
  constructor(
    override readonly condition: StreamCondition,
    text?: string,
  ) {
    super(condition, text);
  }
  toElement(): Element {
    return xml(
      "stream:error",
      {},
      xml(this.condition, { xmlns: NS_STREAM_ERRORS }),
      this.text ? xml("text", { xmlns: NS_STREAM_ERRORS, "xml:lang": "en" }, this.text) : null,
    );
  }
}

export type SASLCondition =
  | "aborted" | "account-disabled" | "credentials-expired" | "encryption-required" | "incorrect-encoding" | "invalid-authzid"
  | "invalid-mechanism" | "malformed-request" | "mechanism-too-weak" | "not-authorized" | "temporary-auth-failure";

/** RFC 6120 §6.5: a failed authentication attempt; the stream stays open. */
export class SASLError extends XMPPError {
  constructor(
    override readonly condition: SASLCondition,
    text?: string,
  ) {
    super(condition, text);
  }
  toElement(): Element {
    return xml("failure", { xmlns: NS_SASL }, xml(this.condition), this.text ? xml("text", { "xml:lang": "en" }, this.text) : null);
  }
}

export type StanzaErrorType = "auth" | "cancel" | "continue" | "modify" | "wait";

// RFC 6120 §8.3.3: the usual error type of each condition.
const DEFAULT_TYPE: Record<string, StanzaErrorType> = {
  "bad-request": "modify", conflict: "cancel", "feature-not-implemented": "cancel", forbidden: "auth", gone: "cancel",
  "internal-server-error": "cancel", "item-not-found": "cancel", "jid-malformed": "modify", "not-acceptable": "modify",
  "not-allowed": "cancel", "not-authorized": "auth", "policy-violation": "modify", "recipient-unavailable": "wait",
  redirect: "modify", "registration-required": "auth", "remote-server-not-found": "cancel", "remote-server-timeout": "wait",
  "resource-constraint": "wait", "service-unavailable": "cancel", "subscription-required": "auth",
  "undefined-condition": "cancel", "unexpected-request": "wait",
};

/** RFC 6120 §8.3: an error about one stanza; the stream goes on. */
export class StanzaError extends XMPPError {
  readonly type: StanzaErrorType;
  /** Echoed in an IQ error reply (RFC 6120 §8.3.1 allows it; XEP-0050 §4.6 does it). */
  echo?: Element;
  constructor(condition: string, text?: string, type?: StanzaErrorType) {
    super(condition, text);
    this.type = type ?? DEFAULT_TYPE[condition] ?? "cancel";
  }
  toElement(): Element {
    return xml(
      "error",
      { type: this.type },
      xml(this.condition, { xmlns: NS_STANZA_ERRORS }),
      this.text ? xml("text", { xmlns: NS_STANZA_ERRORS, "xml:lang": "en" }, this.text) : null,
    );
  }
}

/**
 * The error reply to a stanza (RFC 6120 §8.2): the stanza's own id, `to` and `from`
 * swapped, type 'error', and the original payload echoed back (§8.3.1 permits it)
 * except for IQs, where only the error child is needed.
 */
export function errorReply(stanza: Element, error: StanzaError): Element {
  const reply = xml(stanza.name, { id: stanza.attrs.id, to: stanza.attrs.from, from: stanza.attrs.to, type: "error" });
  if (stanza.name !== "iq") for (const child of stanza.getChildElements()) if (child.name !== "error") reply.append(child);
  if (stanza.name === "iq" && error.echo) reply.append(error.echo);
  reply.append(error.toElement());
  return reply;
}
