// One client-to-server stream, RFC 6120: stream header, features, STARTTLS (§5),
// SASL (§6), resource binding (§7), then stanzas to the router. Transport-neutral:
// TCP (tcp.ts) and later WebSocket (RFC 7395) feed it parsed elements.
import { randomId } from "../ids.js";
import xml, { type Element } from "@xmpp/xml";
import type { Logger } from "../log.js";
import type { Shape } from "../limits.js";
import type { Authenticator } from "../auth/credentials.js";
import type { Login } from "../auth/login.js";
import type { Account } from "../registry/registry.js";
import { NS_SASL, NS_STREAMS, StanzaError, StreamError, errorReply } from "./errors.js";
import { JID } from "./jid.js";
import { NS_BIND, generatedResource, requestedResource } from "./bind.js";
import type { C2STransport } from "./transport.js";
import type { Router } from "./router.js";
import type { Session } from "./sessions.js";
import type { PresenceService } from "./modules/presence.js";
import { MECHANISMS, encodeSaslPayload } from "./sasl.js";
import { SaslNegotiation } from "./sasl-negotiation.js";
import { NS_SESSION } from "./modules/session.js";

export const NS_CLIENT = "jabber:client";
export type { C2STransport } from "./transport.js";
export { NS_BIND } from "./bind.js";
export const NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls";

export interface C2SOptions {
  domain: string;
  requireTls: boolean;
  maxStanzaBytes: number;
  negotiationTimeoutMs: number;
  /** Failed SASL attempts allowed on one stream before it is closed (§6.4.5: 2 to 5). */
  maxAuthAttempts?: number;
  /** Read rate for service accounts once authenticated (limits.service*); others keep the listener's. */
  serviceShape?: Shape;
}

export interface C2SDeps {
  options: C2SOptions;
  auth: Authenticator;
  login: Login;
  router: Router;
  presence: PresenceService;
  log: Logger;
  /** Stream errors sent, by condition (for /metrics). */
  streamErrors?: Map<string, number>;
}

/** Elements held while the stream waits for a SASL step. */
const MAX_QUEUED = 100;

type Phase = "header" | "negotiating" | "authenticated" | "bound" | "closed";

export class C2SStream {
  private phase: Phase = "header";
  private headerSent = false;
  private account: Account | null = null;
  private session: Session | null = null;
  private readonly negotiation: SaslNegotiation;
  private readonly queue: Element[] = [];
  private busy = false;
  private readonly negotiationTimer: NodeJS.Timeout;
  readonly id = randomId();

  constructor(
    private readonly transport: C2STransport,
    private readonly deps: C2SDeps,
  ) {
    this.negotiation = new SaslNegotiation(
      { remoteAddress: transport.remoteAddress, get secure() { return transport.secure; }, send: (el) => transport.send(el), closed: () => this.isClosed() },
      { auth: deps.auth, login: deps.login, log: deps.log, requireTls: deps.options.requireTls, maxAttempts: deps.options.maxAuthAttempts ?? 5, streamId: this.id },
    );
    // Prosody's and ejabberd's model: a client gets a bounded time to authenticate and bind.
    this.negotiationTimer = setTimeout(
      () => this.fail(new StreamError("connection-timeout", "negotiation took too long")),
      deps.options.negotiationTimeoutMs,
    );
  }

  get bound(): Session | null {
    return this.session;
  }

  // --- events from the transport's parser ---

  streamStart(name: string, attrs: Record<string, string>): void {
    const { domain } = this.deps.options;
    this.sendHeader();
    // RFC 6120 §4.8.1 and §4.9.3.10: the stream and content namespaces must be exactly these.
    if (name !== "stream:stream" || attrs["xmlns:stream"] !== NS_STREAMS)
      return this.fail(new StreamError("invalid-namespace", "the stream element must be <stream:stream> in the streams namespace"));
    if (attrs.xmlns !== NS_CLIENT) return this.fail(new StreamError("invalid-namespace", `the content namespace must be '${NS_CLIENT}'`));
    if (attrs.to !== undefined && attrs.to.toLowerCase() !== domain) return this.fail(new StreamError("host-unknown", `this server serves '${domain}'`));
    // §4.7.5: a client without version="1.0" does not know stream features.
    const major = Number.parseInt((attrs.version ?? "0").split(".")[0]!, 10);
    if (!(major >= 1)) return this.fail(new StreamError("unsupported-version", "version 1.0 is required"));
    if (this.phase === "header") this.phase = "negotiating";
    this.transport.send(this.features());
  }

