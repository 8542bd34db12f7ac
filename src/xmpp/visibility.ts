// Who sees whom (docs/xmpp.md). The roster is not user-managed: operators and services
// are subscribed to every device (subscription `to`), so each device has them as
// `from`; devices see no other device; people and services see each other only
// through directed presence.
import type { Account } from "../registry/registry.js";

export type Subscription = "none" | "to" | "from" | "both";

export function subscriptionOf(viewer: Account, contact: Account): Subscription {
  if (viewer.role === "device") return contact.role === "device" ? "none" : "from";
  return contact.role === "device" ? "to" : "none";
}

/** RFC 6121 §4.2.2: the owner's presence goes to contacts with `from` or `both`. */
export const receivesPresenceOf = (viewer: Account, contact: Account): boolean => {
  const s = subscriptionOf(viewer, contact);
  return s === "to" || s === "both";
};

/**
 * Whether `viewer` may learn anything of `contact` (its presence, telemetry node,
 * commands, even that it exists): the account itself, or one that sees its presence.
 */
export const knowsOf = (viewer: Account | undefined, contact: Account): boolean =>
  viewer !== undefined && (viewer.name === contact.name || receivesPresenceOf(viewer, contact));
