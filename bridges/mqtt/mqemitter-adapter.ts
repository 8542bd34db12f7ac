// Every use of mqemitter's private state, in one place (mqemitter is pinned exactly
// in package.json; test/mqtt/adapters.test.ts fails if the pinned version changes it).
//
// Whether a publish could reach anyone, asked before the telemetry path hands an
// accepted sample to aedes for fan-out. In a fleet whose telemetry nobody subscribes
// to over MQTT (it is read from the store and over XMPP), aedes' publish path would
// otherwise run once per sample to find no one. Live subscriptions are the ones in
// the emitter's topic trie (`_matcher`, a Qlobber); a persistent session's stored ones
// are the persistence's (persistence.ts). The trie's answer for a topic is kept until
// any subscription is added or removed.

interface Matcher {
  match(topic: string): unknown[];
  [method: string]: unknown;
}

/** Returns `reaches(topic)`; always true if the emitter is not the one this was written for. */
export function audience(emitter: unknown, storedSubscriptions: () => boolean): (topic: string) => boolean {
  const matcher = (emitter as { _matcher?: Matcher })._matcher;
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
