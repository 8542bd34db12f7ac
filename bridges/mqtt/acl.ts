// Topic ACL, CONTRACT §4. A device publishes only to its own `telemetry` and
// `replies` and subscribes only to its own `commands/#` and `errors`. Services read
// every device's telemetry (and replies, errors) and publish commands. Operators
// are people: they use XMPP, and over MQTT may only read telemetry.
import type { Account } from "../../src/registry/registry.js";

export const MAX_TOPIC_LEVELS = 8;

export function deviceTopic(id: string, leaf: "telemetry" | "replies" | "errors"): string {
  return `devices/${id}/${leaf}`;
}

/** Why a publish is refused, or null when it is allowed. */
export function publishDenied(account: Account, topic: string): string | null {
  const levels = topic.split("/");
  if (/[+#\u0001\u0002]/.test(topic)) return "wildcards are not allowed in a topic name";
  if (topic.startsWith("$")) return "topics starting with $ are reserved";
  if (levels.length > MAX_TOPIC_LEVELS) return `more than ${MAX_TOPIC_LEVELS} topic levels`;
  if (levels[0] !== "devices" || !levels[1]) return "not a devices/ topic";
  const [, id, leaf, command] = levels as [string, string, string | undefined, string | undefined];
  if (account.role === "device") {
    if (id !== account.name) return `a device publishes only to its own devices/${account.name}/… topics`;
    if ((leaf === "telemetry" || leaf === "replies") && levels.length === 3) return null;
    return `devices may publish only to devices/${account.name}/telemetry and devices/${account.name}/replies`;
  }
  if (account.role === "service" && leaf === "commands" && command && levels.length === 4) return null;
  return account.role === "service" ? "services publish only to devices/<id>/commands/<command>" : "operators may not publish over MQTT";
}

/** True when the subscription filter is allowed for this account. */
export function subscribeAllowed(account: Account, filter: string): boolean {
  const levels = filter.split("/");
  if (levels.length > MAX_TOPIC_LEVELS || levels[0] !== "devices") return false;
  const [, id, leaf, rest] = levels;
  if (account.role === "device") {
    if (id !== account.name) return false;
    if (leaf === "errors") return levels.length === 3;
    // commands/#, commands/+ and commands/<name>
    return leaf === "commands" && levels.length === 4 && !!rest;
  }
  if (levels.length !== 3 || !id || id.includes("#")) return false;
  if (account.role === "service") return leaf === "telemetry" || leaf === "replies" || leaf === "errors";
  return leaf === "telemetry";
}
