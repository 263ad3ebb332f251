/* crypto.c — thin libsodium wrappers used by tokend: randomness, base64url,
 * Ed25519 token signatures and key ids, sealing with the master key, API key hashes,
 * PAN fingerprints and sealed PANs. */
#include "crypto/crypto.h"

#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TD_B64_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define TD_SEAL_NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TD_SEAL_TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES

/* Domain key for API key hashes: a keyed hash with a key that no other part
 * of the system uses keeps these digests from colliding with any other
 * BLAKE2b use. Exactly 32 bytes; changing it invalidates every stored hash. */
static const char api_key_domain[] = "tokend-api-key-hash-v1..........";
_Static_assert(sizeof(api_key_domain) - 1 == crypto_generichash_KEYBYTES, "API key domain key must be 32 bytes");
_Static_assert(TD_MASTER_KEY_LEN == crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
               "master key length must match XChaCha20-Poly1305");
_Static_assert(TD_ED25519_PK_LEN == crypto_sign_ed25519_PUBLICKEYBYTES, "pk length");
_Static_assert(TD_ED25519_SK_LEN == crypto_sign_ed25519_SECRETKEYBYTES, "sk length");
_Static_assert(TD_ED25519_SIG_LEN == crypto_sign_ed25519_BYTES, "sig length");

int td_crypto_init(void)
{
    /* sodium_init returns 1 when already initialised, which is fine */
    return sodium_init() < 0 ? -1 : 0;
}

void td_wipe(void *p, size_t n)
{
    sodium_memzero(p, n);
}

void td_random_bytes(void *buf, size_t n)
{
    randombytes_buf(buf, n);
}

int td_b64_std_decode(const char *in, uint8_t *out, size_t cap, size_t *out_len)
{
    const char *end = NULL;
    if (sodium_base642bin(out, cap, in, strlen(in), NULL, out_len, &end, sodium_base64_VARIANT_ORIGINAL) != 0)
        return -1;
    return end && *end ? -1 : 0;
}

size_t td_b64url_len(size_t n)
{
    /* 4 chars per full 3-byte group; a trailing 1 or 2 bytes need 2 or 3 */
    return (n / 3) * 4 + (n % 3 ? n % 3 + 1 : 0);
}

int td_b64url_encode(const uint8_t *in, size_t n, char *out, size_t out_cap)
{
    /* The result length is returned as int, which also keeps the length
     * arithmetic far from overflow. */
    if (!out || (!in && n > 0) || n > (size_t)INT_MAX / 4 * 3) return -1;
    size_t len = td_b64url_len(n);
    /* sodium_bin2base64 aborts the process on a short buffer, so check first */
    if (out_cap < len + 1) return -1;
    sodium_bin2base64(out, out_cap, in, n, TD_B64_VARIANT);
    return (int)len;
}

int td_b64url_decode(const char *in, size_t in_len, uint8_t *out, size_t out_cap)
{
    if (!in || (!out && out_cap > 0)) return -1;
    size_t bin_len = 0;
    /* No ignore set and a NULL end pointer: libsodium then rejects padding,
     * whitespace, the standard alphabet's '+' and '/', non-zero trailing bits
     * and anything left over after the last valid character. */
    if (sodium_base642bin(out, out_cap, in, in_len, NULL, &bin_len, NULL, TD_B64_VARIANT) != 0) return -1;
    if (bin_len > INT_MAX) return -1;
    return (int)bin_len;
}

int td_ed25519_keypair(uint8_t pk[TD_ED25519_PK_LEN], uint8_t sk[TD_ED25519_SK_LEN])
{
    return crypto_sign_ed25519_keypair(pk, sk) == 0 ? 0 : -1;
}

int td_ed25519_seed_keypair(const uint8_t seed[32], uint8_t pk[TD_ED25519_PK_LEN], uint8_t sk[TD_ED25519_SK_LEN])
{
    return crypto_sign_ed25519_seed_keypair(pk, sk, seed) == 0 ? 0 : -1;
}

