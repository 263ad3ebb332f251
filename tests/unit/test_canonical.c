/* test_canonical.c — unit tests for the canonical JSON of token payloads, with
 * fixed vectors shared with tests/unit/vectors.json (cross-checked by vectors.js in Node). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/canonical.h"
#include "crypto/crypto.h"

/* Fixed vectors: input JSON text, expected canonical bytes. The names and
 * expected strings are the ones in vectors.json; test_vectors_json checks
 * that the two copies agree. Non-ASCII expectations are spelled as UTF-8
 * byte escapes, split after each escape so that no following letter is
 * read as another hex digit. */
struct vector {
    const char *name;
    const char *input;
    const char *canonical;
};

#define TOKEN_PAYLOAD_INPUT                                                                                            \
    "{\"version\":\"1.0\",\"refId\":\"ab-12\",\"from\":{\"id\":\"m:abc:def\"},"                                        \
    "\"to\":{\"id\":\"m:xyz:def\"},\"access\":{\"resources\":[{\"account\":"                                           \
    "{\"accountId\":\"a:1\"}}]},\"expiresAtMs\":\"1700000000000\",\"description\":null}"
#define TOKEN_PAYLOAD_CANONICAL                                                                                        \
    "{\"access\":{\"resources\":[{\"account\":{\"accountId\":\"a:1\"}}]},"                                             \
    "\"expiresAtMs\":\"1700000000000\",\"from\":{\"id\":\"m:abc:def\"},\"refId\":\"ab-12\","                           \
    "\"to\":{\"id\":\"m:xyz:def\"},\"version\":\"1.0\"}"

static const struct vector vectors[] = {
    {"nested_unsorted", "{\"b\": {\"z\": 1, \"a\": {\"y\": true, \"x\": false}}, \"a\": \"first\"}",
     "{\"a\":\"first\",\"b\":{\"a\":{\"x\":false,\"y\":true},\"z\":1}}"},
    {"nulls_removed",
     "{\"keep\": \"v\", \"drop\": null, \"inner\": {\"gone\": null, \"also\": {\"x\": null}},"
     " \"list\": [null, 1, {\"n\": null, \"k\": \"v\"}]}",
     "{\"inner\":{\"also\":{}},\"keep\":\"v\",\"list\":[null,1,{\"k\":\"v\"}]}"},
    {"arrays_with_objects", "[{\"b\": 2, \"a\": 1}, {\"d\": [{\"f\": \"x\", \"e\": \"y\"}], \"c\": []}]",
     "[{\"a\":1,\"b\":2},{\"c\":[],\"d\":[{\"e\":\"y\",\"f\":\"x\"}]}]"},
    {"unicode_strings",
     "{\"name\": \"\\u00e9\", \"sep\": \"a\\u2028b\\u2029c\", \"emoji\": \"\\ud83d\\ude00\","
     " \"cjk\": \"\\u65e5\\u672c\"}",
     "{\"cjk\":\"\xe6\x97\xa5\xe6\x9c\xac\",\"emoji\":\"\xf0\x9f\x98\x80\",\"name\":\"\xc3\xa9\","
     "\"sep\":\"a\xe2\x80\xa8"
     "b\xe2\x80\xa9"
     "c\"}"},
    {"unicode_key_order", "{\"\\ud83d\\ude00\": 1, \"\\uff01\": 2, \"\\u00e9\": 3, \"z\": 4, \"a\": 5, \"Z\": 6}",
     "{\"Z\":6,\"a\":5,\"z\":4,\"\xc3\xa9\":3,\"\xef\xbc\x81\":2,\"\xf0\x9f\x98\x80\":1}"},
    {"escapes",
     "{\"q\": \"say \\\"hi\\\"\", \"bs\": \"a\\\\b\", \"ctl\": \"\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\","
     " \"slash\": \"a/b\"}",
     "{\"bs\":\"a\\\\b\",\"ctl\":\"\\b\\f\\n\\r\\t\\u0001\\u001F\x7f\",\"q\":\"say \\\"hi\\\"\","
     "\"slash\":\"a/b\"}"},
    {"empty_containers", "{\"o\": {}, \"a\": [], \"s\": \"\", \"n\": {\"only\": null}}",
     "{\"a\":[],\"n\":{},\"o\":{},\"s\":\"\"}"},
    {"integers_and_booleans", "{\"zero\": 0, \"neg\": -42, \"max\": 9007199254740991, \"t\": true, \"f\": false}",
     "{\"f\":false,\"max\":9007199254740991,\"neg\":-42,\"t\":true,\"zero\":0}"},
    {"top_level_integer", "1700000000000", "1700000000000"},
    {"token_payload", TOKEN_PAYLOAD_INPUT, TOKEN_PAYLOAD_CANONICAL},
};

