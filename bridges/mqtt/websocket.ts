// MQTT over WebSocket (MQTT 3.1.1 §6) at `/mqtt` on the HTTP port, for browser tools:
// subprotocol `mqtt`, binary frames, the same guard and hooks as TCP.
import { WebSocketServer, createWebSocketStream } from "ws";
import type { UpgradeHandler } from "../../src/http/server.js";
import type { MqttLink } from "./broker.js";

export function mqttWebSocket(broker: Pick<MqttLink, "accept">, maxPacketBytes: number): { upgrade: UpgradeHandler; close(): void } {
  const wss = new WebSocketServer({
    noServer: true,
    // A frame cannot carry more than one packet's worth; the guard checks packets themselves.
    maxPayload: maxPacketBytes + 8,
    handleProtocols: (protocols) => (protocols.has("mqtt") ? "mqtt" : protocols.has("mqttv3.1") ? "mqttv3.1" : false),
  });
  return {
    upgrade(req, socket, head) {
      wss.handleUpgrade(req, socket, head, (ws) => {
        const stream = Object.assign(createWebSocketStream(ws), { remoteAddress: req.socket.remoteAddress });
        stream.on("error", () => ws.terminate());
        broker.accept(stream, req);
      });
    },
    close: () => wss.close(),
  };
}
