/* test_crypto.c — unit tests for the libsodium wrappers: base64url, Ed25519,
 * key ids, token signatures (fixed vectors, also in vectors.json), sealing, API key hashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"

/* RFC 8032 section 7.1 TEST 1: its secret key is our fixed seed, so the
 * public key and the empty-message signature come from the RFC itself. */
static const char seed_hex[] = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char rfc_pk_hex[] = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
static const char rfc_sig_hex[] = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e"
                                  "39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

/* Values also in vectors.json and recomputed by vectors.js with Node. */
static const char pk_b64url[] = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
static const char key_id_expected[] = "If4x36FUomFia_hU";
static const char payload_canonical[] =
    "{\"access\":{\"resources\":[{\"account\":{\"accountId\":\"a:1\"}}]},"
    "\"expiresAtMs\":\"1700000000000\",\"from\":{\"id\":\"m:abc:def\"},\"refId\":\"ab-12\","
    "\"to\":{\"id\":\"m:xyz:def\"},\"version\":\"1.0\"}";
static const char sig_endorsed[] =
    "wrK8bXiqwMRdrn4NiXQg4jqolZLgOJrm-ItXyWz_vZB7AZv_wF4WmDwIc3pPRKO2AxwUI-HniQlk3CSfKWsPCQ";
static const char sig_cancelled[] =
    "z2cll05xAdY7c0CgcRb1HAlrHvbwdy9xqDmGQV7OKPgFirNB18c0S0jnPPj-tnMMYR4kHuSXs4LR-n6-7omkAw";
static const char api_hash_empty[] = "6fed164a56c6d7e55723de48aa316e82c3f3efd0b28fc256abbf8098e43e27dc";
static const char api_hash_test[] = "97b911c07d55ebe581bd65528a8179299da7d54ce54c6d6e06e7026de1092f06";

static void fixed_keypair(uint8_t pk[TD_ED25519_PK_LEN], uint8_t sk[TD_ED25519_SK_LEN])
{
    uint8_t seed[32];
    assert_int_equal(sodium_hex2bin(seed, sizeof seed, seed_hex, strlen(seed_hex), NULL, NULL, NULL), 0);
    assert_int_equal(td_ed25519_seed_keypair(seed, pk, sk), 0);
}

/* --- base64url ------------------------------------------------------------ */

static void test_b64url_known(void **state)
{
    (void)state;
    static const struct {
        const char *bin;
        size_t n;
        const char *b64;
    } cases[] = {
        {"", 0, ""},
        {"f", 1, "Zg"},
        {"fo", 2, "Zm8"},
        {"foo", 3, "Zm9v"},
        {"foobar", 6, "Zm9vYmFy"},
        {"\xfb\xff\xbf", 3, "-_-_"},
        {"\xfb\xff", 2, "-_8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[32];
        assert_int_equal(td_b64url_len(cases[i].n), strlen(cases[i].b64));
        int len = td_b64url_encode((const uint8_t *)cases[i].bin, cases[i].n, out, sizeof out);
        assert_int_equal(len, (int)strlen(cases[i].b64));
        assert_string_equal(out, cases[i].b64);
        uint8_t back[32];
        assert_int_equal(td_b64url_decode(cases[i].b64, strlen(cases[i].b64), back, sizeof back), (int)cases[i].n);
        assert_memory_equal(back, cases[i].bin, cases[i].n);
    }
}

static void test_b64url_round_trip(void **state)
{
    (void)state;
    uint8_t in[200], back[200];
    char enc[300];
    for (size_t n = 0; n <= sizeof in; n++) {
        td_random_bytes(in, n);
        int len = td_b64url_encode(in, n, enc, sizeof enc);
        assert_int_equal(len, (int)td_b64url_len(n));
        assert_int_equal(strlen(enc), (size_t)len);
        assert_null(strpbrk(enc, "=+/"));
        assert_int_equal(td_b64url_decode(enc, (size_t)len, back, sizeof back), (int)n);
        assert_memory_equal(in, back, n);
    }
}

static void test_b64url_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zg==",  "Zg=",   "Zm8=",                                   /* padding */
        "+_8",   "-/8",   "Zm9v+",                                  /* standard alphabet */
        "Zm 9v", " Zm9v", "Zm9v ",  "Zm9v\n", "Zm\r\n9v", "\tZm9v", /* whitespace */
        "Zm9v!", "Zm9v.", "Zm9v\"",                                 /* trailing garbage */
        "Z",     "Zm9vY",                                           /* impossible lengths */
        "Zh",    "Zm9",                                             /* non-zero unused bits */
    };
    uint8_t out[32];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (td_b64url_decode(bad[i], strlen(bad[i]), out, sizeof out) != -1) fail_msg("accepted \"%s\"", bad[i]);
    }
    /* an embedded NUL within the given length is garbage too */
    assert_int_equal(td_b64url_decode("Zg\0A", 4, out, sizeof out), -1);
    /* in_len bounds the input: the rest of the buffer is not looked at */
    assert_int_equal(td_b64url_decode("Zm9v====", 4, out, sizeof out), 3);
}

