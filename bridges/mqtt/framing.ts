// MQTT packets as the guard (guard.ts) reads them before aedes does: whole packets
// cut from the byte stream (MQTT 3.1.1 §2.2), refused as soon as their fixed header
// shows they must not be read, and their strings checked (§1.5.3).
//
// mqtt-packet decodes strings with replacement characters, so no hook could tell a bad
// one. A string that is not well-formed UTF-8 or contains U+0000 closes the connection
// (MQTT 3.1.1 §1.5.3), and so, as in Mosquitto, does one with a code point a server
// MAY close for (controls, non-characters).
//
// It also defuses one thing aedes would disconnect for: a wildcard in a PUBLISH topic
// name (MQTT 3.1.1 §3.3.2.1). Such a publish is to be dropped and reported on the
// device's errors topic with the connection kept (docs/mqtt.md), so `+` and `#` in a
// topic name are rewritten in place to the control characters below, which the topic
// ACL refuses and reports with the original characters. A client cannot send those
// characters itself: the check above refuses them first.
import { isUtf8 } from "node:buffer";

export const WILDCARD_MARKS: Record<string, string> = { "\u0001": "+", "\u0002": "#" };
const PLUS = 0x2b;
const HASH = 0x23;

/** Why a connection was closed: a packet over the size limit, not MQTT, or with a string §1.5.3 refuses. */
export type GuardVerdict = "oversize" | "malformed" | "bad-utf8";

/** A whole PUBLISH at QoS 0 or 1, not retained, as it arrived (MQTT 3.1.1 §3.3). */
export interface InboundPublish {
  readonly qos: 0 | 1;
  /** 0 at QoS 0. */
  readonly messageId: number;
  /** The topic name's bytes are `bytes[topicStart, topicEnd)`. */
  readonly bytes: Buffer;
  readonly topicStart: number;
  readonly topicEnd: number;
  readonly payload: Buffer;
}

/** Where a packet's body starts and where the packet ends, filled by readHeader. */
export interface Header {
  body: number;
  end: number;
}

/**
 * §2.2.3: reads the fixed header of the packet at `bytes[at]` into `header`. "whole"
 * when the packet is all in `bytes`; "partial" when more bytes are needed; a verdict
 * as soon as the header shows the packet must not be read (`header.end` then says
 * where an oversized one would end).
 */
export function readHeader(bytes: Buffer, at: number, maxPacketBytes: number, header: Header): "whole" | "partial" | GuardVerdict {
  let length = 0;
  let i = at + 1;
  for (let multiplier = 1; ; multiplier *= 128) {
    if (i >= bytes.length) return "partial";
    const byte = bytes[i++]!;
    length += (byte & 0x7f) * multiplier;
    if (!(byte & 0x80)) break;
    // A variable-length integer of at most four bytes.
    if (i - at > 4) return "malformed";
  }
  header.body = i;
  header.end = i + length;
  if (header.end - at > maxPacketBytes) return "oversize";
  return header.end > bytes.length ? "partial" : "whole";
}

/**
 * The strings of a whole packet that name a topic or a client: a PUBLISH's topic name
 * (whose wildcards are marked once it is checked), SUBSCRIBE's and UNSUBSCRIBE's topic
 * filters, CONNECT's client id, will topic and user name. Returns a verdict, or null
 * for a good packet or one of another type.
 */
export function checkStrings(bytes: Buffer, at: number, body: number, end: number): GuardVerdict | null {
  switch (bytes[at]! >> 4) {
    case 3: {
      // §3.3.2.1: the topic name comes first.
      const topicEnd = stringEnd(bytes, body, end);
      if (topicEnd < 0) return "malformed";
      return topicName(bytes, body + 2, topicEnd) ? null : "bad-utf8";
    }
    case 8:
      // §3.8.3: after the packet identifier, filters each followed by a QoS byte.
      return filters(bytes, body + 2, end, 1);
    case 10:
      // §3.10.3: after the packet identifier, filters.
      return filters(bytes, body + 2, end, 0);
    case 1:
      return connect(bytes, body, end);
    default:
      return null;
  }
}

/** The end of the length-prefixed string (§1.5.3) at `bytes[at]`, or -1 if it overruns `end`. */
function stringEnd(bytes: Buffer, at: number, end: number): number {
  if (at + 2 > end) return -1;
  const stop = at + 2 + bytes.readUInt16BE(at);
  return stop > end ? -1 : stop;
}

function filters(bytes: Buffer, at: number, end: number, trailer: number): GuardVerdict | null {
  while (at < end) {
    const stop = stringEnd(bytes, at, end);
    if (stop < 0 || stop + trailer > end) return "malformed";
    if (!plainString(bytes, at + 2, stop)) return "bad-utf8";
    at = stop + trailer;
  }
  return null;
}

