// The console's XMPP connection (@xmpp/client over RFC 7395 WebSocket): logs in,
// fetches the roster (every device, group = type), sends initial presence, follows
// device presence, subscribes to the `telemetry` pubsub node, and runs XEP-0050
// commands. It knows nothing of the page: it reports to the handlers it is given.
import { client, xml, type Client, type StanzaError, type XmlElement } from "@xmpp/client";

const NS_ROSTER = "jabber:iq:roster";
const NS_DELAY = "urn:xmpp:delay";
const NS_PUBSUB = "http://jabber.org/protocol/pubsub";
const NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event";
const NS_JSON = "urn:xmpp:json:0";
const NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items";
const NS_COMMANDS = "http://jabber.org/protocol/commands";

export interface RosterEntry {
  id: string;
  type: string;
}

export interface PresenceUpdate {
  id: string;
  /** The resource the presence came from; null for the bare JID (all resources). */
  resource: string | null;
  available: boolean;
  /** XEP-0203 delay stamp (ISO), when the broker dated the presence. */
  stamp: string | null;
}

export interface Sample {
  device: string;
  ts: string;
  values: Record<string, unknown>;
}

export interface CommandInfo {
  node: string;
  name: string;
}

export interface CommandResponse {
  status: string;
  sessionid: string | null;
  note: string | null;
  /** The `<x xmlns='jabber:x:data'>` form (to fill in, or the result). */
  form: XmlElement | null;
}

export interface ConnectionHandlers {
  /** The whole roster (after every (re)connect) or one push. */
  roster(entries: RosterEntry[], removed: string[], full: boolean): void;
  presence(update: PresenceUpdate): void;
  telemetry(samples: Sample[]): void;
  status(status: "connecting" | "online" | "reconnecting" | "offline", detail?: string): void;
}

export interface LoginOptions {
  service: string;
  domain: string;
  username: string;
  password: string;
}

/** A failed command or request, with its XMPP condition and the server's text. */
export class RequestError extends Error {
  constructor(
    readonly condition: string,
    readonly text: string,
  ) {
    super(text ? `${condition}: ${text}` : condition);
  }
}

function asRequestError(err: unknown): RequestError {
  const e = err as Partial<StanzaError>;
  if (e && typeof e.condition === "string") return new RequestError(e.condition, e.text ?? "");
  return new RequestError("error", err instanceof Error ? err.message : String(err));
}

export class Connection {
  private constructor(
    private readonly xmpp: Client,
    readonly domain: string,
    private readonly handlers: ConnectionHandlers,
  ) {}

  /** Connects and logs in; resolves once the first session is set up, rejects on a failed login. */
  static async open(opts: LoginOptions, handlers: ConnectionHandlers): Promise<Connection> {
    const resource = `console-${Math.random().toString(36).slice(2, 8)}`;
    const xmpp = client({ service: opts.service, domain: opts.domain, username: opts.username, password: opts.password, resource, timeout: 15_000 });
    const conn = new Connection(xmpp, opts.domain, handlers);
    xmpp.on("error", () => {
      /* reported through status and the start() promise */
    });
    xmpp.on("status", (s) => {
      if (conn.closed) return;
      if (s === "connecting" || s === "opening") handlers.status(conn.ready ? "reconnecting" : "connecting");
      else if (s === "disconnect" || s === "offline") handlers.status(conn.ready ? "reconnecting" : "offline");
    });
    xmpp.on("stanza", (el) => conn.onStanza(el));
    xmpp.on("online", () => {
      conn.setup().catch((err) => {
        const e = asRequestError(err);
        if (conn.ready) handlers.status("reconnecting", e.message);
        else conn.rejectReady(e);
      });
    });
    // Roster pushes (RFC 6121 §2.1.6): applied, and acknowledged with a result.
    xmpp.iqCallee.set(NS_ROSTER, "query", ({ stanza, element }) => {
      if (stanza.attrs.from && stanza.attrs.from !== xmpp.jid?.toString().split("/")[0]) return undefined;
      const { entries, removed } = conn.readRoster(element);
      handlers.roster(entries, removed, false);
      return true;
    });
    try {
      await xmpp.start();
    } catch (err) {
      xmpp.reconnect.stop();
      await xmpp.stop().catch(() => {});
      const e = asRequestError(err);
      throw new RequestError(e.condition, e.condition === "not-authorized" ? "wrong user name or password" : e.text);
    }
    try {
      await conn.whenReady;
    } catch (err) {
      await conn.close();
      throw err;
    }
    return conn;
  }

  private ready = false;
  private closed = false;
  private resolveReady!: () => void;
  private rejectReady!: (err: Error) => void;
  private readonly whenReady = new Promise<void>((resolve, reject) => {
    this.resolveReady = resolve;
    this.rejectReady = reject;
  });

  get jid(): string {
    return this.xmpp.jid?.toString() ?? "";
  }

