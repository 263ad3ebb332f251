/* crypto.h — libsodium wrappers: randomness, base64url, Ed25519 signing keys,
 * key ids, sealing secrets with the master key, hashing API keys, PANs at rest,
 * idempotency records at rest. */
#ifndef TD_CRYPTO_H
#define TD_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define TD_ED25519_PK_LEN 32
#define TD_ED25519_SK_LEN 64
#define TD_ED25519_SIG_LEN 64
#define TD_MASTER_KEY_LEN 32
#define TD_KEY_ID_LEN 16 /* characters, without the terminating NUL */

/* Must be called once before any other function; returns 0 on success. */
int td_crypto_init(void);

/* Overwrites a secret in memory in a way the compiler keeps. */
void td_wipe(void *p, size_t n);

/* Fills buf with n random bytes. */
void td_random_bytes(void *buf, size_t n);

/* base64url without padding. Writes a NUL-terminated string into out
 * (capacity out_cap, which must be >= td_b64url_len(n) + 1).
 * Returns the string length, or -1 if out is too small. */
size_t td_b64url_len(size_t n);
int td_b64url_encode(const uint8_t *in, size_t n, char *out, size_t out_cap);
/* Decodes base64url (no padding accepted, no whitespace). Returns the decoded
 * length, or -1 on invalid input or if out_cap is too small. */
int td_b64url_decode(const char *in, size_t in_len, uint8_t *out, size_t out_cap);

/* Standard base64 with padding (HTTP Basic credentials). Writes at most cap
 * bytes; returns 0 and sets *out_len, or -1 on invalid input. */
int td_b64_std_decode(const char *in, uint8_t *out, size_t cap, size_t *out_len);

/* Ed25519. */
int td_ed25519_keypair(uint8_t pk[TD_ED25519_PK_LEN], uint8_t sk[TD_ED25519_SK_LEN]);
/* Deterministic keypair from a 32-byte seed (fixed test vectors). 0 on success. */
int td_ed25519_seed_keypair(const uint8_t seed[32], uint8_t pk[TD_ED25519_PK_LEN], uint8_t sk[TD_ED25519_SK_LEN]);
int td_ed25519_sign(const uint8_t sk[TD_ED25519_SK_LEN], const uint8_t *msg, size_t len,
                    uint8_t sig[TD_ED25519_SIG_LEN]);
int td_ed25519_verify(const uint8_t pk[TD_ED25519_PK_LEN], const uint8_t *msg, size_t len,
                      const uint8_t sig[TD_ED25519_SIG_LEN]); /* 0 = valid */

/* keyId = first 16 characters of base64url(SHA-256(raw public key)). */
void td_key_id(const uint8_t pk[TD_ED25519_PK_LEN], char out[TD_KEY_ID_LEN + 1]);

/* Seals a secret with the master key (XChaCha20-Poly1305, random nonce, the
 * nonce prepended). *out is malloc'd; the caller frees it. 0 on success. */
int td_seal(const uint8_t key[TD_MASTER_KEY_LEN], const uint8_t *plain, size_t n, uint8_t **out, size_t *out_len);
/* Opens a sealed secret; -1 if it was tampered with or the key is wrong. */
int td_open(const uint8_t key[TD_MASTER_KEY_LEN], const uint8_t *sealed, size_t n, uint8_t **out, size_t *out_len);

/* Hash of an API key for storage and lookup: hex of keyed BLAKE2b-256 with
 * a fixed domain key (API keys have 256 bits of entropy, so a slow hash is
 * unnecessary). out gets 64 hex chars + NUL. */
void td_api_key_hash(const char *api_key, char out[65]);
/* An API key's id, shown and used to revoke it: the first 16 characters of
 * its hash (64 bits of a hash of 256 random bits say nothing of the key). */
void td_api_key_id(const char hash[65], char out[17]);

/* Constant-time string equality for secrets of equal length; 0 if equal. */
int td_ct_equal(const char *a, const char *b);

/* Token signature over canonical payload: signs the UTF-8 bytes
 * canonical + "." + suffix (suffix "endorsed" or "cancelled") and writes the
 * base64url (no padding) signature into out (capacity >= 87). 0 on success. */
