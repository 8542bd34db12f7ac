// Service Discovery, XEP-0030: what the server and each account support. Other
// modules register their features and items here.
import xml, { type Element } from "@xmpp/xml";
import { StanzaError } from "../errors.js";
import type { Router, StanzaEvent } from "../router.js";
import type { Registry } from "../../registry/registry.js";

export const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";
export const NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items";

export interface Disco {
  addFeature(scope: "host" | "account", feature: string): void;
  addItem(jid: string, name: string, node?: string): void;
}

export function discoModule(deps: { router: Router; registry: Registry }): Disco {
  const { router, registry } = deps;
  const features = { host: new Set([NS_DISCO_INFO, NS_DISCO_ITEMS]), account: new Set([NS_DISCO_INFO, NS_DISCO_ITEMS]) };
  const items: Array<{ jid: string; name: string; node?: string }> = [];

  const answer = (event: StanzaEvent, query: Element) => router.reply(event, xml("iq", { type: "result", id: event.stanza.attrs.id }, query));
  // A node nobody registered (§3.1): item-not-found. Later modules (commands) claim their nodes first.
  const unknownNode = (event: StanzaEvent) => {
    if (!event.payload?.attrs.node) return false;
    router.error(event, new StanzaError("item-not-found", `no node '${event.payload.attrs.node}'`));
    return true;
  };
  const infoQuery = (identity: Record<string, string>, scope: "host" | "account") =>
    xml("query", { xmlns: NS_DISCO_INFO }, xml("identity", identity), ...[...features[scope]].sort().map((v) => xml("feature", { var: v })));

  router.events.on(`iq-get/host/${NS_DISCO_INFO}:query`, (event) => {
    if (!unknownNode(event)) answer(event, infoQuery({ category: "server", type: "im", name: "Switchboard" }, "host"));
    return true;
  }, -10);
  router.events.on(`iq-get/host/${NS_DISCO_ITEMS}:query`, (event) => {
    if (!unknownNode(event)) answer(event, xml("query", { xmlns: NS_DISCO_ITEMS }, ...items.map((i) => xml("item", i))));
    return true;
  }, -10);
  router.events.on(`iq-get/bare/${NS_DISCO_INFO}:query`, (event) => {
    if (unknownNode(event)) return true;
    if (!registry.get(event.to.local)) return (router.error(event, new StanzaError("service-unavailable")), true);
    // XEP-0030 §3.1 for a bare account JID: the server answers on the account's behalf.
    answer(event, infoQuery({ category: "account", type: "registered" }, "account"));
    return true;
  }, -10);
  router.events.on(`iq-get/bare/${NS_DISCO_ITEMS}:query`, (event) => {
    if (unknownNode(event)) return true;
    if (!registry.get(event.to.local)) return (router.error(event, new StanzaError("service-unavailable")), true);
    answer(event, xml("query", { xmlns: NS_DISCO_ITEMS }));
    return true;
  }, -10);

  return {
    addFeature: (scope, feature) => void features[scope].add(feature),
    addItem: (jid, name, node) => void items.push({ jid, name, node }),
  };
}
