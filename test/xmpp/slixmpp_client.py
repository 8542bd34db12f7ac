#!/usr/bin/python3
"""A real slixmpp client driven by test/xmpp/slixmpp.test.ts.

Usage: slixmpp_client.py HOST PORT JID PASSWORD CAFILE

Logs in to HOST:PORT as JID with SASL SCRAM-SHA-256 only, after STARTTLS (required),
checking the server certificate against CAFILE (the broker's self-signed certificate)
for the name 'localhost'. Then it reads commands from stdin, one JSON object a line:

  {"id": "1", "cmd": "send", "to": "op2@localhost", "body": "hi", "type": "chat"}
  {"id": "2", "cmd": "roster"}
  {"id": "3", "cmd": "ping", "to": "localhost"}
  {"id": "4", "cmd": "quit"}

and writes what happens to stdout, one JSON object a line: events
({"event": "auth" | "tls" | "session_start" | "message" | "pinged" | ...}) and
replies to commands ({"id": ..., "ok": true|false, ...}). Logs go to stderr.
It exits 0 after a clean disconnect ("quit" or stdin closed), non-zero otherwise.
"""
import asyncio
import hashlib
import json
import logging
import os
import ssl
import sys
import threading

try:
    import slixmpp
    from slixmpp.exceptions import IqError, IqTimeout
except ImportError as e:  # the test checks this first; this is the fallback message
    print(json.dumps({"event": "fatal", "error": f"cannot import slixmpp: {e}"}), flush=True)
    sys.exit(3)

STEP_TIMEOUT = 10


