// The command dialog: runs one XEP-0050 command on a device. `execute` brings the
// form (or completes at once for a command without parameters); the filled form is
// sent with `complete` and the note and result form are shown, or the error text.
// After an error the next submit starts over with `execute` carrying the form.
import { byId, h } from "./dom.js";
import { parseForm, renderForm, renderResult, submitForm, type DataForm } from "./forms.js";
import { RequestError, type CommandInfo, type CommandResponse, type Connection } from "./xmpp.js";

export class CommandDialog {
  private readonly dialog = byId<HTMLDialogElement>("cmd-dialog");
  private readonly formEl = byId<HTMLFormElement>("cmd-form");
  private readonly titleEl = byId("cmd-title");
  private readonly deviceEl = byId("cmd-device");
  private readonly nodeEl = byId("cmd-node");
  private readonly fieldsEl = byId("cmd-fields");
  private readonly statusEl = byId("cmd-status");
  private readonly resultEl = byId("cmd-result");
  private readonly runBtn = byId<HTMLButtonElement>("cmd-run");
  private readonly closeBtn = byId<HTMLButtonElement>("cmd-close");

  private conn: Connection | null = null;
  private device = "";
  private command: CommandInfo = { node: "", name: "" };
  private form: DataForm | null = null;
  private sessionid: string | null = null;
  private done = false;
  /** Bumped on every open: answers for an earlier opening are ignored. */
  private generation = 0;

  constructor() {
    this.formEl.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.submit();
    });
    this.closeBtn.addEventListener("click", () => this.dialog.close());
    this.dialog.addEventListener("close", () => this.cancel());
  }

  async open(conn: Connection, device: string, command: CommandInfo): Promise<void> {
    const gen = ++this.generation;
    this.conn = conn;
    this.device = device;
    this.command = command;
    this.form = null;
    this.sessionid = null;
    this.done = false;
    this.titleEl.textContent = command.name;
    this.deviceEl.textContent = device;
    this.nodeEl.textContent = command.node;
    this.dialog.dataset.state = "loading";
    this.fieldsEl.replaceChildren();
    this.resultEl.replaceChildren();
    this.showStatus("Loading…");
    this.runBtn.hidden = false;
    this.runBtn.disabled = true;
    if (!this.dialog.open) this.dialog.showModal();
    try {
      const res = await conn.command(device, command.node, "execute");
      if (gen === this.generation) this.show(res);
    } catch (err) {
      if (gen === this.generation) this.showError(err);
    }
  }

  private async submit(): Promise<void> {
    const { conn, form } = this;
    if (!conn || !form || this.done || this.runBtn.disabled) return;
    if (!this.formEl.reportValidity()) return;
    const gen = this.generation;
    const x = submitForm(form, this.fieldsEl);
    this.runBtn.disabled = true;
    this.dialog.dataset.state = "running";
    this.resultEl.replaceChildren();
    this.showStatus(`Running ${this.command.name} on ${this.device}…`);
    try {
      const res = await conn.command(this.device, this.command.node, this.sessionid ? "complete" : "execute", this.sessionid, x);
      if (gen === this.generation) this.show(res);
    } catch (err) {
      if (gen !== this.generation) return;
      this.sessionid = null; // the broker dropped the session; the next try starts over with the form
      this.showError(err);
    }
  }

  private show(res: CommandResponse): void {
    this.sessionid = res.sessionid;
    if (res.status === "completed" || res.status === "canceled") {
      this.done = true;
      this.sessionid = null;
      this.dialog.dataset.state = res.status;
      this.runBtn.hidden = true;
      for (const el of this.fieldsEl.querySelectorAll<HTMLInputElement>("input, select, textarea")) el.disabled = true;
      this.showStatus(res.note ?? (res.status === "completed" ? "Done." : "Canceled."), "ok");
      const result = res.form ? parseForm(res.form) : null;
      this.resultEl.replaceChildren(...(result && result.fields.some((f) => f.type !== "hidden") ? [h("h3", {}, "Result"), renderResult(result)] : []));
      this.closeBtn.focus();
      return;
    }
    // executing: a form to fill in
    this.form = res.form ? parseForm(res.form) : { type: "form", title: null, instructions: [], fields: [] };
    this.fieldsEl.replaceChildren(renderForm(this.form));
    this.dialog.dataset.state = "form";
    this.showStatus(res.note ?? "");
    this.runBtn.disabled = false;
    this.fieldsEl.querySelector<HTMLElement>("input, select, textarea")?.focus();
  }

  private showStatus(text: string, kind: "info" | "ok" | "error" = "info"): void {
    this.statusEl.textContent = text;
    this.statusEl.className = `cmd-status ${kind}`;
    this.statusEl.hidden = !text;
    delete this.statusEl.dataset.condition;
  }

  private showError(err: unknown): void {
    const e = err instanceof RequestError ? err : new RequestError("error", String(err));
    const reasons: Record<string, string> = {
      "recipient-unavailable": "The device is offline.",
      "remote-server-timeout": "The device did not answer in time.",
      "bad-request": "The broker refused the parameters.",
      "undefined-condition": "The device reported a failure.",
      forbidden: "Not allowed.",
      "item-not-found": "The device has no such command.",
    };
    this.dialog.dataset.state = "error";
    this.showStatus([reasons[e.condition] ?? `Failed (${e.condition}).`, e.text].filter(Boolean).join(" "), "error");
    this.statusEl.dataset.condition = e.condition;
    this.runBtn.disabled = !this.form;
  }

  /** Closing an unfinished command cancels its session on the broker. */
  private cancel(): void {
    this.generation++;
    if (this.conn && this.sessionid && !this.done) void this.conn.command(this.device, this.command.node, "cancel", this.sessionid).catch(() => {});
    this.sessionid = null;
  }
}
