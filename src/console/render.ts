// Rendering: a windowed grid of device tiles. Only the rows in view (plus a little
// overscan) exist in the DOM; tile elements are recycled as the page scrolls. Store
// changes schedule one flush per animation frame, which redraws only dirty tiles, so
// thousands of presence and telemetry updates per second cost a few DOM writes.
import { ago, formatValue, h } from "./dom.js";
import { isOnline, type Device, type Store } from "./store.js";

/** Units per device type and telemetry key, taken from devices/ at build time. */
declare const __UNITS__: Record<string, Record<string, string>>;
const UNITS: Record<string, Record<string, string>> = typeof __UNITS__ === "object" ? __UNITS__ : {};

const TILE_MIN_WIDTH = 232;
const TILE_HEIGHT = 176;
const GAP = 12;
const PAD = 16;
const OVERSCAN_ROWS = 2;
const MAX_VALUES = 4;

/** One tile's elements, created once and reused for whichever device scrolls into view. */
class TileView {
  readonly root: HTMLElement;
  private readonly idEl = h("span", { class: "tile-id" });
  private readonly typeEl = h("span", { class: "tile-type" });
  private readonly stateEl = h("span", { class: "tile-state" });
  private readonly seenEl = h("span", { class: "tile-seen" });
  private readonly valuesEl = h("dl", { class: "tile-values" });
  private readonly tsEl = h("span", { class: "tile-ts" });
  private readonly menuBtn = h("button", { type: "button", class: "tile-menu-btn", "data-action": "menu", "aria-haspopup": "menu", "aria-expanded": "false" }, "Commands");
  private readonly menuEl = h("div", { class: "tile-menu", role: "menu", hidden: true });
  id = "";
  private x = -1;
  private y = -1;
  private w = -1;

  constructor() {
    this.root = h(
      "article",
      { class: "tile" },
      h("header", { class: "tile-head" }, h("span", { class: "dot", "aria-hidden": "true" }), this.idEl, this.typeEl),
      h("div", { class: "tile-status" }, this.stateEl, this.seenEl),
      this.valuesEl,
      h("footer", { class: "tile-foot" }, this.tsEl, this.menuBtn),
      this.menuEl,
    );
  }

  place(x: number, y: number, w: number): void {
    if (x === this.x && y === this.y && w === this.w) return;
    this.x = x;
    this.y = y;
    this.w = w;
    this.root.style.transform = `translate(${x}px, ${y}px)`;
    this.root.style.width = `${w}px`;
    this.root.style.height = `${TILE_HEIGHT}px`;
  }

  update(d: Device, menuOpen: boolean, now: number): void {
    this.id = d.id;
    const online = isOnline(d);
    const root = this.root;
    root.dataset.id = d.id;
    root.dataset.type = d.type;
    root.dataset.state = online ? "online" : "offline";
    root.classList.toggle("online", online);
    root.classList.toggle("offline", !online);
    root.classList.toggle("menu-open", menuOpen);
    this.idEl.textContent = d.id;
    this.idEl.title = d.id;
    this.typeEl.textContent = d.type || "device";
    this.stateEl.textContent = online ? "online" : "offline";
    this.seenEl.textContent = online ? "" : d.lastSeen ? `last seen ${ago(d.lastSeen, now)}` : "never seen";
    this.seenEl.title = d.lastSeen ? new Date(d.lastSeen).toLocaleString() : "";

    // Up to four values on the tile; all of them in its tooltip.
    const units = UNITS[d.type] ?? {};
    const entries = d.values ? Object.entries(d.values) : [];
    const rows = entries.slice(0, MAX_VALUES).map(([key, value]) => h("div", { class: "value", "data-key": key }, h("dt", {}, key), h("dd", {}, formatValue(value), units[key] ? h("span", { class: "unit" }, ` ${units[key]}`) : null)));
    this.valuesEl.title = entries.map(([key, value]) => `${key}: ${formatValue(value, units[key])}`).join("\n");
    if (rows.length) this.valuesEl.replaceChildren(...rows);
    else this.valuesEl.replaceChildren(h("div", { class: "no-values" }, "no telemetry yet"));
    this.tsEl.textContent = d.valuesTs ? `updated ${ago(d.valuesTs, now)}` : "";
    this.tsEl.title = d.valuesTs ? new Date(d.valuesTs).toLocaleString() : "";

    this.menuBtn.setAttribute("aria-expanded", String(menuOpen));
    this.menuEl.hidden = !menuOpen;
    if (menuOpen) {
      const c = d.commands;
      if (c === null || c === "loading") this.menuEl.replaceChildren(h("div", { class: "menu-note" }, "Loading commands…"));
      else if ("error" in c) this.menuEl.replaceChildren(h("div", { class: "menu-note error" }, c.error));
      else if (!c.length) this.menuEl.replaceChildren(h("div", { class: "menu-note" }, "No commands"));
      else this.menuEl.replaceChildren(...c.map((cmd) => h("button", { type: "button", role: "menuitem", class: "menu-item", "data-action": "run", "data-node": cmd.node, "data-name": cmd.name }, cmd.name)));
    }
  }
}

