// Each bridge's state in service discovery on the domain (docs/bridges.md): an item per
// bridge, and disco#info on its node naming its state.
import xml from "@xmpp/xml";
import type { Router } from "../../src/xmpp/router.js";
import { NS_DISCO_INFO, type Disco } from "../../src/xmpp/modules/disco.js";
import type { Bridge } from "./bridge.js";

export function bridgeDisco(deps: { router: Router; disco: Disco; bridges: Bridge[] }): void {
  const { router, disco, bridges } = deps;
  for (const b of bridges) disco.addItem(router.domain, `bridge ${b.state.name}`, `bridges/${b.state.name}`);
  router.events.on(`iq-get/host/${NS_DISCO_INFO}:query`, (event) => {
    const node = event.payload!.attrs.node;
    const bridge = node?.startsWith("bridges/") ? bridges.find((b) => `bridges/${b.state.name}` === node) : undefined;
    if (!bridge) return false;
    const s = bridge.state;
    const status = s.connected ? "connected" : `disconnected${s.lastError ? `: ${s.lastError}` : ""}`;
    router.reply(event, xml("iq", { type: "result", id: event.stanza.attrs.id }, xml("query", { xmlns: NS_DISCO_INFO, node }, xml("identity", { category: "gateway", type: "mqtt", name: `${s.name} (${status}; in ${s.messagesIn}, out ${s.messagesOut}, reconnects ${s.reconnects})` }))));
    return true;
  });
}