static const char seed_hex[] = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char key_id_expected[] = "If4x36FUomFia_hU";
static const char sig_endorsed[] =
    "wrK8bXiqwMRdrn4NiXQg4jqolZLgOJrm-ItXyWz_vZB7AZv_wF4WmDwIc3pPRKO2AxwUI-HniQlk3CSfKWsPCQ";
static const char sig_cancelled[] =
    "z2cll05xAdY7c0CgcRb1HAlrHvbwdy9xqDmGQV7OKPgFirNB18c0S0jnPPj-tnMMYR4kHuSXs4LR-n6-7omkAw";

/* Parses text (which must be valid JSON) and returns its canonical form. */
static char *canon_of(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &err);
    if (!v) fail_msg("bad test JSON %s: %s", text, err.text);
    char *c = td_canonical_json(v);
    json_decref(v);
    return c;
}

static void test_fixed_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        char *c = canon_of(vectors[i].input);
        assert_non_null(c);
        if (strcmp(c, vectors[i].canonical) != 0)
            fail_msg("%s: got %s, want %s", vectors[i].name, c, vectors[i].canonical);
        free(c);
    }
}

static void test_idempotent(void **state)
{
    (void)state;
    /* The canonical form of a canonical string is itself, so a verifier that
     * re-canonicalises what it received gets the signed bytes back. */
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        char *c = canon_of(vectors[i].canonical);
        assert_non_null(c);
        assert_string_equal(c, vectors[i].canonical);
        free(c);
    }
}

static void test_token_payload(void **state)
{
    (void)state;
    json_t *v = json_loads(TOKEN_PAYLOAD_INPUT, 0, NULL);
    assert_non_null(v);
    char *c = td_canonical_json(v);
    assert_non_null(c);
    assert_string_equal(c, TOKEN_PAYLOAD_CANONICAL);
    /* the caller's tree is left alone: the null member is still there */
    assert_true(json_is_null(json_object_get(v, "description")));
    assert_int_equal(json_object_size(v), 7);
    free(c);
    json_decref(v);
}

static void test_absent_equals_null(void **state)
{
    (void)state;
    char *a = canon_of("{\"a\":1,\"b\":null}");
    char *b = canon_of("{\"a\":1}");
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a, b);
    free(a);
    free(b);
}

static void test_reals_rejected(void **state)
{
    (void)state;
    static const char *const reals[] = {
        "1.5", "1e3", "0.0", "{\"amount\":10.25}", "{\"a\":{\"b\":[1,2.0]}}", "[null,{\"x\":-0.5}]",
    };
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
        char *c = canon_of(reals[i]);
        if (c) fail_msg("%s was accepted as %s", reals[i], c);
    }
}

static void test_null_argument(void **state)
{
    (void)state;
    assert_null(td_canonical_json(NULL));
}

/* n levels of nested arrays around an integer */
static json_t *nested_arrays(int n)
{
    json_t *v = json_integer(1);
    for (int i = 0; i < n; i++) {
        json_t *a = json_array();
        json_array_append_new(a, v);
        v = a;
    }
    return v;
}

static void test_depth_limit(void **state)
{
    (void)state;
    json_t *ok = nested_arrays(100);
    char *c = td_canonical_json(ok);
    assert_non_null(c);
    assert_int_equal(strlen(c), 100 * 2 + 1);
    free(c);
    json_decref(ok);

    json_t *deep = nested_arrays(1000);
    assert_null(td_canonical_json(deep));
    json_decref(deep);
}

static void test_built_in_memory(void **state)
{
    (void)state;
    /* Trees built by code (not parsed) go through the same rules. */
    json_t *v = json_pack("{s:s, s:n, s:{s:I, s:[n, b]}}", "z", "last", "gone", "m", "n",
                          (json_int_t)-9223372036854775807LL - 1, "arr", 0);
    assert_non_null(v);
    char *c = td_canonical_json(v);
    assert_non_null(c);
    assert_string_equal(c, "{\"m\":{\"arr\":[null,false],\"n\":-9223372036854775808},\"z\":\"last\"}");
    free(c);
    json_decref(v);
}

/* --- vectors.json, the copy that Node checks ------------------------------ */