static void test_b64url_capacity(void **state)
{
    (void)state;
    char enc[5];
    /* "foo" needs 4 characters + NUL */
    assert_int_equal(td_b64url_encode((const uint8_t *)"foo", 3, enc, 4), -1);
    assert_int_equal(td_b64url_encode((const uint8_t *)"foo", 3, enc, 5), 4);
    uint8_t out[6];
    assert_int_equal(td_b64url_decode("Zm9vYmFy", 8, out, 5), -1);
    assert_int_equal(td_b64url_decode("Zm9vYmFy", 8, out, 6), 6);
    assert_int_equal(td_b64url_len(64), 86);
}

/* --- Ed25519 and key ids --------------------------------------------------- */

static void test_ed25519_sign_verify(void **state)
{
    (void)state;
    uint8_t pk[TD_ED25519_PK_LEN], sk[TD_ED25519_SK_LEN], pk2[TD_ED25519_PK_LEN], sk2[TD_ED25519_SK_LEN],
        sig[TD_ED25519_SIG_LEN];
    assert_int_equal(td_ed25519_keypair(pk, sk), 0);
    assert_int_equal(td_ed25519_keypair(pk2, sk2), 0);
    uint8_t msg[] = "transfer 10 EUR";
    assert_int_equal(td_ed25519_sign(sk, msg, sizeof msg - 1, sig), 0);
    assert_int_equal(td_ed25519_verify(pk, msg, sizeof msg - 1, sig), 0);

    msg[9] ^= 1; /* tampered message */
    assert_int_equal(td_ed25519_verify(pk, msg, sizeof msg - 1, sig), -1);
    msg[9] ^= 1;
    assert_int_equal(td_ed25519_verify(pk, msg, sizeof msg - 2, sig), -1);  /* truncated */
    assert_int_equal(td_ed25519_verify(pk2, msg, sizeof msg - 1, sig), -1); /* wrong key */
    sig[0] ^= 0x80;                                                         /* tampered signature */
    assert_int_equal(td_ed25519_verify(pk, msg, sizeof msg - 1, sig), -1);
    sodium_memzero(sk, sizeof sk);
    sodium_memzero(sk2, sizeof sk2);
}

static void test_ed25519_rfc8032(void **state)
{
    (void)state;
    uint8_t pk[TD_ED25519_PK_LEN], sk[TD_ED25519_SK_LEN], sig[TD_ED25519_SIG_LEN];
    fixed_keypair(pk, sk);
    char hex[2 * TD_ED25519_SIG_LEN + 1];
    sodium_bin2hex(hex, sizeof hex, pk, sizeof pk);
    assert_string_equal(hex, rfc_pk_hex);
    assert_int_equal(td_ed25519_sign(sk, (const uint8_t *)"", 0, sig), 0);
    sodium_bin2hex(hex, sizeof hex, sig, sizeof sig);
    assert_string_equal(hex, rfc_sig_hex);
}

