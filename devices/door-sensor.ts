import { defineDeviceType } from "./types.js";
import { doorSensorTelemetry } from "../schemas/door-sensor.js";

export default defineDeviceType({
  name: "door-sensor",
  description: "Door contact sensor",
  telemetry: doorSensorTelemetry,
  commands: {},
  measurement: "door_sensor",
  tags: [],
  units: { battery: "V" },
});
