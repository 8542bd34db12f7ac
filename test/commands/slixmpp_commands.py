#!/usr/bin/python3
"""An operator running ad-hoc commands (XEP-0050) with slixmpp's own xep_0050 plugin,
driven by test/commands/roundtrip.test.ts.

Usage: slixmpp_commands.py HOST PORT JID PASSWORD CAFILE

Logs in as test/helpers/slixmpp_harness.py describes (SCRAM-SHA-256 only, after
STARTTLS, CAFILE the only trust anchor) and sends its initial presence. Then it reads
commands from stdin, one JSON object a line:

  {"id": "1", "cmd": "commands", "jid": "th1@localhost"}
      xep_0050.get_commands: the command list (disco#items on the commands node)
  {"id": "2", "cmd": "info", "jid": "th1@localhost", "node": "set_setpoint"}
      xep_0030.get_info on a command node
  {"id": "3", "cmd": "run", "jid": "th1@localhost", "node": "set_setpoint",
   "values": {"value": "21.5"}, "submit": "flow" | "direct", "wait": 10}
      xep_0050.start_command; if the answer is a form and "values" is given, the form
      is filled in (FORM_TYPE kept) and submitted with action 'complete': with
      xep_0050.complete_command (submit "flow", the plugin's workflow API) or with
      xep_0050.send_command (submit "direct", one awaited IQ).
  {"id": "4", "cmd": "quit"}

and writes what happens to stdout, one JSON object a line: events ({"event":
"session_start" | "presence" | "fatal" | ...}) and replies to commands ({"id": ...,
"ok": true|false, ...}). A "run" reply lists every answer of the command session as
"steps" (result: status, sessionid, actions, notes, form; error: condition, text, the
XEP-0050 specific condition), its "outcome" (completed | canceled | form | error |
no-answer) and "raw_errors": the IQ errors that arrived for the IQs of this run, seen
on the wire whether or not the plugin handed them to the session's error handler, with
whether they echo the <command/> element ("echoed_command", "echoed_sessionid").
"""
import asyncio
import logging
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from slixmpp_harness import STEP_TIMEOUT, IqError, IqTimeout, ScriptedClient, emit, main  # noqa: E402

NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_DATA = "jabber:x:data"
NS_VALIDATE = "http://jabber.org/protocol/xdata-validate"


def describe_form(form):
    """What slixmpp's xep_0004 (and xep_0122) made of a data form."""
    fields = []
    for var, field in form.get_fields().items():
        desc = {"var": var, "type": field["type"] or None, "label": field["label"] or None,
                "required": bool(field["required"]), "value": field.get_value(convert=False),
                "options": [o["value"] for o in field["options"]] if field["options"] else []}
        if field.xml.find("{%s}validate" % NS_VALIDATE) is not None:
            validate = field["validate"]
            desc["validate"] = {"datatype": validate["datatype"] or None, "range": validate["range"] or None,
                                "basic": validate["basic"], "regex": validate["regex"] or None}
        fields.append(desc)
    return {"type": form["type"], "title": form["title"] or None, "instructions": form["instructions"] or None,
            "fields": fields}


def describe_error(iq):
    err = iq["error"]
    specific = None
    el = iq.xml.find("{jabber:client}error")
    if el is not None:
        for child in el:
            if child.tag.startswith("{%s}" % NS_COMMANDS):
                specific = child.tag.split("}", 1)[1]
    return {"iq": "error", "from": str(iq["from"]), "error_type": err["type"], "condition": err["condition"],
            "text": err["text"] or None, "specific": specific}


def describe_result(iq):
    cmd = iq["command"]
    actions_el = cmd.xml.find("{%s}actions" % NS_COMMANDS)
    has_form = cmd.xml.find("{%s}x" % NS_DATA) is not None
    return {"iq": "result", "from": str(iq["from"]), "status": cmd["status"], "node": cmd["node"],
            "sessionid": cmd["sessionid"] or None, "actions": sorted(cmd["actions"]),
            "execute": actions_el.get("execute") if actions_el is not None else None,
            "notes": [{"type": t, "text": text} for t, text in cmd["notes"]],
            "form": describe_form(cmd["form"]) if has_form else None}


