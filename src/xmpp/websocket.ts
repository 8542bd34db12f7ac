// XMPP over WebSocket, RFC 7395, at /xmpp-websocket on the HTTP port: subprotocol
// `xmpp`, one complete element per message, <open/> and <close/> in the framing
// namespace instead of the stream tags. Everything after the framing — features,
// SASL, binding, routing — is the same C2SStream as TCP.
import { isUtf8 } from "node:buffer";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import xml, { type Element } from "@xmpp/xml";
import type { Logger } from "../log.js";
import { NS_STREAMS, StreamError } from "./errors.js";
import { XMLStreamReader } from "./xml-stream.js";
import { byteShaper, type Shape } from "../limits.js";
import { NS_CLIENT, type C2SStream } from "./c2s.js";
import type { C2STransport } from "./transport.js";

export const NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";

export interface XmppWebSocketOptions {
  maxStanzaBytes: number;
  maxPreAuthStanzaBytes: number;
  maxChildren: number;
  maxDepth: number;
  /** Is this request's connection confidential (TLS in front, or a trusted interface)? */
  isSecure: (req: IncomingMessage) => boolean;
  shape?: Shape;
  admit?: (address: string) => boolean;
}

export function xmppWebSocket(options: XmppWebSocketOptions, openStream: (transport: C2STransport) => C2SStream, log: Logger) {
  // UTF-8 is checked here rather than by ws, so that ill-formed text ends the stream
  // with the stream error RFC 6120 §11.6 names instead of a bare WebSocket close.
  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxStanzaBytes + 1024, skipUTF8Validation: true });
  const streams = new Set<C2SStream>();

  function accept(ws: WebSocket, req: IncomingMessage): void {
    let limit = options.maxPreAuthStanzaBytes;
    let closing = false;
    const transport: C2STransport = {
      remoteAddress: req.socket.remoteAddress ?? "unknown",
      secure: options.isSecure(req),
      canStartTls: false,
      sendHeader(attrs) {
        // §3.3.2: the server's <open/> carries the stream attributes, no stream prefix.
        const { xmlns: _c, "xmlns:stream": _s, ...rest } = attrs;
        ws.send(xml("open", { xmlns: NS_FRAMING, ...rest }).toString());
      },
      send(element: Element) {
        if (ws.readyState !== ws.OPEN) return;
        // Each message stands alone: prefixes and the content namespace are declared in it.
        if (element.name.startsWith("stream:")) element.attrs["xmlns:stream"] = NS_STREAMS;
        else if ((element.name === "message" || element.name === "presence" || element.name === "iq") && !element.attrs.xmlns) element.attrs.xmlns = NS_CLIENT;
        ws.send(element.toString());
      },
      close() {
        if (closing) return;
        closing = true;
        if (ws.readyState === ws.OPEN) ws.send(xml("close", { xmlns: NS_FRAMING }).toString());
        ws.close();
        setTimeout(() => ws.terminate(), 2000).unref();
      },
      startTls() {},
      restart() {},
      setMaxStanzaBytes(bytes) {
        limit = bytes;
      },
      reshape: (next) => shaper?.reshape(next),
    };
    const shaper = options.shape ? byteShaper(ws, options.shape) : null;
    const stream = openStream(transport);
    streams.add(stream);

    ws.on("message", (data, isBinary) => {
      shaper?.take((data as Buffer).length);
      if (isBinary) return stream.transportError(new StreamError("bad-format", "XMPP frames are text"));
      const bytes = data as Buffer;
      if (bytes.length > limit) return stream.transportError(new StreamError("policy-violation", `stanza larger than ${limit} bytes`));
      if (!isUtf8(bytes)) return stream.transportError(new StreamError("unsupported-encoding", "the frame is not valid UTF-8"));
      const element = parseFrame(bytes.toString("utf8"), options);
      if (element instanceof StreamError) return stream.transportError(element);
      if (element.name === "open") {
        if (element.attrs.xmlns !== NS_FRAMING) return stream.transportError(new StreamError("invalid-namespace", `<open/> must be in ${NS_FRAMING}`));
        return stream.streamStart("stream:stream", { xmlns: NS_CLIENT, "xmlns:stream": NS_STREAMS, ...withoutXmlns(element.attrs) });
      }
      if (element.name === "close" && element.attrs.xmlns === NS_FRAMING) return stream.streamEnd();
      stream.element(element);
    });
    ws.on("close", () => {
      streams.delete(stream);
      stream.transportClosed();
    });
    ws.on("error", (err) => log.debug({ err: err.message }, "xmpp websocket error"));
  }

  return {
    upgrade(req: IncomingMessage, socket: Duplex, head: Buffer) {
      // §3.1: the client must offer the `xmpp` subprotocol, and we answer with it.
      const offered = String(req.headers["sec-websocket-protocol"] ?? "").split(",").map((p) => p.trim());
      if (!offered.includes("xmpp")) {
        socket.end("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" + JSON.stringify({ error: "the xmpp WebSocket subprotocol is required (RFC 7395)" }));
        return;
      }
      if (options.admit && !options.admit(req.socket.remoteAddress ?? "unknown")) return void socket.destroy();
      wss.handleUpgrade(req, socket, head, (ws) => accept(ws, req));
    },
    get connections() {
      return streams.size;
    },
    close(error = new StreamError("system-shutdown")): Promise<void> {
      for (const stream of streams) stream.fail(error);
      return new Promise((resolve) => wss.close(() => resolve()));
    },
  };
}

const withoutXmlns = (attrs: Record<string, string>) => Object.fromEntries(Object.entries(attrs).filter(([k]) => k !== "xmlns"));

/** §3.3.3: one message is exactly one complete element; anything else is not-well-formed. */
function parseFrame(text: string, limits: { maxChildren: number; maxDepth: number }): Element | StreamError {
  const found: Element[] = [];
  let failure: StreamError | null = null;
  const reader = new XMLStreamReader(
    { maxStanzaBytes: Number.MAX_SAFE_INTEGER, maxChildren: limits.maxChildren, maxDepth: limits.maxDepth },
    { streamStart: () => {}, stanza: (el) => found.push(el), streamEnd: () => {}, error: (e) => (failure ??= e) },
  );
  // A wrapper element makes the frame a document for the stream reader.
  reader.write(`<frame>${text}</frame>`);
  if (failure) return failure;
  if (found.length !== 1) return new StreamError("not-well-formed", found.length ? "one element per WebSocket message" : "a WebSocket message must hold a complete element");
  return found[0]!;
}
