// A deliberately minimal XMPP c2s client for load generation.
//
// It does exactly: stream open, SASL PLAIN, stream restart, resource bind,
// the session IQ only when the server marks it mandatory, optional initial
// presence, then raw message traffic. There is no XML parser: the servers'
// replies during login are recognised by string matching, and afterwards
// only <body> contents are extracted. A full parser would cost more CPU than
// the servers under test spend routing a stanza, and on a 2-core machine
// every cycle the client burns is taken from the server.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { sleep, sleepUntil } from '../common/timing.js';

export interface Target { host: string; port: number; domain: string }
export interface Credentials { user: string; password: string; resource: string }

const SASL_NS = 'urn:ietf:params:xml:ns:xmpp-sasl';

export function streamHeader(domain: string): string {
  return `<?xml version='1.0'?><stream:stream xmlns='jabber:client' ` +
    `xmlns:stream='http://etherx.jabber.org/streams' to='${domain}' version='1.0'>`;
}

export function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

export class XmppError extends Error {}

/** Scans a stream for <body>…</body> and hands each body's text to a callback. */
export class BodyScanner {
  private pending = '';
  constructor(private readonly onBody: (body: string) => void) {}

  push(chunk: string): void {
    const text = this.pending + chunk;
    let pos = 0;
    for (;;) {
      const open = text.indexOf('<body>', pos);
      if (open < 0) break;
      const close = text.indexOf('</body>', open + 6);
      if (close < 0) { pos = open; break; }
      this.onBody(text.slice(open + 6, close));
      pos = close + 7;
    }
    // Keep only what may hold the start of an unfinished <body>. Without an
    // open tag we still keep a few characters, in case '<bo' was cut off.
    const keepFrom = text.indexOf('<body>', pos) >= 0 ? pos : Math.max(pos, text.length - 6);
    this.pending = text.slice(keepFrom);
  }
}

/**
 * One logged-in connection. During login, received text accumulates in
 * `buf` and `expect()` waits for a pattern; afterwards data goes straight
 * to `onData`.
 */
export class Session {
  jid = '';
  onData: ((chunk: string) => void) | undefined;
  private buf = '';
  private waiter: { re: RegExp; resolve: (m: RegExpExecArray) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;
  private closed: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.setNoDelay(true); // latency runs must not wait for Nagle
    socket.on('data', (chunk: string) => {
      if (this.onData) { this.onData(chunk); return; }
      this.buf += chunk;
      this.check();
    });
    socket.on('error', (e) => this.fail(e));
    this.closed = new Promise((resolve) => socket.once('close', () => {
      this.fail(new XmppError('connection closed'));
      resolve();
    }));
  }

