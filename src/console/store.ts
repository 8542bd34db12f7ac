// The console's state: every device (type, presence, last seen, latest telemetry,
// its commands once loaded) and the filters. Updates only mark devices dirty and ask
// for one render per animation frame; the filtered, sorted list is recomputed lazily.
import type { CommandInfo, PresenceUpdate, RosterEntry, Sample } from "./xmpp.js";

export type StateFilter = "all" | "online" | "offline";

export interface Device {
  id: string;
  type: string;
  /** Available resources (`mqtt` for an MQTT device). */
  resources: Set<string>;
  /** When it was last seen (ISO), from the XEP-0203 stamp or the moment it went offline. */
  lastSeen: string | null;
  /** The latest telemetry values and their sample time. */
  values: Record<string, unknown> | null;
  valuesTs: string | null;
  commands: CommandInfo[] | "loading" | { error: string } | null;
}

export const isOnline = (d: Device) => d.resources.size > 0;

export class Store {
  readonly devices = new Map<string, Device>();
  filter: { type: string; state: StateFilter; text: string } = { type: "", state: "all", text: "" };
  /** Devices whose tile must be redrawn at the next frame. */
  readonly dirty = new Set<string>();
  /** The filtered list (or the set of types) must be recomputed. */
  private listStale = true;
  private list: Device[] = [];
  /** Every device sorted by id, recomputed only when the roster changes. */
  private sorted: Device[] | null = null;
  private typeList: string[] = [];
  private online = 0;
  /** The device whose command menu is open. */
  menu: string | null = null;

  constructor(private readonly changed: () => void) {}

  private touch(id: string | null, listChanged = false): void {
    if (id) this.dirty.add(id);
    if (listChanged) this.listStale = true;
    this.changed();
  }

  /** The whole roster (`full`: devices not in it are dropped) or a roster push. */
  applyRoster(entries: RosterEntry[], removed: string[], full: boolean): void {
    if (full) {
      const keep = new Set(entries.map((e) => e.id));
      for (const id of this.devices.keys()) if (!keep.has(id)) removed.push(id);
    }
    for (const id of removed) {
      const d = this.devices.get(id);
      if (d && isOnline(d)) this.online--;
      this.devices.delete(id);
    }
    for (const { id, type } of entries) {
      const d = this.devices.get(id);
      if (d) d.type = type;
      else this.devices.set(id, { id, type, resources: new Set(), lastSeen: null, values: null, valuesTs: null, commands: null });
      this.dirty.add(id);
    }
    this.sorted = null;
    this.touch(null, true);
  }

  applyPresence(p: PresenceUpdate): void {
    const d = this.devices.get(p.id);
    if (!d) return;
    const was = isOnline(d);
    if (p.available) d.resources.add(p.resource ?? "");
    else if (p.resource === null) d.resources.clear();
    else d.resources.delete(p.resource);
    const now = isOnline(d);
    if (p.stamp) d.lastSeen = p.stamp;
    else if (was && !now) d.lastSeen = new Date().toISOString();
    if (was !== now) this.online += now ? 1 : -1;
    this.touch(d.id, was !== now && this.filter.state !== "all");
  }

  /** Keeps the latest sample per device (by sample time). */
  applyTelemetry(samples: Sample[]): void {
    for (const s of samples) {
      const d = this.devices.get(s.device);
      if (!d || (d.valuesTs && d.valuesTs > s.ts)) continue;
      d.values = s.values;
      d.valuesTs = s.ts;
      this.dirty.add(d.id);
    }
    if (samples.length) this.changed();
  }

  setCommands(id: string, commands: Device["commands"]): void {
    const d = this.devices.get(id);
    if (!d) return;
    d.commands = commands;
    this.touch(id);
  }

  setMenu(id: string | null): void {
    if (this.menu) this.dirty.add(this.menu);
    this.menu = id;
    this.touch(id);
  }

  setFilter(change: Partial<Store["filter"]>): void {
    this.filter = { ...this.filter, ...change };
    this.touch(null, true);
  }

  /** Marks every device dirty (e.g. to refresh relative times). */
  touchAll(): void {
    for (const id of this.devices.keys()) this.dirty.add(id);
    this.changed();
  }

  /** The devices that pass the filters, sorted by id. */
  visible(): Device[] {
    if (this.listStale) {
      const { type, state, text } = this.filter;
      const needle = text.trim().toLowerCase();
      if (!this.sorted) {
        this.sorted = [...this.devices.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
        this.typeList = [...new Set(this.sorted.map((d) => d.type))].sort();
      }
      const all = this.sorted;
      this.list = type || state !== "all" || needle ? all.filter((d) => (!type || d.type === type) && (state === "all" || isOnline(d) === (state === "online")) && (!needle || d.id.includes(needle))) : all;
      this.listStale = false;
    }
    return this.list;
  }

  types(): string[] {
    this.visible();
    return this.typeList;
  }

  counts(): { total: number; online: number } {
    return { total: this.devices.size, online: this.online };
  }
}
