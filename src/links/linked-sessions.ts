// A device reached through a link that is not XMPP (the embedded MQTT broker, a
// bridge) is an XMPP session all the same: `<id>@<domain>/<resource>` goes available
// when the link reports it online and unavailable when the link reports it offline,
// and the DeviceAgent answers IQs sent to it. One session per device and link.
import xml from "@xmpp/xml";
import { JID } from "../xmpp/jid.js";
import type { Router } from "../xmpp/router.js";
import type { Session } from "../xmpp/sessions.js";
import type { PresenceService } from "../xmpp/modules/presence.js";
import type { DeviceAgent } from "../xmpp/modules/device-agent.js";
import type { Account } from "../registry/registry.js";
import { TAKEN_OVER, type DeviceLink } from "./device-link.js";

export function linkedSessions(deps: { router: Router; presence: PresenceService; agent: DeviceAgent; links: readonly DeviceLink[] }): void {
  const { router, presence, agent } = deps;

  function session(link: DeviceLink & { resource: string }, account: Account): Session {
    const jid = new JID(account.name, router.domain, link.resource);
    const session: Session = {
      id: `${link.resource}:${account.name}`,
      jid,
      full: jid.toString(),
      bare: `${account.name}@${router.domain}`,
      account,
      protocol: link.protocol,
      presence: null,
      priority: 0,
      rosterRequested: false,
      send: (stanza) => agent.deliver(session, stanza),
      // Displaced by a newer session of the same JID: the link ends the connection.
      close: () => link.disconnect(account.name),
    };
    return session;
  }

  for (const link of deps.links) {
    if (link.resource === null) continue;
    const linked = link as DeviceLink & { resource: string };
    const sessions = new Map<string, Session>();
    link.listen({
      online(account) {
        if (sessions.has(account.name)) return;
        const s = session(linked, account);
        sessions.set(account.name, s);
        router.sessions.add(s)?.close();
        presence.update(s, xml("presence"));
      },
      offline(account, status) {
        const s = sessions.get(account.name);
        if (!s) return;
        sessions.delete(account.name);
        if (!router.sessions.remove(s)) return;
        // The same device connected on another node of a cluster: no flap for watchers.
        if (status === TAKEN_OVER) presence.handedOver(s);
        else presence.ended(s, status);
      },
    });
  }
}
