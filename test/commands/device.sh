#!/bin/bash
# A thermostat made of Debian's mosquitto-clients only, driven by
# test/commands/roundtrip.test.ts (and usable by hand against a running broker).
#
# Usage: device.sh HOST PORT ID PASSWORD [reply|silent]
#
# mosquitto_sub (client id ID, the device's credentials, QoS 1) receives the commands
# on devices/ID/commands/#. In `reply` mode (the default) each one is answered with
# mosquitto_pub on devices/ID/replies: set_setpoint → {"setpoint": <value>},
# reboot → {}, anything else → ok:false. In `silent` mode nothing is answered.
#
# A broker lets a device have one MQTT connection only (client id = device id), so the
# mosquitto_pub that answers connects with the same client id and takes the session
# over (MQTT 3.1.1 §3.1.4); the broker keeps the device's presence and its pending
# commands across a takeover (bridges/mqtt/connections.ts). mosquitto_sub, kicked off,
# reconnects by itself about a second later and subscribes again. Meanwhile, once
# mosquitto_pub has disconnected, the device is offline: wait for the next
# `subscribed` line before sending it another command.
#
# Output, one line each:
#   subscribed                          (mosquitto_sub's SUBACK: online and listening)
#   command <topic> <qos> <payload>     (a command as mosquitto_sub printed it)
#   replied <json> | reply-failed <json>
set -u
if [ $# -lt 4 ]; then
  sed -n '2,/^$/p' "$0" >&2
  exit 64
fi
host=$1 port=$2 id=$3 password=$4 mode=${5:-reply}
common=(-V mqttv311 -h "$host" -p "$port" -i "$id" -u "$id" -P "$password")

# -d makes mosquitto_sub report each SUBACK; stdbuf: one line at a time into the pipe.
stdbuf -oL mosquitto_sub "${common[@]}" -q 1 -t "devices/$id/commands/#" -F '%t %q %p' -d |
  while IFS= read -r line; do
    case "$line" in
      "Subscribed (mid:"*) echo "subscribed" ;;
      "devices/$id/commands/"*)
        echo "command $line"
        [ "$mode" = reply ] || continue
        read -r topic _qos payload <<<"$line"
        cid=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' <<<"$payload")
        case "${topic##*/}" in
          set_setpoint)
            value=$(sed -n 's/.*"value":\([-+0-9.eE]*\).*/\1/p' <<<"$payload")
            reply="{\"id\":\"$cid\",\"ok\":true,\"result\":{\"setpoint\":$value}}" ;;
          reboot) reply="{\"id\":\"$cid\",\"ok\":true,\"result\":{}}" ;;
          *) reply="{\"id\":\"$cid\",\"ok\":false,\"error\":\"unknown command ${topic##*/}\"}" ;;
        esac
        if mosquitto_pub "${common[@]}" -q 1 -t "devices/$id/replies" -m "$reply"; then
          echo "replied $reply"
        else
          echo "reply-failed $reply"
        fi
        ;;
    esac
  done