/** §3.1: a CONNECT of protocol level 3 or 4; aedes refuses any other level [MQTT-3.1.2-2]. */
function connect(bytes: Buffer, body: number, end: number): GuardVerdict | null {
  const name = stringEnd(bytes, body, end);
  if (name < 0 || name + 4 > end) return "malformed";
  const level = bytes[name]!;
  const flags = bytes[name + 1]!;
  if (level !== 3 && level !== 4) return null;
  // §3.1.3: client id, then the will topic and message if the will flag is set, then the user name if its flag is.
  let at = name + 4;
  const clientId = stringEnd(bytes, at, end);
  if (clientId < 0) return "malformed";
  if (!plainString(bytes, at + 2, clientId)) return "bad-utf8";
  at = clientId;
  if (flags & 0x04) {
    const willTopic = stringEnd(bytes, at, end);
    const willMessage = willTopic < 0 ? -1 : stringEnd(bytes, willTopic, end);
    if (willMessage < 0) return "malformed";
    if (!plainString(bytes, at + 2, willTopic)) return "bad-utf8";
    at = willMessage;
  }
  if (flags & 0x80) {
    const username = stringEnd(bytes, at, end);
    if (username < 0) return "malformed";
    if (!plainString(bytes, at + 2, username)) return "bad-utf8";
  }
  return null;
}

/**
 * Whether `bytes[start, end)` is a string this broker takes (§1.5.3): no U+0000
 * [MQTT-1.5.3-2] [MQTT-4.7.3-2] nor other controls (U+0001–U+001F, U+007F–U+009F, which
 * a server MAY close for), well-formed UTF-8 [MQTT-1.5.3-1]. ASCII, nearly every
 * topic, is one short loop.
 */
function plainString(bytes: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const byte = bytes[i]!;
    if (byte >= 0x80) return nonAscii(bytes, i, end);
    if (byte < 0x20 || byte === 0x7f) return false;
  }
  return true;
}

/** plainString for a PUBLISH topic name, marking its wildcards as it goes (in one pass on the hot path). */
function topicName(bytes: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const byte = bytes[i]!;
    if (byte >= 0x80) {
      if (!nonAscii(bytes, i, end)) return false;
      markWildcards(bytes, i, end);
      return true;
    }
    if (byte < 0x20 || byte === 0x7f) return false;
    if (byte === PLUS) bytes[i] = 0x01;
    else if (byte === HASH) bytes[i] = 0x02;
  }
  return true;
}

function markWildcards(bytes: Buffer, start: number, end: number): void {
  for (let i = start; i < end; i++) {
    if (bytes[i] === PLUS) bytes[i] = 0x01;
    else if (bytes[i] === HASH) bytes[i] = 0x02;
  }
}

/**
 * The rest of a string from its first non-ASCII byte. Node's validator refuses what is
 * ill-formed (overlong forms, surrogates, code points past U+10FFFF, cut sequences);
 * then, on well-formed bytes, the code points a server MAY close for: controls and,
 * as Mosquitto, non-characters (U+FDD0–U+FDEF and the last two of every plane).
 */
function nonAscii(bytes: Buffer, start: number, end: number): boolean {
  if (!isUtf8(bytes.subarray(start, end))) return false;
  for (let i = start; i < end; i++) {
    const byte = bytes[i]!;
    if (byte < 0x80) {
      if (byte < 0x20 || byte === 0x7f) return false;
    } else if (byte === 0xc2) {
      // U+0080–U+009F: C2 80 – C2 9F.
      if (bytes[i + 1]! < 0xa0) return false;
    } else if (byte === 0xef) {
      // U+FDD0–U+FDEF: EF B7 90 – EF B7 AF; U+FFFE, U+FFFF: EF BF BE, EF BF BF.
      const second = bytes[i + 1]!;
      const third = bytes[i + 2]!;
      if ((second === 0xb7 && third >= 0x90 && third <= 0xaf) || (second === 0xbf && third >= 0xbe)) return false;
    } else if (byte >= 0xf0) {
      // U+1FFFE, U+1FFFF … U+10FFFF: the code point's low 16 bits all ones but the last.
      if ((bytes[i + 1]! & 0x0f) === 0x0f && bytes[i + 2] === 0xbf && bytes[i + 3]! >= 0xbe) return false;
    }
  }
  return true;
}

/**
 * [MQTT-3.1.0-1]: a client's first packet is CONNECT; and type 0 is reserved (§2.2.1).
 * Checked on the first byte alone, so a connection sending anything else is closed
 * before the broker waits for the rest of a "packet" it would never take.
 */
export function firstByteRefused(type: number, first: boolean): GuardVerdict | null {
  if (type === 0 || (first && type !== 1)) return "malformed";
  return null;
}

/** The PUBLISH in `bytes[start, end)` (body from `body`) if it is one a tap may take. */
export function inboundPublish(bytes: Buffer, start: number, body: number, end: number): InboundPublish | null {
  const first = bytes[start]!;
  // §3.3.1: type 3; QoS 0 or 1 with retain 0; DUP must be 0 at QoS 0 (MQTT-3.3.1-2).
  if (first >> 4 !== 3 || first & 0x01) return null;
  const qos = (first >> 1) & 0x03;
  if (qos > 1 || (qos === 0 && first & 0x08)) return null;
  if (end - body < 2) return null;
  const topicStart = body + 2;
  const topicEnd = topicStart + bytes.readUInt16BE(body);
  const payloadStart = topicEnd + qos * 2;
  if (payloadStart > end) return null;
  const messageId = qos === 1 ? bytes.readUInt16BE(topicEnd) : 0;
  // §2.3.1: a QoS 1 PUBLISH has a non-zero packet identifier; aedes answers the rest.
  if (qos === 1 && messageId === 0) return null;
  return { qos: qos as 0 | 1, messageId, bytes, topicStart, topicEnd, payload: bytes.subarray(payloadStart, end) };
}

