import { z } from "zod";
import { batteryVolts, sampleTime } from "./common.js";

export const doorSensorTelemetry = z.strictObject({
  open: z.boolean().describe("true while the door is open"),
  battery: batteryVolts.optional(),
  ts: sampleTime.optional(),
});
