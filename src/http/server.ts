// The HTTP listener (docs/operations.md): /healthz, /readyz, /metrics, the operator
// console's files, and the WebSocket upgrades (MQTT at /mqtt, RFC 7395 XMPP).
import http from "node:http";
import { listen } from "../listen.js";
import { createReadStream, existsSync } from "node:fs";
import { extname, join } from "node:path";
import type { Duplex } from "node:stream";
import type { Logger } from "../log.js";

export interface HttpListener {
  readonly port: number;
  close(): Promise<void>;
}

export type UpgradeHandler = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;

export async function startHttp(opts: {
  host: string;
  port: number;
  log: Logger;
  ready: () => { ok: boolean; reason?: string; [detail: string]: unknown };
  /** Prometheus registry served at /metrics. */
  metrics?: { metrics(): Promise<string>; contentType: string };
  /** The operator console's built files, served at `/` (index.html) and `/<file>`. */
  consoleDir?: string;
  /** WebSocket endpoints by path (`/mqtt`, `/xmpp-websocket`). */
  upgrades?: Record<string, UpgradeHandler>;
}): Promise<HttpListener> {
  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const TYPES: Record<string, string> = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".map": "application/json", ".svg": "image/svg+xml", ".png": "image/png" };
  /** A file of the built console: only names in its own folder, no traversal. */
  function consoleFile(path: string, res: http.ServerResponse): (() => void) | undefined {
    if (!opts.consoleDir) return undefined;
    const name = path === "/" ? "index.html" : path.slice(1);
    if (!/^[\w.-]+$/.test(name) || name.startsWith(".")) return undefined;
    const file = join(opts.consoleDir, name);
    if (!existsSync(file)) return undefined;
    return () => {
      res.writeHead(200, { "content-type": TYPES[extname(name)] ?? "application/octet-stream", "cache-control": name === "index.html" ? "no-cache" : "max-age=3600" });
      createReadStream(file).pipe(res);
    };
  }
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const routes: Record<string, () => void> = {
      "/healthz": () => json(res, 200, { status: "ok" }),
      "/metrics": () => {
        if (!opts.metrics) return json(res, 404, { error: "not found", path });
        opts.metrics.metrics().then(
          (text) => {
            res.writeHead(200, { "content-type": opts.metrics!.contentType });
            res.end(text);
          },
          (err) => json(res, 500, { error: String(err) }),
        );
      },
      "/readyz": () => {
        const { ok, ...detail } = opts.ready();
        json(res, ok ? 200 : 503, { status: ok ? "ready" : "not ready", ...detail });
      },
    };
    const route = path ? (routes[path] ?? consoleFile(path, res)) : undefined;
    if (!route) return json(res, 404, { error: "not found", path });
    if (req.method !== "GET" && req.method !== "HEAD") return json(res, 405, { error: "method not allowed", method: req.method });
    route();
  });
  server.on("upgrade", (req, socket, head) => {
    const handler = opts.upgrades?.[(req.url ?? "/").split("?")[0]!];
    if (handler) return handler(req, socket, head);
    socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  });
  const port = await listen(server, opts.port, opts.host, { port: "http.port", host: "http.host" });
  // After the bind: a failed bind is the ListenError above, reported once by the caller.
  server.on("error", (err) => opts.log.error({ err }, "http listener error"));
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
