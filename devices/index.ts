// The device types this broker knows. A later issue binds each to its zod schemas;
// for now a type is a name that accounts of role `device` must carry.
export const deviceTypeNames = ["thermostat", "power-meter", "door-sensor"] as const;
export type DeviceTypeName = (typeof deviceTypeNames)[number];

export function isDeviceType(name: string): name is DeviceTypeName {
  return (deviceTypeNames as readonly string[]).includes(name);
}