static void test_key_id_fixed(void **state)
{
    (void)state;
    uint8_t pk[TD_ED25519_PK_LEN], sk[TD_ED25519_SK_LEN];
    fixed_keypair(pk, sk);
    char b64[64];
    assert_int_equal(td_b64url_encode(pk, sizeof pk, b64, sizeof b64), 43);
    assert_string_equal(b64, pk_b64url);
    char kid[TD_KEY_ID_LEN + 1];
    memset(kid, 'X', sizeof kid);
    td_key_id(pk, kid);
    assert_int_equal(strlen(kid), TD_KEY_ID_LEN);
    assert_string_equal(kid, key_id_expected);

    /* any other key gets another id */
    pk[31] ^= 1;
    char kid2[TD_KEY_ID_LEN + 1];
    td_key_id(pk, kid2);
    assert_string_not_equal(kid, kid2);
}

/* --- token signatures ----------------------------------------------------- */

static void test_sign_payload_fixed(void **state)
{
    (void)state;
    uint8_t pk[TD_ED25519_PK_LEN], sk[TD_ED25519_SK_LEN];
    fixed_keypair(pk, sk);
    char sig[TD_ED25519_SIG_LEN * 2];
    assert_int_equal(td_sign_payload(sk, payload_canonical, "endorsed", sig, sizeof sig), 0);
    assert_string_equal(sig, sig_endorsed);
    assert_int_equal(td_sign_payload(sk, payload_canonical, "cancelled", sig, sizeof sig), 0);
    assert_string_equal(sig, sig_cancelled);

    /* the REST spelling and upper case name the same statement */
    static const char *const cancel_names[] = {"canceled", "CANCELED", "CANCELLED", "Cancelled"};
    for (size_t i = 0; i < sizeof cancel_names / sizeof cancel_names[0]; i++) {
        assert_int_equal(td_sign_payload(sk, payload_canonical, cancel_names[i], sig, sizeof sig), 0);
        assert_string_equal(sig, sig_cancelled);
    }
    assert_int_equal(td_sign_payload(sk, payload_canonical, "ENDORSED", sig, sizeof sig), 0);
    assert_string_equal(sig, sig_endorsed);

    /* nothing else is ever signed */
    static const char *const bad_suffix[] = {"", "revoked", "endorse", "cancel", "endorsed ", "x.endorsed"};
    for (size_t i = 0; i < sizeof bad_suffix / sizeof bad_suffix[0]; i++)
        assert_int_equal(td_sign_payload(sk, payload_canonical, bad_suffix[i], sig, sizeof sig), -1);
    assert_int_equal(td_sign_payload(sk, payload_canonical, NULL, sig, sizeof sig), -1);
    assert_int_equal(td_sign_payload(sk, NULL, "endorsed", sig, sizeof sig), -1);

    /* 86 characters + NUL */
    char small[87];
    assert_int_equal(td_sign_payload(sk, payload_canonical, "endorsed", small, 86), -1);
    assert_int_equal(td_sign_payload(sk, payload_canonical, "endorsed", small, 87), 0);
    assert_string_equal(small, sig_endorsed);
    sodium_memzero(sk, sizeof sk);
}