export interface GridElements {
  scroller: HTMLElement;
  inner: HTMLElement;
  empty: HTMLElement;
  typeSelect: HTMLSelectElement;
  counts: HTMLElement;
}

export class Renderer {
  private frame = 0;
  private readonly mounted = new Map<string, TileView>();
  private readonly pool: TileView[] = [];
  private layoutKey = "";
  private typesKey = "";
  private countsKey = "";
  private readonly observer: ResizeObserver;

  constructor(
    private readonly store: Store,
    private readonly els: GridElements,
  ) {
    els.scroller.addEventListener("scroll", () => this.schedule(), { passive: true });
    this.observer = new ResizeObserver(() => this.schedule());
    this.observer.observe(els.scroller);
  }

  /** Asks for one flush at the next animation frame (many calls, one flush). */
  schedule(): void {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  /** Redraws what changed: the visible window of the filtered list, dirty tiles only. */
  flush(): void {
    this.frame = 0;
    const { store, els } = this;
    const list = store.visible();
    const now = Date.now();

    // Layout: columns from the width, rows from the list; read before any write.
    const width = els.scroller.clientWidth;
    const viewH = els.scroller.clientHeight;
    const top = els.scroller.scrollTop;
    const cols = Math.max(1, Math.floor((width - 2 * PAD + GAP) / (TILE_MIN_WIDTH + GAP)));
    const tileW = Math.floor((width - 2 * PAD - GAP * (cols - 1)) / cols);
    const rowH = TILE_HEIGHT + GAP;
    const rows = Math.ceil(list.length / cols);
    const layoutKey = `${cols}:${tileW}:${rows}`;
    if (layoutKey !== this.layoutKey) {
      this.layoutKey = layoutKey;
      els.inner.style.height = `${rows ? PAD * 2 + rows * rowH - GAP : 0}px`;
    }
    const firstRow = Math.max(0, Math.floor((top - PAD) / rowH) - OVERSCAN_ROWS);
    const lastRow = Math.min(rows - 1, Math.ceil((top + viewH - PAD) / rowH) + OVERSCAN_ROWS);
    const from = firstRow * cols;
    const to = Math.min(list.length, (lastRow + 1) * cols);

    // Tiles leaving the window go back to the pool.
    const wanted = new Set<string>();
    for (let i = from; i < to; i++) wanted.add(list[i]!.id);
    for (const [id, view] of this.mounted) {
      if (wanted.has(id)) continue;
      this.mounted.delete(id);
      view.root.remove();
      this.pool.push(view);
    }
    for (let i = from; i < to; i++) {
      const d = list[i]!;
      let view = this.mounted.get(d.id);
      const fresh = !view;
      if (!view) {
        view = this.pool.pop() ?? new TileView();
        this.mounted.set(d.id, view);
      }
      if (fresh || store.dirty.has(d.id)) view.update(d, store.menu === d.id, now);
      const row = Math.floor(i / cols);
      view.place(PAD + (i % cols) * (tileW + GAP), PAD + row * rowH, tileW);
      if (fresh) els.inner.append(view.root);
    }
    store.dirty.clear();

    els.empty.hidden = list.length > 0;
    els.empty.textContent = store.devices.size ? "No device matches the filters." : "No devices provisioned yet.";

    const types = store.types();
    const typesKey = types.join("\n");
    if (typesKey !== this.typesKey) {
      this.typesKey = typesKey;
      const current = els.typeSelect.value;
      els.typeSelect.replaceChildren(h("option", { value: "" }, "All types"), ...types.map((t) => h("option", { value: t }, t || "(no type)")));
      els.typeSelect.value = types.includes(current) ? current : "";
    }
    const { total, online } = store.counts();
    const countsKey = `${total}:${online}:${list.length}`;
    if (countsKey !== this.countsKey) {
      this.countsKey = countsKey;
      els.counts.replaceChildren(
        h("span", { class: "count-online" }, h("b", {}, String(online)), " online"),
        h("span", { class: "count-offline" }, h("b", {}, String(total - online)), " offline"),
        h("span", { class: "count-shown", hidden: list.length === total }, `${list.length} shown`),
      );
    }
  }

  destroy(): void {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.observer.disconnect();
    for (const view of this.mounted.values()) view.root.remove();
    this.mounted.clear();
    this.pool.length = 0;
    this.layoutKey = this.typesKey = this.countsKey = "";
  }
}
