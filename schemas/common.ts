// Pieces shared by the device schemas (docs/device-types.md).
import { z } from "zod";

const DAY_MS = 24 * 3600 * 1000;

/**
 * Optional sample time: epoch milliseconds or an ISO 8601 string with a zone.
 * Not more than one day in the future (a device clock that far off is wrong).
 */
export const sampleTime = z
  .union([z.number().int().positive(), z.iso.datetime({ offset: true })], { error: "must be epoch milliseconds or an ISO 8601 date-time" })
  // zod runs this even when the format check failed: a time that does not parse (NaN)
  // is reported by that check alone, not also as lying in the future.
  .refine((v) => !((typeof v === "number" ? v : Date.parse(v)) > Date.now() + DAY_MS), { error: "must not be more than one day in the future" })
  .describe("sample time: epoch milliseconds or ISO 8601; receipt time when absent");

export const batteryVolts = z.number().min(0).max(5).describe("battery voltage, V");

/** The `{}` of a command without parameters or result. */
export const empty = z.strictObject({});
