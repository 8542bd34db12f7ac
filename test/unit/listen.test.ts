// listen() alone: a bind that fails rejects with a ListenError that names the config
// key and the port (or the host), as the CLI prints it.
import t from "tap";
import net from "node:net";
import { listen, ListenError } from "../../src/listen.js";
import { occupy } from "../helpers/ports.js";

const KEYS = { port: "xmpp.port", host: "xmpp.host" };

/** What listen() makes of a bind that fails with `code` (the server never binds). */
async function failWith(code: string, port: number, host = "0.0.0.0"): Promise<unknown> {
  const server = net.createServer();
  server.listen = function (this: net.Server) {
    process.nextTick(() => this.emit("error", Object.assign(new Error(`listen ${code}: ${host}:${port}`), { code, syscall: "listen" })));
    return this;
  } as typeof server.listen;
  return listen(server, port, host, KEYS).then(
    () => t.fail("listen resolved"),
    (err: unknown) => err,
  );
}

t.test("resolves with the port it got", async (t) => {
  const server = net.createServer();
  const port = await listen(server, 0, "127.0.0.1", KEYS);
  t.ok(port > 0);
  t.equal(server.listenerCount("error"), 0, "leaves no error listener behind");
  await new Promise<void>((r) => server.close(() => r()));
});

t.test("a port in use names the port's key", async (t) => {
  const taken = await occupy();
  t.teardown(() => taken.close());
  const server = net.createServer();
  const err = await listen(server, taken.port, "127.0.0.1", { port: "mqtt.tlsPort", host: "mqtt.host" }).catch((e: unknown) => e);
  t.ok(err instanceof ListenError);
  t.match(err, { code: "SB_ERR_LISTEN", key: "mqtt.tlsPort", port: taken.port, host: "127.0.0.1", reason: "EADDRINUSE", message: `mqtt.tlsPort ${taken.port} is in use` });
  t.equal((err as Error).cause && ((err as Error).cause as NodeJS.ErrnoException).code, "EADDRINUSE", "the system's error is its cause");
  t.notOk(server.listening);
});

t.test("permission denied names the port, with a hint below 1024", async (t) => {
  t.match(await failWith("EACCES", 80), { key: "xmpp.port", message: "xmpp.port 80: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)" });
  t.match(await failWith("EACCES", 5222), { message: "xmpp.port 5222: permission denied" });
});

t.test("an address not available names the host's key", async (t) => {
  // A real bind: 192.0.2.1 (TEST-NET-1, RFC 5737) is no address of this machine.
  const err = await listen(net.createServer(), 0, "192.0.2.1", KEYS).catch((e: unknown) => e);
  t.match(err, { key: "xmpp.host", reason: "EADDRNOTAVAIL", message: "xmpp.host 192.0.2.1: address not available (not an address of this machine)" });
  t.match(await failWith("ENOTFOUND", 5222, "broker.invalid"), { key: "xmpp.host", message: "xmpp.host broker.invalid: host name not found" });
});

t.test("any other failure still names the port and says what the system said", async (t) => {
  t.match(await failWith("EMFILE", 5222), { key: "xmpp.port", reason: "EMFILE", message: /^xmpp\.port 5222: cannot listen on 0\.0\.0\.0 \(listen EMFILE/ });
});