static json_t *load_vectors_file(void)
{
    const char *dir = getenv("TD_SOURCE_DIR");
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/tests/unit/vectors.json", dir ? dir : ".");
    if (n < 0 || (size_t)n >= sizeof path) fail_msg("TD_SOURCE_DIR too long");
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root && dir) fail_msg("cannot load %s: %s", path, err.text);
    return root; /* NULL when run by hand outside the source tree */
}

static const char *file_str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    if (!s) fail_msg("vectors.json: missing string %s", key);
    return s;
}

static void test_vectors_json(void **state)
{
    (void)state;
    json_t *root = load_vectors_file();
    if (!root) {
        skip(); /* cmocka's skip() does not return */
        return;
    }

    /* canonical vectors: same set as the C table, and td_canonical_json agrees */
    json_t *canon = json_object_get(root, "canonical");
    assert_int_equal(json_array_size(canon), sizeof vectors / sizeof vectors[0]);
    for (size_t i = 0; i < json_array_size(canon); i++) {
        json_t *vec = json_array_get(canon, i);
        const char *name = file_str(vec, "name");
        const char *want = file_str(vec, "canonical");
        assert_string_equal(name, vectors[i].name);
        assert_string_equal(want, vectors[i].canonical);
        char *c = td_canonical_json(json_object_get(vec, "input"));
        assert_non_null(c);
        if (strcmp(c, want) != 0) fail_msg("vectors.json %s: got %s, want %s", name, c, want);
        free(c);
    }

    /* keys */
    json_t *ed = json_object_get(root, "ed25519");
    assert_string_equal(file_str(ed, "seedHex"), seed_hex);
    assert_string_equal(file_str(ed, "keyId"), key_id_expected);
    uint8_t seed[32], pk[TD_ED25519_PK_LEN], sk[TD_ED25519_SK_LEN];
    assert_int_equal(sodium_hex2bin(seed, sizeof seed, seed_hex, strlen(seed_hex), NULL, NULL, NULL), 0);
    assert_int_equal(td_ed25519_seed_keypair(seed, pk, sk), 0);
    char hex[2 * TD_ED25519_PK_LEN + 1];
    sodium_bin2hex(hex, sizeof hex, pk, sizeof pk);
    assert_string_equal(hex, file_str(ed, "publicKeyHex"));
    char b64[64];
    assert_int_equal(td_b64url_encode(pk, sizeof pk, b64, sizeof b64), 43);
    assert_string_equal(b64, file_str(ed, "publicKeyB64url"));
    char kid[TD_KEY_ID_LEN + 1];
    td_key_id(pk, kid);
    assert_string_equal(kid, key_id_expected);

    /* the whole pipeline: payload -> canonical -> both signatures */
    json_t *sigs = json_object_get(root, "signatures");
    char *c = td_canonical_json(json_object_get(sigs, "payload"));
    assert_non_null(c);
    assert_string_equal(c, file_str(sigs, "canonical"));
    assert_string_equal(c, TOKEN_PAYLOAD_CANONICAL);
    assert_string_equal(file_str(sigs, "endorsed"), sig_endorsed);
    assert_string_equal(file_str(sigs, "cancelled"), sig_cancelled);
    char sig[TD_ED25519_SIG_LEN * 2];
    assert_int_equal(td_sign_payload(sk, c, "endorsed", sig, sizeof sig), 0);
    assert_string_equal(sig, sig_endorsed);
    assert_int_equal(td_sign_payload(sk, c, "cancelled", sig, sizeof sig), 0);
    assert_string_equal(sig, sig_cancelled);
    assert_int_equal(td_verify_payload(pk, c, "endorsed", sig_endorsed), 0);
    assert_int_equal(td_verify_payload(pk, c, "cancelled", sig_cancelled), 0);
    free(c);

    /* API key hashes */
    json_t *akh = json_object_get(root, "apiKeyHash");
    json_t *cases = json_object_get(akh, "cases");
    assert_true(json_array_size(cases) > 0);
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *k = json_array_get(cases, i);
        char h[65];
        td_api_key_hash(file_str(k, "apiKey"), h);
        assert_string_equal(h, file_str(k, "hash"));
    }

    sodium_memzero(sk, sizeof sk);
    json_decref(root);
}

int main(void)
{
    if (td_crypto_init() != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_vectors),  cmocka_unit_test(test_idempotent),
        cmocka_unit_test(test_token_payload),  cmocka_unit_test(test_absent_equals_null),
        cmocka_unit_test(test_reals_rejected), cmocka_unit_test(test_null_argument),
        cmocka_unit_test(test_depth_limit),    cmocka_unit_test(test_built_in_memory),
        cmocka_unit_test(test_vectors_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
