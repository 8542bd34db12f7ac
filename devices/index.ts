// The device types this broker ships. Adding a type: one file in devices/ (and its
// schemas in schemas/), plus one line here. See docs/device-types.md.
import type { DeviceType } from "./types.js";
import thermostat from "./thermostat.js";
import powerMeter from "./power-meter.js";
import doorSensor from "./door-sensor.js";

export type { DeviceType, CommandSpec } from "./types.js";

export const deviceTypes: readonly DeviceType[] = [thermostat, powerMeter, doorSensor];

export const deviceTypeNames = deviceTypes.map((t) => t.name);

export function deviceType(name: string | null | undefined): DeviceType | undefined {
  return deviceTypes.find((t) => t.name === name);
}

/** Finds a type by name among `types` (the shipped ones, or a test's own). */
export const deviceTypeLookup =
  (types: readonly DeviceType[]) =>
  (name: string | null | undefined): DeviceType | undefined =>
    types.find((t) => t.name === name);