  /** After every (re)connect: roster, presence, telemetry subscription and the last samples. */
  private async setup(): Promise<void> {
    const roster = await this.request(xml("iq", { type: "get" }, xml("query", { xmlns: NS_ROSTER })));
    const query = roster.getChild("query", NS_ROSTER);
    this.handlers.roster(query ? this.readRoster(query).entries : [], [], true);
    // Initial presence: the broker answers with every device's presence.
    await this.xmpp.send(xml("presence", {}, xml("priority", {}, "-1")));
    const pubsub = `pubsub.${this.domain}`;
    await this.request(xml("iq", { type: "set", to: pubsub }, xml("pubsub", { xmlns: NS_PUBSUB }, xml("subscribe", { node: "telemetry", jid: this.jid }))));
    const last = await this.request(xml("iq", { type: "get", to: pubsub }, xml("pubsub", { xmlns: NS_PUBSUB }, xml("items", { node: "telemetry", max_items: "100" }))));
    const items = last.getChild("pubsub", NS_PUBSUB)?.getChild("items");
    if (items) this.handlers.telemetry(this.readItems(items));
    this.ready = true;
    this.handlers.status("online");
    this.resolveReady();
  }

  private readRoster(query: XmlElement): { entries: RosterEntry[]; removed: string[] } {
    const entries: RosterEntry[] = [];
    const removed: string[] = [];
    for (const item of query.getChildren("item")) {
      const jid = item.attrs.jid ?? "";
      const at = jid.indexOf("@");
      if (at < 1 || jid.slice(at + 1) !== this.domain) continue;
      const id = jid.slice(0, at);
      if (item.attrs.subscription === "remove") removed.push(id);
      else entries.push({ id, type: item.getChildText("group") ?? "" });
    }
    return { entries, removed };
  }

  private readItems(items: XmlElement): Sample[] {
    const out: Sample[] = [];
    for (const item of items.getChildren("item")) {
      const json = item.getChild("json", NS_JSON);
      if (!json) continue;
      try {
        const { device, ts, ...values } = JSON.parse(json.getText()) as Record<string, unknown>;
        if (typeof device === "string") out.push({ device, ts: typeof ts === "string" ? ts : new Date().toISOString(), values });
      } catch {
        /* not JSON: ignored */
      }
    }
    return out;
  }

  private onStanza(el: XmlElement): void {
    const from = el.attrs.from ?? "";
    if (el.name === "presence") {
      const type = el.attrs.type;
      if (type && type !== "unavailable") return; // subscription handshakes, errors
      const at = from.indexOf("@");
      if (at < 1) return;
      const slash = from.indexOf("/", at);
      if ((slash < 0 ? from.slice(at + 1) : from.slice(at + 1, slash)) !== this.domain) return;
      const stamp = el.getChild("delay", NS_DELAY)?.attrs.stamp ?? null;
      this.handlers.presence({ id: from.slice(0, at), resource: slash < 0 ? null : from.slice(slash + 1), available: type !== "unavailable", stamp });
    } else if (el.name === "message" && from === `pubsub.${this.domain}`) {
      const items = el.getChild("event", NS_PUBSUB_EVENT)?.getChild("items");
      if (items) this.handlers.telemetry(this.readItems(items));
    }
  }

  private async request(iq: XmlElement, timeoutMs = 30_000): Promise<XmlElement> {
    try {
      return await this.xmpp.iqCaller.request(iq, timeoutMs);
    } catch (err) {
      throw asRequestError(err);
    }
  }

  /** XEP-0050 §2.3: the commands a device offers (disco#items on its bare JID). */
  async listCommands(id: string): Promise<CommandInfo[]> {
    const res = await this.request(xml("iq", { type: "get", to: `${id}@${this.domain}` }, xml("query", { xmlns: NS_DISCO_ITEMS, node: NS_COMMANDS })));
    return (res.getChild("query", NS_DISCO_ITEMS)?.getChildren("item") ?? []).map((item) => ({ node: item.attrs.node ?? "", name: item.attrs.name || item.attrs.node || "" })).filter((c) => c.node);
  }

  /** One XEP-0050 step: `execute` (optionally with a submit form), `complete` or `cancel`. */
  async command(id: string, node: string, action: "execute" | "complete" | "cancel", sessionid?: string | null, form?: XmlElement): Promise<CommandResponse> {
    const res = await this.request(xml("iq", { type: "set", to: `${id}@${this.domain}` }, xml("command", { xmlns: NS_COMMANDS, node, action, sessionid: sessionid ?? undefined }, form)), 60_000);
    const cmd = res.getChild("command", NS_COMMANDS);
    const notes = cmd?.getChildren("note").map((n) => n.getText()) ?? [];
    return { status: cmd?.attrs.status ?? "completed", sessionid: cmd?.attrs.sessionid ?? null, note: notes.length ? notes.join("\n") : null, form: cmd?.getChild("x", "jabber:x:data") ?? null };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.xmpp.reconnect.stop();
    await this.xmpp.stop().catch(() => {});
  }
}
