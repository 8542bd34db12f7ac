// The MQTT topic table of a device (docs/mqtt.md, "Topics"): the one place that
// formats and parses `devices/<id>/telemetry | commands/<name> | replies | errors`.
// The ACL, the telemetry path and the command delivery all use it.

export type DeviceTopic =
  | { device: string; leaf: "telemetry" }
  | { device: string; leaf: "replies" }
  | { device: string; leaf: "errors" }
  | { device: string; leaf: "commands"; command: string };

export const PREFIX = "devices";

export const telemetryTopic = (device: string) => `${PREFIX}/${device}/telemetry`;
export const repliesTopic = (device: string) => `${PREFIX}/${device}/replies`;
export const errorsTopic = (device: string) => `${PREFIX}/${device}/errors`;
export const commandTopic = (device: string, command: string) => `${PREFIX}/${device}/commands/${command}`;

/** The device topic a topic name is, or null for anything outside the table. */
export function parseTopic(topic: string): DeviceTopic | null {
  const levels = topic.split("/");
  if (levels[0] !== PREFIX || !levels[1]) return null;
  const [, device, leaf, command] = levels as [string, string, string | undefined, string | undefined];
  if (levels.length === 3 && (leaf === "telemetry" || leaf === "replies" || leaf === "errors")) return { device, leaf };
  if (levels.length === 4 && leaf === "commands" && command) return { device, leaf, command };
  return null;
}