  static connect(t: Target): Promise<Session> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: t.host, port: t.port });
      socket.once('connect', () => { socket.off('error', reject); resolve(new Session(socket)); });
      socket.once('error', reject);
    });
  }

  private fail(e: Error): void {
    this.failure ??= e;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(e);
  }

  private check(): void {
    const w = this.waiter;
    if (!w) return;
    const m = w.re.exec(this.buf);
    if (m) {
      this.buf = this.buf.slice(m.index + m[0].length);
      this.waiter = undefined;
      w.resolve(m);
    } else if (/<stream:error|<failure[\s>]/.test(this.buf)) {
      this.fail(new XmppError(`server refused: ${this.buf.slice(0, 300)}`));
    }
  }

  /** Resolves with the first match of re in received text, consuming it. */
  expect(re: RegExp): Promise<RegExpExecArray> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { re, resolve, reject };
      this.check();
    });
  }

  write(data: string): void {
    this.socket.write(data);
  }

  /** Hands text received after login to a consumer, including leftovers. */
  attach(onData: (chunk: string) => void): void {
    this.onData = onData;
    const rest = this.buf;
    this.buf = '';
    if (rest) onData(rest);
  }

  /** Polite close; the socket is destroyed if the server does not close in time. */
  close(timeoutMs = 5_000): Promise<void> {
    if (!this.socket.destroyed) {
      this.socket.end('</stream:stream>');
      const timer = setTimeout(() => this.socket.destroy(), timeoutMs);
      timer.unref();
    }
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Opens a stream and returns the text of its <stream:features>. */
async function openStream(s: Session, domain: string): Promise<string> {
  s.write(streamHeader(domain));
  const m = await s.expect(/<stream:features\s*\/>|<stream:features\b[\s\S]*?<\/stream:features>/);
  return m[0];
}

/** RFC 3921 session establishment is needed only if offered without <optional/>. */
function sessionRequired(features: string): boolean {
  const m = /<session\b[^>]*urn:ietf:params:xml:ns:xmpp-session[^>]*?(\/>|>([\s\S]*?)<\/session>)/.exec(features);
  if (!m) return false;
  return !(m[2] ?? '').includes('optional');
}

export interface LoginOptions { presence: boolean; timeoutMs?: number }

/** Connects and logs in; resolves once the session can send and receive stanzas. */
export async function login(t: Target, c: Credentials, opts: LoginOptions): Promise<Session> {
  const s = await Session.connect(t);
  const timer = setTimeout(() => s.destroy(), opts.timeoutMs ?? 30_000);
  try {
    const features = await openStream(s, t.domain);
    if (!/<mechanism>PLAIN<\/mechanism>/.test(features)) throw new XmppError(`PLAIN not offered: ${features}`);
    const token = Buffer.from(`\0${c.user}\0${c.password}`).toString('base64');
    s.write(`<auth xmlns='${SASL_NS}' mechanism='PLAIN'>${token}</auth>`);
    await s.expect(/<success\b[^>]*?(?:\/>|>[\s\S]*?<\/success>)/);

    const features2 = await openStream(s, t.domain);
    s.write(`<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>` +
      `<resource>${escapeXml(c.resource)}</resource></bind></iq>`);
    const bound = await s.expect(/<iq\b[^>]*?(?:\/>|>[\s\S]*?<\/iq>)/);
    const jid = /<jid>([^<]+)<\/jid>/.exec(bound[0]);
    if (!jid) throw new XmppError(`bind failed: ${bound[0]}`);
    s.jid = jid[1]!;

    if (sessionRequired(features2)) {
      s.write(`<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`);
      const r = await s.expect(/<iq\b[^>]*?(?:\/>|>[\s\S]*?<\/iq>)/);
      if (/type=['"]error/.test(r[0])) throw new XmppError(`session failed: ${r[0]}`);
    }
    if (opts.presence) s.write('<presence/>');
    return s;
  } catch (e) {
    s.destroy();
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * In-band registration (XEP-0077) of accounts, a batch per unauthenticated
 * stream. Used to provision servers whose account store we cannot write
 * directly (ejabberd keeps it in Mnesia). Batches stay small because servers
 * close streams that do not authenticate within a negotiation timeout
 * (ejabberd: 30 s).
 */
export async function registerAccounts(t: Target, users: string[], password: string): Promise<void> {
  const batch = 50;
  for (let i = 0; i < users.length; i += batch) await registerBatch(t, users.slice(i, i + batch), password);
}

async function registerBatch(t: Target, users: string[], password: string): Promise<void> {
  const s = await Session.connect(t);
  try {
    await openStream(s, t.domain);
    for (const user of users) {
      s.write(`<iq type='set' id='r1'><query xmlns='jabber:iq:register'>` +
        `<username>${escapeXml(user)}</username><password>${escapeXml(password)}</password></query></iq>`);
      const r = await s.expect(/<iq\b[^>]*?(?:\/>|>[\s\S]*?<\/iq>)/);
      if (/type=['"]error/.test(r[0]) && !/<conflict/.test(r[0])) {
        throw new XmppError(`registration of ${user} failed: ${r[0]}`);
      }
    }
  } finally {
    await s.close();
  }
}

/** The message stanza the bench sends; the body is the payload the receiver reads back. */
export function chatMessage(to: string, body: string): string {
  return `<message to='${to}' type='chat'><body>${body}</body></message>`;
}

/** A sender and a receiver logged in for messages from one to the other. */
export interface Pair { sender: Session; receiver: Session; to: string }

/**
 * Closed-loop throughput: from `startAt` each pair keeps `window` messages in flight,
 * sending one more per message delivered until `to`; deliveries in [from, to) count.
 * Then up to `drainMs` for the last window, so the next phase starts from an empty
 * server; what is still in flight after that is returned.
 */
export async function closedLoop(pairs: readonly Pair[], r: { startAt: number; from: number; to: number; window: number }, drainMs: number): Promise<{ delivered: number; sent: number; inFlight: number }> {
  let delivered = 0;
  let sent = 0;
  let inFlight = 0;
  await sleepUntil(r.startAt);
  for (const p of pairs) {
    const stanza = chatMessage(p.to, 'x');
    let n = 0;
    const scanner = new BodyScanner(() => { n++; });
    p.receiver.attach((chunk) => {
      n = 0;
      scanner.push(chunk);
      inFlight -= n;
      const now = Date.now();
      if (now >= r.from && now < r.to) delivered += n;
      if (now < r.to && n > 0) {
        p.sender.write(stanza.repeat(n));
        sent += n;
        inFlight += n;
      }
    });
    p.sender.write(stanza.repeat(r.window));
    sent += r.window;
    inFlight += r.window;
  }
  await sleepUntil(r.to);
  const drainEnd = Date.now() + drainMs;
  while (inFlight > 0 && Date.now() < drainEnd) await sleep(20);
  return { delivered, sent, inFlight };
}

/**
 * Open-loop fixed rate: `rate` messages/s on a clock, round robin over the pairs, so a
 * slow server shows up as latency instead of silently lowering the offered load. The
 * timestamp in the body is this process's monotonic clock; sender and receiver of a
 * pair live in the same process, so no clock sync is needed. Latency of each message
 * sent in [from, to); waits up to `graceMs` after `to` for the last ones.
 */
export async function openLoop(pairs: readonly Pair[], r: { startAt: number; from: number; to: number; rate: number }, graceMs: number): Promise<{ latenciesMs: number[]; sent: number; lost: number }> {
  const latenciesMs: number[] = [];
  await sleepUntil(r.startAt);
  const t0 = performance.now();
  const fromPerf = t0 + (r.from - r.startAt);
  const toPerf = t0 + (r.to - r.startAt);
  let sentInWindow = 0;
  for (const p of pairs) {
    const scanner = new BodyScanner((body) => {
      const sentAt = Number(body);
      if (sentAt >= fromPerf && sentAt < toPerf) latenciesMs.push(performance.now() - sentAt);
    });
    p.receiver.attach((chunk) => scanner.push(chunk));
  }
  let sent = 0;
  await new Promise<void>((done) => {
    const tick = () => {
      const now = performance.now();
      if (now >= toPerf) { done(); return; }
      const due = Math.floor(((now - t0) * r.rate) / 1000);
      while (sent < due) {
        const p = pairs[sent % pairs.length]!;
        const stamp = performance.now();
        if (stamp >= fromPerf && stamp < toPerf) sentInWindow++;
        p.sender.write(chatMessage(p.to, stamp.toFixed(3)));
        sent++;
      }
      setTimeout(tick, 1);
    };
    tick();
  });
  const graceEnd = performance.now() + graceMs;
  while (latenciesMs.length < sentInWindow && performance.now() < graceEnd) await sleep(20);
  return { latenciesMs, sent: sentInWindow, lost: sentInWindow - latenciesMs.length };
}
