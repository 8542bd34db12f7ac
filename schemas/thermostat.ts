import { z } from "zod";
import { batteryVolts, empty, sampleTime } from "./common.js";

const setpoint = z.number().min(5).max(35).describe("target temperature, °C");

export const thermostatTelemetry = z.strictObject({
  temperature: z.number().min(-40).max(125).describe("temperature, °C"),
  humidity: z.number().min(0).max(100).describe("relative humidity, %"),
  battery: batteryVolts.optional(),
  setpoint: setpoint.optional(),
  ts: sampleTime.optional(),
});

export const setSetpointParams = z.strictObject({ value: setpoint });
export const setSetpointResult = z.strictObject({ setpoint });
export const rebootParams = empty;
export const rebootResult = empty;
