// A point's time in the store: its millisecond time plus six sub-millisecond digits
// (see point-clock.ts for how the ingest chooses them).
import { hash } from "node:crypto";

export const SLOTS = 1_000_000;

/** The content hash's digits for samples spooled without a point time (before the clock existed). */
export function contentSlot(content: string): number {
  return parseInt(hash("sha1", content, "hex").slice(0, 8), 16) % SLOTS;
}

/** A point time in nanoseconds, as decimal text: the millisecond time and the slot's six digits. */
export const pointTime = (time: number, slot: number): string => `${time}${String(slot).padStart(6, "0")}`;

/** What identifies a sample's content: JSON of [device, tags, fields]. */
export function contentKey(device: string, tagsJson: string, fieldsJson: string): string {
  return `[${JSON.stringify(device)},${tagsJson},${fieldsJson}]`;
}

