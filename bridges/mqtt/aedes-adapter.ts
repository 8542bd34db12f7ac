// Every use of aedes' private state, in one place. aedes is pinned exactly in
// package.json; test/mqtt/adapters.test.ts fails if the pinned version changes any of
// what is read here. Everything else in bridges/mqtt uses aedes' public hooks.
import type { Aedes, Client, PublishPacket } from "aedes";

/** What the telemetry path reads of an aedes 1.x client beyond its typed surface (lib/client.js). */
interface ClientInternals {
  connackSent: boolean;
  /** Protocol level of the CONNECT: 4 for 3.1.1. */
  version: number | null;
  /** Packets of the last read still being handled (nextBatch). */
  _parsingBatch: number;
  _keepaliveInterval: number;
  _keepaliveTimer: NodeJS.Timeout | null;
}

const internals = (client: Client) => client as unknown as Client & ClientInternals;

/** The client aedes made for a connection stream: aedes sets `conn.client`. */
export const clientOf = (conn: object): Client | undefined => (conn as { client?: Client }).client;

/**
 * Whether a PUBLISH of this client may be handled beside aedes' own path: its CONNACK
 * is out, it speaks 3.1.1 (a v5 PUBLISH carries properties), and aedes holds none of
 * its packets, so taking this one keeps the connection's packets in order.
 */
export function idleBeside(client: Client): boolean {
  const c = internals(client);
  return c.connackSent && !client.closed && (c.version ?? 5) <= 4 && c._parsingBatch === 0;
}

/** MQTT 3.1.1 §3.1.2.10: any control packet restarts the keep-alive, as aedes' handler does. */
export function refreshKeepalive(client: Client): void {
  const c = internals(client);
  if (c._keepaliveInterval > 0) c._keepaliveTimer?.refresh();
}

/** The client registered with this id, if any. */
export const clientById = (aedes: Aedes, clientId: string): Client | undefined => (aedes as unknown as { clients: Record<string, Client | undefined> }).clients[clientId];

/** Whether a connection with this client id is registered (a new one then takes over). */
export const hasClient = (aedes: Aedes, clientId: string): boolean => Boolean(clientById(aedes, clientId));

/** The part of an mqemitter that onClientElsewhere uses. */
interface Emitter {
  on(topic: string, listener: (packet: { topic: string; payload?: unknown }, done: () => void) => void, subscribed?: () => void): unknown;
}

/**
 * aedes announces each client it registers on `$SYS/<broker id>/new/clients` (the
 * payload is the client id), and every other broker sharing the emitter closes its own
 * connection with that id (`closeSameClients`, subscribed in `listen()`). Subscribed on
 * the emitter before aedes is created, `elsewhere` runs first, before that close, for
 * every client registered by another broker. Resolves once subscribed.
 */
export function onClientElsewhere(mq: Emitter, brokerId: string, elsewhere: (clientId: string) => void): Promise<void> {
  return new Promise((resolve) => {
    mq.on(
      "$SYS/+/new/clients",
      (packet, done) => {
        if (packet.topic.split("/")[1] !== brokerId) elsewhere(String(packet.payload));
        done();
      },
      resolve,
    );
  });
}

type PublishAs = (packet: PublishPacket, client: Client, done: (err?: Error) => void) => void;

/** Publishes as the client that sent it, as aedes' own handler does (its typings omit the client). */
export const publishAs = (aedes: Aedes, packet: PublishPacket, client: Client, done: (err?: Error) => void): void =>
  (aedes.publish as unknown as PublishAs).call(aedes, packet, client, done);

/** aedes' message emitter (an mqemitter), see mqemitter-adapter.ts. */
export const emitterOf = (aedes: Aedes): unknown => (aedes as unknown as { mq: unknown }).mq;
