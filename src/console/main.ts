// The console's entry point: the login form, then one session that wires the XMPP
// connection to the store, the store to the renderer, and the page's controls
// (filters, tile command menus, the command dialog, log out) to both.
import { byId } from "./dom.js";
import { CommandDialog } from "./commands.js";
import { Renderer } from "./render.js";
import { Store, type StateFilter } from "./store.js";
import { Connection, RequestError } from "./xmpp.js";

const SAVED = "switchboard-console";

function defaultService(): string {
  if (!location.host) return "ws://localhost:5280/xmpp-websocket";
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/xmpp-websocket`;
}

/** The XMPP domain: the JID's, else the page's host name unless it is an address. */
function defaultDomain(jid: string): string {
  const at = jid.lastIndexOf("@");
  if (at >= 0) return jid.slice(at + 1);
  const host = location.hostname;
  return !host || /^[\d.]+$/.test(host) || host.includes(":") ? "localhost" : host;
}

const dialog = new CommandDialog();
let session: { conn: Connection; store: Store; renderer: Renderer; stop(): void } | null = null;

function showView(view: "login" | "app"): void {
  document.body.dataset.view = view;
  byId("login-view").hidden = view !== "login";
  byId("app-view").hidden = view !== "app";
}

function setStatus(status: string, detail?: string): void {
  const el = byId("conn-status");
  el.dataset.status = status;
  el.textContent = status === "online" ? "connected" : status;
  el.title = detail ?? "";
  document.body.dataset.status = status;
}

async function login(form: HTMLFormElement): Promise<void> {
  const data = new FormData(form);
  const jid = String(data.get("jid") ?? "").trim();
  const password = String(data.get("password") ?? "");
  const service = String(data.get("service") ?? "").trim() || defaultService();
  const domain = String(data.get("domain") ?? "").trim() || defaultDomain(jid);
  const username = jid.includes("@") ? jid.slice(0, jid.lastIndexOf("@")) : jid;
  const errorEl = byId("login-error");
  const button = form.querySelector<HTMLButtonElement>("button[type=submit]")!;
  errorEl.textContent = "";
  button.disabled = true;
  button.textContent = "Connecting…";

  // A new session starts with no filter.
  byId<HTMLSelectElement>("filter-type").value = "";
  byId<HTMLSelectElement>("filter-state").value = "all";
  byId<HTMLInputElement>("filter-text").value = "";
  const store = new Store(() => renderer.schedule());
  const renderer = new Renderer(store, {
    scroller: byId("grid"),
    inner: byId("grid-inner"),
    empty: byId("empty"),
    typeSelect: byId<HTMLSelectElement>("filter-type"),
    counts: byId("counts"),
  });
  try {
    const conn = await Connection.open(
      { service, domain, username, password },
      {
        roster: (entries, removed, full) => store.applyRoster(entries, removed, full),
        presence: (p) => store.applyPresence(p),
        telemetry: (samples) => store.applyTelemetry(samples),
        status: (s, detail) => setStatus(s, detail),
      },
    );
    localStorage.setItem(SAVED, JSON.stringify({ jid, service: data.get("service") || "", domain: data.get("domain") || "" }));
    // Relative times ("5 min ago") are refreshed on the tiles in view.
    const clock = setInterval(() => store.touchAll(), 15_000);
    session = {
      conn,
      store,
      renderer,
      stop() {
        clearInterval(clock);
        renderer.destroy();
        conn.close().catch(() => {}); // the page is leaving this session either way
      },
    };
    byId("whoami").textContent = conn.jid.split("/")[0] ?? "";
    (form.elements.namedItem("password") as HTMLInputElement).value = "";
    setStatus("online");
    showView("app");
    renderer.flush();
  } catch (err) {
    renderer.destroy();
    errorEl.textContent = err instanceof RequestError ? err.text || err.condition : `Could not connect: ${String(err)}`;
  } finally {
    button.disabled = false;
    button.textContent = "Log in";
  }
}

function setupControls(): void {
  const loginForm = byId<HTMLFormElement>("login");
  const saved = JSON.parse(localStorage.getItem(SAVED) ?? "{}") as { jid?: string; service?: string; domain?: string };
  (loginForm.elements.namedItem("jid") as HTMLInputElement).value = saved.jid ?? "";
  (loginForm.elements.namedItem("service") as HTMLInputElement).value = saved.service ?? "";
  (loginForm.elements.namedItem("service") as HTMLInputElement).placeholder = defaultService();
  (loginForm.elements.namedItem("domain") as HTMLInputElement).value = saved.domain ?? "";
  loginForm.addEventListener("submit", (e) => {
    e.preventDefault();
    void login(loginForm);
  });
  (loginForm.elements.namedItem(saved.jid ? "password" : "jid") as HTMLInputElement).focus();

  byId("logout").addEventListener("click", () => {
    byId<HTMLDialogElement>("cmd-dialog").close();
    session?.stop();
    session = null;
    showView("login");
  });

  const typeSelect = byId<HTMLSelectElement>("filter-type");
  const stateSelect = byId<HTMLSelectElement>("filter-state");
  const text = byId<HTMLInputElement>("filter-text");
  typeSelect.addEventListener("change", () => session?.store.setFilter({ type: typeSelect.value }));
  stateSelect.addEventListener("change", () => session?.store.setFilter({ state: stateSelect.value as StateFilter }));
  text.addEventListener("input", () => session?.store.setFilter({ text: text.value }));

  // Tile buttons, by delegation: the grid's tiles are recycled as it scrolls.
  const grid = byId("grid");
  grid.addEventListener("click", (e) => {
    if (!session) return;
    const target = (e.target as HTMLElement).closest<HTMLElement>("[data-action]");
    const id = target?.closest<HTMLElement>(".tile")?.dataset.id;
    if (!target || !id) return;
    const { store, conn } = session;
    if (target.dataset.action === "menu") {
      if (store.menu === id) return store.setMenu(null);
      store.setMenu(id);
      const device = store.devices.get(id);
      if (device && (device.commands === null || (typeof device.commands === "object" && "error" in device.commands))) {
        store.setCommands(id, "loading");
        conn.listCommands(id).then(
          (list) => store.setCommands(id, list),
          (err: unknown) => store.setCommands(id, { error: err instanceof RequestError ? err.message : String(err) }),
        );
      }
    } else if (target.dataset.action === "run") {
      store.setMenu(null);
      void dialog.open(conn, id, { node: target.dataset.node ?? "", name: target.dataset.name ?? "" });
    }
  });
  // A click anywhere else closes an open command menu; so does Escape.
  document.addEventListener("click", (e) => {
    if (session?.store.menu && !(e.target as HTMLElement).closest(".tile-menu, .tile-menu-btn")) session.store.setMenu(null);
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && session?.store.menu) session.store.setMenu(null);
  });
}

setupControls();
showView("login");
