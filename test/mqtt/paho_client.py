#!/usr/bin/python3
# An MQTT 3.1.1 client no one here wrote: Debian's python3-paho-mqtt, driven by
# test/mqtt/paho.test.ts. Run by /usr/bin/python3 (the only interpreter that
# sees the Debian package). Prints one JSON object per line on stdout:
#   {"event": "connack", "rc": N}
#   {"event": "suback", "granted": [q, ...]}      (128 = refused, MQTT 3.1.1 §3.9.3)
#   {"event": "message", "topic": "...", "payload": "..."}
#   {"event": "done"} / {"event": "fatal", "error": "..."}
#
# usage: paho_client.py HOST PORT CLIENT_ID USERNAME PASSWORD MODE [TOPIC ...]
#   MODE connect:   connect, report the CONNACK, exit (0 if accepted, 1 if refused)
#   MODE subscribe: connect, subscribe to every TOPIC in ONE SUBSCRIBE packet at QoS 1,
#                   report the SUBACK, then wait (≤ 10 s) for one message, report it,
#                   disconnect cleanly and exit 0
import json
import sys
import threading

import paho.mqtt.client as mqtt

STEP = 10.0


def out(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main():
    host, port, client_id, username, password, mode = sys.argv[1:7]
    topics = sys.argv[7:]
    connected = threading.Event()
    subscribed = threading.Event()
    received = threading.Event()
    state = {"rc": None}

    client = mqtt.Client(client_id=client_id, clean_session=True, protocol=mqtt.MQTTv311)
    client.username_pw_set(username, password)

    def on_connect(_client, _userdata, _flags, rc):
        state["rc"] = rc
        out(event="connack", rc=rc)
        connected.set()

    def on_subscribe(_client, _userdata, _mid, granted_qos):
        out(event="suback", granted=list(granted_qos))
        subscribed.set()

    def on_message(_client, _userdata, msg):
        out(event="message", topic=msg.topic, payload=msg.payload.decode("utf-8", "replace"), qos=msg.qos)
        received.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(host, int(port), keepalive=30)
    client.loop_start()
    try:
        if not connected.wait(STEP):
            out(event="fatal", error="no CONNACK")
            return 2
        if state["rc"] != 0:
            return 1
        if mode == "connect":
            client.disconnect()
            out(event="done")
            return 0
        client.subscribe([(t, 1) for t in topics])
        if not subscribed.wait(STEP):
            out(event="fatal", error="no SUBACK")
            return 2
        if not received.wait(STEP):
            out(event="fatal", error="no message")
            return 2
        client.disconnect()
        out(event="done")
        return 0
    finally:
        client.loop_stop()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - report anything to the test
        out(event="fatal", error=repr(e))
        sys.exit(3)