int td_sign_payload(const uint8_t sk[TD_ED25519_SK_LEN], const char *canonical, const char *suffix, char *out,
                    size_t out_cap);
/* Maps an action name to its signing suffix, case-insensitively: "endorsed"
 * -> "endorsed"; "cancelled" and "canceled" (the REST spelling) ->
 * "cancelled". NULL for anything else. td_sign_payload and td_verify_payload
 * apply it to their suffix argument, so they never sign any other statement. */
const char *td_sig_suffix(const char *action);
/* Verifies such a signature; 0 if valid. */
int td_verify_payload(const uint8_t pk[TD_ED25519_PK_LEN], const char *canonical, const char *suffix,
                      const char *sig_b64url);

/* ---- PANs at rest ----
 * Two keys derived from the master key (crypto_kdf, context "tdpanfp1" id 1
 * and "tdpanenc" id 2), so neither the fingerprint key nor the PAN sealing key
 * is the key that seals members' private keys. */

/* Fingerprint for lookups and duplicate checks: hex of keyed BLAKE2b-256 of
 * the PAN's characters. out gets 64 hex chars + NUL. */
void td_pan_fingerprint(const uint8_t master[TD_MASTER_KEY_LEN], const char *pan, char out[65]);
/* Seals a PAN (XChaCha20-Poly1305 IETF, random nonce prepended) with
 * aad_issuer_card ("issuerId/cardId") as associated data, so a sealed PAN
 * copied onto another card's row does not open. *out is malloc'd; the caller
 * frees it. 0 on success. */
int td_pan_seal(const uint8_t master[TD_MASTER_KEY_LEN], const char *pan, const char *aad_issuer_card, uint8_t **out,
                size_t *out_len);
/* Opens it into pan_out (capacity cap, NUL-terminated); -1 if tampered with,
 * under another key or AAD, or if pan_out is too small (then pan_out is
 * wiped). The caller wipes pan_out after use. */
int td_pan_open(const uint8_t master[TD_MASTER_KEY_LEN], const uint8_t *sealed, size_t n, const char *aad_issuer_card,
                char *pan_out, size_t cap);

/* ---- Idempotency records at rest ----
 * A stored request hash and a stored answer may both come from secrets (a
 * PAN or an OTP in the body; an API key or a consent link in the answer).
 * Two keys derived from the master key (crypto_kdf, context "tdidemp1": id 1
 * hashes requests, id 2 seals answers), so every node sharing a store and its
 * master key replays the same records. */

/* Request hash: hex of keyed BLAKE2b-256 over method, path (each with its
 * NUL) and body. Without the key a short secret in the body (a 6-digit OTP, a
 * PAN) could be found by hashing guesses. out gets 64 hex chars + NUL. */
void td_idem_request_hash(const uint8_t master[TD_MASTER_KEY_LEN], const char *method, const char *path,
                          const char *body, size_t body_len, char out[65]);
/* The hashing key that function derives from the master key, and the hash
 * under a given one: a store whose master key was rotated keeps hashing with
 * the key of its first master key (sealed in store_meta "idem_hash_key"), as
 * stored hashes cannot be recomputed without their requests. */
void td_idem_hash_key(const uint8_t master[TD_MASTER_KEY_LEN], uint8_t out[32]);
void td_idem_request_hash_keyed(const uint8_t key[32], const char *method, const char *path, const char *body,
                                size_t body_len, char out[65]);
/* Seals a stored answer (XChaCha20-Poly1305 IETF, random nonce prepended)
 * with aad as associated data (the record's scope, key and request hash), so
 * an answer copied onto another record does not open. *out is a malloc'd
 * base64url string (a TEXT column in both stores). 0 on success. */
int td_idem_seal_answer(const uint8_t master[TD_MASTER_KEY_LEN], const char *aad, const char *answer, char **out);
/* Opens it into a malloc'd string in *out; -1 if it was tampered with, is
 * under another key or aad, or is not a sealed answer. */
int td_idem_open_answer(const uint8_t master[TD_MASTER_KEY_LEN], const char *aad, const char *sealed, char **out);

#endif
