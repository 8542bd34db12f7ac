// What a device type is (docs/device-types.md): its telemetry schema, its commands, and how
// its samples are stored. A type file in devices/ binds schemas from schemas/.
import type { z } from "zod";

export interface CommandSpec {
  description: string;
  params: z.ZodObject;
  result: z.ZodObject;
  /** Overrides `commands.timeoutMs` for this command. */
  timeoutMs?: number;
}

export interface DeviceType {
  name: string;
  description: string;
  /** A strict object schema; `ts` (optional) is the sample time. */
  telemetry: z.ZodObject;
  commands: Record<string, CommandSpec>;
  /** InfluxDB measurement (and embedded-store series) name. */
  measurement: string;
  /** Telemetry keys stored as tags rather than fields (strings only). */
  tags: readonly string[];
  /** Unit of each telemetry key, for people and for read-outs. */
  units: Record<string, string>;
  /**
   * XEP-0325 (control) parameters, compatibility support: each maps a control
   * parameter name onto one parameter of one of the commands above.
   */
  control?: Record<string, { command: string; param: string }>;
}

export const defineDeviceType = (type: DeviceType): DeviceType => type;