static void test_signed_message_layout(void **state)
{
    (void)state;
    /* The fixed signatures verify with the raw Ed25519 call over the bytes
     * canonical + "." + suffix, built here independently of crypto.c. */
    uint8_t pk[TD_ED25519_PK_LEN], sk[TD_ED25519_SK_LEN], sig[TD_ED25519_SIG_LEN];
    fixed_keypair(pk, sk);
    size_t cl = strlen(payload_canonical);
    uint8_t msg[sizeof payload_canonical + 16];
    memcpy(msg, payload_canonical, cl);
    memcpy(msg + cl, ".endorsed", 9);
    assert_int_equal(td_b64url_decode(sig_endorsed, strlen(sig_endorsed), sig, sizeof sig), 64);
    assert_int_equal(td_ed25519_verify(pk, msg, cl + 9, sig), 0);
    memcpy(msg + cl, ".cancelled", 10);
    assert_int_equal(td_b64url_decode(sig_cancelled, strlen(sig_cancelled), sig, sizeof sig), 64);
    assert_int_equal(td_ed25519_verify(pk, msg, cl + 10, sig), 0);
}

static void test_verify_payload(void **state)
{
    (void)state;
    uint8_t pk[TD_ED25519_PK_LEN], sk[TD_ED25519_SK_LEN];
    fixed_keypair(pk, sk);
    assert_int_equal(td_verify_payload(pk, payload_canonical, "endorsed", sig_endorsed), 0);
    assert_int_equal(td_verify_payload(pk, payload_canonical, "cancelled", sig_cancelled), 0);
    assert_int_equal(td_verify_payload(pk, payload_canonical, "CANCELED", sig_cancelled), 0);

    /* a signature for one action does not stand for the other */
    assert_int_equal(td_verify_payload(pk, payload_canonical, "cancelled", sig_endorsed), -1);
    assert_int_equal(td_verify_payload(pk, payload_canonical, "endorsed", sig_cancelled), -1);
    assert_int_equal(td_verify_payload(pk, payload_canonical, "revoked", sig_endorsed), -1);

    /* tampered payload: one character changed */
    char tampered[sizeof payload_canonical];
    memcpy(tampered, payload_canonical, sizeof tampered);
    char *p = strstr(tampered, "a:1");
    assert_non_null(p);
    p[2] = '2';
    assert_int_equal(td_verify_payload(pk, tampered, "endorsed", sig_endorsed), -1);

    /* signature encodings that are not exactly 64 bytes of base64url */
    char sig[128];
    const size_t sl = sizeof sig_endorsed - 1;
    memcpy(sig, sig_endorsed, sl);
    memcpy(sig + sl, "==", 3);
    assert_int_equal(td_verify_payload(pk, payload_canonical, "endorsed", sig), -1);
    memcpy(sig, sig_endorsed, sizeof sig_endorsed);
    sig[85] = '\0';
    assert_int_equal(td_verify_payload(pk, payload_canonical, "endorsed", sig), -1);
    memcpy(sig, sig_endorsed, sl);
    memcpy(sig + sl, "AAAA", 5);
    assert_int_equal(td_verify_payload(pk, payload_canonical, "endorsed", sig), -1);
    assert_int_equal(td_verify_payload(pk, payload_canonical, "endorsed", ""), -1);
    memcpy(sig, sig_endorsed, sizeof sig_endorsed);
    sig[10] = sig[10] == 'A' ? 'B' : 'A';
    assert_int_equal(td_verify_payload(pk, payload_canonical, "endorsed", sig), -1);

    /* another key */
    uint8_t pk2[TD_ED25519_PK_LEN], sk2[TD_ED25519_SK_LEN];
    assert_int_equal(td_ed25519_keypair(pk2, sk2), 0);
    assert_int_equal(td_verify_payload(pk2, payload_canonical, "endorsed", sig_endorsed), -1);

    /* random keys round-trip */
    char sig2[TD_ED25519_SIG_LEN * 2];
    assert_int_equal(td_sign_payload(sk2, "{}", "endorsed", sig2, sizeof sig2), 0);
    assert_int_equal(td_verify_payload(pk2, "{}", "endorsed", sig2), 0);
    assert_int_equal(td_verify_payload(pk, "{}", "endorsed", sig2), -1);
    sodium_memzero(sk, sizeof sk);
    sodium_memzero(sk2, sizeof sk2);
}

