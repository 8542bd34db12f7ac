// The newest committed samples, kept in memory for the drainer so the spool is read
// back only after a restart or when the store has fallen far behind. Oldest first,
// bounded in bytes: past the bound the oldest are forgotten (they stay in the table).
import type { SpooledSample } from "./sample.js";

export interface SpoolTail {
  readonly length: number;
  /** The oldest sample kept. */
  oldest(): SpooledSample | undefined;
  /** The oldest `limit` samples kept, in order. */
  slice(limit: number): SpooledSample[];
  /** Keeps a newly committed sample of `size` bytes, then forgets the oldest while over the bound. */
  push(sample: SpooledSample, size: number): void;
  /** Forgets the oldest sample; returns its size. */
  shift(): number;
}

export function createSpoolTail(maxBytes: number): SpoolTail {
  // tail[head] is the oldest kept; the arrays are cut when the forgotten part is most of them.
  let tail: SpooledSample[] = [];
  let sizes: number[] = [];
  let head = 0;
  let bytes = 0;

  function shift(): number {
    const size = sizes[head]!;
    head++;
    bytes -= size;
    if (head > 4096 && head * 2 > tail.length) {
      tail = tail.slice(head);
      sizes = sizes.slice(head);
      head = 0;
    }
    return size;
  }

  return {
    get length() {
      return tail.length - head;
    },
    oldest: () => (head < tail.length ? tail[head] : undefined),
    slice: (limit) => tail.slice(head, head + limit),
    push(sample, size) {
      tail.push(sample);
      sizes.push(size);
      bytes += size;
      while (bytes > maxBytes) shift();
    },
    shift,
  };
}
