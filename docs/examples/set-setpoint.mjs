// Runnable: set a thermostat's setpoint from a backend service.
//   SB_SERVICE=xmpp://127.0.0.1:5222 SB_DOMAIN=localhost SB_USER=backend SB_PASSWORD=… \
//   node docs/examples/set-setpoint.mjs thermo-1 21.5
// (With the generated self-signed certificate, also NODE_TLS_REJECT_UNAUTHORIZED=0.)
import { connectService, commandDevice, CommandError } from "switchboard/client";

const [device = "thermo-1", value = "21.5"] = process.argv.slice(2);
const xmpp = await connectService({
  service: process.env.SB_SERVICE ?? "xmpp://127.0.0.1:5222",
  domain: process.env.SB_DOMAIN ?? "localhost",
  username: process.env.SB_USER ?? "backend",
  password: process.env.SB_PASSWORD ?? "",
});
try {
  const result = await commandDevice(xmpp, { device, command: "set_setpoint", params: { value: Number(value) } });
  console.log(JSON.stringify({ ok: true, result }));
} catch (err) {
  if (!(err instanceof CommandError)) throw err;
  // e.g. recipient-unavailable when the device is offline, bad-request for 99 °C
  console.log(JSON.stringify({ ok: false, condition: err.condition, text: err.text }));
  process.exitCode = 2;
} finally {
  await xmpp.stop();
}