static void test_sig_suffix(void **state)
{
    (void)state;
    assert_string_equal(td_sig_suffix("endorsed"), "endorsed");
    assert_string_equal(td_sig_suffix("ENDORSED"), "endorsed");
    assert_string_equal(td_sig_suffix("cancelled"), "cancelled");
    assert_string_equal(td_sig_suffix("canceled"), "cancelled");
    assert_string_equal(td_sig_suffix("CANCELED"), "cancelled");
    assert_null(td_sig_suffix("CANCEL"));
    assert_null(td_sig_suffix(""));
    assert_null(td_sig_suffix(NULL));
}

/* --- sealing -------------------------------------------------------------- */

static void test_seal_round_trip(void **state)
{
    (void)state;
    uint8_t key[TD_MASTER_KEY_LEN];
    td_random_bytes(key, sizeof key);
    static const uint8_t secret[] = "ed25519 secret key bytes....";
    uint8_t *sealed = NULL, *sealed2 = NULL, *plain = NULL;
    size_t sealed_len = 0, sealed2_len = 0, plain_len = 0;

    assert_int_equal(td_seal(key, secret, sizeof secret, &sealed, &sealed_len), 0);
    assert_int_equal(sealed_len, sizeof secret + 24 + 16); /* nonce + tag */
    assert_int_equal(td_open(key, sealed, sealed_len, &plain, &plain_len), 0);
    assert_int_equal(plain_len, sizeof secret);
    assert_memory_equal(plain, secret, sizeof secret);
    free(plain);

    /* random nonce: the same secret seals differently every time */
    assert_int_equal(td_seal(key, secret, sizeof secret, &sealed2, &sealed2_len), 0);
    assert_int_equal(sealed2_len, sealed_len);
    assert_memory_not_equal(sealed, sealed2, sealed_len);
    free(sealed2);

    /* empty secret */
    assert_int_equal(td_seal(key, NULL, 0, &sealed2, &sealed2_len), 0);
    assert_int_equal(sealed2_len, 40);
    assert_int_equal(td_open(key, sealed2, sealed2_len, &plain, &plain_len), 0);
    assert_int_equal(plain_len, 0);
    free(plain);
    free(sealed2);
    free(sealed);
}

static void test_seal_tamper(void **state)
{
    (void)state;
    uint8_t key[TD_MASTER_KEY_LEN], other[TD_MASTER_KEY_LEN];
    td_random_bytes(key, sizeof key);
    td_random_bytes(other, sizeof other);
    static const uint8_t secret[] = "sealed";
    uint8_t *sealed = NULL, *plain = NULL;
    size_t sealed_len = 0, plain_len = 0;
    assert_int_equal(td_seal(key, secret, sizeof secret, &sealed, &sealed_len), 0);

    /* every single flipped bit, in the nonce, ciphertext or tag, is caught */
    for (size_t i = 0; i < sealed_len; i++) {
        sealed[i] ^= 0x01;
        plain = (uint8_t *)1;
        assert_int_equal(td_open(key, sealed, sealed_len, &plain, &plain_len), -1);
        assert_null(plain);
        sealed[i] ^= 0x01;
    }
    assert_int_equal(td_open(other, sealed, sealed_len, &plain, &plain_len), -1);
    assert_null(plain);
    assert_int_equal(td_open(key, sealed, sealed_len - 1, &plain, &plain_len), -1);
    assert_int_equal(td_open(key, sealed, 39, &plain, &plain_len), -1);
    assert_int_equal(td_open(key, sealed, 0, &plain, &plain_len), -1);
    assert_int_equal(td_open(key, NULL, 0, &plain, &plain_len), -1);

    /* and the intact one still opens */
    assert_int_equal(td_open(key, sealed, sealed_len, &plain, &plain_len), 0);
    assert_memory_equal(plain, secret, sizeof secret);
    free(plain);
    free(sealed);
}

/* --- API key hashes and comparisons --------------------------------------- */

