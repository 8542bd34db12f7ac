// XEP-0325 (IoT Control) `set`, as compatibility support (the XSF retracted it;
// Smack and slixmpp ship it): typed control values are mapped onto the device
// type's commands (declared in its `control` table), checked by the same zod params
// schema, and run through the same dispatch as XEP-0050 commands.
import xml, { type Element } from "@xmpp/xml";
import { StanzaError } from "../errors.js";
import type { Router } from "../router.js";
import type { Account, Registry } from "../../registry/registry.js";
import type { DeviceType } from "../../../devices/index.js";
import type { DeviceAgent } from "./device-agent.js";
import type { CommandRunner } from "./adhoc.js";
import { CommandFailure } from "../../commands/dispatch.js";
import { receivesPresenceOf } from "../visibility.js";

export const NS_CONTROL = "urn:xmpp:iot:control";
const NUMERIC = new Set(["double", "int", "long"]);

export function controlModule(deps: { router: Router; registry: Registry; agent: DeviceAgent; commands: CommandRunner; deviceType: (name: string | null) => DeviceType | undefined }): void {
  const { router, registry, agent, commands, deviceType } = deps;

  async function set(who: string, requester: Account | undefined, deviceName: string, request: Element): Promise<Element | StanzaError> {
    const device = registry.get(deviceName);
    const type = device?.role === "device" ? deviceType(device.type) : undefined;
    if (!device || !type) return new StanzaError("item-not-found", "not a device");
    if (!requester || requester.role === "device" || !receivesPresenceOf(requester, device)) return new StanzaError("forbidden", "only services and operators may control devices");
    const byCommand = new Map<string, Record<string, unknown>>();
    for (const el of request.getChildElements()) {
      const name = el.attrs.name ?? "";
      const target = type.control?.[name];
      if (!target) return new StanzaError("bad-request", `${name}: not a control parameter of ${type.name}`);
      const raw = el.attrs.value ?? "";
      let value: unknown = raw;
      if (NUMERIC.has(el.name)) value = Number(raw);
      else if (el.name === "boolean") value = raw === "true" || raw === "1" ? true : raw === "false" || raw === "0" ? false : raw;
      if (typeof value === "number" && !Number.isFinite(value)) return new StanzaError("bad-request", `${name}: '${raw}' is not a number`);
      byCommand.set(target.command, { ...byCommand.get(target.command), [target.param]: value });
    }
    if (byCommand.size === 0) return new StanzaError("bad-request", "no control parameter given");
    for (const [command, params] of byCommand) {
      const checked = type.commands[command]!.params.safeParse(params);
      if (!checked.success) {
        const issue = checked.error.issues[0]!;
        return new StanzaError("bad-request", `${issue.path.join(".") || command}: ${issue.message}`);
      }
      try {
        await commands.run(who, device, command, checked.data as Record<string, unknown>);
      } catch (err) {
        const f = err as CommandFailure;
        const condition = f.outcome === "offline" ? "recipient-unavailable" : f.outcome === "timeout" ? "remote-server-timeout" : "undefined-condition";
        return new StanzaError(condition, f.message);
      }
    }
    return xml("iq", { type: "result" }, xml("setResponse", { xmlns: NS_CONTROL, responseCode: "OK" }));
  }

  agent.addFeature(NS_CONTROL);
  agent.handle("set", NS_CONTROL, "set", (session, iq, payload) => set(iq.attrs.from!, registry.get(iq.attrs.from!.split("@")[0]!), session.account.name, payload));
  router.events.on(`iq-set/bare/${NS_CONTROL}:set`, (event) => {
    return router.answer(event, set(event.from.toString(), event.origin?.account, event.to.local, event.payload!));
  });
}
