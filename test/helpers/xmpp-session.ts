// An @xmpp/client session (a client no one here wrote) for tests: every stanza it
// receives is recorded with its arrival time; waits for a stanza, IQs and presence
// histories are bounded and say what never came.
import { client, xml, type Client } from "@xmpp/client";
import type { Element } from "@xmpp/xml";
import { sleep, Wakeup, withTimeout } from "./wait.js";

const NS_LAST = "jabber:iq:last";

export interface Seen {
  el: Element;
  at: number;
}

/** A client for `username` on 127.0.0.1:`port`, domain localhost, that never reconnects by itself. */
export function xmppClient(port: number, username: string, password: string, resource: string): Client {
  const c = client({ service: `xmpp://127.0.0.1:${port}`, domain: "localhost", username, password, resource });
  c.reconnect.stop();
  c.on("error", () => {});
  return c;
}

export const presenceType = (el: Element) => (el.attrs.type as string | undefined) ?? "available";
const isPresence = (el: Element, from: string, type: string) => el.name === "presence" && el.attrs.from === from && presenceType(el) === type;

export class XmppSession {
  readonly seen: Seen[] = [];
  private readonly arrivals = new Wakeup();

  constructor(
    readonly c: Client,
    private readonly stepMs = 10_000,
  ) {
    c.on("stanza", (el: Element) => {
      this.seen.push({ el, at: performance.now() });
      this.arrivals.wake();
    });
  }

  get jid(): string {
    return String(this.c.jid);
  }

  /** Where "since now" starts for the other methods. */
  mark(): number {
    return this.seen.length;
  }

  /** Presence stanzas from `from` received since `since`. */
  presences(from: string, since = 0): Seen[] {
    return this.seen.slice(since).filter((s) => s.el.name === "presence" && s.el.attrs.from === from);
  }

  /** The states ("available"/"unavailable") of `from` seen since `since`. */
  states(from: string, since: number): string[] {
    return this.presences(from, since).map((s) => presenceType(s.el));
  }

  /** The first stanza since `since` (seen already or to come) that matches. */
  waitFor(what: string, match: (el: Element) => boolean, since = 0, ms = this.stepMs): Promise<Seen> {
    return this.arrivals.until(
      () => this.seen.slice(since).find((s) => match(s.el)),
      ms,
      () => new Error(`timed out after ${ms} ms waiting for ${what}; received since: ${this.seen.slice(since).map((s) => s.el.toString()).join("\n").slice(-3000)}`),
    );
  }

  available(full: string, since = 0, ms = this.stepMs): Promise<Seen> {
    return this.waitFor(`available presence from ${full}`, (el) => isPresence(el, full, "available"), since, ms);
  }

  unavailable(full: string, since = 0, ms = this.stepMs): Promise<Seen> {
    return this.waitFor(`unavailable presence from ${full}`, (el) => isPresence(el, full, "unavailable"), since, ms);
  }

  /** Waits until no presence from `from` has arrived for `quietMs` since this call or the last one (bounded). */
  async settle(from: string, quietMs = 500, ms = this.stepMs): Promise<void> {
    const deadline = Date.now() + ms;
    const start = performance.now();
    for (;;) {
      const last = Math.max(start, this.presences(from).at(-1)?.at ?? 0);
      const quiet = performance.now() - last;
      if (quiet >= quietMs) return;
      if (Date.now() > deadline) throw new Error(`presence from ${from} did not settle within ${ms} ms`);
      await sleep(quietMs - quiet + 5);
    }
  }

  iq(type: "get" | "set", to: string, payload: Element): Promise<Element> {
    return withTimeout(this.c.iqCaller.request(xml("iq", { type, to }, payload)), `IQ ${payload.attrs.xmlns} to ${to}`, this.stepMs);
  }

  /** The error condition of a get that must fail. */
  async iqError(to: string, payload: Element): Promise<string> {
    const outcome = await withTimeout(
      this.c.iqCaller.request(xml("iq", { type: "get", to }, payload)).then(
        (res) => ({ ok: true as const, res }),
        (err: { condition?: string }) => ({ ok: false as const, condition: err.condition }),
      ),
      `IQ to ${to}`,
      this.stepMs,
    );
    if (outcome.ok) throw new Error(`expected an error, got ${outcome.res.toString()}`);
    return outcome.condition ?? "(none)";
  }

  /** XEP-0012: the seconds since `bare` was last online (0 while it is). */
  async lastSeconds(bare: string): Promise<number> {
    const res = await this.iq("get", bare, xml("query", { xmlns: NS_LAST }));
    const seconds = Number(res.getChild("query", NS_LAST)?.attrs.seconds);
    if (!Number.isInteger(seconds)) throw new Error(`no seconds in ${res.toString()}`);
    return seconds;
  }
}
