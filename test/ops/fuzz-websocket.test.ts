// Seeded fuzzing of the HTTP port's WebSocket endpoints (test/helpers/fuzz.ts): RFC
// 7395 framing at /xmpp-websocket and MQTT 3.1.1 §6 at /mqtt, with mutated stanzas and
// packets, wrong subprotocols and a path that does not exist; then the broker must
// still serve a good device, service and operator.
import t from "tap";
import WebSocket from "ws";
import { ACCOUNTS, DEVICES, fuzzPart, pw, ROUNDS, type Rng } from "../helpers/fuzz.js";
import { connect, mqttPacket, mutate, stanza } from "../helpers/fuzz-input.js";

const OPEN_FRAME = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";

async function wsRound(r: Rng, port: number): Promise<void> {
  const path = r.pick(["/xmpp-websocket", "/xmpp-websocket", "/mqtt", "/mqtt", "/nowhere"]);
  const right = path === "/mqtt" ? ["mqtt"] : ["xmpp"];
  const protocols = r.chance(0.7) ? right : r.pick([["xmpp"], ["mqtt"], ["mqttv3.1"], [], ["xmpp", "mqtt"]]);
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, protocols, { maxPayload: 1 << 20 });
  ws.on("error", () => {});
  const opened = await new Promise<boolean>((resolve) => {
    ws.once("open", () => resolve(true));
    ws.once("close", () => resolve(false));
  });
  if (!opened) return;
  const send = (data: string | Buffer) => ws.readyState === WebSocket.OPEN && ws.send(data, { binary: typeof data !== "string" });
  const me = r.pick(DEVICES);
  if (path === "/mqtt") {
    if (r.chance(0.75)) send(connect(me, me, pw(me)));
    for (let i = 1 + r.int(8); i > 0; i--) send(r.chance(0.1) ? mutate(r, stanza(r)) : mqttPacket(r, me));
  } else {
    const who = r.pick(ACCOUNTS);
    // Pipelined login (the server works through what it was sent in order): open, PLAIN, open, bind.
    if (r.chance(0.7)) {
      send(OPEN_FRAME);
      send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${who.name}\0${r.chance(0.9) ? who.password : "wrong"}`).toString("base64")}</auth>`);
      send(OPEN_FRAME);
      send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
      // Fuzz the bound session, not the login: a bad frame sent meanwhile ends the stream at once.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, 2_000);
        function done() {
          clearTimeout(timer);
          ws.off("message", onMessage);
          resolve();
        }
        function onMessage(data: WebSocket.RawData) {
          if (/<jid>|<failure|<close/.test(String(data))) done();
        }
        ws.on("message", onMessage);
        ws.once("close", done);
      });
    } else send(mutate(r, OPEN_FRAME));
    for (let i = 1 + r.int(8); i > 0; i--) send(r.chance(0.1) ? Buffer.from(Array.from({ length: r.int(64) }, () => r.int(256))) : mutate(r, stanza(r)));
    if (r.chance(0.3)) send(r.pick(["<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>", "<stream:stream>", "", "<a/><b/>"]));
  }
  await new Promise((res) => setTimeout(res, r.int(40)));
  if (r.chance(0.5)) ws.close(r.pick([1000, 1001, 1008, 4000]));
  else ws.terminate();
}

// Longer than the ws client's 30 s close timeout: a client that sent its close frame
// while the server was not reading is only let go when that timeout destroys the
// socket. (Once in ~45 runs of 4,000 rounds a session outlived a 10 s wait here.)
fuzzPart(t, `WebSocket: ${ROUNDS} connections to /xmpp-websocket and /mqtt`, wsRound, (b) => b.ports.http, 40_000);
