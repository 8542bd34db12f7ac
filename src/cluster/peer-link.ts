// The other nodes of a cluster, as one more device link (src/links/device-link.ts):
// the dispatcher sends a command through it when the device is connected to another
// node, and the ingest hands it every accepted sample for the other nodes' XMPP
// subscribers. Nothing else in the core knows a peer is behind it.
//
// A command travels to the device's node (`cmd`), which delivers it through its own
// link and answers whether its transport took it (`cmd-ack`: the sender's deliver()
// settles then, so "offline" stays an immediate error); the device's reply goes back
// to the sending node (`cmd-reply`) under the command's id, checked against the
// device, so a reply never completes another command. The sending node keeps the
// timeout (docs/commands.md), as for a local device.
import type { Account, Registry } from "../registry/registry.js";
import { linkFor, linkReporter, type CommandReply, type CommandRequest, type DeviceLink, type Protocol } from "../links/device-link.js";
import type { Sample, SpooledSample } from "../telemetry/sample.js";
import type { SessionTable } from "../xmpp/sessions.js";
import type { ClusterBus } from "./bus.js";
import type { NodeWatch } from "./nodes.js";

export interface PeerLink extends DeviceLink {
  /** Samples from other nodes, for this node's listeners (Ingest.shared). */
  onShared(listener: (sample: SpooledSample) => void): void;
  readonly counters: { commandsOut: number; commandsIn: number; samplesOut: number; samplesIn: number };
}

/**
 * A sample between nodes: what the other nodes' listeners use (pubsub items, last
 * samples), as an array, without the ingest's serialised copies of its parts.
 */
type WireSample = [device: string, type: string, measurement: string, time: number, seq: number, tags: Sample["tags"], fields: Sample["fields"]];
const toWire = (s: SpooledSample): WireSample => [s.device, s.type, s.measurement, s.time, s.seq, s.tags, s.fields];
function fromWire(entry: unknown): SpooledSample {
  const e = entry as WireSample;
  if (!Array.isArray(e) || e.length !== 7 || typeof e[0] !== "string" || typeof e[1] !== "string" || typeof e[2] !== "string" || typeof e[3] !== "number" || typeof e[4] !== "number" || !isRecord(e[5]) || !isRecord(e[6]))
    throw new Error("not a sample");
  return { device: e[0], type: e[1], measurement: e[2], time: e[3], seq: e[4], tags: e[5], fields: e[6] };
}
const isRecord = (v: unknown): v is Record<string, never> => typeof v === "object" && v !== null && !Array.isArray(v);

/** The node a device is available on, if another one. */
function nodeOf(sessions: SessionTable, device: string, domain: string): string | undefined {
  for (const s of sessions.ofAccount(`${device}@${domain}`)) if (s.node !== undefined && s.presence && s.account.role === "device") return s.node;
  return undefined;
}

/** The id of a reply as a link reported it, without validating the rest (the sending node's dispatcher does). */
function replyId(reply: Buffer | string | CommandReply): string | undefined {
  if (!Buffer.isBuffer(reply) && typeof reply !== "string") return reply.id;
  try {
    const id = (JSON.parse(reply.toString()) as { id?: unknown }).id;
    return typeof id === "string" ? id : undefined;
  } catch {
    return undefined;
  }
}

