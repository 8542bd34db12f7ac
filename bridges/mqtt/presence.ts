// MQTT connections as XMPP presence (CONTRACT §5): a device that completes CONNECT
// is available as `<id>@<domain>/mqtt`; it becomes unavailable on DISCONNECT,
// keepalive expiry, socket loss and shutdown. A takeover by a newer connection with
// the same client id (MQTT 3.1.1 §3.1.4) keeps the presence: watchers see no flap.
import xml from "@xmpp/xml";
import { JID } from "../../src/xmpp/jid.js";
import type { Router } from "../../src/xmpp/router.js";
import type { Session } from "../../src/xmpp/sessions.js";
import type { PresenceService } from "../../src/xmpp/modules/presence.js";
import type { DeviceAgent } from "../../src/xmpp/modules/device-agent.js";
import type { Account } from "../../src/registry/registry.js";
import { StreamError } from "../../src/xmpp/errors.js";

export const MQTT_RESOURCE = "mqtt";

/** The part of an MQTT connection presence needs: something that can be closed. */
export interface MqttConnection {
  close(): void;
  readonly closed?: boolean;
}

export interface MqttPresence {
  /** CONNECT accepted; an older connection of the same device may still be open. */
  authenticated(account: Account, connection: MqttConnection, takesOver: boolean): void;
  /** The connection is registered with the broker (after any takeover). */
  connected(account: Account, connection: MqttConnection): void;
  disconnected(account: Account, connection: MqttConnection, status: string): void;
  /** How many MQTT devices are online. */
  readonly online: number;
  isOnline(device: string): boolean;
  /** Called when a device's MQTT presence ends (not on a takeover). */
  onOffline(listener: (device: string) => void): void;
}

interface Entry {
  session: Session;
  connection: MqttConnection | null;
  /** A newer connection that passed authentication and will replace this one. */
  successor: MqttConnection | null;
}

/**
 * Sessions for devices the broker speaks for, one resource per way in: `mqtt` for the
 * embedded broker, the bridge's name for a bridged broker (issue 7 §3).
 */
export function mqttPresence(deps: { router: Router; presence: PresenceService; agent: DeviceAgent; resource?: string }): MqttPresence {
  const { router, presence, agent, resource = MQTT_RESOURCE } = deps;
  const entries = new Map<string, Entry>();
  const offlineListeners: Array<(device: string) => void> = [];

  function newSession(account: Account, entry: () => Entry): Session {
    const jid = new JID(account.name, router.domain, resource);
    const session: Session = {
      id: `${resource}:${account.name}`,
      jid,
      full: jid.toString(),
      bare: `${account.name}@${router.domain}`,
      account,
      protocol: resource === MQTT_RESOURCE ? "mqtt" : "bridge",
      presence: null,
      priority: 0,
      rosterRequested: false,
      send: (stanza) => agent.deliver(session, stanza),
      close: (_error?: StreamError) => entry().connection?.close(),
    };
    return session;
  }

  function end(name: string, entry: Entry, status: string): void {
    if (entries.get(name) !== entry) return;
    entries.delete(name);
    if (router.sessions.remove(entry.session)) presence.ended(entry.session, status);
    for (const listener of offlineListeners) listener(name);
  }

  return {
    authenticated(account, connection, takesOver) {
      const entry = entries.get(account.name);
      if (entry && takesOver) entry.successor = connection;
    },
    connected(account, connection) {
      const existing = entries.get(account.name);
      if (existing) {
        // The takeover completed: same session, same presence, new connection.
        existing.connection = connection;
        existing.successor = null;
        return;
      }
      const entry: Entry = { session: null as unknown as Session, connection, successor: null };
      entry.session = newSession(account, () => entry);
      entries.set(account.name, entry);
      router.sessions.add(entry.session)?.close();
      presence.update(entry.session, xml("presence"));
    },
    disconnected(account, connection, status) {
      const entry = entries.get(account.name);
      if (!entry) return;
      if (entry.connection === connection) {
        // A successor that is already closed will never register: this is a real end.
        if (entry.successor && !entry.successor.closed) {
          entry.connection = null; // the successor's `connected` follows
          return;
        }
        return end(account.name, entry, status);
      }
      if (entry.successor === connection) {
        // The successor failed before it was registered.
        entry.successor = null;
        if (!entry.connection) end(account.name, entry, status);
      }
    },
    get online() {
      return entries.size;
    },
    isOnline: (device) => entries.get(device)?.connection != null || entries.get(device)?.successor != null,
    onOffline: (listener) => void offlineListeners.push(listener),
  };
}
