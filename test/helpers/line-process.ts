// A child process whose standard output is read line by line, with bounded waits for
// a line; and the JSON-lines protocol of the scripts that drive clients no one here
// wrote (test/xmpp/slixmpp_client.py, test/commands/slixmpp_commands.py,
// test/mqtt/paho_client.py): events and replies out, commands in.
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { createInterface } from "node:readline";
import { Wakeup } from "./wait.js";

export class LineProcess<L> {
  readonly lines: L[] = [];
  stderr = "";
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  readonly exited: Promise<void>;
  private readonly arrivals = new Wakeup();

  constructor(
    readonly name: string,
    readonly proc: ChildProcessWithoutNullStreams,
    parse: (line: string) => L,
    /** A line after which no awaited line will come. */
    private readonly fatal: (l: L) => boolean = () => false,
    /** The bound of a wait when none is given. */
    private readonly stepMs = 10_000,
  ) {
    createInterface({ input: proc.stdout }).on("line", (line) => {
      this.lines.push(parse(line));
      this.arrivals.wake();
    });
    proc.stderr.setEncoding("utf8");
    proc.stderr.on("data", (d: string) => {
      this.stderr = (this.stderr + d).slice(-20_000);
    });
    proc.stdin.on("error", () => {});
    this.exited = new Promise((resolve) => {
      proc.on("exit", (code, signal) => {
        this.exit = { code, signal };
        this.arrivals.wake();
        resolve();
      });
    });
  }

  describe(): string {
    return `\n--- ${this.name} stdout ---\n${this.lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n")}\n--- ${this.name} stderr ---\n${this.stderr.slice(-4000)}`;
  }

  /** The first line from index `from` on (seen already or to come) that matches, within `ms`. */
  waitFor(what: string, match: (l: L) => boolean, from = 0, ms = this.stepMs): Promise<{ line: L; index: number }> {
    return this.arrivals.until(
      () => {
        const index = this.lines.findIndex((l, i) => i >= from && match(l));
        if (index >= 0) return { line: this.lines[index]!, index };
        const fatal = this.lines.find(this.fatal);
        if (fatal !== undefined) throw new Error(`${this.name} failed while waiting for ${what}: ${JSON.stringify(fatal)}${this.describe()}`);
        if (this.exit) throw new Error(`${this.name} exited (${JSON.stringify(this.exit)}) while waiting for ${what}${this.describe()}`);
        return undefined;
      },
      ms,
      () => new Error(`timed out after ${ms} ms waiting for ${what}${this.describe()}`),
    );
  }

  kill(): void {
    if (this.exit === null) this.proc.kill("SIGKILL");
  }
}

export type JsonLine = Record<string, unknown> & { event?: string; id?: string; ok?: boolean };

/** A script speaking JSON lines: `{"event": …}` and `{"id": …, "ok": …}` out, `{"id": …, "cmd": …}` in. */
export class JsonLineProcess extends LineProcess<JsonLine> {
  private nextId = 0;

  constructor(name: string, proc: ChildProcessWithoutNullStreams, fatalEvents: string[] = ["fatal"], stepMs?: number) {
    super(
      name,
      proc,
      (line) => {
        try {
          return JSON.parse(line) as JsonLine;
        } catch {
          return { event: "garbage", line };
        }
      },
      (l) => fatalEvents.includes(String(l.event)),
      stepMs,
    );
  }

  /** The first line with this event (seen already or to come). */
  async event(event: string, ms?: number): Promise<JsonLine> {
    return (await this.waitFor(event, (l) => l.event === event, 0, ms)).line;
  }

  /** Sends a command and waits for its reply. */
  async command(cmd: Record<string, unknown>, ms?: number): Promise<JsonLine> {
    const id = `c${++this.nextId}`;
    this.proc.stdin.write(JSON.stringify({ ...cmd, id }) + "\n");
    return (await this.waitFor(`the reply to ${JSON.stringify(cmd)}`, (l) => l.id === id, 0, ms)).line;
  }

  quit(): void {
    if (this.proc.stdin.writable) this.proc.stdin.end(JSON.stringify({ cmd: "quit" }) + "\n");
  }
}