int td_ed25519_sign(const uint8_t sk[TD_ED25519_SK_LEN], const uint8_t *msg, size_t len,
                    uint8_t sig[TD_ED25519_SIG_LEN])
{
    return crypto_sign_ed25519_detached(sig, NULL, msg, len, sk) == 0 ? 0 : -1;
}

int td_ed25519_verify(const uint8_t pk[TD_ED25519_PK_LEN], const uint8_t *msg, size_t len,
                      const uint8_t sig[TD_ED25519_SIG_LEN])
{
    return crypto_sign_ed25519_verify_detached(sig, msg, len, pk) == 0 ? 0 : -1;
}

void td_key_id(const uint8_t pk[TD_ED25519_PK_LEN], char out[TD_KEY_ID_LEN + 1])
{
    uint8_t digest[crypto_hash_sha256_BYTES];
    char full[sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES, TD_B64_VARIANT)];
    crypto_hash_sha256(digest, pk, TD_ED25519_PK_LEN);
    sodium_bin2base64(full, sizeof full, digest, sizeof digest, TD_B64_VARIANT);
    memcpy(out, full, TD_KEY_ID_LEN);
    out[TD_KEY_ID_LEN] = '\0';
}

int td_seal(const uint8_t key[TD_MASTER_KEY_LEN], const uint8_t *plain, size_t n, uint8_t **out, size_t *out_len)
{
    if (!out || !out_len || (!plain && n > 0)) return -1;
    *out = NULL;
    *out_len = 0;
    if (n > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX || n > SIZE_MAX - TD_SEAL_NONCE_LEN - TD_SEAL_TAG_LEN)
        return -1;
    size_t total = TD_SEAL_NONCE_LEN + n + TD_SEAL_TAG_LEN;
    uint8_t *buf = malloc(total);
    if (!buf) return -1;
    /* A random 192-bit nonce cannot realistically repeat under one key, so no
     * nonce state has to be kept; it travels in front of the ciphertext. */
    randombytes_buf(buf, TD_SEAL_NONCE_LEN);
    unsigned long long clen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_encrypt(buf + TD_SEAL_NONCE_LEN, &clen, plain, n, NULL, 0, NULL, buf, key) !=
            0 ||
        clen != n + TD_SEAL_TAG_LEN) {
        free(buf);
        return -1;
    }
    *out = buf;
    *out_len = total;
    return 0;
}

int td_open(const uint8_t key[TD_MASTER_KEY_LEN], const uint8_t *sealed, size_t n, uint8_t **out, size_t *out_len)
{
    if (!out || !out_len) return -1;
    *out = NULL;
    *out_len = 0;
    if (!sealed || n < TD_SEAL_NONCE_LEN + TD_SEAL_TAG_LEN) return -1;
    size_t plain_len = n - TD_SEAL_NONCE_LEN - TD_SEAL_TAG_LEN;
    /* +1 so an empty secret still gets a real allocation to hand back */
    uint8_t *buf = malloc(plain_len + 1);
    if (!buf) return -1;
    unsigned long long mlen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(buf, &mlen, NULL, sealed + TD_SEAL_NONCE_LEN, n - TD_SEAL_NONCE_LEN,
                                                   NULL, 0, sealed, key) != 0 ||
        mlen != plain_len) {
        sodium_memzero(buf, plain_len + 1);
        free(buf);
        return -1;
    }
    *out = buf;
    *out_len = plain_len;
    return 0;
}

void td_api_key_hash(const char *api_key, char out[65])
{
    uint8_t digest[32];
    const char *k = api_key ? api_key : "";
    crypto_generichash(digest, sizeof digest, (const unsigned char *)k, strlen(k),
                       (const unsigned char *)api_key_domain, crypto_generichash_KEYBYTES);
    sodium_bin2hex(out, 65, digest, sizeof digest);
}

void td_api_key_id(const char hash[65], char out[17])
{
    memcpy(out, hash, 16);
    out[16] = '\0';
}

int td_ct_equal(const char *a, const char *b)
{
    if (!a || !b) return -1;
    size_t la = strlen(a);
    /* The length of a secret is not itself secret here (API keys and tokens
     * have a fixed format), so an early exit on a length mismatch is fine. */
    if (la != strlen(b)) return -1;
    return sodium_memcmp(a, b, la) == 0 ? 0 : -1;
}

