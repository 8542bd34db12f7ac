// Minimal declarations for @xmpp/client 0.14 (JS only), as the tests use it.
declare module "@xmpp/client" {
  import type { Element } from "@xmpp/xml";
  import type { JID } from "@xmpp/jid";
  import type { EventEmitter } from "node:events";

  export { default as xml } from "@xmpp/xml";
  export { jid } from "@xmpp/jid";

  export interface ClientOptions {
    /** e.g. "xmpp://127.0.0.1:5222" */
    service?: string;
    domain?: string;
    resource?: string;
    username?: string;
    password?: string;
    lang?: string;
    timeout?: number;
  }

  export interface IqCaller {
    /** Resolves with the result IQ, rejects with a StanzaError on an error IQ or on timeout. */
    request(stanza: Element, timeout?: number): Promise<Element>;
    get(element: Element, to?: string, timeout?: number): Promise<Element | undefined>;
    set(element: Element, to?: string, timeout?: number): Promise<Element | undefined>;
  }

  export interface Client extends EventEmitter {
    jid: JID | null;
    status: string;
    timeout: number;
    /** The transport: after STARTTLS an @xmpp/tls Socket whose `socket` is the node:tls TLSSocket. */
    socket: { socket?: import("node:tls").TLSSocket | import("node:net").Socket | null } | null;
    iqCaller: IqCaller;
    /** Answers IQs get/set whose payload is `<name xmlns=ns>` with what the handler returns. */
    iqCallee: {
      get(ns: string, name: string, handler: (ctx: { stanza: Element; element: Element }) => Element | Promise<Element>): void;
      set(ns: string, name: string, handler: (ctx: { stanza: Element; element: Element }) => Element | Promise<Element>): void;
    };
    reconnect: { stop(): void; delay: number };
    start(): Promise<JID>;
    stop(): Promise<Element | undefined>;
    send(element: Element): Promise<void>;
    on(event: "stanza" | "element" | "nonza", listener: (element: Element) => void): this;
    on(event: "online", listener: (jid: JID) => void): this;
    on(event: "error", listener: (error: Error) => void): this;
    on(event: "status", listener: (status: string, ...args: unknown[]) => void): this;
    on(event: "offline", listener: (element?: Element) => void): this;
    on(event: string, listener: (...args: any[]) => void): this;
  }

  export function client(options?: ClientOptions): Client;
}
