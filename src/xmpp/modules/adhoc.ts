// Ad-Hoc Commands (XEP-0050) for devices the broker speaks for. A device's commands
// are listed and executed at its bare JID or its `/mqtt` resource; the form comes
// from the command's zod params schema, the submitted form is checked by the same
// schema, and the command goes out over MQTT. XMPP-connected devices implement
// XEP-0050 themselves: IQs to their own resources are routed to them untouched.
import { randomId } from "../../ids.js";
import xml, { type Element } from "@xmpp/xml";
import { StanzaError } from "../errors.js";
import type { Router } from "../router.js";
import type { Account, Registry } from "../../registry/registry.js";
import type { DeviceType, CommandSpec } from "../../../devices/index.js";
import type { Logger } from "../../log.js";
import { CommandFailure, type CommandOutcome, type Dispatcher } from "../../commands/dispatch.js";
import type { AuditEntry } from "../../commands/audit.js";
import { commandFormType, hasNoFields, readForm, schemaForm, NS_DATA } from "../../commands/forms.js";
import { NS_DISCO_INFO, NS_DISCO_ITEMS, type Disco } from "./disco.js";
import type { DeviceAgent } from "./device-agent.js";
import { receivesPresenceOf } from "../visibility.js";

export const NS_COMMANDS = "http://jabber.org/protocol/commands";
const SESSION_TTL_MS = 10 * 60_000;

/** A stanza error with XEP-0050's own condition (§4.6) beside the RFC 6120 one. */
export class CommandError extends StanzaError {
  constructor(condition: string, private readonly specific: string | null, text?: string) {
    super(condition, text);
  }
  override toElement(): Element {
    const el = super.toElement();
    if (this.specific) el.append(xml(this.specific, { xmlns: NS_COMMANDS }));
    return el;
  }
}

const FAILURE_ERRORS: Record<Exclude<CommandOutcome, "completed">, (text: string) => StanzaError> = {
  "bad-params": (text) => new CommandError("bad-request", "bad-payload", text),
  offline: (text) => new StanzaError("recipient-unavailable", text),
  timeout: (text) => new StanzaError("remote-server-timeout", text),
  "device-error": (text) => new StanzaError("undefined-condition", text),
  "bad-result": (text) => new StanzaError("undefined-condition", text),
  forbidden: (text) => new StanzaError("forbidden", text),
  "not-found": (text) => new StanzaError("item-not-found", text),
  canceled: (text) => new StanzaError("bad-request", text),
};


export interface CommandRunner {
  /** Runs one command with checked params: the shared path of XEP-0050, XEP-0325 and bridges. */
  run(who: string, device: Account, command: string, params: Record<string, unknown>): Promise<Record<string, unknown>>;
}

interface CommandSession {
  requester: string;
  device: string;
  node: string;
  expires: number;
}

