// Which device is connected over MQTT, told to the core as online and offline: a
// device that completes CONNECT is online; it is offline after DISCONNECT, keep-alive
// expiry, socket loss or shutdown. A takeover by a newer connection with the same
// client id (MQTT 3.1.1 §3.1.4) is not reported: watchers see no flap. A takeover by a
// connection on another node of a cluster is reported offline with the status TAKEN_OVER
// (src/links/device-link.ts; the other node reports it online, possibly before this).
import type { Account } from "../../src/registry/registry.js";
import type { LinkReports } from "../../src/links/device-link.js";

/** The part of an MQTT connection this needs: something that can be closed. */
export interface MqttConnection {
  close(): void;
  readonly closed?: boolean;
}

export interface MqttConnections {
  /** CONNECT accepted; an older connection of the same device may still be open. */
  authenticated(account: Account, connection: MqttConnection, takesOver: boolean): void;
  /** The connection is registered with the broker (after any takeover). */
  connected(account: Account, connection: MqttConnection): void;
  disconnected(account: Account, connection: MqttConnection, status: string): void;
  isOnline(device: string): boolean;
  /** Closes the device's connection, if any. */
  close(device: string): void;
}

interface Entry {
  account: Account;
  connection: MqttConnection | null;
  /** A newer connection that passed authentication and will replace this one. */
  successor: MqttConnection | null;
}

export function mqttConnections(reports: Pick<LinkReports, "online" | "offline">): MqttConnections {
  const entries = new Map<string, Entry>();

  function end(entry: Entry, status: string): void {
    if (entries.get(entry.account.name) !== entry) return;
    entries.delete(entry.account.name);
    reports.offline(entry.account, status);
  }

  return {
    authenticated(account, connection, takesOver) {
      const entry = entries.get(account.name);
      if (entry && takesOver) entry.successor = connection;
    },
    connected(account, connection) {
      const existing = entries.get(account.name);
      if (existing) {
        // The takeover completed: same device online, new connection.
        existing.connection = connection;
        existing.successor = null;
        return;
      }
      entries.set(account.name, { account, connection, successor: null });
      reports.online(account);
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
        return end(entry, status);
      }
      if (entry.successor === connection) {
        // The successor failed before it was registered.
        entry.successor = null;
        if (!entry.connection) end(entry, status);
      }
    },
    isOnline: (device) => entries.get(device)?.connection != null || entries.get(device)?.successor != null,
    close: (device) => entries.get(device)?.connection?.close(),
  };
}
