// The SASL step of a c2s stream (RFC 6120 §6): <auth/>, <response/> and <abort/>,
// at most `maxAttempts` failures per stream; failed logins are counted and banned
// by the shared limiter (auth/login.ts). It answers challenges and failures itself
// and tells the stream when authentication succeeded or the stream must end.
import xml, { type Element } from "@xmpp/xml";
import type { Logger } from "../log.js";
import type { Authenticator } from "../auth/credentials.js";
import type { Login } from "../auth/login.js";
import type { Account } from "../registry/registry.js";
import { NS_SASL, SASLError, StreamError } from "./errors.js";
import { MECHANISMS, decodeSaslPayload, encodeSaslPayload, startExchange, type MechanismName, type SaslExchange } from "./sasl.js";

export type SaslOutcome = { kind: "continue" } | { kind: "success"; account: Account; data?: Buffer } | { kind: "fatal"; error: StreamError };

export interface SaslPeer {
  readonly remoteAddress: string;
  readonly secure: boolean;
  send(element: Element): void;
  /** The stream ended while an answer was being computed. */
  closed(): boolean;
}

export class SaslNegotiation {
  private exchange: { mechanism: MechanismName; sasl: SaslExchange } | null = null;
  private failures = 0;

  constructor(
    private readonly peer: SaslPeer,
    private readonly deps: { auth: Authenticator; login: Login; log: Logger; requireTls: boolean; maxAttempts: number; streamId: string },
  ) {}

  async handle(element: Element): Promise<SaslOutcome> {
    const { requireTls, auth } = this.deps;
    if (element.name === "abort") {
      this.exchange = null;
      this.peer.send(new SASLError("aborted").toElement());
      return { kind: "continue" };
    }
    if (element.name === "auth") {
      if (this.exchange) return this.failure(new SASLError("malformed-request", "an exchange is already under way"));
      // §6.4.5 / §5.3.1: no SASL before TLS when TLS is required; the stream then ends.
      if (requireTls && !this.peer.secure) return this.failure(new SASLError("encryption-required", "use STARTTLS first"), new StreamError("policy-violation", "authentication requires TLS"));
      const mechanism = element.attrs.mechanism as MechanismName;
      if (!MECHANISMS.includes(mechanism)) return this.failure(new SASLError("invalid-mechanism", `'${element.attrs.mechanism ?? ""}' is not offered`));
      this.exchange = { mechanism, sasl: startExchange(mechanism, { auth, login: this.deps.login, address: this.peer.remoteAddress }) };
    } else if (element.name !== "response" || !this.exchange) {
      return this.failure(new SASLError("malformed-request", `unexpected <${element.name}/>`));
    }
    // §6.4.2: an <auth/> without text carries no initial response; "=" is an empty one.
    const text = element.getText().trim();
    let payload: Buffer | null = null;
    if (text !== "" || element.name === "response") {
      payload = text === "" ? Buffer.alloc(0) : decodeSaslPayload(text);
      if (!payload) return this.failure(new SASLError("malformed-request", "payload is not valid base64"));
    }
    const exchange = this.exchange!;
    const step = await exchange.sasl.step(payload);
    if (this.peer.closed()) return { kind: "continue" }; // the peer left while the password was checked
    switch (step.kind) {
      case "challenge":
        this.peer.send(xml("challenge", { xmlns: NS_SASL }, encodeSaslPayload(step.data)));
        return { kind: "continue" };
      case "failure":
        // Refusals while banned are not logged one by one: the ban was, once.
        if (step.error.condition !== "temporary-auth-failure")
          this.deps.log.info(
          { stream: this.deps.streamId, mechanism: exchange.mechanism, user: step.username, address: this.peer.remoteAddress, condition: step.error.condition },
          "authentication failed",
        );
        return this.failure(step.error);
      case "success":
        this.exchange = null;
        return { kind: "success", account: step.account, data: step.data };
    }
  }

  /** Answers a failure at once; the last allowed failure ends the stream. */
  private failure(error: SASLError, fatal?: StreamError): SaslOutcome {
    this.exchange = null;
    this.failures++;
    this.peer.send(error.toElement());
    // §6.4.5: a configurable number of retries, 2 to 5; then the stream is closed.
    if (fatal) return { kind: "fatal", error: fatal };
    if (this.failures >= this.deps.maxAttempts) return { kind: "fatal", error: new StreamError("policy-violation", "too many failed authentication attempts") };
    return { kind: "continue" };
  }
}
