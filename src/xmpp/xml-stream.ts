// The server's XML stream reader: saxes (strict) tokenizes, @xmpp/xml Elements are
// built for each top-level child of <stream:stream>. It enforces RFC 6120 §11's
// restricted XML and the size, fan-out and depth limits as the bytes arrive: the
// stream header, an open tag, an attribute value or a text node that never ends
// counts against the size limit like a stanza, so one bad stream costs at most one
// limit (plus one read) of memory, and nothing downstream recurses deeper than the
// depth limit.
import { SaxesParser, type SaxesTagPlain } from "saxes";
import { Element } from "@xmpp/xml";
import { StreamError } from "./errors.js";

export interface StreamHandlers {
  streamStart(name: string, attrs: Record<string, string>): void;
  stanza(element: Element): void;
  streamEnd(): void;
  error(error: StreamError): void;
}

export interface StreamLimits {
  /** Largest top-level element, in characters of the decoded stream (≈ bytes for XML). */
  maxStanzaBytes: number;
  /** Most elements inside one stanza. */
  maxChildren: number;
  /** Deepest nesting inside the stream: a stanza is 1, its child 2. */
  maxDepth: number;
}

const WHITESPACE = /^[ \t\r\n]*$/;

export class XMLStreamReader {
  private readonly parser = new SaxesParser({ xmlns: false });
  private depth = 0;
  private current: Element | null = null;
  private elementsInStanza = 0;
  /** Character offset where the current top-level element (or gap) began. */
  private stanzaStart = 0;
  private written = 0;
  /** Whitespace keepalives taken out before saxes (it would buffer them until the next tag). */
  private skipped = 0;
  /** Where the last top-level element (or the stream header) ended. */
  private boundary = 0;
  /** Between stanzas with nothing but whitespace since the last one. */
  private idle = false;
  private failed = false;
  /**
   * saxes reports a mismatched end tag as a closetag of the open element followed
   * by an error, so a completed element is held until the next event shows that
   * no error followed it.
   */
  private completed: (() => void) | null = null;

  constructor(
    public limits: StreamLimits,
    private readonly handlers: StreamHandlers,
  ) {
    const p = this.parser;
    p.on("opentag", (tag) => this.open(tag as SaxesTagPlain));
    p.on("closetag", () => this.close());
    p.on("text", (text) => this.text(text));
    p.on("cdata", (text) => this.text(text));
    // RFC 6120 §11.1: no comments, processing instructions, DTDs or entity declarations.
    p.on("doctype", () => this.fail(new StreamError("restricted-xml", "DTDs are not allowed")));
    p.on("comment", () => this.fail(new StreamError("restricted-xml", "comments are not allowed")));
    p.on("processinginstruction", () => this.fail(new StreamError("restricted-xml", "processing instructions are not allowed")));
    p.on("error", (err) =>
      // Only the five predefined entities exist in XMPP (§11.1); any other reference is restricted, not malformed.
      this.fail(
        /undefined entity/.test(err.message)
          ? new StreamError("restricted-xml", "entity references other than the predefined five are not allowed")
          : new StreamError("not-well-formed", err.message.replace(/^[^:]*:\d+:\d+: /, "")),
      ),
    );
  }

  write(chunk: string): void {
    if (this.failed) return;
    // RFC 6120 §4.6.1: whitespace between stanzas is a keepalive. Kept from saxes, a
    // client that sends only keepalives for days never fills the size limit.
    if (this.idle && WHITESPACE.test(chunk)) {
      this.written += chunk.length;
      this.skipped += chunk.length;
      this.stanzaStart = this.written;
      return;
    }
    const before = this.written;
    this.parser.write(chunk);
    this.flush();
    this.written += chunk.length;
    this.idle = this.depth === 1 && !this.failed && WHITESPACE.test(chunk.slice(Math.max(0, this.boundary - before)));
    // saxes reports a header, a tag or a text node only when it ends, and buffers it
    // until then: whatever has not ended is caught here, after each chunk, at any depth.
    if (!this.failed) this.checkSize(this.written);
  }

  /** The peer closed its side: no more input. */
  get closed(): boolean {
    return this.failed;
  }

  /** The parser's position in the input as written, keepalives taken out included. */
  private position(): number {
    return this.parser.position + this.skipped;
  }

  private checkSize(position: number): boolean {
    if (position - this.stanzaStart > this.limits.maxStanzaBytes) {
      const what = this.depth === 0 ? "stream header" : "stanza";
      this.fail(new StreamError("policy-violation", `${what} larger than ${this.limits.maxStanzaBytes} bytes`));
      return false;
    }
    return true;
  }

  private flush(): void {
    const completed = this.completed;
    this.completed = null;
    completed?.();
  }

  private fail(error: StreamError): void {
    this.completed = null;
    if (this.failed) return;
    this.failed = true;
    this.current = null;
    this.handlers.error(error);
  }

  private open(tag: SaxesTagPlain): void {
    this.flush();
    if (this.failed) return;
    const attrs = tag.attributes as Record<string, string>;
    if (this.depth === 0) {
      if (!this.checkSize(this.position())) return;
      this.depth = 1;
      this.stanzaStart = this.boundary = this.position();
      this.handlers.streamStart(tag.name, attrs);
      return;
    }
    if (!this.checkSize(this.position())) return;
    if (++this.elementsInStanza > this.limits.maxChildren) {
      this.fail(new StreamError("policy-violation", `more than ${this.limits.maxChildren} elements in one stanza`));
      return;
    }
    if (this.depth > this.limits.maxDepth) {
      this.fail(new StreamError("policy-violation", `elements nested deeper than ${this.limits.maxDepth}`));
      return;
    }
    const element = new Element(tag.name, attrs);
    if (this.current) this.current.cnode(element);
    this.current = element;
    this.depth++;
  }

  private close(): void {
    this.flush();
    if (this.failed) return;
    if (this.depth === 1) {
      this.depth = 0;
      this.completed = () => this.handlers.streamEnd();
      return;
    }
    this.depth--;
    const element = this.current!;
    if (this.depth > 1) {
      this.current = element.parent;
      return;
    }
    // A complete top-level element: detach it from the parser's state and hand it on.
    this.current = null;
    this.elementsInStanza = 0;
    this.stanzaStart = this.boundary = this.position();
    this.completed = () => this.handlers.stanza(element);
  }

  private text(text: string): void {
    this.flush();
    if (this.failed) return;
    if (this.depth > 1) {
      if (this.checkSize(this.position())) this.current!.t(text);
    } else if (this.depth === 1) {
      // Whitespace between stanzas is a keepalive (RFC 6120 §4.6.1); it starts no stanza.
      if (!WHITESPACE.test(text)) this.fail(new StreamError("bad-format", "text outside of any stanza"));
      else this.stanzaStart = this.position();
    }
  }
}