  element(element: Element): void {
    if (this.phase === "closed") return;
    if (this.busy) {
      // Elements sent while a password is checked wait here; a client pipelines a few,
      // a flood of them would be memory the size limits do not bound.
      if (this.queue.length >= MAX_QUEUED) return this.fail(new StreamError("policy-violation", `more than ${MAX_QUEUED} elements sent while authenticating`));
      this.queue.push(element);
      return;
    }
    this.process(element);
  }

  streamEnd(): void {
    // §4.4: the peer closed its stream; we close ours and end the session.
    this.end("stream closed by client");
  }

  transportError(error: StreamError): void {
    this.fail(error);
  }

  /** The transport is gone (socket loss): no stream error can be sent. */
  transportClosed(): void {
    this.end("connection lost", false);
  }

  /** Closes the stream with a stream error (§4.9): header first if none was sent yet. */
  fail(error: StreamError): void {
    if (this.phase === "closed") return;
    this.sendHeader();
    this.deps.log.debug({ stream: this.id, condition: error.condition, text: error.text }, "stream error");
    this.deps.streamErrors?.set(error.condition, (this.deps.streamErrors.get(error.condition) ?? 0) + 1);
    this.transport.send(error.toElement());
    this.end(error.text ?? error.condition);
  }

  // --- internals ---

  private isClosed(): boolean {
    return this.phase === "closed";
  }

  private sendHeader(): void {
    if (this.headerSent) return;
    this.headerSent = true;
    // RFC 6120 §4.3.3 / §4.7.3: a fresh stream id for every header, restarts included.
    this.transport.sendHeader({ xmlns: NS_CLIENT, "xmlns:stream": NS_STREAMS, id: randomId(), from: this.deps.options.domain, version: "1.0", "xml:lang": "en" });
  }

  private end(reason: string, sendClose = true): void {
    if (this.phase === "closed") return;
    this.phase = "closed";
    clearTimeout(this.negotiationTimer);
    this.queue.length = 0;
    if (this.session) {
      const session = this.session;
      this.session = null;
      // A session displaced by a newer one with the same JID only withdraws its presence.
      if (this.deps.router.sessions.remove(session)) this.deps.presence.ended(session);
      else this.deps.presence.update(session, null);
      this.deps.log.info({ stream: this.id, jid: session.full, reason }, "session ended");
    }
    if (sendClose) {
      this.sendHeader();
      this.transport.close();
    }
  }

  private process(element: Element): void {
    let pending: Promise<void> | void;
    try {
      pending = this.handle(element);
    } catch (err) {
      this.deps.log.error({ err, stream: this.id }, "stanza handling failed");
      pending = this.fail(new StreamError("internal-server-error"));
    }
    if (!pending) return;
    this.busy = true;
    pending
      .catch((err) => {
        this.deps.log.error({ err, stream: this.id }, "negotiation step failed");
        this.fail(new StreamError("internal-server-error"));
      })
      .finally(() => {
        this.busy = false;
        while (!this.busy && this.queue.length && this.phase !== "closed") this.process(this.queue.shift()!);
      });
  }

  private handle(element: Element): Promise<void> | void {
    if (this.phase === "bound") {
      if (element.name === "message" || element.name === "presence" || element.name === "iq") {
        if (element.name === "iq" && element.getChild("bind", NS_BIND))
          return this.session!.send(errorReply(element, new StanzaError("not-allowed", "a resource is already bound to this stream")));
        if (element.attrs.xmlns !== undefined && element.attrs.xmlns !== NS_CLIENT)
          return this.fail(new StreamError("invalid-namespace", "stanzas must be in the jabber:client namespace"));
        return this.deps.router.route(this.session!, element);
      }
      return this.fail(new StreamError("unsupported-stanza-type", `<${element.name}/> is not a stanza`));
    }
    const ns = element.attrs.xmlns;
    if (element.name === "starttls" && ns === NS_TLS) return this.startTls();
    if (ns === NS_SASL) return this.sasl(element);
    if (element.name === "iq" && this.phase === "authenticated" && element.getChild("bind", NS_BIND)) return this.bind(element);
    if (element.name === "message" || element.name === "presence" || element.name === "iq")
      // §6.4 / §7.1: no stanzas before authentication and binding.
      return this.fail(new StreamError("not-authorized", "authenticate and bind a resource first"));
    return this.fail(new StreamError("unsupported-stanza-type", `<${element.name}/> is not expected here`));
  }

