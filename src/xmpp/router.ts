// The stanza router (RFC 6120 §8, §10; RFC 6121 §8). It checks a stanza's shape once,
// stamps `from`, classifies the recipient as the server (host), an account (bare) or
// a resource (full), then fires events named after that classification. Modules
// claim the stanzas they handle; what nobody claims reaches the one fallback.
import type { Element } from "@xmpp/xml";
import { EventBus } from "./events.js";
import { errorReply, StanzaError } from "./errors.js";
import { parseJid, type JID } from "./jid.js";
import type { Session, SessionTable } from "./sessions.js";

export type StanzaKind = "message" | "presence" | "iq";
/** `host` is the main domain; other local service domains (pubsub.<domain>) are their own target name. */
export type Target = "host" | "bare" | "full" | string;

export interface StanzaEvent {
  stanza: Element;
  kind: StanzaKind;
  /** Normalized type: message `normal` when absent, presence `available` when absent. */
  type: string;
  /** The sending session; null for stanzas the broker makes itself. */
  origin: Session | null;
  from: JID;
  /** The recipient; a stanza without `to` is for the sender's own account (RFC 6120 §10.3). */
  to: JID;
  target: Target;
  /** For IQ get/set: the single payload child (RFC 6120 §8.2.3). */
  payload: Element | null;
}

const MESSAGE_TYPES = new Set(["normal", "chat", "groupchat", "headline", "error"]);
const PRESENCE_TYPES = new Set(["available", "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error"]);
const IQ_TYPES = new Set(["get", "set", "result", "error"]);

export interface Router {
  readonly domain: string;
  readonly events: EventBus<StanzaEvent>;
  readonly sessions: SessionTable;
  /** Declares another local domain (a service such as pubsub.<domain>) routed to its own events. */
  addService(domain: string): void;
  /** Entry point for every stanza a bound session sends. */
  route(origin: Session, stanza: Element): void;
  /** Entry point for stanzas the broker sends as one of its entities (a device on MQTT, a service). */
  routeFromServer(stanza: Element): void;
  /** Sends `reply` back to the sender of `event`, from the entity it addressed. */
  reply(event: StanzaEvent, reply: Element): void;
  /** Answers `event` with a stanza error, unless it was an error itself (RFC 6120 §8.3.1). */
  error(event: StanzaEvent, error: StanzaError): void;
  /** Answers an IQ once `outcome` settles: a result (its id set here) or a stanza error. */
  answer(event: StanzaEvent, outcome: Promise<Element | StanzaError>): true;
}

export function createRouter(deps: { domain: string; sessions: SessionTable }): Router {
  const { domain, sessions } = deps;
  const events = new EventBus<StanzaEvent>();
  const services = new Set<string>();

  function targetOf(to: JID): Target | null {
    if (to.local) return to.domain === domain ? (to.resource ? "full" : "bare") : null;
    if (to.domain === domain) return "host";
    return services.has(to.domain) ? to.domain : null;
  }

  /** Sends to the origin or, for the broker's own stanzas, to the local recipient. */
  function sendBack(event: StanzaEvent, stanza: Element): void {
    if (event.origin) event.origin.send(stanza);
    else deliverLocal(stanza);
  }

  function error(event: StanzaEvent, err: StanzaError): void {
    if (event.type === "error" || (event.kind === "iq" && event.type === "result")) return;
    sendBack(event, errorReply(event.stanza, err));
  }

  function reply(event: StanzaEvent, stanza: Element): void {
    stanza.attrs.to = event.from.toString();
    stanza.attrs.from = event.stanza.attrs.to ?? (event.target === "bare" ? event.to.toString() : undefined);
    sendBack(event, stanza);
  }

  /** Delivery of the broker's own stanzas to local sessions: full JID or every resource. */
  function deliverLocal(stanza: Element): void {
    const to = stanza.attrs.to && parseJid(stanza.attrs.to);
    if (!to || !to.local || to.domain !== domain) return;
    if (to.resource) sessions.get(to.toString())?.send(stanza);
    else for (const session of sessions.ofAccount(`${to.local}@${to.domain}`)) session.send(stanza);
  }

  function dispatch(event: StanzaEvent): void {
    const { kind, target } = event;
    if (events.fire(`pre/${kind}`, event)) return;
    if (event.payload && kind === "iq") {
      const ns = event.payload.attrs.xmlns ?? "";
      if (events.fire(`iq-${event.type}/${target}/${ns}:${event.payload.name}`, event)) return;
    }
    if (events.fire(`${kind}/${target}`, event)) return;
    // The single fallback (RFC 6120 §8.4): nobody here handles this stanza.
    if (kind === "presence") return;
    if (kind === "iq" && (event.type === "result" || event.type === "error")) return;
    error(event, new StanzaError("service-unavailable"));
  }

  /** RFC 6120 §8.1–§8.2: checks shared by every stanza, whoever sent it. */
  function classify(stanza: Element, origin: Session | null, from: JID): StanzaEvent | StanzaError {
    const kind = stanza.name as StanzaKind;
    const rawType = stanza.attrs.type;
    const type = rawType ?? (kind === "message" ? "normal" : kind === "presence" ? "available" : "");
    const event: StanzaEvent = { stanza, kind, type, origin, from, to: from, target: "bare", payload: null };
    if (kind === "iq") {
      if (!IQ_TYPES.has(type)) return new StanzaError("bad-request", "an IQ needs a type of get, set, result or error");
      if (!stanza.attrs.id) return new StanzaError("bad-request", "an IQ needs an id");
      const children = stanza.getChildElements();
      if ((type === "get" || type === "set") && children.length !== 1)
        return new StanzaError("bad-request", "an IQ get or set must have exactly one child element");
      event.payload = children[0] ?? null;
    } else if (kind === "message" ? !MESSAGE_TYPES.has(type) : !PRESENCE_TYPES.has(type) || rawType === "available") {
      return new StanzaError("bad-request", `unknown ${kind} type '${rawType}'`);
    }
    if (stanza.attrs.to !== undefined) {
      const to = parseJid(stanza.attrs.to);
      if (!to) return new StanzaError("jid-malformed", `'${stanza.attrs.to}' is not a valid JID`);
      stanza.attrs.to = to.toString();
      event.to = to;
      const target = targetOf(to);
      if (!target) return new StanzaError("remote-server-not-found", `no route to '${to.domain}': this server does not federate`);
      event.target = target;
    } else {
      event.to = from.bare();
    }
    return event;
  }

  return {
    domain,
    events,
    sessions,
    addService: (d) => void services.add(d),
    reply,
    error,
    answer(event, outcome) {
      outcome.then(
        (result) => {
          if (result instanceof StanzaError) return error(event, result);
          result.attrs.id = event.stanza.attrs.id;
          reply(event, result);
        },
        () => error(event, new StanzaError("internal-server-error")),
      );
      return true;
    },
    route(origin, stanza) {
      // RFC 6120 §8.1.2.1: the server stamps `from` with the sender's full JID, whatever it said.
      stanza.attrs.from = origin.full;
      const event = classify(stanza, origin, origin.jid);
      if (event instanceof StanzaError) {
        if (stanza.attrs.type !== "error") origin.send(errorReply(Object.assign(stanza, { attrs: { ...stanza.attrs, to: undefined } }), event));
        return;
      }
      dispatch(event);
    },
    routeFromServer(stanza) {
      const from = parseJid(stanza.attrs.from ?? domain);
      if (!from) throw new Error(`broker stanza with bad from '${stanza.attrs.from}'`);
      const event = classify(stanza, null, from);
      if (event instanceof StanzaError) throw event;
      dispatch(event);
    },
  };
}