def emit(**obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def ssl_info(xmpp):
    transport = getattr(xmpp, "transport", None)
    obj = transport.get_extra_info("ssl_object") if transport is not None else None
    if obj is None:
        return {"encrypted": False}
    return {"encrypted": True, "tls_version": obj.version(), "cipher": obj.cipher()[0]}


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, cafile):
        # sasl_mech limits feature_mechanisms to this one mechanism (use_mech).
        super().__init__(jid, password, sasl_mech="SCRAM-SHA-256")
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199", {"keepalive": False})
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
        self.peer_cert = None

        self.add_filter("out", self.watch_out)
        self.add_filter("in", self.watch_in)
        self.add_event_handler("ssl_cert", self.on_ssl_cert)
        self.add_event_handler("ssl_invalid_chain", self.on_invalid_chain)
        self.add_event_handler("failed_auth", self.on_failed_auth)
        self.add_event_handler("failed_all_auth", lambda _e: self.fatal("no acceptable SASL mechanism / all failed"))
        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("stream_error", lambda e: emit(event="stream_error", condition=e["condition"], text=e["text"]))
        self.add_event_handler("disconnected", self.on_disconnected)
        self.add_event_handler("connection_failed", lambda e: self.fatal(f"connection failed: {e}"))

    # --- observation ---

    def start_stream_handler(self, xml):
        # Every response stream header: after connecting, after STARTTLS, after SASL.
        super().start_stream_handler(xml)
        emit(event="stream", id=xml.get("id"), version=xml.get("version"), **{"from": xml.get("from")})

    def watch_out(self, stanza):
        tag = stanza.xml.tag
        if tag == "{urn:ietf:params:xml:ns:xmpp-sasl}auth":
            # The <auth/> actually written: its mechanism, the SCRAM gs2 header
            # (client-first message), and whether the stream was under TLS then.
            first = ""
            try:
                import base64
                first = base64.b64decode(stanza.xml.text or "").decode("utf-8", "replace")
            except Exception:
                pass
            gs2 = ",".join(first.split(",")[:2]) + "," if first else ""
            emit(event="auth", mechanism=stanza.xml.get("mechanism"), gs2_header=gs2,
                 starttls="starttls" in self.features, **ssl_info(self))
        return stanza

    def watch_in(self, stanza):
        tag = stanza.xml.tag
        if tag == "{urn:ietf:params:xml:ns:xmpp-sasl}success":
            emit(event="sasl_success", **ssl_info(self))
        elif tag == "{jabber:client}iq" and stanza.xml.find("{urn:xmpp:ping}ping") is not None \
                and stanza.xml.get("type") == "get":
            emit(event="pinged", id=stanza.xml.get("id"), **{"from": stanza.xml.get("from"), "to": stanza.xml.get("to")})
        elif tag == "{jabber:client}iq" and stanza.xml.get("type") == "set" \
                and stanza.xml.find("{jabber:iq:roster}query") is not None:
            items = [{"jid": i.get("jid"), "subscription": i.get("subscription"), "name": i.get("name"),
                      "groups": [g.text for g in i.findall("{jabber:iq:roster}group")]}
                     for i in stanza.xml.find("{jabber:iq:roster}query").findall("{jabber:iq:roster}item")]
            emit(event="roster_push", id=stanza.xml.get("id"), items=items, **{"from": stanza.xml.get("from")})
        return stanza

    def on_ssl_cert(self, pem):
        # Fired once the TLS handshake succeeded, i.e. the chain and the name verified
        # (a failure fires ssl_invalid_chain instead); the transport is swapped after.
        der = ssl.PEM_cert_to_DER_cert(pem)
        emit(event="tls", peer_cert_sha256=hashlib.sha256(der).hexdigest(), verified=True)

    def on_invalid_chain(self, err):
        self.fatal(f"TLS certificate rejected: {err}")

    def on_failed_auth(self, stanza):
        emit(event="failed_auth", condition=stanza["condition"], text=stanza["text"])

    def fatal(self, error):
        emit(event="fatal", error=str(error))
        self.exit_code = 2
        self.disconnect()

    async def on_session_start(self, _event):
        mech = self["feature_mechanisms"].mech
        emit(event="session_start", jid=str(self.boundjid), mechanism=mech.name if mech else None,
             starttls="starttls" in self.features, authenticated=self.authenticated, **ssl_info(self))
        self.send_presence()
        self.start_commands()

    def on_message(self, msg):
        emit(event="message", type=msg["type"], body=msg["body"], **{"from": str(msg["from"]), "to": str(msg["to"])})

    def on_disconnected(self, reason):
        emit(event="disconnected", reason=str(reason) if reason else None, clean=self.quitting)
        if self.quitting and self.exit_code != 2:
            self.exit_code = 0

    # --- commands ---

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

    async def run_command(self, cmd):
        cid = cmd.get("id")
        try:
            name = cmd.get("cmd")
            if name == "send":
                self.send_message(mto=cmd["to"], mbody=cmd["body"], mtype=cmd.get("type", "chat"))
                emit(id=cid, ok=True)
            elif name == "roster":
                iq = await self.get_roster(timeout=STEP_TIMEOUT)
                items = {}
                for jid, item in iq["roster"]["items"].items():
                    items[str(jid)] = {"name": item["name"], "subscription": item["subscription"], "groups": list(item["groups"])}
                # And what slixmpp's own roster object made of it. slixmpp files its own
                # reflected presence (RFC 6121 §4.2.2) under its own JID: not a contact.
                seen = {}
                for jid in self.client_roster:
                    if str(jid) == self.boundjid.bare:
                        continue
                    r = self.client_roster[jid]
                    seen[str(jid)] = {"subscription": r["subscription"], "groups": list(r["groups"])}
                emit(id=cid, ok=True, type=iq["type"], items=items, client_roster=seen)
            elif name == "ping":
                # send_ping, not ping(): ping() counts an error from the server as success.
                iq = await self["xep_0199"].send_ping(cmd["to"], timeout=STEP_TIMEOUT)
                emit(id=cid, ok=True, type=iq["type"], **{"from": str(iq["from"])})
            else:
                emit(id=cid, ok=False, error=f"unknown command {name!r}")
        except IqError as e:
            emit(id=cid, ok=False, error="iq error", condition=e.iq["error"]["condition"], type=e.iq["type"])
        except IqTimeout:
            emit(id=cid, ok=False, error="iq timeout")
        except Exception as e:  # report, never hang the test
            emit(id=cid, ok=False, error=f"{type(e).__name__}: {e}")


def main():
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        return 64
    host, port, jid, password, cafile = sys.argv[1:]
    logging.basicConfig(level=logging.DEBUG if os.environ.get("SLIXMPP_DEBUG") else logging.WARNING,
                        stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    xmpp = Client(jid, password, cafile)
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


if __name__ == "__main__":
    sys.exit(main())
