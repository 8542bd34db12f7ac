// A device's telemetry at QoS 0 or 1 (nearly all of the broker's traffic), taken off
// aedes' path by the guard: authorised, ingested and acknowledged here, with the same
// steps aedes would take (authorizePublish, then PUBACK, then publish to subscribers)
// and none of its per-packet streams, closures and timers (docs/mqtt.md, "The
// telemetry path"). Anything else, or any publish while aedes still has packets of
// this connection in hand, takes aedes' path, so a connection's packets keep their order.
import type { Aedes } from "aedes";
import type { LinkReports } from "../../src/links/device-link.js";
import { clientOf, idleBeside, publishAs, refreshKeepalive } from "./aedes-adapter.js";
import type { ClientStates } from "./clients.js";
import type { GuardedConnection, PublishTap } from "./guard.js";
import type { Refusals } from "./refusals.js";

/** PUBACK (MQTT 3.1.1 §3.4): fixed header 0x40, remaining length 2, packet identifier. */
function pubAck(messageId: number): Buffer {
  const bytes = Buffer.allocUnsafe(4);
  bytes[0] = 0x40;
  bytes[1] = 0x02;
  bytes.writeUInt16BE(messageId, 2);
  return bytes;
}

export function telemetryPath(deps: {
  aedes: Aedes;
  states: ClientStates;
  reports: Pick<LinkReports, "telemetry">;
  refusals: Refusals;
  counters: { tappedPublishes: number };
  /** Whether a publish on this topic could reach any subscriber. */
  reaches: (topic: string) => boolean;
}): PublishTap {
  const { aedes, states, reports, refusals, counters, reaches } = deps;

  return (conn: GuardedConnection, inbound) => {
    const client = clientOf(conn);
    if (!client || !idleBeside(client)) return false;
    const state = states.get(client);
    const topic = state?.telemetry;
    if (!state || !topic || inbound.bytes.compare(topic.bytes, 0, topic.bytes.length, inbound.topicStart, inbound.topicEnd) !== 0) return false;
    refreshKeepalive(client);
    counters.tappedPublishes++;
    const { account, order } = state;
    const { qos, messageId, payload } = inbound;
    const ticket = order.ticket();
    reports.telemetry(account.name, payload, (result, err) => {
      const refusal = refusals.of(result, account.name, err);
      order.answer(ticket, () => {
        if (refusal) refusals.refused(client, account, topic.name, refusal);
        const forward = () => {
          if (refusal || !reaches(topic.name)) return conn.settle();
          publishAs(aedes, { cmd: "publish", topic: topic.name, payload, qos, retain: false, dup: false, messageId }, client, () => conn.settle());
        };
        // §4.3.2: the PUBACK, sent once the sample is durable (or refused).
        if (qos === 1) conn.sendRaw(pubAck(messageId), forward);
        else forward();
      });
    });
    return true;
  };
}
