import { z } from "zod";
import { empty, sampleTime } from "./common.js";

const energy = z.number().min(0).describe("energy since the last reset, kWh");

export const powerMeterTelemetry = z.strictObject({
  voltage: z.number().min(0).max(1000).describe("voltage, V"),
  current: z.number().min(0).max(1000).describe("current, A"),
  power: z.number().min(-1_000_000).max(1_000_000).describe("active power, W (negative when exporting)"),
  energy,
  ts: sampleTime.optional(),
});

export const resetEnergyParams = empty;
export const resetEnergyResult = z.strictObject({ energy: energy.optional() });
