import { defineDeviceType } from "./types.js";
import { powerMeterTelemetry, resetEnergyParams, resetEnergyResult } from "../schemas/power-meter.js";

export default defineDeviceType({
  name: "power-meter",
  description: "Electricity meter",
  telemetry: powerMeterTelemetry,
  commands: {
    reset_energy: { description: "Reset the energy counter to zero", params: resetEnergyParams, result: resetEnergyResult },
  },
  measurement: "power_meter",
  tags: [],
  units: { voltage: "V", current: "A", power: "W", energy: "kWh" },
});
