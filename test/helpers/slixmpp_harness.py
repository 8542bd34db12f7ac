"""What the slixmpp scripts of the tests share (test/xmpp/slixmpp_client.py and
test/commands/slixmpp_commands.py).

A client that logs in with SASL SCRAM-SHA-256 only, after STARTTLS (required),
checking the server certificate against CAFILE (the broker's self-signed certificate)
for the name 'localhost'; that writes what happens to stdout, one JSON object a line
(events {"event": ...} and replies {"id": ..., "ok": true|false, ...}); and that, once
its session has started, reads commands from stdin, one JSON object a line, until
{"cmd": "quit"} or the end of stdin. Logs go to stderr (SLIXMPP_DEBUG=1: every byte).
main() exits 0 after a clean disconnect, non-zero otherwise.
"""
import asyncio
import json
import logging
import os
import ssl
import sys
import threading

try:
    import slixmpp
    from slixmpp.exceptions import IqError, IqTimeout
except ImportError as e:  # the tests check this first; this is the fallback message
    print(json.dumps({"event": "fatal", "error": f"cannot import slixmpp: {e}"}), flush=True)
    sys.exit(3)

STEP_TIMEOUT = 10


def emit(**obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


class ScriptedClient(slixmpp.ClientXMPP):
    """Subclasses register their plugins and handlers, and answer commands in handle()."""

    def __init__(self, jid, password, cafile, plugins):
        # sasl_mech limits feature_mechanisms to this one mechanism (use_mech).
        super().__init__(jid, password, sasl_mech="SCRAM-SHA-256")
        for name, config in plugins:
            self.register_plugin(name, config)
        # Never PLAIN, and never any SCRAM without TLS.
        self["feature_mechanisms"].unencrypted_plain = False
        self["feature_mechanisms"].unencrypted_scram = False
        # The broker's self-signed certificate is the only trust anchor, and the name
        # checked is the XMPP domain (slixmpp sends SNI = the JID's domain).
        self.ssl_context = ssl.create_default_context(cafile=cafile)
        self.ssl_context.check_hostname = True
        self.ssl_context.verify_mode = ssl.CERT_REQUIRED
        self.ssl_context.load_verify_locations(cafile=cafile)
        self.ca_certs = cafile
        self.exit_code = 1
        self.quitting = False
        self.tasks = set()

        self.add_event_handler("ssl_invalid_chain", lambda err: self.fatal(f"TLS certificate rejected: {err}"))
        self.add_event_handler("failed_auth", lambda s: emit(event="failed_auth", condition=s["condition"], text=s["text"]))
        self.add_event_handler("failed_all_auth", lambda _e: self.fatal("no acceptable SASL mechanism, or all failed"))
        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("disconnected", self.on_disconnected)
        self.add_event_handler("connection_failed", lambda e: self.fatal(f"connection failed: {e}"))

    def fatal(self, error):
        emit(event="fatal", error=str(error))
        self.exit_code = 2
        self.disconnect()

    def session_details(self):
        """More fields for the session_start event."""
        return {}

    async def on_session_start(self, _event):
        emit(event="session_start", jid=str(self.boundjid), **self.session_details())
        self.send_presence()
        self.start_commands()

    def on_disconnected(self, reason):
        emit(event="disconnected", reason=str(reason) if reason else None, clean=self.quitting)
        if self.quitting and self.exit_code != 2:
            self.exit_code = 0

    # --- commands from the test ---

    def start_commands(self):
        # stdin is read by a thread and handed to the event loop, whatever stdin is.
        queue = asyncio.Queue()

        def reader():
            for line in sys.stdin:
                self.loop.call_soon_threadsafe(queue.put_nowait, line)
            self.loop.call_soon_threadsafe(queue.put_nowait, None)

        threading.Thread(target=reader, name="stdin", daemon=True).start()
        self.spawn(self.read_commands(queue))

    def spawn(self, coro):
        # The loop keeps only weak references to tasks: hold them until they are done.
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def read_commands(self, queue):
        while True:
            line = await queue.get()
            if line is None:
                break  # the test process went away: leave too
            line = line.strip()
            if not line:
                continue
            try:
                cmd = json.loads(line)
            except ValueError:
                emit(ok=False, error=f"not JSON: {line!r}")
                continue
            if cmd.get("cmd") == "quit":
                break
            self.spawn(self.run_command(cmd))
        self.quitting = True
        # Closes our stream and waits (bounded) for the server's closing tag.
        self.disconnect(wait=2.0)

    async def handle(self, cmd):
        """The reply's fields for one command, or None for a command it does not know."""
        return None

    def describe_iq_error(self, iq):
        """The reply's fields for a command that got an IQ error."""
        return {"condition": iq["error"]["condition"], "type": iq["type"]}

    async def run_command(self, cmd):
        cid = cmd.get("id")
        try:
            reply = await self.handle(cmd)
            if reply is None:
                emit(id=cid, ok=False, error=f"unknown command {cmd.get('cmd')!r}")
            else:
                emit(id=cid, ok=True, **reply)
        except IqError as e:
            emit(id=cid, ok=False, error="iq error", **self.describe_iq_error(e.iq))
        except IqTimeout:
            emit(id=cid, ok=False, error="iq timeout")
        except Exception as e:  # report, never hang the test
            logging.exception("command failed")
            emit(id=cid, ok=False, error=f"{type(e).__name__}: {e}")


def main(doc, make_client):
    """Usage: SCRIPT HOST PORT JID PASSWORD CAFILE; `doc` is printed on a wrong call."""
    if len(sys.argv) != 6:
        print(doc, file=sys.stderr)
        return 64
    host, port, jid, password, cafile = sys.argv[1:]
    logging.basicConfig(level=logging.DEBUG if os.environ.get("SLIXMPP_DEBUG") else logging.WARNING,
                        stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    xmpp = make_client(jid, password, cafile)
    xmpp.loop = loop
    emit(event="start", slixmpp=slixmpp.__version__, python=sys.version.split()[0])
    # force_starttls: refuse to go on if the server offers no STARTTLS.
    xmpp.connect((host, int(port)), use_ssl=False, force_starttls=True, disable_starttls=False)
    try:
        loop.run_until_complete(asyncio.wait_for(xmpp.disconnected, timeout=120))
    except asyncio.TimeoutError:
        emit(event="fatal", error="still connected after 120 s")
        xmpp.exit_code = 2
    # Let what is still running finish (briefly), then cancel the rest, so that
    # nothing is destroyed pending.
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if pending:
        loop.run_until_complete(asyncio.wait(pending, timeout=1))
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    return xmpp.exit_code
