// What the broker keeps per authenticated MQTT client, beside aedes' own client.
import type { Client } from "aedes";
import type { Account } from "../../src/registry/registry.js";
import { InOrder } from "./in-order.js";
import { telemetryTopic } from "./topics.js";

export interface ClientState {
  account: Account;
  /** The connection's publishes, answered in the order they came. */
  readonly order: InOrder;
  /** A device's own telemetry topic, made once per connection rather than per publish. */
  readonly telemetry: { name: string; bytes: Buffer } | null;
}

export type ClientStates = WeakMap<Client, ClientState>;

export function clientState(account: Account): ClientState {
  const name = account.role === "device" ? telemetryTopic(account.name) : null;
  return { account, order: new InOrder(), telemetry: name === null ? null : { name, bytes: Buffer.from(name) } };
}
