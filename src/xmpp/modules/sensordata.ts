// XEP-0323 (Sensor Data) read-outs, as compatibility support: the XSF retracted the
// IoT XEPs, but Smack and slixmpp ship them. A momentary read-out is answered from
// the device's last sample; a historical one (`from`/`to`) from the store. Served on
// the device's bare JID and on its broker-run `/mqtt` resource.
import xml, { type Element } from "@xmpp/xml";
import { StanzaError } from "../errors.js";
import type { Router } from "../router.js";
import type { Registry } from "../../registry/registry.js";
import type { DeviceType } from "../../../devices/index.js";
import type { Ingest } from "../../telemetry/ingest.js";
import type { TelemetryStore } from "../../telemetry/store.js";
import type { Sample } from "../../telemetry/sample.js";
import type { DeviceAgent } from "./device-agent.js";
import { receivesPresenceOf } from "../visibility.js";
import type { Account } from "../../registry/registry.js";

export const NS_SENSORDATA = "urn:xmpp:iot:sensordata";
const HISTORY_LIMIT = 1000;

export function sensorDataModule(deps: { router: Router; registry: Registry; agent: DeviceAgent; ingest: Ingest; store: TelemetryStore; deviceType: (name: string | null) => DeviceType | undefined }): void {
  const { router, registry, agent, ingest, store, deviceType } = deps;

  function fieldsOf(sample: Sample, type: DeviceType, momentary: boolean): Element {
    const values = Object.entries({ ...sample.tags, ...sample.fields }).map(([name, value]) => {
      const common = { name, automaticReadout: "true", ...(momentary ? { momentary: "true" } : { historicalOther: "true" }) };
      if (typeof value === "number") return xml("numeric", { ...common, value: String(value), unit: type.units[name] ?? "" });
      if (typeof value === "boolean") return xml("boolean", { ...common, value: String(value) });
      return xml("string", { ...common, value });
    });
    return xml("timestamp", { value: new Date(sample.time).toISOString() }, ...values);
  }

  async function readOut(requester: string, viewer: Account | undefined, device: string, from: string, iq: Element, req: Element): Promise<Element | StanzaError> {
    const account = registry.get(device);
    const type = account?.role === "device" ? deviceType(account.type) : undefined;
    if (!account || !type) return new StanzaError("item-not-found", "no such device");
    if (viewer && viewer.name !== device && !receivesPresenceOf(viewer, account)) return new StanzaError("forbidden", "not allowed to read this device");
    const seqnr = req.attrs.seqnr ?? iq.attrs.id!;
    const historical = req.attrs.historical === "true" || req.attrs.from !== undefined || req.attrs.to !== undefined;
    let samples: Sample[];
    if (historical) {
      const start = req.attrs.from ? Date.parse(req.attrs.from) : 0;
      const end = req.attrs.to ? Date.parse(req.attrs.to) : Date.now();
      if (Number.isNaN(start) || Number.isNaN(end)) return new StanzaError("bad-request", "from and to must be xs:dateTime values");
      samples = await store.query(device, type.measurement, start, end, HISTORY_LIMIT);
    } else {
      const last = ingest.lastSample(device);
      samples = last ? [last] : [];
    }
    // §3: the request is accepted at once, the fields follow in a message.
    const fields = xml("fields", { xmlns: NS_SENSORDATA, seqnr, done: "true" }, xml("node", { nodeId: device }, ...samples.map((s) => fieldsOf(s, type, !historical))));
    setImmediate(() => {
      try {
        router.routeFromServer(xml("message", { from, to: requester }, fields));
      } catch {}
    });
    return xml("iq", { type: "result" }, xml("accepted", { xmlns: NS_SENSORDATA, seqnr }));
  }

  agent.addFeature(NS_SENSORDATA);
  agent.handle("get", NS_SENSORDATA, "req", (session, iq, req) => readOut(iq.attrs.from!, undefined, session.account.name, session.full, iq, req));
  router.events.on(`iq-get/bare/${NS_SENSORDATA}:req`, (event) => {
    return router.answer(event, readOut(event.from.toString(), event.origin?.account, event.to.local, event.to.toString(), event.stanza, event.payload!));
  });
}