class Client(ScriptedClient):
    def __init__(self, jid, password, cafile):
        # xep_0122 parses <validate/> in form fields.
        super().__init__(jid, password, cafile, [(p, None) for p in ("xep_0030", "xep_0004", "xep_0122", "xep_0050")])
        # IQ id → sessionid of the command IQs we sent; errors seen for them, by sessionid.
        self.sent_commands = {}
        self.raw_errors = {}
        self.add_filter("out", self.watch_out)
        self.add_filter("in", self.watch_in)
        self.add_event_handler("presence", self.on_presence)

    def watch_out(self, stanza):
        if stanza.xml.tag == "{jabber:client}iq" and stanza.xml.get("type") == "set":
            cmd = stanza.xml.find("{%s}command" % NS_COMMANDS)
            if cmd is not None:
                self.sent_commands[stanza.xml.get("id")] = cmd.get("sessionid") or "pending:" + stanza.xml.get("id")
        return stanza

    def watch_in(self, stanza):
        if stanza.xml.tag == "{jabber:client}iq" and stanza.xml.get("type") == "error":
            key = self.sent_commands.get(stanza.xml.get("id"))
            if key is not None:
                # Before any handler runs: reading iq["command"] would create an empty one.
                echoed = stanza.xml.find("{%s}command" % NS_COMMANDS)
                self.raw_errors.setdefault(key, []).append({
                    **describe_error(stanza), "echoed_command": echoed is not None,
                    "echoed_sessionid": echoed.get("sessionid") if echoed is not None else None})
        return stanza

    def on_presence(self, pres):
        emit(event="presence", type=pres["type"], **{"from": str(pres["from"])})

    # --- commands from the test ---

    async def handle(self, cmd):
        name = cmd.get("cmd")
        if name == "commands":
            iq = await self["xep_0050"].get_commands(jid=cmd["jid"], timeout=STEP_TIMEOUT)
            items = [{"jid": str(jid), "node": node, "name": label} for jid, node, label in iq["disco_items"]["items"]]
            return {"type": iq["type"], "node": iq["disco_items"]["node"], "items": items, "from": str(iq["from"])}
        if name == "info":
            iq = await self["xep_0030"].get_info(jid=cmd["jid"], node=cmd["node"], timeout=STEP_TIMEOUT)
            info = iq["disco_info"]
            return {"node": info["node"], "features": sorted(info["features"]),
                    "identities": [{"category": c, "type": t, "name": n} for c, t, _lang, n in info["identities"]]}
        if name == "run":
            return await self.run_adhoc(cmd)
        return None

    def describe_iq_error(self, iq):
        return describe_error(iq)

    async def run_adhoc(self, cmd):
        """One command session with the xep_0050 plugin, every answer recorded."""
        adhoc = self["xep_0050"]
        values = cmd.get("values")
        how = cmd.get("submit", "flow")
        steps = []
        done = self.loop.create_future()

        def finish(outcome):
            if not done.done():
                done.set_result(outcome)

        def on_error(iq, _session):
            steps.append(describe_error(iq))
            finish("error")

        def on_next(iq, session):
            try:
                next_step(iq, session)
            except Exception as e:  # report it, never leave the run hanging
                logging.exception("handling a command answer")
                steps.append({"exception": f"{type(e).__name__}: {e}"})
                finish("exception")

        def next_step(iq, session):
            step = describe_result(iq)
            steps.append(step)
            if step["status"] != "executing":
                return finish(step["status"])
            if step["form"] is None or values is None:
                return finish("form")
            # Fill in the form: FORM_TYPE as given, then the test's answers (XEP-0004 §3.4).
            form = self["xep_0004"].make_form(ftype="submit")
            received = iq["command"]["form"].get_fields()
            if "FORM_TYPE" in received:
                form.add_field(var="FORM_TYPE", ftype="hidden", value=received["FORM_TYPE"]["value"])
            for var, value in values.items():
                form.add_field(var=var, value=value)
            if how == "flow":
                session["payload"] = form
                session["next"] = on_next
                session["error"] = on_error
                adhoc.complete_command(session)
            else:
                self.spawn(submit_direct(session["id"], form))

        async def submit_direct(sessionid, form):
            try:
                iq = await adhoc.send_command(cmd["jid"], cmd["node"], action="complete", payload=form,
                                              sessionid=sessionid, timeout=STEP_TIMEOUT)
                steps.append(describe_result(iq))
                finish(iq["command"]["status"])
            except IqError as e:
                steps.append(describe_error(e.iq))
                finish("error")
            except IqTimeout:
                finish("no-answer")

        session = {"next": on_next, "error": on_error}
        adhoc.start_command(cmd["jid"], cmd["node"], session)
        # start_command names the session after its IQ until the answer brings a sessionid.
        keys = {"pending:" + session["id"][len("client:pending_"):]}
        try:
            outcome = await asyncio.wait_for(asyncio.shield(done), timeout=cmd.get("wait", STEP_TIMEOUT))
        except asyncio.TimeoutError:
            outcome = "no-answer"
        keys |= {s.get("sessionid") for s in steps if s.get("sessionid")}
        raw = [e for key in keys for e in self.raw_errors.get(key, [])]
        return {"outcome": outcome, "steps": steps, "raw_errors": raw}


if __name__ == "__main__":
    sys.exit(main(__doc__, Client))
