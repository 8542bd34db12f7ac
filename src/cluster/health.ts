// A node's view of the cluster in /readyz and /metrics (docs/cluster.md, docs/operations.md).
import type { Check } from "../http/readiness.js";
import type { Metrics } from "../metrics.js";
import type { ClusterBus } from "./bus.js";
import type { SessionSync } from "./directory.js";
import type { NodeWatch } from "./nodes.js";
import type { PeerLink } from "./peer-link.js";

/** Not ready while Redis is away: the balancer drains the node, which keeps its own sessions going meanwhile. */
export function clusterReadiness(bus: ClusterBus): () => Check {
  return () => ({ ok: bus.up, reason: bus.up ? undefined : "Redis cannot be reached (cluster.redis.url)", details: { node: bus.nodeId } });
}

export function clusterMetrics(metrics: Metrics, deps: { bus: ClusterBus; watch: NodeWatch; sync: SessionSync; peer: PeerLink }): void {
  const { bus, watch, sync, peer } = deps;
  metrics.gauge("switchboard_cluster_redis_up", "1 while this node reaches Redis, else 0", () => (bus.up ? 1 : 0));
  metrics.gauge("switchboard_cluster_nodes", "Live nodes as this node last read them, itself included", () => watch.live().size);
  metrics.counter("switchboard_cluster_messages_total", "Messages between nodes, by direction (lost: not sent, Redis away; refused: unreadable or failed)", () => [[["out"], bus.counters.published], [["in"], bus.counters.received], [["lost"], bus.counters.lost], [["refused"], bus.counters.refused]] as const, ["direction"]);
  metrics.counter("switchboard_cluster_published_bytes_total", "Bytes this node published to the other nodes", () => bus.counters.publishedBytes);
  metrics.counter("switchboard_cluster_stanzas_total", "Stanzas for sessions on other nodes, by direction", () => [[["out"], sync.counters.stanzasOut], [["in"], sync.counters.stanzasIn], [["undeliverable"], sync.counters.undeliverable]] as const, ["direction"]);
  metrics.counter("switchboard_cluster_nodes_lost_total", "Nodes this node saw stop or restart without leaving", () => sync.counters.nodesLost);
  metrics.counter("switchboard_cluster_commands_total", "Commands for devices on other nodes, by direction", () => [[["out"], peer.counters.commandsOut], [["in"], peer.counters.commandsIn]] as const, ["direction"]);
  metrics.counter("switchboard_cluster_samples_total", "Accepted samples shared with the other nodes' subscribers, by direction", () => [[["out"], peer.counters.samplesOut], [["in"], peer.counters.samplesIn]] as const, ["direction"]);
}
