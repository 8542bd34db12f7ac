// Minimal declarations for the untyped packages we use (xmpp.js 0.14 ships JS only).
declare module "@xmpp/xml" {
  export type Node = Element | string;
  export class Element {
    constructor(name: string, attrs?: Record<string, string | number | undefined | null>);
    name: string;
    parent: Element | null;
    children: Node[];
    attrs: Record<string, string>;
    is(name: string, xmlns?: string): boolean;
    getName(): string;
    getNS(): string | undefined;
    getAttr(name: string): string | undefined;
    getChild(name: string, xmlns?: string): Element | undefined;
    getChildren(name: string, xmlns?: string): Element[];
    getChildElements(): Element[];
    getText(): string;
    getChildText(name: string, xmlns?: string): string | null;
    c(name: string, attrs?: Record<string, string | number | undefined | null>): Element;
    cnode(child: Element): Element;
    append(...nodes: Node[]): void;
    t(text: string): Element;
    up(): Element;
    root(): Element;
    attr(name: string, value?: string | null): any;
    remove(el: Element | string, xmlns?: string): Element;
    toString(): string;
    write(writer: (chunk: string) => void): void;
  }
  export function escapeXML(s: string): string;
  export function escapeXMLText(s: string): string;
  export default function xml(
    name: string,
    attrs?: Record<string, string | number | undefined | null> | null,
    ...children: Array<Node | undefined | null | false | Array<Node>>
  ): Element;
}

declare module "@xmpp/xml/lib/parse.js" {
  import type { Element } from "@xmpp/xml";
  /** One serialised element back into an Element; throws on XML that is not well formed. */
  export default function parse(data: string): Element;
}

declare module "@xmpp/jid" {
  export class JID {
    constructor(local: string | null | undefined, domain: string, resource?: string | null);
    local: string;
    domain: string;
    resource: string;
    bare(): JID;
    toString(unescape?: boolean): string;
    equals(other: JID): boolean;
  }
  export function jid(s: string): JID;
  export function parse(s: string): JID;
  const j: { (s: string): JID; JID: typeof JID; parse: typeof parse };
  export default j;
}

declare module "saslprep" {
  export default function saslprep(input: string, opts?: { allowUnassigned?: boolean }): string;
}