const char *td_sig_suffix(const char *action)
{
    if (!action) return NULL;
    if (strcasecmp(action, "endorsed") == 0) return "endorsed";
    /* The REST API says CANCELED while the signed statement has always been
     * "cancelled"; both spellings must produce the same bytes. */
    if (strcasecmp(action, "cancelled") == 0 || strcasecmp(action, "canceled") == 0) return "cancelled";
    return NULL;
}

/* Builds the signed message canonical + "." + suffix in a malloc'd buffer
 * (without the NUL, which is not signed). NULL on overflow or OOM. */
static uint8_t *build_message(const char *canonical, const char *suffix, size_t *len)
{
    size_t cl = strlen(canonical);
    size_t sl = strlen(suffix);
    if (cl > SIZE_MAX - 1 - sl - 1) return NULL;
    size_t total = cl + 1 + sl;
    uint8_t *msg = malloc(total + 1);
    if (!msg) return NULL;
    memcpy(msg, canonical, cl);
    msg[cl] = '.';
    memcpy(msg + cl + 1, suffix, sl);
    msg[total] = '\0';
    *len = total;
    return msg;
}

int td_sign_payload(const uint8_t sk[TD_ED25519_SK_LEN], const char *canonical, const char *suffix, char *out,
                    size_t out_cap)
{
    const char *sfx = td_sig_suffix(suffix);
    if (!sk || !canonical || !sfx || !out || out_cap < td_b64url_len(TD_ED25519_SIG_LEN) + 1) return -1;
    size_t len = 0;
    uint8_t *msg = build_message(canonical, sfx, &len);
    if (!msg) return -1;
    uint8_t sig[TD_ED25519_SIG_LEN];
    int rc = td_ed25519_sign(sk, msg, len, sig);
    free(msg);
    if (rc != 0) return -1;
    return td_b64url_encode(sig, sizeof sig, out, out_cap) < 0 ? -1 : 0;
}

int td_verify_payload(const uint8_t pk[TD_ED25519_PK_LEN], const char *canonical, const char *suffix,
                      const char *sig_b64url)
{
    const char *sfx = td_sig_suffix(suffix);
    if (!pk || !canonical || !sfx || !sig_b64url) return -1;
    uint8_t sig[TD_ED25519_SIG_LEN];
    /* a valid signature decodes to exactly 64 bytes; the decoder itself
     * rejects longer input because the buffer is full */
    if (td_b64url_decode(sig_b64url, strlen(sig_b64url), sig, sizeof sig) != TD_ED25519_SIG_LEN) return -1;
    size_t len = 0;
    uint8_t *msg = build_message(canonical, sfx, &len);
    if (!msg) return -1;
    int rc = td_ed25519_verify(pk, msg, len, sig);
    free(msg);
    return rc == 0 ? 0 : -1;
}

/* ---- PANs at rest ---- */

#define TD_PAN_FP_SUBKEY 1
#define TD_PAN_ENC_SUBKEY 2
_Static_assert(TD_MASTER_KEY_LEN == crypto_kdf_KEYBYTES, "master key length must match crypto_kdf");
_Static_assert(sizeof "tdpanfp1" - 1 == crypto_kdf_CONTEXTBYTES, "KDF context must be 8 bytes");
_Static_assert(sizeof "tdpanenc" - 1 == crypto_kdf_CONTEXTBYTES, "KDF context must be 8 bytes");

void td_pan_fingerprint(const uint8_t master[TD_MASTER_KEY_LEN], const char *pan, char out[65])
{
    uint8_t key[crypto_generichash_KEYBYTES], digest[32];
    const char *p = pan ? pan : "";
    /* A keyed hash, not a plain one: PANs are few enough (BIN + 9 digits +
     * Luhn) that an unkeyed digest could be reversed by enumeration. */
    crypto_kdf_derive_from_key(key, sizeof key, TD_PAN_FP_SUBKEY, "tdpanfp1", master);
    crypto_generichash(digest, sizeof digest, (const unsigned char *)p, strlen(p), key, sizeof key);
    sodium_memzero(key, sizeof key);
    sodium_bin2hex(out, 65, digest, sizeof digest);
}