static void test_api_key_hash(void **state)
{
    (void)state;
    char h1[65], h2[65], h3[65];
    td_api_key_hash("test-api-key-0001", h1);
    td_api_key_hash("test-api-key-0001", h2);
    td_api_key_hash("test-api-key-0002", h3);
    assert_string_equal(h1, h2);
    assert_string_not_equal(h1, h3);
    assert_int_equal(strlen(h1), 64);
    assert_int_equal(strspn(h1, "0123456789abcdef"), 64);
    /* fixed values: stored hashes must never change */
    assert_string_equal(h1, api_hash_test);
    td_api_key_hash("", h1);
    assert_string_equal(h1, api_hash_empty);

    /* keyed: differs from the unkeyed BLAKE2b-256 of the same key */
    uint8_t plain[32];
    char plain_hex[65];
    crypto_generichash(plain, sizeof plain, (const uint8_t *)"test-api-key-0001", 17, NULL, 0);
    sodium_bin2hex(plain_hex, sizeof plain_hex, plain, sizeof plain);
    assert_string_not_equal(plain_hex, api_hash_test);
}

static void test_ct_equal(void **state)
{
    (void)state;
    assert_int_equal(td_ct_equal("abc", "abc"), 0);
    assert_int_equal(td_ct_equal("", ""), 0);
    assert_int_not_equal(td_ct_equal("abc", "abd"), 0);
    assert_int_not_equal(td_ct_equal("abc", "ab"), 0);
    assert_int_not_equal(td_ct_equal("ab", "abc"), 0);
    assert_int_not_equal(td_ct_equal(NULL, "a"), 0);
    assert_int_not_equal(td_ct_equal("a", NULL), 0);
}

static void test_random_bytes(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    td_random_bytes(a, sizeof a);
    td_random_bytes(b, sizeof b);
    assert_memory_not_equal(a, b, sizeof a);
}

/* ---- idempotency records at rest ---- */

/* Hex SHA-256 of the concatenation of parts (n of them, each with its length). */
static void sha256_hex(const void *const *parts, const size_t *lens, int n, char out[65])
{
    crypto_hash_sha256_state st;
    uint8_t h[32];
    crypto_hash_sha256_init(&st);
    for (int i = 0; i < n; i++)
        crypto_hash_sha256_update(&st, parts[i], lens[i]);
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(out, 65, h, sizeof h);
}

/* The stored request hash depends on the master key: without it, a short
 * secret in the body (an OTP, a PAN) cannot be found by hashing guesses. */
static void test_idem_request_hash_keyed(void **state)
{
    (void)state;
    uint8_t k1[TD_MASTER_KEY_LEN], k2[TD_MASTER_KEY_LEN];
    memset(k1, 0x11, sizeof k1);
    memset(k2, 0x22, sizeof k2);
    const char *body = "{\"methodId\":\"otp-sms\",\"otp\":\"123456\"}";
    const char *path = "/network/v1/digitalCards/dc_1/otp";
    char h1[65], h1b[65], h2[65], other[65], plain[65], bare[65];
    td_idem_request_hash(k1, "POST", path, body, strlen(body), h1);
    td_idem_request_hash(k1, "POST", path, body, strlen(body), h1b);
    td_idem_request_hash(k2, "POST", path, body, strlen(body), h2);
    assert_int_equal(strlen(h1), 64);
    assert_string_equal(h1, h1b);    /* the same for every node with the key */
    assert_string_not_equal(h1, h2); /* another master key, another hash */
    /* not the SHA-256 a record held before, nor that of the body alone */
    const void *parts[] = {"POST", path, body};
    size_t lens[] = {5, strlen(path) + 1, strlen(body)};
    sha256_hex(parts, lens, 3, plain);
    sha256_hex((const void *[]){body}, (size_t[]){strlen(body)}, 1, bare);
    assert_string_not_equal(h1, plain);
    assert_string_not_equal(h1, bare);
    /* every part counts, and the parts stay apart */
    td_idem_request_hash(k1, "PUT", path, body, strlen(body), other);
    assert_string_not_equal(h1, other);
    td_idem_request_hash(k1, "POST", path, body, strlen(body) - 1, other);
    assert_string_not_equal(h1, other);
    char h3[65], h4[65];
    td_idem_request_hash(k1, "POST", "/ab", "c", 1, h3);
    td_idem_request_hash(k1, "POST", "/a", "bc", 2, h4);
    assert_string_not_equal(h3, h4);
}

