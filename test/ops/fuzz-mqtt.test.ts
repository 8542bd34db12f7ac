// Seeded fuzzing of the MQTT port (test/helpers/fuzz.ts): connections of mutated
// MQTT 3.1.1 packets, logged in or not, many at once; then the broker must still
// serve a good device, service and operator.
import t from "tap";
import net from "node:net";
import { DEVICES, fuzzPart, pw, ROUNDS, type Rng } from "../helpers/fuzz.js";
import { connect, mqttPacket } from "../helpers/fuzz-input.js";

async function mqttRound(r: Rng, port: number): Promise<void> {
  const me = r.pick(DEVICES);
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => {});
  socket.on("data", () => {});
  await new Promise<void>((resolve) => socket.once("connect", resolve).once("error", () => resolve()));
  const parts: Buffer[] = [];
  if (r.chance(0.75)) parts.push(r.chance(0.85) ? connect(me, me, pw(me)) : connect("svc1", "svc1", pw("svc1")));
  for (let i = 1 + r.int(8); i > 0; i--) parts.push(r.chance(0.05) ? Buffer.from(Array.from({ length: r.int(64) }, () => r.int(256))) : mqttPacket(r, me));
  for (const p of parts) {
    if (socket.destroyed) break;
    socket.write(p);
    if (r.chance(0.3)) await new Promise((res) => setTimeout(res, r.int(15)));
  }
  await new Promise((res) => setTimeout(res, r.int(40)));
  if (r.chance(0.5)) socket.end();
  else socket.destroy();
}

fuzzPart(t, `MQTT: ${ROUNDS} connections of mutated packets`, mqttRound, (b) => b.ports.mqtt);