int td_pan_seal(const uint8_t master[TD_MASTER_KEY_LEN], const char *pan, const char *aad_issuer_card, uint8_t **out,
                size_t *out_len)
{
    if (!out || !out_len) return -1;
    *out = NULL;
    *out_len = 0;
    if (!master || !pan || !aad_issuer_card) return -1;
    size_t n = strlen(pan);
    if (n > 4096) return -1; /* no PAN is near this; keeps the arithmetic trivially safe */
    size_t total = TD_SEAL_NONCE_LEN + n + TD_SEAL_TAG_LEN;
    uint8_t *buf = malloc(total);
    if (!buf) return -1;
    uint8_t key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
    crypto_kdf_derive_from_key(key, sizeof key, TD_PAN_ENC_SUBKEY, "tdpanenc", master);
    randombytes_buf(buf, TD_SEAL_NONCE_LEN);
    unsigned long long clen = 0;
    int rc = crypto_aead_xchacha20poly1305_ietf_encrypt(buf + TD_SEAL_NONCE_LEN, &clen, (const unsigned char *)pan, n,
                                                        (const unsigned char *)aad_issuer_card, strlen(aad_issuer_card),
                                                        NULL, buf, key);
    sodium_memzero(key, sizeof key);
    if (rc != 0 || clen != n + TD_SEAL_TAG_LEN) {
        free(buf);
        return -1;
    }
    *out = buf;
    *out_len = total;
    return 0;
}

int td_pan_open(const uint8_t master[TD_MASTER_KEY_LEN], const uint8_t *sealed, size_t n, const char *aad_issuer_card,
                char *pan_out, size_t cap)
{
    if (!pan_out || cap == 0) return -1;
    pan_out[0] = '\0';
    if (!master || !sealed || !aad_issuer_card || n < TD_SEAL_NONCE_LEN + TD_SEAL_TAG_LEN) return -1;
    size_t plain_len = n - TD_SEAL_NONCE_LEN - TD_SEAL_TAG_LEN;
    if (plain_len >= cap) return -1;
    uint8_t key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
    crypto_kdf_derive_from_key(key, sizeof key, TD_PAN_ENC_SUBKEY, "tdpanenc", master);
    unsigned long long mlen = 0;
    /* Decrypting straight into the caller's buffer leaves no other plaintext copy. */
    int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(
        (unsigned char *)pan_out, &mlen, NULL, sealed + TD_SEAL_NONCE_LEN, n - TD_SEAL_NONCE_LEN,
        (const unsigned char *)aad_issuer_card, strlen(aad_issuer_card), sealed, key);
    sodium_memzero(key, sizeof key);
    if (rc != 0 || mlen != plain_len || memchr(pan_out, '\0', plain_len)) {
        sodium_memzero(pan_out, cap);
        return -1;
    }
    pan_out[plain_len] = '\0';
    return 0;
}

/* ---- Idempotency records at rest ---- */

#define TD_IDEM_CONTEXT "tdidemp1"
#define TD_IDEM_HASH_SUBKEY 1
#define TD_IDEM_SEAL_SUBKEY 2
_Static_assert(sizeof TD_IDEM_CONTEXT - 1 == crypto_kdf_CONTEXTBYTES, "KDF context must be 8 bytes");
#define TD_IDEM_ANSWER_MAX (16u << 20) /* far above any answer a write renders */

void td_idem_hash_key(const uint8_t master[TD_MASTER_KEY_LEN], uint8_t out[32])
{
    _Static_assert(crypto_generichash_KEYBYTES == 32, "the hashing key is 32 bytes");
    crypto_kdf_derive_from_key(out, 32, TD_IDEM_HASH_SUBKEY, TD_IDEM_CONTEXT, master);
}

void td_idem_request_hash(const uint8_t master[TD_MASTER_KEY_LEN], const char *method, const char *path,
                          const char *body, size_t body_len, char out[65])
{
    uint8_t key[32];
    td_idem_hash_key(master, key);
    td_idem_request_hash_keyed(key, method, path, body, body_len, out);
    sodium_memzero(key, sizeof key);
}

