// The one seam between the core and every way of reaching devices (docs/architecture.md):
// the embedded MQTT broker, each bridge to another MQTT broker, XMPP-connected
// devices, and later a peer node. The ingest, the command dispatcher and the
// device sessions take a list of links and never know which protocol is behind one.
import type { Account } from "../registry/registry.js";
import type { Ingested } from "../telemetry/verdict.js";
import type { SpooledSample } from "../telemetry/sample.js";

/** A command on its way to a device; each link renders it in its own protocol. */
export interface CommandRequest {
  /** The correlation id a reply must carry. */
  id: string;
  command: string;
  params: Record<string, unknown>;
  timeoutMs: number;
}

/** A device's answer to a command, as every link reports it. */
export type CommandReply = { id: string; ok: true; result?: Record<string, unknown> } | { id: string; ok: false; error: string };

/** What a link tells the core. */
export interface LinkReports {
  /** A telemetry payload; `done` has the ingest's verdict, which the link acknowledges by. */
  telemetry(device: string, payload: Buffer | string, done: Ingested): void;
  /** A reply to a command: raw JSON (`{"id","ok",…}`) or one the link already decoded. */
  reply(device: string, reply: Buffer | string | CommandReply): void;
  /** The device became reachable through this link (a takeover is not reported). */
  online(device: Account): void;
  /** The device is no longer reachable through this link; `status` TAKEN_OVER when it reconnected on another node. */
  offline(device: Account, status: string): void;
}

/** The offline status of a device whose connection was taken over on another node of a cluster. */
export const TAKEN_OVER = "taken over on another node";

/** `peer`: another node of a cluster (src/cluster/peer-link.ts). */
export type Protocol = "mqtt" | "xmpp" | "bridge" | "peer";

export interface DeviceLink {
  /** `mqtt`, `xmpp`, or a bridge's name. */
  readonly name: string;
  readonly protocol: Protocol;
  /**
   * The XMPP resource the broker answers at for a device on this link (`mqtt`, a
   * bridge's name); null where devices are XMPP clients with sessions of their own.
   */
  readonly resource: string | null;
  /** Whether the device is reachable through this link now. */
  reaches(device: string): boolean;
  /** Sends a command; resolves once the link's transport has taken it. */
  deliver(device: string, request: CommandRequest): Promise<void>;
  /** Ends the device's connection on this link (a newer session took its place). */
  disconnect(device: string): void;
  /** Live fan-out: a sample accepted from any link, for this link's own subscribers. */
  accepted?(sample: SpooledSample, from: Protocol): void;
  /** The core subscribes to what the link reports; telemetry has one consumer, the ingest. */
  listen(reports: Partial<LinkReports>): void;
}

/** The listener list a link keeps and reports through. */
export interface LinkReporter {
  readonly emit: LinkReports;
  listen(reports: Partial<LinkReports>): void;
}

export function linkReporter(name: string): LinkReporter {
  let telemetry: LinkReports["telemetry"] | null = null;
  const replies: Array<LinkReports["reply"]> = [];
  const onlines: Array<LinkReports["online"]> = [];
  const offlines: Array<LinkReports["offline"]> = [];
  return {
    emit: {
      telemetry(device, payload, done) {
        if (!telemetry) return done(null, new Error(`link ${name}: no telemetry consumer`));
        telemetry(device, payload, done);
      },
      reply: (device, reply) => replies.forEach((r) => r(device, reply)),
      online: (device) => onlines.forEach((r) => r(device)),
      offline: (device, status) => offlines.forEach((r) => r(device, status)),
    },
    listen(reports) {
      if (reports.telemetry) {
        if (telemetry) throw new Error(`link ${name}: telemetry already has a consumer`);
        telemetry = reports.telemetry;
      }
      if (reports.reply) replies.push(reports.reply);
      if (reports.online) onlines.push(reports.online);
      if (reports.offline) offlines.push(reports.offline);
    },
  };
}

/** The link that reaches a device now, if any. */
export const linkFor = (links: readonly DeviceLink[], device: string): DeviceLink | undefined => links.find((l) => l.reaches(device));
