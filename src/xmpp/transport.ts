// What a client-to-server stream needs from its transport: TCP with STARTTLS
// (tcp.ts) or RFC 7395 WebSocket (websocket.ts).
import type { Element } from "@xmpp/xml";
import type { Shape } from "../limits.js";

/** What a stream needs from its transport (TCP socket, WebSocket). */
export interface C2STransport {
  readonly remoteAddress: string;
  readonly secure: boolean;
  readonly canStartTls: boolean;
  sendHeader(attrs: Record<string, string>): void;
  send(element: Element): void;
  /** Sends the closing tag (or RFC 7395 <close/>) and ends the transport. */
  close(): void;
  /** STARTTLS: upgrade after <proceed/>, with a fresh parser (§5.4.3.3). */
  startTls(): void;
  /** Stream restart after SASL success (§6.4.6): a fresh parser, the old one is dropped. */
  restart(): void;
  setMaxStanzaBytes(bytes: number): void;
  /** A new read rate for this connection, once its account is known. */
  reshape(shape: Shape): void;
}
