// msgpack-lite 0.1 ships no typings: the part bridges/mqtt/redis-adapter.ts uses.
declare module "msgpack-lite" {
  export function encode(value: unknown): Buffer;
  export function decode(bytes: Buffer | Uint8Array): unknown;
}
