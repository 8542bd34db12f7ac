// PBKDF2-HMAC-SHA-256 (RFC 8018 §5.2) for password checks, built on OpenSSL's SHA-256
// block function as linked into Node.
//
// Why not crypto.pbkdf2Sync: OpenSSL 3 runs each of the 2 × 4,096 HMACs through its
// EVP layer, copying, allocating, cleansing and freeing a digest context every time;
// in perf that is two thirds of its PBKDF2, the SHA-256 compression one third. Here
// the HMAC's inner and outer keyed states are computed once (the precomputation
// RFC 2104 §4 describes) and each iteration is exactly two compressions of a
// fixed-layout block: about twice as fast on the same SHA extensions (404 against 866 µs here,
// bench/auth/pbkdf2.ts). The result is byte-for-byte that of pbkdf2Sync
// (test/unit/hash-pool.test.ts checks the RFC 7914 §11 vectors and random inputs
// against it).
#include <node_api.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <string.h>

/** Longest derived key accepted: SCRAM needs 32 bytes; this bounds a bad call. */
#define MAX_KEY_BYTES 1024

static inline void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static void pbkdf2_sha256(const uint8_t *password, size_t password_len, const uint8_t *salt, size_t salt_len,
                          uint32_t iterations, uint8_t *out, size_t out_len) {
  // RFC 2104 §2: a key longer than the block is hashed first; shorter ones are zero-padded.
  uint8_t key[SHA256_CBLOCK] = {0};
  uint8_t pad[SHA256_CBLOCK];
  if (password_len > SHA256_CBLOCK) SHA256(password, password_len, key);
  else memcpy(key, password, password_len);
  SHA256_CTX inner, outer, ctx;
  for (int i = 0; i < SHA256_CBLOCK; i++) pad[i] = key[i] ^ 0x36;
  SHA256_Init(&inner);
  SHA256_Update(&inner, pad, SHA256_CBLOCK);
  for (int i = 0; i < SHA256_CBLOCK; i++) pad[i] = key[i] ^ 0x5c;
  SHA256_Init(&outer);
  SHA256_Update(&outer, pad, SHA256_CBLOCK);

  // From U_2 on, every hash input is one 32-byte digest after a keyed block: one
  // block of digest, 0x80, zeros and the bit length of block + digest (FIPS 180-4 §5.1.1).
  uint8_t block[SHA256_CBLOCK] = {0};
  block[SHA256_DIGEST_LENGTH] = 0x80;
  put_be32(block + SHA256_CBLOCK - 4, (SHA256_CBLOCK + SHA256_DIGEST_LENGTH) * 8);

  // RFC 8018 §5.2: T_i = U_1 xor U_2 xor ... xor U_c, U_1 = PRF(P, S || INT(i)).
  uint8_t u[SHA256_DIGEST_LENGTH], t[SHA256_DIGEST_LENGTH];
  for (uint32_t index = 1; out_len > 0; index++) {
    uint8_t count[4];
    put_be32(count, index);
    ctx = inner;
    SHA256_Update(&ctx, salt, salt_len);
    SHA256_Update(&ctx, count, 4);
    SHA256_Final(u, &ctx);
    ctx = outer;
    SHA256_Update(&ctx, u, SHA256_DIGEST_LENGTH);
    SHA256_Final(u, &ctx);
    memcpy(t, u, SHA256_DIGEST_LENGTH);
    memcpy(block, u, SHA256_DIGEST_LENGTH);
    for (uint32_t j = 1; j < iterations; j++) {
      ctx = inner;
      SHA256_Transform(&ctx, block);
      for (int k = 0; k < 8; k++) put_be32(block + 4 * k, ctx.h[k]);
      ctx = outer;
      SHA256_Transform(&ctx, block);
      for (int k = 0; k < 8; k++) put_be32(block + 4 * k, ctx.h[k]);
      for (int k = 0; k < SHA256_DIGEST_LENGTH; k++) t[k] ^= block[k];
    }
    size_t n = out_len < SHA256_DIGEST_LENGTH ? out_len : SHA256_DIGEST_LENGTH;
    memcpy(out, t, n);
    out += n;
    out_len -= n;
  }
  // Everything derived from the password is wiped (a plain memset may be optimised away).
  OPENSSL_cleanse(key, sizeof key);
  OPENSSL_cleanse(pad, sizeof pad);
  OPENSSL_cleanse(u, sizeof u);
  OPENSSL_cleanse(t, sizeof t);
  OPENSSL_cleanse(block, sizeof block);
  OPENSSL_cleanse(&inner, sizeof inner);
  OPENSSL_cleanse(&outer, sizeof outer);
  OPENSSL_cleanse(&ctx, sizeof ctx);
}

static napi_value fail(napi_env env, const char *code, const char *message, int range) {
  if (range) napi_throw_range_error(env, code, message);
  else napi_throw_type_error(env, code, message);
  return NULL;
}

/** pbkdf2Sha256(password: Buffer, salt: Buffer, iterations: number, keyLength: number): Buffer */
static napi_value Pbkdf2Sha256(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4)
    return fail(env, "ERR_INVALID_ARG_TYPE", "pbkdf2Sha256(password, salt, iterations, keyLength): four arguments", 0);
  bool is_buffer;
  void *password, *salt;
  size_t password_len, salt_len;
  if (napi_is_buffer(env, argv[0], &is_buffer) != napi_ok || !is_buffer || napi_get_buffer_info(env, argv[0], &password, &password_len) != napi_ok)
    return fail(env, "ERR_INVALID_ARG_TYPE", "password must be a Buffer", 0);
  if (napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer || napi_get_buffer_info(env, argv[1], &salt, &salt_len) != napi_ok)
    return fail(env, "ERR_INVALID_ARG_TYPE", "salt must be a Buffer", 0);
  double iterations, key_length;
  if (napi_get_value_double(env, argv[2], &iterations) != napi_ok)
    return fail(env, "ERR_INVALID_ARG_TYPE", "iterations must be a number", 0);
  if (!(iterations >= 1 && iterations <= 4294967295.0) || iterations != (double)(uint32_t)iterations)
    return fail(env, "ERR_OUT_OF_RANGE", "iterations must be an integer from 1 to 2^32 - 1", 1);
  if (napi_get_value_double(env, argv[3], &key_length) != napi_ok)
    return fail(env, "ERR_INVALID_ARG_TYPE", "keyLength must be a number", 0);
  if (!(key_length >= 1 && key_length <= MAX_KEY_BYTES) || key_length != (double)(uint32_t)key_length)
    return fail(env, "ERR_OUT_OF_RANGE", "keyLength must be an integer from 1 to 1024", 1);
  void *out;
  napi_value result;
  if (napi_create_buffer(env, (size_t)key_length, &out, &result) != napi_ok) return NULL;
  // An empty Buffer may have a NULL data pointer; SHA256_Update takes no bytes from it.
  pbkdf2_sha256(password, password_len, salt, salt_len, (uint32_t)iterations, out, (size_t)key_length);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "pbkdf2Sha256", NAPI_AUTO_LENGTH, Pbkdf2Sha256, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "pbkdf2Sha256", fn) != napi_ok) return NULL;
  return exports;
}
