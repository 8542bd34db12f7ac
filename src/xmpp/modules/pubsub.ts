// Live telemetry over XMPP (docs/telemetry.md): a XEP-0060 subset at pubsub.<domain>.
// Nodes `telemetry/<id>` (one device) and `telemetry` (all devices); services and
// operators subscribe, unsubscribe and fetch the last items; a device publishes its
// own samples to its node, validated by the same ingest pipeline as MQTT. Items
// carry XEP-0335 JSON with `device` and `ts`. A device knows of its own node only
// (visibility.ts): listings leave the others out, and asking about another device's
// node answers as for a node that does not exist.
import xml, { type Element } from "@xmpp/xml";
import { StanzaError, type StanzaErrorType } from "../errors.js";
import type { Router, StanzaEvent } from "../router.js";
import type { Account, Registry } from "../../registry/registry.js";
import type { Ingest } from "../../telemetry/ingest.js";
import { sampleJson, type SpooledSample } from "../../telemetry/sample.js";
import { NS_DISCO_INFO, NS_DISCO_ITEMS, type Disco } from "./disco.js";
import { knowsOf } from "../visibility.js";
import type { Logger } from "../../log.js";
import type { XmppDeviceLink } from "../device-link.js";

export const NS_PUBSUB = "http://jabber.org/protocol/pubsub";
export const NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event";
export const NS_PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors";
export const NS_JSON = "urn:xmpp:json:0";
const ALL = "telemetry";
const KEEP_PER_DEVICE = 20;
const KEEP_ALL = 100;

/** XEP-0060 §7.1.3 and friends: a stanza error with a pubsub-specific condition. */
class PubsubError extends StanzaError {
  constructor(condition: string, private readonly specific: string | null, text?: string, type?: StanzaErrorType) {
    super(condition, text, type);
  }
  override toElement(): Element {
    const el = super.toElement();
    if (this.specific) el.append(xml(this.specific, { xmlns: NS_PUBSUB_ERRORS }));
    return el;
  }
}

/** Who is subscribed to which node, behind an interface a shared store can implement. */
export interface SubscriptionStore {
  add(node: string, jid: string): string;
  remove(node: string, jid: string): boolean;
  /** A snapshot: the caller may remove subscriptions while it goes through it. */
  of(node: string): readonly string[];
}

const NO_SUBSCRIBERS: readonly string[] = [];

export function createLocalSubscriptions(): SubscriptionStore {
  const nodes = new Map<string, Map<string, string>>();
  let next = 0;
  return {
    add(node, jid) {
      const subs = nodes.get(node) ?? new Map<string, string>();
      nodes.set(node, subs);
      const existing = subs.get(jid);
      if (existing) return existing;
      const subid = `s${++next}`;
      subs.set(jid, subid);
      return subid;
    },
    remove: (node, jid) => nodes.get(node)?.delete(jid) ?? false,
    // Most nodes have no subscriber: no copy made for them (this runs per sample).
    of: (node) => {
      const subs = nodes.get(node);
      return subs?.size ? [...subs.keys()] : NO_SUBSCRIBERS;
    },
  };
}

