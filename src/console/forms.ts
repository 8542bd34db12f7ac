// XEP-0004 data forms in the browser: parse the broker's form, turn it into HTML
// inputs (XEP-0122 numeric ranges become number inputs with min/max, booleans
// checkboxes, list-single a select), read them back into a `submit` form (hidden
// fields such as FORM_TYPE included), and show a `result` form as a list.
import { xml, type XmlElement } from "@xmpp/client";
import { h } from "./dom.js";

const NS_DATA = "jabber:x:data";
const NS_VALIDATE = "http://jabber.org/protocol/xdata-validate";

export interface FormField {
  var: string;
  type: string;
  label: string;
  desc: string | null;
  required: boolean;
  values: string[];
  options: Array<{ label: string; value: string }>;
  datatype: string | null;
  min: string | null;
  max: string | null;
  regex: string | null;
}

export interface DataForm {
  type: string;
  title: string | null;
  instructions: string[];
  fields: FormField[];
}

export function parseForm(x: XmlElement): DataForm {
  return {
    type: x.attrs.type ?? "form",
    title: x.getChildText("title"),
    instructions: x.getChildren("instructions").map((i) => i.getText()),
    fields: x.getChildren("field").map((f) => {
      const validate = f.getChild("validate", NS_VALIDATE);
      const range = validate?.getChild("range");
      return {
        var: f.attrs.var ?? "",
        type: f.attrs.type ?? "text-single",
        label: f.attrs.label || f.attrs.var || "",
        desc: f.getChildText("desc"),
        required: Boolean(f.getChild("required")),
        values: f.getChildren("value").map((v) => v.getText()),
        options: f.getChildren("option").map((o) => {
          const value = o.getChildText("value") ?? "";
          return { value, label: o.attrs.label || value };
        }),
        datatype: validate?.attrs.datatype ?? null,
        min: range?.attrs.min ?? null,
        max: range?.attrs.max ?? null,
        regex: validate?.getChildText("regex") ?? null,
      };
    }),
  };
}

const NUMERIC = /^xs:(double|decimal|float|integer|int|long|short|byte|nonNegativeInteger|positiveInteger|unsignedInt|unsignedShort|unsignedLong)$/;
const INTEGER = /integer|int|long|short|byte/i;
const inputId = (name: string) => `field-${name.replace(/[^\w-]/g, "_")}`;

function control(f: FormField): HTMLElement {
  const id = inputId(f.var);
  const common = { id, name: f.var, required: f.required };
  const first = f.values[0] ?? "";
  switch (f.type) {
    case "boolean": {
      const box = h("input", { ...common, type: "checkbox", required: false });
      box.checked = first === "1" || first === "true";
      return box;
    }
    case "list-single":
    case "list-multi": {
      const multi = f.type === "list-multi";
      const select = h("select", { ...common, multiple: multi });
      if (!multi && !f.required) select.append(h("option", { value: "" }, "—"));
      for (const o of f.options) {
        const opt = h("option", { value: o.value }, o.label);
        opt.selected = f.values.includes(o.value);
        select.append(opt);
      }
      if (!multi && f.required && !f.values.length) {
        select.prepend(h("option", { value: "", disabled: true }, "Choose…"));
        select.value = "";
      }
      return select;
    }
    case "text-multi":
    case "jid-multi": {
      const area = h("textarea", { ...common, rows: 3 });
      area.value = f.values.join("\n");
      return area;
    }
    default: {
      if (f.datatype && NUMERIC.test(f.datatype)) {
        const step = INTEGER.test(f.datatype) ? "1" : "any";
        const placeholder = f.min !== null && f.max !== null ? `${f.min} – ${f.max}` : f.min !== null ? `≥ ${f.min}` : f.max !== null ? `≤ ${f.max}` : null;
        const input = h("input", { ...common, type: "number", inputmode: "decimal", step, min: f.min, max: f.max, placeholder });
        input.value = first;
        return input;
      }
      const input = h("input", { ...common, type: f.type === "text-private" ? "password" : "text", pattern: f.regex });
      input.value = first;
      return input;
    }
  }
}

/** The inputs for a `form`; hidden and fixed fields are not inputs. */
export function renderForm(form: DataForm): HTMLElement {
  const box = h("div", { class: "form-fields" });
  for (const text of form.instructions) box.append(h("p", { class: "form-instructions" }, text));
  for (const f of form.fields) {
    if (f.type === "hidden") continue;
    if (f.type === "fixed") {
      box.append(h("p", { class: "form-fixed" }, f.values.join("\n")));
      continue;
    }
    const input = control(f);
    const range = f.min !== null || f.max !== null ? [f.min ?? "", f.max ?? ""].join(" – ") : null;
    const hint = [f.desc, range ? `range ${range}` : null].filter(Boolean).join(" · ");
    const label = h("label", { for: input.id, class: "form-label" }, f.label, f.required ? h("span", { class: "req", title: "required" }, " *") : null);
    const row = h("div", { class: `form-field type-${f.type}`, "data-var": f.var });
    if (f.type === "boolean") row.append(h("div", { class: "check" }, input, label));
    else row.append(label, input);
    if (hint) row.append(h("small", { class: "form-hint" }, hint));
    box.append(row);
  }
  return box;
}

/** Reads the inputs back into an XEP-0004 `submit` form. */
export function submitForm(form: DataForm, root: HTMLElement): XmlElement {
  const fields: XmlElement[] = [];
  for (const f of form.fields) {
    if (f.type === "fixed" || !f.var) continue;
    let values: string[];
    if (f.type === "hidden") values = f.values;
    else {
      const el = root.querySelector<HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement>(`#${inputId(f.var)}`);
      if (!el) continue;
      if (el instanceof HTMLInputElement && el.type === "checkbox") values = [el.checked ? "1" : "0"];
      else if (el instanceof HTMLSelectElement && el.multiple) values = [...el.selectedOptions].map((o) => o.value);
      else if (el instanceof HTMLTextAreaElement) values = el.value.split("\n").filter((line) => line !== "");
      else values = el.value === "" ? [] : [el.value.trim()];
    }
    if (!values.length) continue;
    fields.push(xml("field", { var: f.var }, ...values.map((v) => xml("value", {}, v))));
  }
  return xml("x", { xmlns: NS_DATA, type: "submit" }, ...fields);
}

/** A `result` form as a definition list (hidden fields left out). */
export function renderResult(form: DataForm): HTMLElement {
  const list = h("dl", { class: "form-result" });
  for (const f of form.fields) {
    if (f.type === "hidden" || f.var === "FORM_TYPE") continue;
    const value = f.type === "boolean" ? (f.values[0] === "1" || f.values[0] === "true" ? "yes" : "no") : f.values.join(", ");
    list.append(h("div", { "data-var": f.var }, h("dt", {}, f.label), h("dd", {}, value || "—")));
  }
  return list;
}
