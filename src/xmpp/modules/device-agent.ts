// The broker answers for a device that is not itself an XMPP client (an MQTT or
// bridged device): IQs to `<id>@<domain>/mqtt` land here. Later modules (commands,
// read-outs) register their payloads with `handle`.
import xml, { type Element } from "@xmpp/xml";
import { StanzaError, errorReply } from "../errors.js";
import type { Router } from "../router.js";
import type { Session } from "../sessions.js";
import { NS_DISCO_INFO } from "./disco.js";
import { NS_PING } from "./ping.js";

/** Returns the reply, or null to let the next handler of the same payload answer. */
export type AgentHandler = (session: Session, iq: Element, payload: Element) => Element | StanzaError | null | Promise<Element | StanzaError | null>;

export interface DeviceAgent {
  /** Delivers a stanza addressed to a proxied device session. */
  deliver(session: Session, stanza: Element): void;
  /** Answers IQ get/set whose payload is `<name xmlns=ns>`; later handlers are asked first. */
  handle(type: "get" | "set", ns: string, name: string, handler: AgentHandler): void;
  /** disco#info features of proxied devices. */
  addFeature(feature: string): void;
}

export function createDeviceAgent(deps: { router: Router }): DeviceAgent {
  const { router } = deps;
  const handlers = new Map<string, AgentHandler[]>();
  const features = new Set([NS_DISCO_INFO, NS_PING]);

  function send(reply: Element): void {
    try {
      router.routeFromServer(reply);
    } catch {
      // The requester is gone or was malformed: nothing to answer to.
    }
  }

  function respond(session: Session, iq: Element, outcome: Element | StanzaError): void {
    if (outcome instanceof StanzaError) {
      const reply = errorReply(iq, outcome);
      reply.attrs.from = session.full;
      return send(reply);
    }
    outcome.attrs.id = iq.attrs.id;
    outcome.attrs.to = iq.attrs.from;
    outcome.attrs.from = session.full;
    send(outcome);
  }

  const agent: DeviceAgent = {
    deliver(session, stanza) {
      if (stanza.name === "iq") {
        const type = stanza.attrs.type;
        if (type !== "get" && type !== "set") return; // results of the broker's own requests: handled by their senders
        const payload = stanza.getChildElements()[0]!;
        const list = handlers.get(`${type} ${payload.attrs.xmlns ?? ""} ${payload.name}`) ?? [];
        (async () => {
          for (const handler of list) {
            const outcome = await handler(session, stanza, payload);
            if (outcome) return outcome;
          }
          return new StanzaError("service-unavailable");
        })().then(
          (outcome) => respond(session, stanza, outcome),
          () => respond(session, stanza, new StanzaError("internal-server-error")),
        );
        return;
      }
      // A person writing to a device that does not speak XMPP (RFC 6121 §8.5.3.1 lets us refuse).
      if (stanza.name === "message" && (stanza.attrs.type ?? "normal") !== "error" && stanza.attrs.type !== "headline" && stanza.attrs.type !== "groupchat") {
        const reply = errorReply(stanza, new StanzaError("service-unavailable", "this device does not receive messages"));
        reply.attrs.from = session.full;
        send(reply);
      }
    },
    handle(type, ns, name, handler) {
      const key = `${type} ${ns} ${name}`;
      handlers.set(key, [handler, ...(handlers.get(key) ?? [])]);
    },
    addFeature: (feature) => void features.add(feature),
  };

  // XEP-0199: the device answers pings while connected (the session exists only then).
  agent.handle("get", NS_PING, "ping", () => xml("iq", { type: "result" }));
  // XEP-0030 on the device's full JID: what the broker does for this device type.
  agent.handle("get", NS_DISCO_INFO, "query", (session, _iq, payload) => {
    if (payload.attrs.node) return new StanzaError("item-not-found", `no node '${payload.attrs.node}'`);
    return xml(
      "iq",
      { type: "result" },
      xml(
        "query",
        { xmlns: NS_DISCO_INFO },
        xml("identity", { category: "client", type: "bot", name: `${session.account.type ?? "device"} ${session.account.name}` }),
        ...[...features].sort().map((f) => xml("feature", { var: f })),
      ),
    );
  });
  return agent;
}
