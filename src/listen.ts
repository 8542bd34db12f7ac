// Binds a server and resolves with the port it got (port 0 picks a free one). A bind
// that fails rejects with a ListenError naming the config keys it came from: the
// caller knows which setting it bound, and the CLI prints the error as one line.
import type { AddressInfo, Server } from "node:net";

/** The config keys of a listener's address, e.g. `{ port: "mqtt.tlsPort", host: "mqtt.host" }`. */
export interface ListenKeys {
  port: string;
  host: string;
}

/** A port that could not be bound; `reason` is the system's code (EADDRINUSE, EACCES, …). */
export class ListenError extends Error {
  readonly code = "SB_ERR_LISTEN";
  constructor(
    readonly key: string,
    readonly port: number,
    readonly host: string,
    readonly reason: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "ListenError";
  }
}

function listenError(err: NodeJS.ErrnoException, keys: ListenKeys, port: number, host: string): ListenError {
  const reason = err.code ?? "unknown";
  const on = (key: string, value: string | number, text: string) => new ListenError(key, port, host, reason, `${key} ${value}${text}`, { cause: err });
  switch (reason) {
    case "EADDRINUSE":
      return on(keys.port, port, " is in use");
    case "EACCES":
      // Linux lets only root (or CAP_NET_BIND_SERVICE) bind below 1024.
      return on(keys.port, port, `: permission denied${port < 1024 ? " (ports below 1024 need root or CAP_NET_BIND_SERVICE)" : ""}`);
    case "EADDRNOTAVAIL":
      return on(keys.host, host, ": address not available (not an address of this machine)");
    case "EAFNOSUPPORT":
      return on(keys.host, host, ": address family not supported here");
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return on(keys.host, host, ": host name not found");
    default:
      return on(keys.port, port, `: cannot listen on ${host} (${err.message})`);
  }
}

export function listen(server: Server, port: number, host: string, keys: ListenKeys): Promise<number> {
  return new Promise((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException) => reject(listenError(err, keys, port, host));
    server.once("error", failed);
    server.listen(port, host, () => {
      server.off("error", failed);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