static void test_idem_answer_sealed(void **state)
{
    (void)state;
    uint8_t k1[TD_MASTER_KEY_LEN], k2[TD_MASTER_KEY_LEN];
    memset(k1, 0x11, sizeof k1);
    memset(k2, 0x22, sizeof k2);
    const char *answer = "{\"apiKey\":\"tdk_secret_value\"}";
    char *sealed = NULL, *again = NULL, *opened = NULL;
    assert_int_equal(td_idem_seal_answer(k1, "scope\x1fkey\x1fhash", answer, &sealed), 0);
    assert_null(strstr(sealed, "tdk_secret_value"));
    /* base64url only: it fits a TEXT column and never looks like JSON */
    for (const char *p = sealed; *p; p++)
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
    assert_int_equal(td_idem_seal_answer(k1, "scope\x1fkey\x1fhash", answer, &again), 0);
    assert_string_not_equal(sealed, again); /* a random nonce each time */
    assert_int_equal(td_idem_open_answer(k1, "scope\x1fkey\x1fhash", sealed, &opened), 0);
    assert_string_equal(opened, answer);
    free(opened);
    opened = NULL;
    /* another key, another record, a changed byte, something not sealed: no */
    assert_int_equal(td_idem_open_answer(k2, "scope\x1fkey\x1fhash", sealed, &opened), -1);
    assert_int_equal(td_idem_open_answer(k1, "scope\x1fkey2\x1fhash", sealed, &opened), -1);
    sealed[strlen(sealed) / 2] = sealed[strlen(sealed) / 2] == 'A' ? 'B' : 'A';
    assert_int_equal(td_idem_open_answer(k1, "scope\x1fkey\x1fhash", sealed, &opened), -1);
    assert_int_equal(td_idem_open_answer(k1, "scope\x1fkey\x1fhash", answer, &opened), -1);
    assert_int_equal(td_idem_open_answer(k1, "scope\x1fkey\x1fhash", "", &opened), -1);
    assert_null(opened);
    /* an empty answer round-trips */
    free(again);
    assert_int_equal(td_idem_seal_answer(k1, "a", "", &again), 0);
    assert_int_equal(td_idem_open_answer(k1, "a", again, &opened), 0);
    assert_string_equal(opened, "");
    free(opened);
    free(again);
    free(sealed);
}

int main(void)
{
    if (td_crypto_init() != 0) return 1;
    if (td_crypto_init() != 0) /* a second call must be harmless too */
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url_known),
        cmocka_unit_test(test_b64url_round_trip),
        cmocka_unit_test(test_b64url_rejects),
        cmocka_unit_test(test_b64url_capacity),
        cmocka_unit_test(test_ed25519_sign_verify),
        cmocka_unit_test(test_ed25519_rfc8032),
        cmocka_unit_test(test_key_id_fixed),
        cmocka_unit_test(test_sign_payload_fixed),
        cmocka_unit_test(test_signed_message_layout),
        cmocka_unit_test(test_verify_payload),
        cmocka_unit_test(test_sig_suffix),
        cmocka_unit_test(test_seal_round_trip),
        cmocka_unit_test(test_seal_tamper),
        cmocka_unit_test(test_api_key_hash),
        cmocka_unit_test(test_ct_equal),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_idem_request_hash_keyed),
        cmocka_unit_test(test_idem_answer_sealed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
