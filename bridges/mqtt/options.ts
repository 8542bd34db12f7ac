// The embedded MQTT broker's settings, read from the config once (docs/configuration.md).
import type { Config } from "../../src/config.js";
import { limitShapes, type Shape } from "../../src/limits.js";

export interface MqttOptions {
  host: string;
  port: number;
  tlsPort: number | null;
  maxPacketBytes: number;
  /** Bytes queued towards one client above which publishers are held back. */
  outboundHighWaterBytes: number;
  /** A client congested this long is disconnected. */
  slowConsumerTimeoutMs: number;
  /** PEM certificate and key (the XMPP ones). */
  tls: { cert: string; key: string };
  /** A TLS handshake (or a PROXY header) not finished in this time closes the socket. */
  tlsHandshakeMs: number;
  /** Connections open with a load balancer's PROXY protocol header (src/proxy-protocol.ts). */
  proxyProtocol: boolean;
  shape: Shape;
  /** Read rate for service accounts once authenticated. */
  serviceShape: Shape;
  /**
   * A node of a cluster (docs/mqtt.md, "Several nodes"): aedes shares subscriptions,
   * sessions, retained messages and wills with the other nodes through this Redis.
   * Null on a single node: everything in this process's memory.
   */
  cluster: { nodeId: string; redisUrl: string; heartbeatMs: number; nodeTimeoutMs: number } | null;
}

export function mqttOptions(config: Config, tls: MqttOptions["tls"]): MqttOptions {
  const { mqtt } = config;
  return {
    host: mqtt.host,
    port: mqtt.port,
    tlsPort: mqtt.tlsPort,
    maxPacketBytes: mqtt.maxPacketBytes,
    outboundHighWaterBytes: mqtt.outboundHighWaterBytes,
    slowConsumerTimeoutMs: mqtt.slowConsumerTimeoutMs,
    tls,
    tlsHandshakeMs: config.limits.tlsHandshakeMs,
    proxyProtocol: mqtt.proxyProtocol,
    ...limitShapes(config),
    cluster: config.cluster ? { nodeId: config.cluster.nodeId, redisUrl: config.cluster.redis.url, heartbeatMs: config.cluster.heartbeatMs, nodeTimeoutMs: config.cluster.nodeTimeoutMs } : null,
  };
}
