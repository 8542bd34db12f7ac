// aedes-persistence, wrapped here and nowhere else (pinned exactly in package.json;
// test/mqtt/adapters.test.ts checks the methods wrapped): aedes' own in-memory
// persistence with one shortcut, which a node of a cluster puts on
// aedes-persistence-redis too (redis-adapter.ts). For every QoS 1 or 2 PUBLISH,
// aedes asks the persistence which stored subscriptions match the topic, to queue the
// message for persistent sessions (MQTT 3.1.1 §3.1.2.4: a session with CleanSession 0
// keeps its QoS 1 and 2 messages while the client is away). Only such sessions store
// subscriptions (aedes' subscribe handler skips clean ones), and in the usual fleet of
// devices and services with clean sessions there are none: the topic-trie walk then
// answers "nobody" on every publish (docs/benchmarks.md has its cost). Here that
// answer is given without the walk while no subscription is stored.
import memoryModule, { type AedesMemoryPersistence } from "aedes-persistence";

// The package's typings declare an ES default export; at run time the CommonJS module is the factory.
const memory = memoryModule as unknown as () => AedesMemoryPersistence;

type Callback = (err: Error | null, ...rest: unknown[]) => void;
type Persistence = AedesMemoryPersistence & Record<string, unknown>;

const NONE: readonly never[] = Object.freeze([]);

export type ShortcutPersistence = AedesMemoryPersistence & {
  /** A persistent session's subscription is stored, or one is being stored or removed. */
  readonly holdsSubscriptions: () => boolean;
};

/**
 * The shortcut, on a persistence through its public methods (aedes-persistence's
 * memory store here; aedes-persistence-redis on a node of a cluster, redis-adapter.ts):
 * counts the subscriptions of persistent sessions it holds, and answers
 * `subscriptionsByTopic` with "none" while there are none. `holds()` is true while
 * any is stored or a change is under way; `recount()` reads the count again after a
 * change the wrapped methods do not see (another node's, heard by
 * aedes-persistence-redis).
 */
export function storedSubscriptionsShortcut(target: object, initially: number): { holds: () => boolean; recount: () => void } {
  const persistence = target as Record<string, unknown>;
  /** Subscriptions of persistent sessions in the store, as of the last count (Infinity: not counted yet, so held). */
  let stored = initially;
  /** Changes begun and not finished: while there are any, the store is asked. */
  let changing = 0;
  const count = () => (persistence.countOffline as () => Promise<{ subsCount: number }>).call(persistence).then((r) => void (stored = r.subsCount));
  const recount = () => {
    changing++;
    count()
      .catch(() => {})
      .finally(() => void changing--);
  };

  // Counted as changing from the call until the new count is known. aedes 1.x calls
  // these in their promise form; in the callback form the result is undefined, and the
  // store has changed its topic trie by the time the call returns either way.
  for (const name of ["addSubscriptions", "removeSubscriptions", "cleanSubscriptions"] as const) {
    const original = (persistence[name] as (...args: unknown[]) => Promise<unknown> | undefined).bind(persistence);
    persistence[name] = (...args: unknown[]) => {
      changing++;
      const result = original(...args);
      // A failed change is aedes' to report; the count is taken again either way.
      Promise.resolve(result)
        .catch(() => {})
        .then(count)
        .catch(() => {})
        .finally(() => void changing--);
      return result;
    };
  }
  const holds = () => stored > 0 || changing > 0;
  const byTopic = (persistence.subscriptionsByTopic as (topic: string, cb?: Callback) => unknown).bind(persistence);
  persistence.subscriptionsByTopic = (topic: string, cb?: Callback) => {
    if (holds()) return byTopic(topic, cb);
    if (cb) return void process.nextTick(cb, null, NONE);
    return Promise.resolve(NONE);
  };
  return { holds, recount };
}

export function memoryPersistence(): ShortcutPersistence {
  const persistence = memory() as Persistence;
  // A new in-memory store holds nothing.
  const { holds: holdsSubscriptions } = storedSubscriptionsShortcut(persistence, 0);
  return Object.assign(persistence, { holdsSubscriptions });
}