void td_idem_request_hash_keyed(const uint8_t key[32], const char *method, const char *path, const char *body,
                                size_t body_len, char out[65])
{
    uint8_t digest[32];
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, 32, sizeof digest);
    /* The NULs keep ("POST", "/ab") apart from ("POST/", "ab"). */
    crypto_generichash_update(&st, (const uint8_t *)method, strlen(method) + 1);
    crypto_generichash_update(&st, (const uint8_t *)path, strlen(path) + 1);
    if (body) crypto_generichash_update(&st, (const uint8_t *)body, body_len);
    crypto_generichash_final(&st, digest, sizeof digest);
    sodium_memzero(&st, sizeof st);
    sodium_bin2hex(out, 65, digest, sizeof digest);
}

int td_idem_seal_answer(const uint8_t master[TD_MASTER_KEY_LEN], const char *aad, const char *answer, char **out)
{
    if (!out) return -1;
    *out = NULL;
    if (!master || !aad || !answer) return -1;
    size_t n = strlen(answer);
    if (n > TD_IDEM_ANSWER_MAX) return -1;
    size_t total = TD_SEAL_NONCE_LEN + n + TD_SEAL_TAG_LEN;
    uint8_t *buf = malloc(total);
    char *text = malloc(td_b64url_len(total) + 1);
    uint8_t key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
    int rc = -1;
    if (buf && text) {
        crypto_kdf_derive_from_key(key, sizeof key, TD_IDEM_SEAL_SUBKEY, TD_IDEM_CONTEXT, master);
        randombytes_buf(buf, TD_SEAL_NONCE_LEN);
        unsigned long long clen = 0;
        rc = crypto_aead_xchacha20poly1305_ietf_encrypt(buf + TD_SEAL_NONCE_LEN, &clen, (const unsigned char *)answer,
                                                        n, (const unsigned char *)aad, strlen(aad), NULL, buf, key);
        sodium_memzero(key, sizeof key);
        if (rc == 0 &&
            (clen != n + TD_SEAL_TAG_LEN || td_b64url_encode(buf, total, text, td_b64url_len(total) + 1) < 0))
            rc = -1;
    }
    free(buf);
    if (rc != 0) {
        free(text);
        return -1;
    }
    *out = text;
    return 0;
}

int td_idem_open_answer(const uint8_t master[TD_MASTER_KEY_LEN], const char *aad, const char *sealed, char **out)
{
    if (!out) return -1;
    *out = NULL;
    if (!master || !aad || !sealed) return -1;
    size_t len = strlen(sealed);
    size_t cap = len / 4 * 3 + 3; /* at least the decoded length */
    if (len > TD_IDEM_ANSWER_MAX * 2) return -1;
    uint8_t *buf = malloc(cap);
    if (!buf) return -1;
    int n = td_b64url_decode(sealed, len, buf, cap);
    char *plain = n >= (int)(TD_SEAL_NONCE_LEN + TD_SEAL_TAG_LEN) ? malloc((size_t)n) : NULL;
    int rc = -1;
    if (plain) {
        uint8_t key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
        unsigned long long mlen = 0;
        crypto_kdf_derive_from_key(key, sizeof key, TD_IDEM_SEAL_SUBKEY, TD_IDEM_CONTEXT, master);
        rc = crypto_aead_xchacha20poly1305_ietf_decrypt((unsigned char *)plain, &mlen, NULL, buf + TD_SEAL_NONCE_LEN,
                                                        (size_t)n - TD_SEAL_NONCE_LEN, (const unsigned char *)aad,
                                                        strlen(aad), buf, key);
        sodium_memzero(key, sizeof key);
        /* An answer is text: an embedded NUL would cut it short unseen. */
        if (rc == 0 && memchr(plain, '\0', mlen)) rc = -1;
        if (rc == 0) plain[mlen] = '\0'; /* mlen = n - 40 < n: room for the NUL */
    }
    free(buf);
    if (rc != 0) {
        free(plain);
        return -1;
    }
    *out = plain;
    return 0;
}