export function peerLink(deps: { bus: ClusterBus; watch: NodeWatch; sessions: SessionTable; domain: string; registry: Registry; links: readonly DeviceLink[] }): PeerLink {
  const { bus, sessions, domain, registry, links } = deps;
  const reporter = linkReporter("peer");
  const counters = { commandsOut: 0, commandsIn: 0, samplesOut: 0, samplesIn: 0 };
  const sharedListeners: Array<(sample: SpooledSample) => void> = [];
  /** Commands sent from here to another node: id → node and device, until answered, timed out or the node is lost. */
  const sent = new Map<string, { node: string; device: string; acked: (err?: Error) => void; timer: NodeJS.Timeout }>();
  /** Commands taken for a device here from another node: id → that node, until replied or timed out. */
  const taken = new Map<string, { node: string; device: string; timer: NodeJS.Timeout }>();

  const accountOf = (device: string): Account => registry.get(device) ?? { name: device, role: "device", type: null, createdAt: 0 };

  // The sending side.
  bus.on("cmd-ack", (m) => {
    const s = sent.get(String(m.i));
    if (!s || s.node !== m.n) return;
    if (m.ok === true) s.acked();
    else s.acked(new Error(String(m.err)));
  });
  bus.on("cmd-reply", (m) => {
    const s = sent.get(String(m.i));
    if (!s || s.node !== m.n || s.device !== m.d) return;
    forget(String(m.i));
    reporter.emit.reply(s.device, m.r as string | CommandReply);
  });
  bus.on("cmd-offline", (m) => {
    const s = sent.get(String(m.i));
    if (!s || s.node !== m.n) return;
    forget(String(m.i));
    reporter.emit.offline(accountOf(s.device), "offline");
  });
  deps.watch.onLost((node) => {
    for (const [id, s] of [...sent]) if (s.node === node) (forget(id), reporter.emit.offline(accountOf(s.device), "node lost"));
  });
  function forget(id: string): void {
    const s = sent.get(id);
    if (s) clearTimeout(s.timer);
    sent.delete(id);
  }

  // The device's side.
  bus.on("cmd", (m) => {
    counters.commandsIn++;
    const id = String(m.i);
    const device = String(m.d);
    const request: CommandRequest = { id, command: String(m.c), params: (m.pa ?? {}) as Record<string, unknown>, timeoutMs: Number(m.to) };
    const link = linkFor(links, device);
    if (!link) return bus.send(m.n, "cmd-ack", { i: id, ok: false, err: `${device} is not connected` });
    const timer = setTimeout(() => taken.delete(id), request.timeoutMs);
    timer.unref();
    taken.set(id, { node: m.n, device, timer });
    link.deliver(device, request).then(
      () => bus.send(m.n, "cmd-ack", { i: id, ok: true }),
      (err: Error) => (taken.delete(id), clearTimeout(timer), bus.send(m.n, "cmd-ack", { i: id, ok: false, err: err.message })),
    );
  });
  for (const link of links)
    link.listen({
      reply(device, reply) {
        if (taken.size === 0) return;
        const id = replyId(reply);
        const t = id === undefined ? undefined : taken.get(id);
        if (!t || t.device !== device) return;
        taken.delete(id!);
        clearTimeout(t.timer);
        bus.send(t.node, "cmd-reply", { i: id, d: device, r: Buffer.isBuffer(reply) ? reply.toString() : reply });
      },
      offline(account) {
        for (const [id, t] of [...taken]) if (t.device === account.name) (taken.delete(id), clearTimeout(t.timer), bus.send(t.node, "cmd-offline", { i: id, d: t.device }));
      },
    });

  // Samples accepted elsewhere, a batch per message.
  bus.on("s", (m) => {
    if (!Array.isArray(m.b)) throw new Error("a batch of samples must be an array");
    for (const entry of m.b as unknown[]) {
      const sample = fromWire(entry);
      counters.samplesIn++;
      for (const listener of sharedListeners) listener(sample);
    }
  });

  // Samples accepted here: what one turn of the event loop accepted goes out as one
  // message, and none while this node is the only one (docs/scaling.md).
  let outbox: SpooledSample[] = [];
  function flush(): void {
    const batch = outbox;
    outbox = [];
    if (deps.watch.others().size === 0) return;
    counters.samplesOut += batch.length;
    bus.broadcast("s", { b: batch.map(toWire) });
  }

  return {
    name: "peer",
    protocol: "peer",
    resource: null,
    counters,
    reaches: (device) => nodeOf(sessions, device, domain) !== undefined,
    deliver(device, request) {
      const node = nodeOf(sessions, device, domain);
      if (!node) return Promise.reject(new Error(`${device} is not connected to any node`));
      counters.commandsOut++;
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          sent.delete(request.id);
          reject(new Error(`node ${node} did not answer`));
        }, request.timeoutMs);
        timer.unref();
        sent.set(request.id, { node, device, timer, acked: (err) => (err ? (forget(request.id), reject(err)) : resolve()) });
        bus.send(node, "cmd", { i: request.id, d: device, c: request.command, pa: request.params, to: request.timeoutMs });
      });
    },
    disconnect() {
      // A device's sessions on other nodes are ended by their node (directory.ts, conflicts).
    },
    accepted(sample, from) {
      if (from === "peer") return;
      if (outbox.push(sample) === 1) setImmediate(flush);
    },
    onShared: (listener) => void sharedListeners.push(listener),
    listen: reporter.listen,
  };
}
