// The broker's own Ad-Hoc Commands (XEP-0050) at the domain JID, for operators and
// services: `list-online-devices`. The domain advertises the commands feature
// (§2.1), which clients such as Profanity require before they run any command, the
// device commands of adhoc.ts included. A device is told of no command here and
// may run none: the list would name other devices.
import xml, { type Element } from "@xmpp/xml";
import { randomId } from "../../ids.js";
import { StanzaError } from "../errors.js";
import type { Router, StanzaEvent } from "../router.js";
import type { Account } from "../../registry/registry.js";
import { NS_DATA } from "../../commands/forms.js";
import { NS_DISCO_INFO, NS_DISCO_ITEMS, type Disco } from "./disco.js";
import { CommandError, NS_COMMANDS } from "./adhoc.js";

export const LIST_ONLINE_DEVICES = "list-online-devices";
const FORM_TYPE = `urn:xmpp:switchboard:command:broker:${LIST_ONLINE_DEVICES}`;

interface HostCommand {
  name: string;
  /** The result form of a one-stage command (§2.4.1). */
  run(): { note: string; form: Element };
}

const mayRun = (requester: Account | undefined) => requester !== undefined && requester.role !== "device";
const value = (text: string) => xml("value", {}, text);

export function hostCommandsModule(deps: { router: Router; disco: Disco }): void {
  const { router, disco } = deps;
  const { domain, sessions } = router;

  /** Devices with an available resource, from the session table (where each session lives is its business). */
  function onlineDevices(): Array<{ jid: string; type: string }> {
    const online = new Map<string, string>();
    for (const session of sessions.all())
      if (session.account.role === "device" && session.presence) online.set(session.bare, session.account.type ?? "");
    return [...online].sort(([a], [b]) => (a < b ? -1 : 1)).map(([jid, type]) => ({ jid, type }));
  }

  const commands: Record<string, HostCommand> = {
    [LIST_ONLINE_DEVICES]: {
      name: "List online devices",
      run() {
        const devices = onlineDevices();
        // XEP-0004 §3.4: a table of one item per device. Clients that show only a form's
        // fields (Profanity) get the same list as one text-multi field.
        const form = xml(
          "x",
          { xmlns: NS_DATA, type: "result" },
          xml("title", {}, "Online devices"),
          xml("field", { var: "FORM_TYPE", type: "hidden" }, value(FORM_TYPE)),
          xml("field", { var: "devices", type: "text-multi", label: "Online devices (JID, type)" }, ...devices.map((d) => value(`${d.jid} ${d.type}`))),
          xml("reported", {}, xml("field", { var: "jid", type: "jid-single", label: "JID" }), xml("field", { var: "type", type: "text-single", label: "Device type" })),
          ...devices.map((d) => xml("item", {}, xml("field", { var: "jid" }, value(d.jid)), xml("field", { var: "type" }, value(d.type)))),
        );
        return { note: `${devices.length} device${devices.length === 1 ? "" : "s"} online`, form };
      },
    },
  };
  const commandOf = (node: string | undefined) => (node !== undefined && Object.hasOwn(commands, node) ? commands[node] : undefined);
  const answer = (event: StanzaEvent, ...children: Element[]) => router.reply(event, xml("iq", { type: "result", id: event.stanza.attrs.id }, ...children));

  disco.addFeature("host", NS_COMMANDS);

  // §2.2: the command list; "not required to send the same list to all requesters".
  router.events.on(`iq-get/host/${NS_DISCO_ITEMS}:query`, (event) => {
    if (event.payload!.attrs.node !== NS_COMMANDS) return false;
    const shown = mayRun(event.origin?.account) ? Object.entries(commands) : [];
    answer(event, xml("query", { xmlns: NS_DISCO_ITEMS, node: NS_COMMANDS }, ...shown.map(([node, c]) => xml("item", { jid: domain, node, name: c.name }))));
    return true;
  });

  // §2.2: the list node and each command node; a command the requester may not run is forbidden.
  router.events.on(`iq-get/host/${NS_DISCO_INFO}:query`, (event) => {
    const node = event.payload!.attrs.node;
    if (node === NS_COMMANDS) return (answer(event, xml("query", { xmlns: NS_DISCO_INFO, node }, xml("identity", { category: "automation", type: "command-list" }))), true);
    const command = commandOf(node);
    if (!command) return false;
    if (!mayRun(event.origin?.account)) return (router.error(event, new StanzaError("forbidden", "only services and operators may run the broker's commands")), true);
    answer(event, xml("query", { xmlns: NS_DISCO_INFO, node }, xml("identity", { category: "automation", type: "command-node", name: command.name }), xml("feature", { var: NS_COMMANDS }), xml("feature", { var: NS_DATA })));
    return true;
  });

  /** §2.4.1 and §4.4: a one-stage command completes on `execute` (or `complete`); it keeps no session. */
  function execute(event: StanzaEvent): Element | StanzaError {
    const cmd = event.payload!;
    const command = commandOf(cmd.attrs.node);
    if (!command) return new StanzaError("item-not-found", `no command '${cmd.attrs.node ?? ""}'`);
    if (!mayRun(event.origin?.account)) return new StanzaError("forbidden", "only services and operators may run the broker's commands");
    if (cmd.attrs.sessionid !== undefined) return new CommandError("bad-request", "bad-sessionid", "this command completes in one step; it has no sessions");
    const action = cmd.attrs.action ?? "execute";
    if (action !== "execute" && action !== "complete")
      return new CommandError("bad-request", ["cancel", "next", "prev"].includes(action) ? "bad-action" : "malformed-action", `action '${action}' is not accepted here`);
    const { note, form } = command.run();
    return xml("iq", { type: "result" }, xml("command", { xmlns: NS_COMMANDS, node: cmd.attrs.node, sessionid: randomId(), status: "completed" }, xml("note", { type: "info" }, note), form));
  }

  router.events.on(`iq-set/host/${NS_COMMANDS}:command`, (event) => {
    const outcome = execute(event);
    // Errors echo the <command/>, as adhoc.ts does, so clients match them to their request.
    if (outcome instanceof StanzaError) outcome.echo = xml("command", { xmlns: NS_COMMANDS, node: event.payload!.attrs.node, action: event.payload!.attrs.action });
    return router.answer(event, Promise.resolve(outcome));
  });
}
