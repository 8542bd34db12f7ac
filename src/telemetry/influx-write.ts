// POST /write of InfluxDB 1.x's HTTP API (docs.influxdata.com, InfluxDB 1.x "API
// reference", /write): line protocol in the body, `db` and `precision=ns` in the
// query, basic auth from the URL's user and password. 204 is success; any other
// answer carries InfluxDB's reason as JSON `{"error":"..."}` (also in the
// X-Influxdb-Error header), which the StoreError keeps with the status.
import http from "node:http";
import https from "node:https";
import { z } from "zod";
import { StoreError } from "./store.js";

export interface LineWriter {
  /** Posts lines of line protocol; rejects with a StoreError. */
  write(body: string): Promise<void>;
  close(): void;
}

/** The longest reason kept from an answer that is not InfluxDB's JSON (a proxy's page, say). */
const MAX_REASON = 500;
/** Of an error answer, the bytes read for its reason; the rest is discarded. */
const MAX_ERROR_BODY = 64 * 1024;

export function createLineWriter(opts: { url: URL; database: string; timeoutMs: number }): LineWriter {
  const { url, database, timeoutMs } = opts;
  const secure = url.protocol === "https:";
  const request = secure ? https.request : http.request;
  // Writes are one batch at a time (the drainer keeps the spool's order): one connection, kept.
  const agent = secure ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
  const base = url.pathname.replace(/\/$/, "");
  const path = `${base}/write?${new URLSearchParams({ db: database, precision: "ns" })}`;
  const auth = url.username ? `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}` : undefined;
  const where = `InfluxDB at ${url.host}`;

  function post(body: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const settle = (err?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      const req = request(
        { agent, host: url.hostname, port: url.port || undefined, method: "POST", path, auth, headers: { "content-type": "text/plain; charset=utf-8", "content-length": body.length } },
        (res) => {
          const status = res.statusCode ?? 0;
          const chunks: Buffer[] = [];
          let kept = 0;
          res.on("data", (chunk: Buffer) => {
            if (kept >= MAX_ERROR_BODY) return;
            chunks.push(chunk);
            kept += chunk.length;
          });
          res.on("error", (err) => settle(new StoreError(`${where}: ${err.message}`)));
          res.on("end", () => {
            if (status >= 200 && status < 300) return settle();
            const reason = reasonOf(Buffer.concat(chunks).toString("utf8"), res.headers["x-influxdb-error"], res.statusMessage);
            // 400: InfluxDB parsed the request and refused the points (bad line protocol,
            // a field type conflict); retrying them cannot help. Any other status is the
            // server's state (auth, database missing, overload), which may change.
            settle(new StoreError(`${where}: ${status} ${reason}`, { status, reason, invalidPoints: status === 400 }));
          });
        },
      );
      timer = setTimeout(() => {
        settle(new StoreError(`${where}: no answer to a write within ${timeoutMs} ms`));
        req.destroy();
      }, timeoutMs);
      req.on("error", (err: NodeJS.ErrnoException) => {
        // A kept connection the server closed as this request went out (Node's http docs,
        // `request.reusedSocket`): sent again at once. A write is idempotent: the same
        // points, with the same times, overwrite themselves.
        if (req.reusedSocket && err.code === "ECONNRESET" && !settled) {
          settled = true;
          clearTimeout(timer);
          post(body).then(resolve, reject);
          return;
        }
        settle(new StoreError(`${where}: ${err.message}`));
      });
      req.end(body);
    });
  }

  return {
    write: (body) => post(Buffer.from(body, "utf8")),
    close: () => agent.destroy(),
  };
}

const InfluxErrorBody = z.object({ error: z.string() });

/** InfluxDB's `{"error":"..."}`, else its X-Influxdb-Error header, else the body or status text. */
function reasonOf(body: string, header: string | string[] | undefined, statusMessage: string | undefined): string {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {}
  const parsed = InfluxErrorBody.safeParse(json);
  if (parsed.success) return parsed.data.error;
  if (typeof header === "string" && header) return header;
  return body.trim().slice(0, MAX_REASON) || statusMessage || "no reason given";
}
