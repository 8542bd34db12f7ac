// Strict UTF-8 decoding of a byte stream. RFC 6120 §11.6: an entity that receives
// anything but UTF-8 returns a stream error (<unsupported-encoding/>), rather than
// rewriting it to U+FFFD and passing it on as Node's decoders do.
import { isUtf8 } from "node:buffer";

export interface Utf8Decoder {
  /** The text of the complete characters so far, or null once the input is not UTF-8. */
  write(chunk: Buffer): string | null;
}

/** Bytes in the sequence a lead byte starts (0 for a continuation or an invalid byte). */
const sequenceLength = (lead: number): number => (lead < 0x80 ? 1 : lead < 0xc2 ? 0 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : lead < 0xf5 ? 4 : 0);

export function utf8Decoder(): Utf8Decoder {
  /** A character split between chunks: at most three bytes, kept for the next one. */
  let held: Buffer | null = null;
  let broken = false;
  return {
    write(chunk) {
      if (broken) return null;
      const bytes = held ? Buffer.concat([held, chunk]) : chunk;
      held = null;
      // Step back over at most three continuation bytes to the last lead byte.
      let lead = bytes.length - 1;
      while (lead >= 0 && lead > bytes.length - 4 && (bytes[lead]! & 0xc0) === 0x80) lead--;
      let end = bytes.length;
      if (lead >= 0) {
        const need = sequenceLength(bytes[lead]!);
        if (need > end - lead) end = lead;
      }
      if (end < bytes.length) held = Buffer.from(bytes.subarray(end));
      const complete = end === bytes.length ? bytes : bytes.subarray(0, end);
      // isUtf8 refuses overlong forms, surrogates and code points past U+10FFFF.
      if (isUtf8(complete)) return complete.toString("utf8");
      broken = true;
      return null;
    },
  };
}
