// Data forms (XEP-0004) from zod schemas, and back. The form is built from the
// schema's JSON Schema (zod 4's own output): number → text-single with XEP-0122
// xs:double / xs:integer and <range/>, boolean → boolean, enum → list-single,
// string → text-single (with XEP-0122 <regex/> where the schema has a pattern).
// A submitted form is converted by the same JSON Schema and validated by the zod
// schema itself, so the form and the check can never disagree.
import xml, { type Element } from "@xmpp/xml";
import { z } from "zod";
import { isMissing } from "../zod-issues.js";

export const NS_DATA = "jabber:x:data";
export const NS_VALIDATE = "http://jabber.org/protocol/xdata-validate";

interface JsonProp {
  type?: string;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  description?: string;
}

const described = new WeakMap<z.ZodObject, { props: Record<string, JsonProp>; required: Set<string> }>();

function properties(schema: z.ZodObject): { props: Record<string, JsonProp>; required: Set<string> } {
  let found = described.get(schema);
  if (!found) {
    const json = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as { properties?: Record<string, JsonProp>; required?: string[] };
    found = { props: json.properties ?? {}, required: new Set(json.required ?? []) };
    described.set(schema, found);
  }
  return found;
}

/** True when the command takes no parameters at all (it completes in one step). */
export const hasNoFields = (schema: z.ZodObject) => Object.keys(properties(schema).props).length === 0;

const SAFE_LIMIT = Number.MAX_SAFE_INTEGER;
const bound = (n: number | undefined) => (n === undefined || Math.abs(n) >= SAFE_LIMIT ? undefined : String(n));

function field(name: string, prop: JsonProp, required: boolean, value?: unknown): Element {
  const label = prop.description ?? name;
  const values = value === undefined ? [] : [xml("value", {}, typeof value === "boolean" ? (value ? "1" : "0") : String(value))];
  const req = required ? xml("required") : null;
  if (prop.type === "boolean") return xml("field", { var: name, type: "boolean", label }, req, ...values);
  if (prop.enum) return xml("field", { var: name, type: "list-single", label }, req, ...values, ...prop.enum.map((o) => xml("option", { label: String(o) }, xml("value", {}, String(o)))));
  if (prop.type === "number" || prop.type === "integer") {
    const min = bound(prop.minimum ?? prop.exclusiveMinimum);
    const max = bound(prop.maximum ?? prop.exclusiveMaximum);
    const range = min !== undefined || max !== undefined ? xml("range", { min, max }) : xml("basic");
    return xml("field", { var: name, type: "text-single", label }, req, ...values, xml("validate", { xmlns: NS_VALIDATE, datatype: prop.type === "integer" ? "xs:integer" : "xs:double" }, range));
  }
  const validate = prop.pattern ? xml("validate", { xmlns: NS_VALIDATE, datatype: "xs:string" }, xml("regex", {}, prop.pattern)) : null;
  return xml("field", { var: name, type: "text-single", label }, req, ...values, validate);
}

/** The FORM_TYPE of a device type's command forms (XEP-0068). */
export const commandFormType = (deviceType: string, command: string) => `urn:xmpp:switchboard:command:${deviceType}:${command}`;

/** A `form` for the params of a command, a `submit` of given params, or a `result` form for its result. */
export function schemaForm(schema: z.ZodObject, opts: { type: "form" | "submit" | "result"; formType: string; title?: string; instructions?: string; values?: Record<string, unknown> }): Element {
  const { props, required } = properties(schema);
  return xml(
    "x",
    { xmlns: NS_DATA, type: opts.type },
    opts.title ? xml("title", {}, opts.title) : null,
    opts.instructions ? xml("instructions", {}, opts.instructions) : null,
    // XEP-0068: the hidden FORM_TYPE names what the form is for.
    xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", {}, opts.formType)),
    ...Object.entries(props).map(([name, prop]) => field(name, prop, opts.type === "form" && required.has(name), opts.values?.[name])),
  );
}

export type FormResult<T> = { ok: true; value: T } | { ok: false; text: string };

/** Reads a submitted form into the schema's type; the text names the first bad field. */
/** A submitted form (or, with `type: "result"`, a result form) read into the schema's object. */
export function readForm<T extends z.ZodObject>(schema: T, x: Element | undefined, formType: string, type: "submit" | "result" = "submit"): FormResult<z.infer<T>> {
  if (!x || x.attrs.xmlns !== NS_DATA) return { ok: false, text: "expected a jabber:x:data form" };
  if (x.attrs.type !== type) return { ok: false, text: `the form must be of type '${type}', not '${x.attrs.type ?? ""}'` };
  const { props } = properties(schema);
  const raw: Record<string, unknown> = {};
  let seenFormType: string | null = null;
  for (const f of x.getChildren("field")) {
    const name = f.attrs.var;
    if (!name) return { ok: false, text: "a field without var" };
    const values = f.getChildren("value").map((v) => v.getText());
    if (name === "FORM_TYPE") {
      seenFormType = values[0] ?? "";
      continue;
    }
    const prop = props[name];
    // Unknown fields reach the strict schema, which names them.
    if (values.length === 0 || (values.length === 1 && values[0] === "" && prop?.type !== "string")) continue;
    const text = values[0]!;
    if (prop?.type === "boolean") {
      if (text === "1" || text === "true") raw[name] = true;
      else if (text === "0" || text === "false") raw[name] = false;
      else return { ok: false, text: `${name}: '${text}' is not a boolean` };
    } else if (prop?.type === "number" || prop?.type === "integer") {
      const n = text.trim() === "" ? Number.NaN : Number(text);
      if (!Number.isFinite(n)) return { ok: false, text: `${name}: '${text}' is not a number` };
      raw[name] = n;
    } else raw[name] = text;
  }
  // A result form may leave its FORM_TYPE out; a submitted one names it (XEP-0068).
  if (seenFormType !== formType && !(type === "result" && seenFormType === null)) return { ok: false, text: seenFormType === null ? "FORM_TYPE is missing" : `FORM_TYPE must be '${formType}'` };
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    if (issue.code === "unrecognized_keys") return { ok: false, text: `${issue.keys.join(", ")}: unknown field` };
    const path = issue.path.join(".") || "form";
    const message = isMissing(issue, raw) ? "is required" : issue.message.replace(/^Invalid input: /, "");
    return { ok: false, text: `${path}: ${message}` };
  }
  return { ok: true, value: parsed.data };
}
