// `switchboard/client`: run a device command from a Node backend in one call.
// Built on @xmpp/client: XEP-0050 execute → (form) → complete, with the params as a
// plain object and the result form read back into one.
//
//   const xmpp = await connectService({ service: "xmpp://broker:5222", domain: "iot.example.com", username: "backend", password });
//   const { setpoint } = await commandDevice(xmpp, { device: "thermo-1", command: "set_setpoint", params: { value: 21.5 } });
import { client, xml, type Client } from "@xmpp/client";
import type { Element } from "@xmpp/xml";

const NS_COMMANDS = "http://jabber.org/protocol/commands";
const NS_DATA = "jabber:x:data";
const NS_VALIDATE = "http://jabber.org/protocol/xdata-validate";

/** A command that did not complete: the XMPP error condition and the broker's text. */
export class CommandError extends Error {
  constructor(
    /** e.g. bad-request, recipient-unavailable, remote-server-timeout, undefined-condition, forbidden */
    readonly condition: string,
    readonly text: string,
  ) {
    super(text ? `${condition}: ${text}` : condition);
    this.name = "CommandError";
  }
}

export interface ServiceOptions {
  service: string;
  domain: string;
  username: string;
  password: string;
  resource?: string;
}

/** Connects and logs in; the returned client is online. */
export async function connectService(opts: ServiceOptions): Promise<Client> {
  const xmpp = client(opts);
  xmpp.on("error", () => {});
  await xmpp.start();
  return xmpp;
}

function toCommandError(err: unknown): CommandError {
  const e = err as { condition?: string; text?: string; message?: string };
  return new CommandError(e.condition ?? "undefined-condition", e.text ?? e.message ?? "");
}

/** Reads a result form into an object, using each field's type and XEP-0122 datatype. */
function readResult(x: Element | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of x?.getChildren("field") ?? []) {
    const name = field.attrs.var;
    if (!name || name === "FORM_TYPE") continue;
    const value = field.getChildText("value");
    if (value === null) continue;
    const datatype = field.getChild("validate", NS_VALIDATE)?.attrs.datatype;
    if (field.attrs.type === "boolean") out[name] = value === "1" || value === "true";
    else if (datatype === "xs:double" || datatype === "xs:integer") out[name] = Number(value);
    else out[name] = value;
  }
  return out;
}

function submitForm(form: Element, params: Record<string, unknown>): Element {
  const formType = form.getChildren("field").find((f) => f.attrs.var === "FORM_TYPE")?.getChildText("value");
  const fields = Object.entries(params).map(([name, value]) =>
    xml("field", { var: name }, xml("value", {}, typeof value === "boolean" ? (value ? "1" : "0") : String(value))),
  );
  return xml("x", { xmlns: NS_DATA, type: "submit" }, formType ? xml("field", { var: "FORM_TYPE" }, xml("value", {}, formType)) : null, ...fields);
}

export interface CommandRequest {
  /** Device id, bare JID or full JID. */
  device: string;
  command: string;
  params?: Record<string, unknown>;
  /** How long to wait for each step, ms (the broker has its own device timeout). */
  timeoutMs?: number;
}

export async function commandDevice(xmpp: Client, request: CommandRequest): Promise<Record<string, unknown>> {
  const domain = xmpp.jid?.domain ?? "";
  const to = request.device.includes("@") ? request.device : `${request.device}@${domain}`;
  const send = async (command: Element) => {
    try {
      const reply = await xmpp.iqCaller.request(xml("iq", { type: "set", to }, command), request.timeoutMs ?? 30_000);
      return reply.getChild("command", NS_COMMANDS)!;
    } catch (err) {
      throw toCommandError(err);
    }
  };
  let step = await send(xml("command", { xmlns: NS_COMMANDS, node: request.command, action: "execute" }));
  if (step.attrs.status === "executing") {
    const form = step.getChild("x", NS_DATA);
    if (!form) throw new CommandError("undefined-condition", "the command returned no form");
    step = await send(xml("command", { xmlns: NS_COMMANDS, node: request.command, sessionid: step.attrs.sessionid, action: "complete" }, submitForm(form, request.params ?? {})));
  }
  if (step.attrs.status !== "completed") throw new CommandError("undefined-condition", `the command ended as '${step.attrs.status}'`);
  return readResult(step.getChild("x", NS_DATA));
}
