// Topic ACL (docs/mqtt.md, "ACL"). A device publishes only to its own `telemetry` and
// `replies` and subscribes only to its own `commands/#` and `errors`. Services read
// every device's telemetry (and replies, errors) and publish commands. Operators
// are people: they use XMPP, and over MQTT may only read telemetry.
import type { Account } from "../../src/registry/registry.js";
import { PREFIX, parseTopic } from "./topics.js";

export const MAX_TOPIC_LEVELS = 8;

/** Why a publish is refused, or null when it is allowed. */
export function publishDenied(account: Account, topic: string): string | null {
  if (/[+#\u0001\u0002]/.test(topic)) return "wildcards are not allowed in a topic name";
  if (topic.startsWith("$")) return "topics starting with $ are reserved";
  const levels = topic.split("/");
  if (levels.length > MAX_TOPIC_LEVELS) return `more than ${MAX_TOPIC_LEVELS} topic levels`;
  if (levels[0] !== PREFIX || !levels[1]) return `not a ${PREFIX}/ topic`;
  const parsed = parseTopic(topic);
  if (account.role === "device") {
    if (levels[1] !== account.name) return `a device publishes only to its own ${PREFIX}/${account.name}/… topics`;
    if (parsed?.leaf === "telemetry" || parsed?.leaf === "replies") return null;
    return `devices may publish only to ${PREFIX}/${account.name}/telemetry and ${PREFIX}/${account.name}/replies`;
  }
  if (account.role === "service" && parsed?.leaf === "commands") return null;
  return account.role === "service" ? `services publish only to ${PREFIX}/<id>/commands/<command>` : "operators may not publish over MQTT";
}

/** True when the subscription filter is allowed for this account. */
export function subscribeAllowed(account: Account, filter: string): boolean {
  const levels = filter.split("/");
  if (levels.length > MAX_TOPIC_LEVELS || levels[0] !== PREFIX) return false;
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
