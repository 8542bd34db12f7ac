#!/usr/bin/python3
"""A real slixmpp client driven by test/xmpp/slixmpp.test.ts.

Usage: slixmpp_client.py HOST PORT JID PASSWORD CAFILE

Logs in as test/helpers/slixmpp_harness.py describes (SCRAM-SHA-256 only, after
STARTTLS, CAFILE the only trust anchor), then reads commands from stdin:

  {"id": "1", "cmd": "send", "to": "op2@localhost", "body": "hi", "type": "chat"}
  {"id": "2", "cmd": "roster"}
  {"id": "3", "cmd": "ping", "to": "localhost"}
  {"id": "4", "cmd": "quit"}

Besides the replies, it reports what it saw on the wire: {"event": "stream" | "auth" |
"tls" | "sasl_success" | "session_start" | "message" | "pinged" | "roster_push" | ...}.
"""
import base64
import hashlib
import os
import ssl
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from slixmpp_harness import STEP_TIMEOUT, ScriptedClient, emit, main  # noqa: E402


def ssl_info(xmpp):
    transport = getattr(xmpp, "transport", None)
    obj = transport.get_extra_info("ssl_object") if transport is not None else None
    if obj is None:
        return {"encrypted": False}
    return {"encrypted": True, "tls_version": obj.version(), "cipher": obj.cipher()[0]}


class Client(ScriptedClient):
    def __init__(self, jid, password, cafile):
        super().__init__(jid, password, cafile, [("xep_0030", None), ("xep_0199", {"keepalive": False})])
        self.add_filter("out", self.watch_out)
        self.add_filter("in", self.watch_in)
        self.add_event_handler("ssl_cert", self.on_ssl_cert)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("stream_error", lambda e: emit(event="stream_error", condition=e["condition"], text=e["text"]))

    # --- observation ---

    def start_stream_handler(self, xml):
        # Every response stream header: after connecting, after STARTTLS, after SASL.
        super().start_stream_handler(xml)
        emit(event="stream", id=xml.get("id"), version=xml.get("version"), **{"from": xml.get("from")})

    def watch_out(self, stanza):
        if stanza.xml.tag == "{urn:ietf:params:xml:ns:xmpp-sasl}auth":
            # The <auth/> actually written: its mechanism, the SCRAM gs2 header
            # (client-first message), and whether the stream was under TLS then.
            try:
                first = base64.b64decode(stanza.xml.text or "").decode("utf-8", "replace")
            except ValueError:
                first = ""
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

    def session_details(self):
        mech = self["feature_mechanisms"].mech
        return {"mechanism": mech.name if mech else None, "starttls": "starttls" in self.features,
                "authenticated": self.authenticated, **ssl_info(self)}

    def on_message(self, msg):
        emit(event="message", type=msg["type"], body=msg["body"], **{"from": str(msg["from"]), "to": str(msg["to"])})

    # --- commands ---

    async def handle(self, cmd):
        name = cmd.get("cmd")
        if name == "send":
            self.send_message(mto=cmd["to"], mbody=cmd["body"], mtype=cmd.get("type", "chat"))
            return {}
        if name == "roster":
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
            return {"type": iq["type"], "items": items, "client_roster": seen}
        if name == "ping":
            # send_ping, not ping(): ping() counts an error from the server as success.
            iq = await self["xep_0199"].send_ping(cmd["to"], timeout=STEP_TIMEOUT)
            return {"type": iq["type"], "from": str(iq["from"])}
        return None


if __name__ == "__main__":
    sys.exit(main(__doc__, Client))