export function pubsubModule(deps: {
  router: Router;
  registry: Registry;
  /** Accepted samples, for live items. */
  ingest: Pick<Ingest, "onSample">;
  /** Where an XMPP device's own samples go in. */
  link: Pick<XmppDeviceLink, "telemetry">;
  disco: Disco;
  log: Logger;
  subscriptions?: SubscriptionStore;
}): { service: string } {
  const { router, registry, ingest, link, disco, log } = deps;
  const subscriptions = deps.subscriptions ?? createLocalSubscriptions();
  const service = `pubsub.${router.domain}`;
  // Per node, its newest samples; up to twice the kept number, trimmed in one go
  // (a shift per sample cost a copy of the list per sample).
  const recent = new Map<string, { keep: number; list: SpooledSample[] }>();
  const recentOf = (node: string) => {
    const r = recent.get(node);
    return r ? (r.list.length > r.keep ? r.list.slice(-r.keep) : r.list) : [];
  };
  router.addService(service);
  disco.addItem(service, "Live telemetry");

  const deviceOf = (node: string | undefined): Account | undefined => {
    if (!node?.startsWith("telemetry/")) return undefined;
    const account = registry.get(node.slice("telemetry/".length));
    return account?.role === "device" ? account : undefined;
  };
  /** A node exists for `viewer` when it may know of it: `telemetry` for subscribers, a device's node for those who know of the device. */
  const visible = (node: string | undefined, viewer: Account | undefined): boolean => {
    if (node === ALL) return viewer !== undefined && viewer.role !== "device";
    const device = deviceOf(node);
    return device !== undefined && knowsOf(viewer, device);
  };
  const answer = (event: StanzaEvent, ...children: Element[]) => router.reply(event, xml("iq", { type: "result", id: event.stanza.attrs.id }, ...children));

  function itemElement(sample: SpooledSample): Element {
    return xml("item", { id: String(sample.seq) }, xml("json", { xmlns: NS_JSON }, JSON.stringify(sampleJson(sample))));
  }

  function remember(node: string, sample: SpooledSample, keep: number): void {
    let r = recent.get(node);
    if (!r) recent.set(node, (r = { keep, list: [] }));
    r.list.push(sample);
    if (r.list.length >= 2 * keep) r.list.splice(0, r.list.length - keep);
  }

  function notify(node: string, sample: SpooledSample): void {
    let message: Element | null = null;
    for (const jid of subscriptions.of(node)) {
      message ??= xml("message", { from: service }, xml("event", { xmlns: NS_PUBSUB_EVENT }, xml("items", { node }, itemElement(sample))));
      const targets = jid.includes("/") ? [router.sessions.get(jid)] : router.sessions.ofAccount(jid).filter((s) => s.presence);
      // A full-JID subscription whose resource is gone is dropped (no one to deliver to, ever).
      if (jid.includes("/") && !targets[0]) subscriptions.remove(node, jid);
      for (const session of targets) {
        // A session of another node is notified by its node, which hears every sample too.
        if (!session || session.node !== undefined) continue;
        message.attrs.to = session.full;
        session.send(message);
      }
    }
  }

  // Each device's node name, made once: a name built per sample is a new string that
  // the two lookups below would have to flatten and hash every time.
  const nodeNames = new Map<string, string>();
  ingest.onSample((sample) => {
    let node = nodeNames.get(sample.device);
    if (node === undefined) {
      if (nodeNames.size >= 100_000) nodeNames.clear();
      nodeNames.set(sample.device, (node = `telemetry/${sample.device}`));
    }
    remember(node, sample, KEEP_PER_DEVICE);
    remember(ALL, sample, KEEP_ALL);
    notify(node, sample);
    notify(ALL, sample);
  });

  function subscriberCheck(event: StanzaEvent): boolean {
    if (event.origin?.account.role === "device" || !event.origin)
      return (router.error(event, new StanzaError("forbidden", "devices may not subscribe to telemetry")), false);
    return true;
  }

  router.events.on(`iq-set/${service}/${NS_PUBSUB}:pubsub`, (event) => {
    const op = event.payload!.getChildElements()[0];
    const node = op?.attrs.node;
    switch (op?.name) {
      case "subscribe":
      case "unsubscribe": {
        if (!subscriberCheck(event)) return true;
        if (!visible(node, event.origin?.account)) return (router.error(event, new StanzaError("item-not-found", `no node '${node ?? ""}'`)), true);
        const jid = op.attrs.jid ?? event.from.toString();
        // XEP-0060 §6.1.3.1: one may subscribe only oneself (bare or full JID).
        if (jid !== event.from.toString() && jid !== event.origin!.bare)
          return (router.error(event, new PubsubError("bad-request", "invalid-jid", "the jid must be your own")), true);
        if (op.name === "subscribe") {
          const subid = subscriptions.add(node!, jid);
          answer(event, xml("pubsub", { xmlns: NS_PUBSUB }, xml("subscription", { node, jid, subid, subscription: "subscribed" })));
        } else if (subscriptions.remove(node!, jid)) answer(event);
        else router.error(event, new PubsubError("unexpected-request", "not-subscribed", "not subscribed", "cancel"));
        return true;
      }
      case "publish":
        // A step that failed (the spool, a listener) is the broker's fault, not the
        // sample's: the device is told to try again, and the stream goes on.
        publish(event, op, node).catch((err: unknown) => {
          log.error({ err, device: event.origin?.account.name, node }, "telemetry ingest failed");
          router.error(event, new StanzaError("internal-server-error", "the sample could not be taken; try again", "wait"));
        });
        return true;
      default:
        router.error(event, new PubsubError("feature-not-implemented", "unsupported", `'${op?.name ?? ""}' is not supported here`));
        return true;
    }
  });

  async function publish(event: StanzaEvent, op: Element, node: string | undefined): Promise<void> {
    const device = deviceOf(node);
    const sender = event.origin?.account;
    const refused = () => router.error(event, new StanzaError("forbidden", "a device publishes only to its own node"));
    // Checked before the node's existence: a device learns nothing of other devices' nodes.
    if (sender?.role === "device" && device?.name !== sender.name) return refused();
    if (!device) return router.error(event, new StanzaError("item-not-found", `no node '${node ?? ""}'`));
    if (sender?.role !== "device") return refused();
    const items = op.getChildren("item");
    const json = items.length === 1 ? items[0]!.getChild("json", NS_JSON) : undefined;
    if (!json) return router.error(event, new PubsubError("bad-request", "invalid-payload", "publish exactly one item holding <json xmlns='urn:xmpp:json:0'>"));
    const result = await link.telemetry(device.name, json.getText());
    if (!result.ok) {
      const detail = result.issues.length ? result.issues.map((i) => `${i.path}: ${i.message}`).join("; ") : result.reason;
      return router.error(event, result.overloaded ? new StanzaError("resource-constraint", result.reason) : new PubsubError("bad-request", "invalid-payload", detail));
    }
    answer(event, xml("pubsub", { xmlns: NS_PUBSUB }, xml("publish", { node }, xml("item", { id: String(result.sample.seq) }))));
  }

  router.events.on(`iq-get/${service}/${NS_PUBSUB}:pubsub`, (event) => {
    const op = event.payload!.getChild("items");
    if (!op) return (router.error(event, new PubsubError("feature-not-implemented", "unsupported", "only <items/> is supported")), true);
    if (!subscriberCheck(event)) return true;
    const node = op.attrs.node;
    if (!visible(node, event.origin?.account)) return (router.error(event, new StanzaError("item-not-found", `no node '${node ?? ""}'`)), true);
    const max = Number.parseInt(op.attrs.max_items ?? "", 10);
    const list = recentOf(node!);
    const shown = Number.isFinite(max) && max > 0 ? list.slice(-max) : list;
    answer(event, xml("pubsub", { xmlns: NS_PUBSUB }, xml("items", { node }, ...shown.map(itemElement))));
    return true;
  });

  router.events.on(`iq-get/${service}/${NS_DISCO_INFO}:query`, (event) => {
    const node = event.payload!.attrs.node;
    if (node === undefined) {
      answer(event, xml("query", { xmlns: NS_DISCO_INFO }, xml("identity", { category: "pubsub", type: "service", name: "Live telemetry" }),
        ...[NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PUBSUB, `${NS_PUBSUB}#subscribe`, `${NS_PUBSUB}#retrieve-items`, `${NS_PUBSUB}#publish`].map((v) => xml("feature", { var: v }))));
    } else if (visible(node, event.origin?.account)) {
      answer(event, xml("query", { xmlns: NS_DISCO_INFO, node }, xml("identity", { category: "pubsub", type: "leaf" }), xml("feature", { var: NS_PUBSUB })));
    } else router.error(event, new StanzaError("item-not-found", `no node '${node}'`));
    return true;
  });

  router.events.on(`iq-get/${service}/${NS_DISCO_ITEMS}:query`, (event) => {
    const viewer = event.origin?.account;
    const node = event.payload!.attrs.node;
    if (node !== undefined) {
      // A node's items are not listed here; a node the requester may not know of does not exist.
      if (visible(node, viewer)) answer(event, xml("query", { xmlns: NS_DISCO_ITEMS, node }));
      else router.error(event, new StanzaError("item-not-found", `no node '${node}'`));
      return true;
    }
    const items = [
      ...(visible(ALL, viewer) ? [xml("item", { jid: service, node: ALL, name: "all devices" })] : []),
      ...registry.list("device").filter((d) => knowsOf(viewer, d)).map((d) => xml("item", { jid: service, node: `telemetry/${d.name}`, name: d.name })),
    ];
    answer(event, xml("query", { xmlns: NS_DISCO_ITEMS }, ...items));
    return true;
  });

  return { service };
}