  private features(): Element {
    const { requireTls } = this.deps.options;
    const features = xml("stream:features");
    if (this.phase === "negotiating") {
      const { secure, canStartTls } = this.transport;
      if (!secure && canStartTls) features.append(xml("starttls", { xmlns: NS_TLS }, requireTls ? xml("required") : null));
      // §5.3.1 / §6.4.1: while TLS is mandatory and absent, no mechanism is offered.
      if (secure || !requireTls) features.append(xml("mechanisms", { xmlns: NS_SASL }, ...MECHANISMS.map((m) => xml("mechanism", {}, m))));
    } else if (this.phase === "authenticated") {
      features.append(xml("bind", { xmlns: NS_BIND }), xml("session", { xmlns: NS_SESSION }, xml("optional")));
    }
    return features;
  }

  private startTls(): void {
    if (this.transport.secure || !this.transport.canStartTls || this.phase !== "negotiating") {
      // §5.4.2.2: failure, then the stream is closed.
      this.transport.send(xml("failure", { xmlns: NS_TLS }));
      return this.end("STARTTLS refused");
    }
    this.transport.send(xml("proceed", { xmlns: NS_TLS }));
    this.headerSent = false;
    this.transport.startTls();
  }

  private async sasl(element: Element): Promise<void> {
    if (this.phase !== "negotiating") return this.fail(new StreamError("policy-violation", "already authenticated"));
    const outcome = await this.negotiation.handle(element);
    if (outcome.kind === "fatal") return this.fail(outcome.error);
    if (outcome.kind !== "success" || this.isClosed()) return;
    this.account = outcome.account;
    this.phase = "authenticated";
    this.transport.setMaxStanzaBytes(this.deps.options.maxStanzaBytes);
    // A backend commanding a fleet sends far more than a device or an operator
    // (ejabberd's default c2s_shaper exempts admins the same way).
    if (outcome.account.role === "service" && this.deps.options.serviceShape) this.transport.reshape(this.deps.options.serviceShape);
    this.transport.send(xml("success", { xmlns: NS_SASL }, outcome.data ? encodeSaslPayload(outcome.data) : null));
    // §6.4.6: both sides restart the stream; the next bytes are a new stream header.
    this.headerSent = false;
    this.transport.restart();
  }

  private bind(iq: Element): void {
    const account = this.account!;
    const reply = (el: Element) => this.transport.send(el);
    const requested = requestedResource(iq);
    if (typeof requested !== "string" && requested !== null) return reply(errorReply(iq, requested));
    const session = this.createSession(new JID(account.name, this.deps.options.domain, requested ?? generatedResource()), account);
    // RFC 6120 §7.7.2.2, our policy: the newer session wins, the older one gets <conflict/>.
    this.deps.router.sessions.add(session)?.close(new StreamError("conflict", "replaced by a new connection with the same resource"));
    this.session = session;
    this.phase = "bound";
    clearTimeout(this.negotiationTimer);
    reply(xml("iq", { type: "result", id: iq.attrs.id }, xml("bind", { xmlns: NS_BIND }, xml("jid", {}, session.full))));
    this.deps.log.info({ stream: this.id, jid: session.full, role: account.role, address: this.transport.remoteAddress }, "session bound");
  }

  private createSession(jid: JID, account: Account): Session {
    const transport = this.transport;
    return {
      id: this.id,
      jid,
      full: jid.toString(),
      bare: `${jid.local}@${jid.domain}`,
      account,
      protocol: "xmpp",
      presence: null,
      priority: 0,
      rosterRequested: false,
      send: (stanza) => transport.send(stanza),
      close: (error) => (error ? this.fail(error) : this.end("closed by server")),
    };
  }
}
