// The MQTT presence tests' broker (docs/mqtt.md, Presence): two operators and seven
// MQTT thermostats, every login paying its PBKDF2 (no remembered passwords: "a refused
// or dead takeover attempt" needs the window between a CONNECT and its verdict;
// test/unit/verified-cache.test.ts covers the cache). Operators are @xmpp/client
// sessions that have received every device's initial presence.
import { xml } from "@xmpp/client";
import { testAccounts } from "./accounts.js";
import { startMqttKit } from "./mqtt-kit.js";
import { withTimeout } from "./wait.js";
import { xmppClient, XmppSession } from "./xmpp-session.js";

export const NS_PING = "urn:xmpp:ping";
export const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";
export const NS_DELAY = "urn:xmpp:delay";
export const ping = () => xml("ping", { xmlns: NS_PING });

export const PRESENCE_ACCOUNTS = testAccounts({
  op1: "operator",
  op2: "operator",
  ...Object.fromEntries(["dev1", "dev2", "dev3", "dev4", "dev5", "dev6", "dev7"].map((name) => [name, "thermostat"])),
});
export const DEVICES = PRESENCE_ACCOUNTS.filter((a) => a.role === "device").map((a) => a.name);

export type PresenceKit = Awaited<ReturnType<typeof startPresenceKit>>;

export async function startPresenceKit(overrides: Record<string, unknown> = { auth: { verifiedCacheSize: 0 } }) {
  // The generated certificate is self-signed; this test process trusts it blindly.
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
  const kit = await startMqttKit(overrides, PRESENCE_ACCOUNTS);
  const sessions: XmppSession[] = [];
  const sockets: Array<{ destroy(): void }> = [];
  /** An operator logged in with @xmpp/client (SCRAM over STARTTLS), after initial presence and its probe answers. */
  async function operator(name = "op1", resource = `r${Math.random().toString(36).slice(2, 8)}`): Promise<XmppSession> {
    const op = new XmppSession(xmppClient(kit.broker.ports.xmpp, name, kit.pw(name), resource));
    sessions.push(op);
    await withTimeout(op.c.start(), `@xmpp/client login as ${name}`);
    await op.c.send(xml("presence"));
    // RFC 6121 §4.2.2: the initial presence is answered with every device's presence.
    for (const d of DEVICES) await op.waitFor(`the initial presence of ${d}`, (el) => el.name === "presence" && String(el.attrs.from).startsWith(`${d}@localhost`));
    return op;
  }
  return {
    ...kit,
    /** The device `id` over TCP with the `mqtt` package (see MqttKit.device). */
    device: async (id: string) => (await kit.device(id)).c,
    operator,
    /** An operator watching device `id`'s MQTT resource, and where its presence history starts. */
    async watcher(id: string, who = "op1"): Promise<{ op: XmppSession; full: string; since: number }> {
      const op = await operator(who);
      return { op, full: `${id}@localhost/mqtt`, since: op.mark() };
    },
    /** Keeps a socket or client to be destroyed by close(). */
    keep<S extends { destroy(): void }>(s: S): S {
      sockets.push(s);
      return s;
    },
    /** Ends every client; the broker too unless it was stopped already. */
    async close(brokerStopped = false): Promise<void> {
      for (const s of sockets) s.destroy();
      for (const op of sessions) await withTimeout(op.c.stop(), "@xmpp/client stop", 5000).catch(() => {});
      if (brokerStopped) kit.endClients();
      else await kit.close();
    },
  };
}

/** True when, starting from the state the watcher knew, no two neighbours are equal:
 * changes may be coalesced under churn, but never reported twice or out of order. */
export const alternates = (prior: "available" | "unavailable", list: string[]) => [prior, ...list].every((s, i, all) => i === 0 || s !== all[i - 1]);
/** "auau…": a presence history at a glance. */
export const letters = (list: string[]) => list.map((s) => s[0]).join("") || "(none)";
