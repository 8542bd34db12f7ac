// Whether a publish could reach anyone, asked before the telemetry tap hands an
// accepted sample to aedes for fan-out. In a fleet whose telemetry nobody subscribes
// to over MQTT (it is read from the store and over XMPP), aedes' publish path (a
// packet copy, a topic-trie match, the persistence query, four callbacks) would
// otherwise run once per sample to find no one: ~7 % of the event loop under load.
//
// Live subscriptions are the ones in aedes' emitter (mqemitter keeps them in a
// Qlobber trie, `_matcher`, which aedes 1.x pins); a persistent session's stored ones
// are the persistence's (see persistence.ts). The trie's answer for a topic is kept
// until any subscription is added or removed.

interface Matcher {
  match(topic: string): unknown[];
  [method: string]: unknown;
}

/** Returns `reaches(topic)`; always true if the emitter is not the one this was written for. */
export function audience(mq: unknown, storedSubscriptions: () => boolean): (topic: string) => boolean {
  const matcher = (mq as { _matcher?: Matcher })._matcher;
  if (!matcher || typeof matcher.match !== "function") return () => true;
  let known = new Map<string, boolean>();
  for (const name of ["add", "remove", "clear"]) {
    const original = matcher[name];
    if (typeof original !== "function") return () => true;
    matcher[name] = (...args: unknown[]) => {
      known = new Map();
      return (original as (...a: unknown[]) => unknown).apply(matcher, args);
    };
  }
  return (topic) => {
    if (storedSubscriptions()) return true;
    let any = known.get(topic);
    if (any === undefined) {
      any = matcher.match(topic).length > 0;
      known.set(topic, any);
    }
    return any;
  };
}
