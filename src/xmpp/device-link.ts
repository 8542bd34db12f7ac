// Devices that are XMPP clients, as a device link. A command sent to such a device
// through the dispatcher (at its bare JID, from XEP-0050 or XEP-0325) goes to its
// session as an XEP-0050 `execute` with the params as a submitted form, and the
// completed command's result form is its reply. Its telemetry (XEP-0060 publish to
// its own node, pubsub.ts) and its availability reach the core through this link.
import xml, { type Element } from "@xmpp/xml";
import type { DeviceType } from "../../devices/index.js";
import { commandFormType, hasNoFields, readForm, schemaForm } from "../commands/forms.js";
import { linkReporter, type CommandReply, type DeviceLink } from "../links/device-link.js";
import type { Registry } from "../registry/registry.js";
import type { IngestResult } from "../telemetry/verdict.js";
import type { IqCaller } from "./iq-caller.js";
import type { PresenceService } from "./modules/presence.js";
import type { Router } from "./router.js";
import type { Session } from "./sessions.js";
import { NS_COMMANDS } from "./modules/adhoc.js";

export interface XmppDeviceLink extends DeviceLink {
  /** A sample an XMPP device published, through the ingest. */
  telemetry(device: string, payload: string): Promise<IngestResult>;
}

export function xmppDeviceLink(deps: { router: Router; presence: PresenceService; registry: Registry; iq: IqCaller; deviceType: (name: string | null) => DeviceType | undefined }): XmppDeviceLink {
  const { router, registry, iq, deviceType } = deps;
  const reporter = linkReporter("xmpp");
  // This process's own sessions only: a device on another node is reached through that node (src/cluster/peer-link.ts).
  const isDeviceClient = (s: Session) => s.protocol === "xmpp" && s.account.role === "device" && s.node === undefined;
  /** The device's available XMPP resource that gets its commands: the most recent. */
  const sessionOf = (device: string) => router.sessions.ofAccount(`${device}@${router.domain}`).filter((s) => isDeviceClient(s) && s.presence).at(-1);

  // Online with its first available resource, offline when its last one goes.
  deps.presence.onSession((session, available, status) => {
    if (!isDeviceClient(session)) return;
    const others = router.sessions.ofAccount(session.bare).some((s) => s !== session && isDeviceClient(s) && s.presence);
    if (others) return;
    if (available) reporter.emit.online(session.account);
    else reporter.emit.offline(session.account, status ?? "unavailable");
  });

  /** The device's answer to an XEP-0050 execute, as a command reply. */
  function replyOf(id: string, answer: Element, device: string, command: string): CommandReply {
    if (answer.attrs.type === "error") {
      const error = answer.getChild("error");
      const text = error?.getChildText("text") ?? error?.getChildElements()[0]?.name ?? "error";
      return { id, ok: false, error: text };
    }
    const cmd = answer.getChild("command", NS_COMMANDS);
    if (cmd?.attrs.status !== "completed") return { id, ok: false, error: `the command ended with status '${cmd?.attrs.status ?? "none"}'` };
    const type = deviceType(registry.get(device)?.type ?? null);
    const spec = type?.commands[command];
    if (!spec || hasNoFields(spec.result)) return { id, ok: true, result: {} };
    const read = readForm(spec.result, cmd.getChild("x"), commandFormType(type!.name, command), "result");
    return read.ok ? { id, ok: true, result: read.value } : { id, ok: false, error: `the result form is invalid: ${read.text}` };
  }

  return {
    name: "xmpp",
    protocol: "xmpp",
    resource: null,
    reaches: (device) => sessionOf(device) !== undefined,
    async deliver(device, request) {
      const session = sessionOf(device);
      if (!session) throw new Error(`${device} has no available XMPP resource`);
      const type = deviceType(session.account.type);
      const spec = type?.commands[request.command];
      const form = spec && type && !hasNoFields(spec.params) ? schemaForm(spec.params, { type: "submit", formType: commandFormType(type.name, request.command), values: request.params }) : null;
      const execute = xml("command", { xmlns: NS_COMMANDS, node: request.command, action: "execute" }, form);
      // Sent now, answered later: the dispatcher waits for the reply with its own timeout.
      iq.request(session.full, "set", execute, request.timeoutMs).then(
        (answer) => reporter.emit.reply(device, replyOf(request.id, answer, device, request.command)),
        () => {},
      );
    },
    disconnect: (device) => sessionOf(device)?.close(),
    listen: reporter.listen,
    telemetry: (device, payload) => new Promise((resolve, reject) => reporter.emit.telemetry(device, payload, (result, err) => (result ? resolve(result) : reject(err)))),
  };
}
