// The routing table is a set of named events, as in Prosody: the router fires
// e.g. `iq-get/host/urn:xmpp:ping:ping`, and the module that handles it returns
// true to claim the stanza. Higher priority runs first.
export type Handler<T> = (event: T) => boolean | void;

export class EventBus<T> {
  private readonly handlers = new Map<string, Array<{ handler: Handler<T>; priority: number }>>();

  on(name: string, handler: Handler<T>, priority = 0): () => void {
    const list = this.handlers.get(name) ?? [];
    list.push({ handler, priority });
    list.sort((a, b) => b.priority - a.priority);
    this.handlers.set(name, list);
    return () => {
      const current = this.handlers.get(name);
      if (current) this.handlers.set(name, current.filter((h) => h.handler !== handler));
    };
  }

  /** Runs the handlers of `name` in order until one claims the event. */
  fire(name: string, event: T): boolean {
    const list = this.handlers.get(name);
    if (!list) return false;
    for (const { handler } of list) if (handler(event) === true) return true;
    return false;
  }
}