export function adhocModule(deps: {
  router: Router;
  registry: Registry;
  agent: DeviceAgent;
  disco: Disco;
  dispatcher: Dispatcher;
  deviceType: (name: string | null) => DeviceType | undefined;
  defaultTimeoutMs: number;
  audit: (entry: AuditEntry) => void;
  log: Logger;
}): CommandRunner {
  const { router, registry, agent, disco, dispatcher, deviceType, defaultTimeoutMs, audit } = deps;
  const sessions = new Map<string, CommandSession>();
  const formType = (type: DeviceType, node: string) => commandFormType(type.name, node);
  disco.addFeature("account", NS_COMMANDS);
  agent.addFeature(NS_COMMANDS);
  setInterval(() => {
    const now = Date.now();
    for (const [id, s] of sessions) if (s.expires < now) sessions.delete(id);
  }, 60_000).unref();

  async function run(who: string, device: Account, command: string, params: Record<string, unknown>): Promise<Record<string, unknown>> {
    const type = deviceType(device.type)!;
    const spec = type.commands[command]!;
    const started = performance.now();
    try {
      const result = await dispatcher.send(device.name, command, params, spec.result, spec.timeoutMs ?? defaultTimeoutMs);
      audit({ who, device: device.name, command, params, outcome: "completed", latencyMs: performance.now() - started });
      return result;
    } catch (err) {
      const failure = err instanceof CommandFailure ? err : new CommandFailure("device-error", (err as Error).message);
      audit({ who, device: device.name, command, params, outcome: failure.outcome, latencyMs: performance.now() - started, error: failure.message });
      throw failure;
    }
  }

  /** Who may command whom: services and operators, over devices they see (docs/xmpp.md). */
  function target(requester: Account | undefined, deviceName: string): { device: Account; type: DeviceType } | StanzaError {
    const device = registry.get(deviceName);
    const type = device?.role === "device" ? deviceType(device.type) : undefined;
    if (!device || !type) return new StanzaError("item-not-found", "not a device");
    if (!requester || requester.role === "device" || !receivesPresenceOf(requester, device)) return new StanzaError("forbidden", "only services and operators may command devices");
    return { device, type };
  }

  function commandReply(node: string, sessionid: string, status: string, ...children: Array<Element | null>): Element {
    return xml("iq", { type: "result" }, xml("command", { xmlns: NS_COMMANDS, node, sessionid, status }, ...children));
  }

  /** Errors about a command echo its <command node sessionid/>, so clients match them to their session. */
  async function execute(requesterJid: string, requester: Account | undefined, deviceName: string, cmd: Element): Promise<Element | StanzaError> {
    const outcome = await executeStep(requesterJid, requester, deviceName, cmd);
    if (outcome instanceof StanzaError) outcome.echo = xml("command", { xmlns: NS_COMMANDS, node: cmd.attrs.node, sessionid: cmd.attrs.sessionid, action: cmd.attrs.action });
    return outcome;
  }

  async function executeStep(requesterJid: string, requester: Account | undefined, deviceName: string, cmd: Element): Promise<Element | StanzaError> {
    const found = target(requester, deviceName);
    if (found instanceof StanzaError) return found;
    const { device, type } = found;
    const node = cmd.attrs.node ?? "";
    const spec: CommandSpec | undefined = Object.hasOwn(type.commands, node) ? type.commands[node] : undefined;
    if (!spec) return new StanzaError("item-not-found", `no command '${node}'`);
    const action = cmd.attrs.action ?? "execute";
    if (!["execute", "complete", "cancel", "next", "prev"].includes(action)) return new CommandError("bad-request", "malformed-action", `unknown action '${action}'`);
    let sessionid = cmd.attrs.sessionid;
    if (sessionid !== undefined) {
      const session = sessions.get(sessionid);
      // §4.4: an unknown session, or someone else's, is a bad-sessionid.
      if (!session || session.requester !== requesterJid || session.device !== device.name || session.node !== node)
        return new CommandError("bad-request", "bad-sessionid", "no such command session");
      if (action === "cancel") {
        sessions.delete(sessionid);
        return commandReply(node, sessionid, "canceled");
      }
    } else if (action === "cancel") {
      return new CommandError("bad-request", "bad-sessionid", "nothing to cancel");
    }
    const x = cmd.getChild("x", NS_DATA) ?? cmd.getChild("x");
    if (!x && !hasNoFields(spec.params)) {
      if (sessionid !== undefined && action !== "execute") return new CommandError("bad-request", "bad-payload", "submit the form");
      // §3.4: the first step returns the form to fill in.
      sessionid ??= randomId();
      sessions.set(sessionid, { requester: requesterJid, device: device.name, node, expires: Date.now() + SESSION_TTL_MS });
      const form = schemaForm(spec.params, { type: "form", formType: formType(type, node), title: spec.description, instructions: `${spec.description} on ${device.name}` });
      return commandReply(node, sessionid, "executing", xml("actions", { execute: "complete" }, xml("complete")), form);
    }
    if (sessionid !== undefined) sessions.delete(sessionid);
    sessionid ??= randomId();
    let params: Record<string, unknown> = {};
    if (x) {
      const read = readForm(spec.params, x, formType(type, node));
      if (!read.ok) {
        audit({ who: requesterJid, device: device.name, command: node, params: null, outcome: "bad-params", latencyMs: 0, error: read.text });
        return new CommandError("bad-request", "bad-payload", read.text);
      }
      params = read.value;
    }
    try {
      const result = await run(requesterJid, device, node, params);
      const resultForm = hasNoFields(spec.result) ? null : schemaForm(spec.result, { type: "result", formType: formType(type, node), title: spec.description, values: result });
      return commandReply(node, sessionid, "completed", xml("note", { type: "info" }, `${node} completed on ${device.name}`), resultForm);
    } catch (err) {
      const failure = err as CommandFailure;
      return FAILURE_ERRORS[failure.outcome](failure.message);
    }
  }

  function commandList(deviceName: string, jid: string, requester: Account | undefined): Element | StanzaError {
    const found = target(requester, deviceName);
    if (found instanceof StanzaError) return found;
    return xml(
      "iq",
      { type: "result" },
      xml("query", { xmlns: NS_DISCO_ITEMS, node: NS_COMMANDS }, ...Object.entries(found.type.commands).map(([node, c]) => xml("item", { jid, node, name: c.description }))),
    );
  }

  function commandInfo(deviceName: string, node: string, requester: Account | undefined): Element | StanzaError | null {
    const found = target(requester, deviceName);
    if (found instanceof StanzaError) return found;
    if (node === NS_COMMANDS) return xml("iq", { type: "result" }, xml("query", { xmlns: NS_DISCO_INFO, node }, xml("identity", { category: "automation", type: "command-list" })));
    const spec = Object.hasOwn(found.type.commands, node) ? found.type.commands[node] : undefined;
    if (!spec) return null;
    return xml(
      "iq",
      { type: "result" },
      xml("query", { xmlns: NS_DISCO_INFO, node }, xml("identity", { category: "automation", type: "command-node", name: spec.description }), xml("feature", { var: NS_COMMANDS }), xml("feature", { var: NS_DATA })),
    );
  }

  const requesterOf = (jid: string | undefined) => (jid ? registry.get(jid.split("@")[0]!) : undefined);

  // On the bare JID, ahead of the generic disco answers.
  router.events.on(`iq-get/bare/${NS_DISCO_ITEMS}:query`, (event) => {
    if (event.payload!.attrs.node !== NS_COMMANDS) return false;
    const reply = commandList(event.to.local, event.to.toString(), event.origin?.account);
    if (reply instanceof StanzaError) router.error(event, reply);
    else router.reply(event, Object.assign(reply, { attrs: { ...reply.attrs, id: event.stanza.attrs.id } }));
    return true;
  }, 10);
  router.events.on(`iq-get/bare/${NS_DISCO_INFO}:query`, (event) => {
    const node = event.payload!.attrs.node;
    if (!node) return false;
    const reply = commandInfo(event.to.local, node, event.origin?.account);
    if (!reply) return false;
    if (reply instanceof StanzaError) router.error(event, reply);
    else router.reply(event, Object.assign(reply, { attrs: { ...reply.attrs, id: event.stanza.attrs.id } }));
    return true;
  }, 10);
  router.events.on(`iq-set/bare/${NS_COMMANDS}:command`, (event) => {
    return router.answer(event, execute(event.from.toString(), event.origin?.account, event.to.local, event.payload!));
  });

  // On the `/mqtt` resource the broker runs for the device.
  agent.handle("get", NS_DISCO_ITEMS, "query", (session, iq, payload) =>
    payload.attrs.node === NS_COMMANDS ? commandList(session.account.name, session.full, requesterOf(iq.attrs.from)) : null,
  );
  agent.handle("get", NS_DISCO_INFO, "query", (session, iq, payload) =>
    payload.attrs.node ? commandInfo(session.account.name, payload.attrs.node, requesterOf(iq.attrs.from)) : null,
  );
  agent.handle("set", NS_COMMANDS, "command", (session, iq, payload) => execute(iq.attrs.from!, requesterOf(iq.attrs.from), session.account.name, payload));

  return { run };
}
