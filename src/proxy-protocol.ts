// The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2) on the XMPP and
// MQTT listeners (`xmpp.proxyProtocol`, `mqtt.proxyProtocol`; docs/cluster.md): behind
// a TCP load balancer every connection comes from the balancer's address, so the
// per-address failed-login bans and connection limits would count every client as
// one, and one guesser would ban the whole fleet. With it on, a connection must open
// with the header the balancer writes (`send-proxy-v2`); the client's address in it
// stands for the socket's from then on. A connection without a valid header within
// the deadline is closed: a client that could skip the balancer must not choose its
// own address. The header is parsed by proxy-protocol-js; this file finds where it
// ends and hands the rest of the bytes on.
import net from "node:net";
import { Command, V1ProxyProtocol, V2ProxyProtocol, IPv4ProxyAddress, IPv6ProxyAddress } from "proxy-protocol-js";

/** §2.2: the twelve bytes that open a version 2 header. */
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** §2.1: a version 1 line is at most 107 bytes with its CRLF. */
const V1_MAX = 107;
/** Addresses and the TLVs a balancer adds (§2.2.7): more than this is not a header we accept. */
const V2_MAX_LENGTH = 1024;

export class ProxyHeaderError extends Error {}

/** The client's address, or null for a LOCAL connection (the balancer's own health check, §2.2). */
export function parseProxyHeader(bytes: Buffer): { header: number; address: string | null } | "more" {
  if (bytes.length >= 6 && bytes.subarray(0, 6).toString("latin1") === "PROXY ") {
    const end = bytes.indexOf("\r\n", 0, "latin1");
    if (end < 0) {
      if (bytes.length >= V1_MAX) throw new ProxyHeaderError("PROXY v1 line longer than 107 bytes");
      return "more";
    }
    const line = bytes.subarray(0, end + 2).toString("latin1");
    if (line.startsWith("PROXY UNKNOWN")) return { header: end + 2, address: null };
    let parsed: V1ProxyProtocol;
    try {
      parsed = V1ProxyProtocol.parse(line);
    } catch (err) {
      throw new ProxyHeaderError(`bad PROXY v1 line: ${(err as Error).message}`);
    }
    const address = parsed.source.ipAddress;
    if (net.isIP(address) === 0) throw new ProxyHeaderError("bad PROXY v1 source address");
    return { header: end + 2, address: normalise(address) };
  }
  const signed = bytes.subarray(0, Math.min(bytes.length, 12));
  if (!V2_SIGNATURE.subarray(0, signed.length).equals(signed)) {
    // Not yet six bytes of what might be "PROXY ": wait for them.
    if (bytes.length < 6 && Buffer.from("PROXY ").subarray(0, bytes.length).equals(bytes)) return "more";
    throw new ProxyHeaderError("the connection did not start with a PROXY protocol header");
  }
  if (bytes.length < 16) return "more";
  const length = bytes.readUInt16BE(14);
  if (length > V2_MAX_LENGTH) throw new ProxyHeaderError(`PROXY v2 header of ${length} bytes`);
  if (bytes.length < 16 + length) return "more";
  let parsed: V2ProxyProtocol;
  try {
    parsed = V2ProxyProtocol.parse(new Uint8Array(bytes.subarray(0, 16 + length)));
  } catch (err) {
    throw new ProxyHeaderError(`bad PROXY v2 header: ${(err as Error).message}`);
  }
  const header = 16 + length;
  if (parsed.command === Command.LOCAL) return { header, address: null };
  const proxy = parsed.proxyAddress;
  if (proxy instanceof IPv4ProxyAddress) return { header, address: proxy.sourceAddress.address.join(".") };
  if (proxy instanceof IPv6ProxyAddress) return { header, address: ipv6(proxy.sourceAddress.address) };
  throw new ProxyHeaderError("PROXY v2 header without an IPv4 or IPv6 source");
}

/** As Node writes a socket's remoteAddress (lower case, zeros compressed), so bans key alike. */
function normalise(address: string): string {
  return net.isIPv6(address) ? new URL(`http://[${address}]/`).hostname.slice(1, -1) : address;
}

function ipv6(bytes: readonly number[]): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return normalise(groups.join(":"));
}

/**
 * Wraps a listener's connection handler: the header is read first, the socket's
 * remoteAddress becomes the client's, and what followed the header is read by the
 * handler as if nothing had been taken. LOCAL connections and bad headers are closed.
 */
export function acceptProxied(accept: (socket: net.Socket) => void, opts: { timeoutMs: number; refused: (address: string | undefined, reason: string) => void }): (socket: net.Socket) => void {
  return (socket) => {
    let held: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => fail("no PROXY protocol header in time"), opts.timeoutMs);
    const fail = (reason: string) => {
      clearTimeout(timer);
      socket.off("data", onData);
      opts.refused(socket.remoteAddress, reason);
      socket.destroy();
    };
    const onData = (chunk: Buffer) => {
      held = held.length ? Buffer.concat([held, chunk]) : chunk;
      let result: ReturnType<typeof parseProxyHeader>;
      try {
        result = parseProxyHeader(held);
      } catch (err) {
        return fail((err as Error).message);
      }
      if (result === "more") return;
      clearTimeout(timer);
      socket.off("data", onData);
      socket.pause();
      if (result.address === null) return void socket.destroy();
      Object.defineProperty(socket, "remoteAddress", { value: result.address, configurable: true });
      const rest = held.subarray(result.header);
      if (rest.length) socket.unshift(rest);
      accept(socket);
      // A reader of 'data' (XMPP, aedes) gets the stream flowing again; TLS started on the
      // socket reads what is buffered itself, and data flowing past it would be lost.
      if (socket.listenerCount("data") > 0) socket.resume();
    };
    // A connection that closes before its header (a TCP health check) is no refusal.
    const gone = () => clearTimeout(timer);
    socket.on("error", () => {});
    socket.once("close", gone);
    socket.on("data", onData);
  };
}
