// Roster, RFC 6121 §2, managed by the broker: operators and services have every
// device (subscription `to`, group = device type); devices have an empty roster.
// Adding or removing a device (CLI or broker) is pushed to interested resources.
import xml, { type Element } from "@xmpp/xml";
import { StanzaError } from "../errors.js";
import type { Router, StanzaEvent } from "../router.js";
import type { Account, Registry } from "../../registry/registry.js";
import { subscriptionOf } from "../visibility.js";

export const NS_ROSTER = "jabber:iq:roster";

export function rosterModule(deps: { router: Router; registry: Registry }): void {
  const { router, registry } = deps;
  const { domain, sessions } = router;
  let pushId = 0;

  function item(account: Account, subscription: string): Element {
    return xml("item", { jid: `${account.name}@${domain}`, name: account.name, subscription }, account.type ? xml("group", {}, account.type) : null);
  }

  function ownAccount(event: StanzaEvent): boolean {
    if (event.origin && event.to.local === event.origin.account.name) return true;
    router.error(event, new StanzaError("forbidden", "a roster belongs to its own account"));
    return false;
  }

  router.events.on(`iq-get/bare/${NS_ROSTER}:query`, (event) => {
    if (!ownAccount(event)) return true;
    const viewer = event.origin!.account;
    const query = xml("query", { xmlns: NS_ROSTER });
    if (viewer.role !== "device") for (const device of registry.list("device")) query.append(item(device, subscriptionOf(viewer, device)));
    event.origin!.rosterRequested = true;
    router.reply(event, xml("iq", { type: "result", id: event.stanza.attrs.id }, query));
    return true;
  });

  router.events.on(`iq-set/bare/${NS_ROSTER}:query`, (event) => {
    // §2.3.3 lets a server refuse roster changes; this roster mirrors the registry.
    if (ownAccount(event)) router.error(event, new StanzaError("not-allowed", "the roster is managed by the broker"));
    return true;
  });

  registry.onChange((change) => {
    if (change.account.role !== "device") return;
    // §2.1.6: a roster push to every resource that requested the roster.
    for (const session of sessions.all()) {
      if (!session.rosterRequested || session.account.role === "device") continue;
      const subscription = change.op === "add" ? subscriptionOf(session.account, change.account) : "remove";
      const push = xml(
        "iq",
        { type: "set", id: `push-${++pushId}`, to: session.full, from: session.bare },
        xml("query", { xmlns: NS_ROSTER }, item(change.account, subscription)),
      );
      session.send(push);
    }
  });
}
