// The XMPP server's settings, read from the config once (docs/configuration.md).
import type { IncomingMessage } from "node:http";
import type { SecureContext } from "node:tls";
import type { Config } from "../config.js";
import { limitShapes } from "../limits.js";
import type { C2SOptions } from "./c2s.js";
import type { TcpListenerOptions } from "./tcp.js";
import type { XmppWebSocketOptions } from "./websocket.js";

/** Most elements in one stanza. */
const MAX_CHILDREN = 10_000;

export function c2sOptions(config: Config): C2SOptions {
  const { xmpp } = config;
  return {
    domain: config.domain,
    requireTls: xmpp.requireTls,
    maxStanzaBytes: xmpp.maxStanzaBytes,
    negotiationTimeoutMs: xmpp.negotiationTimeoutMs,
    serviceShape: limitShapes(config).serviceShape,
  };
}

/** Before authentication the smaller of the two stanza limits holds (raised after SASL success). */
const preAuthBytes = (config: Config) => Math.min(config.xmpp.maxPreAuthStanzaBytes, config.xmpp.maxStanzaBytes);

export function tcpOptions(config: Config, tls: SecureContext, admit: (address: string) => boolean): TcpListenerOptions {
  const { xmpp } = config;
  return {
    host: xmpp.host,
    port: xmpp.port,
    tls,
    limits: { maxStanzaBytes: preAuthBytes(config), maxChildren: MAX_CHILDREN, maxDepth: xmpp.maxDepth },
    tlsHandshakeMs: config.limits.tlsHandshakeMs,
    shape: limitShapes(config).shape,
    admit,
    proxyProtocol: xmpp.proxyProtocol,
  };
}

export function webSocketOptions(config: Config, admit: (address: string) => boolean): XmppWebSocketOptions {
  const { xmpp } = config;
  return {
    maxStanzaBytes: xmpp.maxStanzaBytes,
    maxPreAuthStanzaBytes: preAuthBytes(config),
    maxChildren: MAX_CHILDREN,
    maxDepth: xmpp.maxDepth,
    shape: limitShapes(config).shape,
    admit,
    // No STARTTLS over WebSocket: TLS ends in front (a reverse proxy), trusted by address.
    isSecure: (req: IncomingMessage) => Boolean((req.socket as { encrypted?: boolean }).encrypted) || xmpp.websocketSecureFrom.includes(req.socket.remoteAddress ?? ""),
  };
}
