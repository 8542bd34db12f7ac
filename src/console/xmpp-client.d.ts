// Type declarations for the part of @xmpp/client 0.14 (plain JavaScript) that the
// console uses in the browser; the Node-side declarations in types/ are not used here.
declare module "@xmpp/client" {
  export interface XmlElement {
    name: string;
    attrs: Record<string, string | undefined>;
    children: Array<XmlElement | string>;
    is(name: string, xmlns?: string): boolean;
    getChild(name: string, xmlns?: string): XmlElement | undefined;
    getChildren(name: string, xmlns?: string): XmlElement[];
    getChildElements(): XmlElement[];
    getText(): string;
    getChildText(name: string, xmlns?: string): string | null;
    toString(): string;
  }
  type Attrs = Record<string, string | number | undefined | null>;
  type Child = XmlElement | string | undefined | null | false;
  export function xml(name: string, attrs?: Attrs | null, ...children: Array<Child | Child[]>): XmlElement;

  export interface StanzaError extends Error {
    condition: string;
    text?: string;
    element?: XmlElement;
  }

  export interface Client {
    jid: { toString(): string; local: string; domain: string; resource: string } | null;
    status: string;
    reconnect: { stop(): void; delay: number };
    iqCaller: { request(stanza: XmlElement, timeout?: number): Promise<XmlElement> };
    iqCallee: { set(ns: string, name: string, handler: (ctx: { stanza: XmlElement; element: XmlElement }) => unknown): void };
    start(): Promise<unknown>;
    stop(): Promise<unknown>;
    send(element: XmlElement): Promise<void>;
    on(event: "stanza", listener: (el: XmlElement) => void): this;
    on(event: "online", listener: () => void): this;
    on(event: "offline", listener: () => void): this;
    on(event: "status", listener: (status: string) => void): this;
    on(event: "error", listener: (err: Error) => void): this;
  }
  export function client(options: { service: string; domain: string; resource?: string; username?: string; password?: string; timeout?: number }): Client;
}
