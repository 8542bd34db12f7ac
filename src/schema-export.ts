// `switchboard schema export`: each type's telemetry and command schemas as JSON
// Schema (zod 4's own output), so device makers can validate before shipping firmware.
import { z } from "zod";
import type { DeviceType } from "../devices/index.js";

export function exportSchema(type: DeviceType) {
  // Inputs, not outputs: what a device may send.
  const schema = (s: z.ZodType) => z.toJSONSchema(s, { io: "input", unrepresentable: "any" });
  return {
    type: type.name,
    description: type.description,
    measurement: type.measurement,
    tags: type.tags,
    units: type.units,
    telemetry: schema(type.telemetry),
    commands: Object.fromEntries(
      Object.entries(type.commands).map(([name, c]) => [name, { description: c.description, timeoutMs: c.timeoutMs ?? null, params: schema(c.params), result: schema(c.result) }]),
    ),
  };
}
