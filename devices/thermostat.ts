import { defineDeviceType } from "./types.js";
import { rebootParams, rebootResult, setSetpointParams, setSetpointResult, thermostatTelemetry } from "../schemas/thermostat.js";

export default defineDeviceType({
  name: "thermostat",
  description: "Room thermostat",
  telemetry: thermostatTelemetry,
  commands: {
    set_setpoint: { description: "Set the target temperature", params: setSetpointParams, result: setSetpointResult },
    reboot: { description: "Restart the device", params: rebootParams, result: rebootResult, timeoutMs: 30_000 },
  },
  measurement: "thermostat",
  tags: [],
  units: { temperature: "°C", humidity: "%", battery: "V", setpoint: "°C" },
  control: { setpoint: { command: "set_setpoint", param: "value" } },
});
