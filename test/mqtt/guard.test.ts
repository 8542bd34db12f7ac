// The MQTT guard (bridges/mqtt/guard.ts) on an in-memory socket, no broker: it checks
// a packet's strings (MQTT 3.1.1 §1.5.3) as soon as the packet is whole, even while
// it waits behind the telemetry tap's slots or arrives one byte at a time; a string
// that runs past the end of its packet, or the reserved packet type 0 (§2.2.1), is
// malformed. Refused packets close the connection.
import t from "tap";
import { Duplex } from "node:stream";
import { GuardedConnection, type GuardVerdict } from "../../bridges/mqtt/guard.js";
import { bytes, connectPacket, publishPacket, subscribePacket } from "../helpers/mqtt-bytes.js";

/** A guarded connection over an in-memory socket, past its CONNECT, with a tap that takes every publish and settles none. */
async function rig() {
  const socket = new Duplex({ read() {}, write: (_c, _e, done) => done() });
  const verdicts: GuardVerdict[] = [];
  const tapped = { count: 0 };
  const conn = new GuardedConnection(socket, 64 * 1024, (verdict) => verdicts.push(verdict), undefined, undefined, () => (tapped.count++, true));
  conn.on("error", () => {});
  // [MQTT-3.1.0-1]: the first packet is a CONNECT.
  socket.push(connectPacket({ clientId: "rig" }));
  await new Promise((resolve) => setImmediate(resolve));
  while (conn.read() !== null); // aedes reads it
  return { socket, verdicts, tapped };
}
const turn = () => new Promise((resolve) => setImmediate(resolve));

t.test("the guard checks a packet as soon as it is whole, even while it waits behind the tap's slots", async (t) => {
  const { socket, verdicts, tapped } = await rig();
  const good = Array.from({ length: 70 }, (_, i) => publishPacket("t/x", "1", i + 1));
  socket.push(Buffer.concat([...good, publishPacket(bytes("t/", [0xc0, 0xaf]), "2", 71)]));
  await turn();
  t.equal(tapped.count, 64, "64 held by the tap, the rest wait for a slot");
  t.same(verdicts, ["bad-utf8"], "the bad one is refused at once");
  t.ok(socket.destroyed, "the connection is closed");
});

t.test("the guard checks a packet that comes one byte at a time once it is whole", async (t) => {
  const { socket, verdicts } = await rig();
  const bad = subscribePacket(bytes("t/", [0x00]));
  for (const [i, byte] of bad.entries()) {
    socket.push(Buffer.from([byte]));
    await turn();
    if (i < bad.length - 1 && verdicts.length > 0) return t.fail(`refused after ${i + 1} of ${bad.length} bytes`);
  }
  t.same(verdicts, ["bad-utf8"], "refused with its last byte");
  t.ok(socket.destroyed, "the connection is closed");
});

t.test("a string that runs past the end of its packet is malformed", async (t) => {
  // A filter announcing 200 bytes in a SUBSCRIBE of 9, and a client id announcing 100.
  for (const [what, bad] of [
    ["SUBSCRIBE", Buffer.from([0x82, 0x07, 0x00, 0x01, 0x00, 0xc8, 0x61, 0x62, 0x00])],
    ["CONNECT", Buffer.from([0x10, 0x0e, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x1e, 0x00, 0x64, 0x61, 0x62])],
  ] as const) {
    const { socket, verdicts } = await rig();
    socket.push(bad);
    await turn();
    t.same(verdicts, ["malformed"], `${what}: refused as malformed`);
    t.ok(socket.destroyed, `${what}: the connection is closed`);
  }
});

t.test("reserved packet type 0 after the CONNECT closes the connection on its first byte (MQTT 3.1.1 §2.2.1)", async (t) => {
  const { socket, verdicts } = await rig();
  socket.push(Buffer.from([0x00]));
  await turn();
  t.same(verdicts, ["malformed"]);
  t.ok(socket.destroyed, "closed without waiting for a length");
});
