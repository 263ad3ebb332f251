/* test_util.c — unit tests for util/util.c (ids, secrets, bounded copies,
 * strict integer parsing, id character classes) and the error registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "crypto/crypto.h"
#include "util/util.h"

static const char B58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

static bool all_in(const char *s, size_t n, const char *set)
{
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !strchr(set, s[i])) return false;
    return true;
}

/* ---- ids and secrets ---- */

/* "<prefix>:<base58 of 20 bytes>:<base58 of 5 bytes>". 20 bytes are at most
 * 28 base58 digits, 5 bytes at most 7. */
static void check_id_shape(const char *id, const char *prefix)
{
    size_t pl = strlen(prefix);
    assert_memory_equal(id, prefix, pl);
    assert_int_equal(id[pl], ':');
    const char *body = id + pl + 1;
    const char *colon = strchr(body, ':');
    assert_non_null(colon);
    size_t bl = (size_t)(colon - body);
    assert_true(bl >= 20 && bl <= 28); /* shorter only with ~2^-40 odds */
    assert_true(all_in(body, bl, B58));
    const char *sfx = colon + 1;
    size_t sl = strlen(sfx);
    assert_true(sl >= 1 && sl <= 7);
    assert_true(all_in(sfx, sl, B58));
}

static void test_new_id_shape(void **state)
{
    (void)state;
    const char *prefixes[] = {"m", "ta", "tt", "so", "rq", "a"};
    for (size_t p = 0; p < sizeof prefixes / sizeof prefixes[0]; p++)
        for (int i = 0; i < 50; i++) {
            char id[96];
            assert_int_equal(td_new_id(prefixes[p], id, sizeof id), 0);
            check_id_shape(id, prefixes[p]);
        }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void test_new_id_unique(void **state)
{
    (void)state;
    enum { N = 2000 };
    char(*ids)[96] = calloc(N, sizeof *ids);
    assert_non_null(ids);
    for (int i = 0; i < N; i++)
        assert_int_equal(td_new_id("ta", ids[i], sizeof ids[i]), 0);
    qsort(ids, N, sizeof *ids, cmp_str);
    for (int i = 1; i < N; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
    free(ids);
}

static void test_new_id_capacity(void **state)
{
    (void)state;
    char id[96];
    assert_int_equal(td_new_id("ta", id, sizeof id), 0);
    size_t need = strlen(id) + 1;
    /* Exactly too small fails without writing past cap (ASan would see it). */
    char *tight = malloc(4);
    assert_non_null(tight);
    assert_int_equal(td_new_id("ta", tight, 4), -1);
    free(tight);
    assert_true(need <= 40);
    char big[40];
    assert_int_equal(td_new_id("ta", big, sizeof big), 0);
    /* The widest possible id (2 + 1 + 28 + 1 + 7 + NUL = 40) always fits in 40. */
    assert_int_equal(td_new_id("tt", big, 40), 0);
}

static void test_new_secret(void **state)
{
    (void)state;
    char a[128], b[128];
    assert_int_equal(td_new_secret(32, a, sizeof a), 0);
    assert_int_equal(td_new_secret(32, b, sizeof b), 0);
    assert_int_equal(strlen(a), 43); /* base64url, no padding */
    assert_true(all_in(a, strlen(a), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"));
    assert_string_not_equal(a, b);
    assert_int_equal(td_new_secret(1, a, sizeof a), 0);
    assert_int_equal(strlen(a), 2);
    assert_int_equal(td_new_secret(64, a, sizeof a), 0);
    assert_int_equal(strlen(a), 86);
    /* More than 64 random bytes is refused, and so is an output too small. */
    assert_int_equal(td_new_secret(65, a, sizeof a), -1);
    assert_int_equal(td_new_secret(32, a, 43), -1);
    assert_int_equal(td_new_secret(32, a, 44), 0);
}

/* ---- bounded copy ---- */

static void test_strlcpy(void **state)
{
    (void)state;
    char d[8];
    assert_int_equal(td_strlcpy(d, "abc", sizeof d), 0);
    assert_string_equal(d, "abc");
    assert_int_equal(td_strlcpy(d, "", sizeof d), 0);
    assert_string_equal(d, "");
    assert_int_equal(td_strlcpy(d, "1234567", sizeof d), 0); /* exactly fits */
    assert_string_equal(d, "1234567");
    assert_int_equal(td_strlcpy(d, "12345678", sizeof d), -1); /* one too long */
    assert_string_equal(d, "1234567");
    assert_int_equal(td_strlcpy(d, "a much longer string", sizeof d), -1);
    assert_string_equal(d, "a much ");
    assert_int_equal(td_strlcpy(d, "xy", 1), -1);
    assert_string_equal(d, "");
    /* cap 0 writes nothing at all. */
    memcpy(d, "keep", 5);
    assert_int_equal(td_strlcpy(d, "xy", 0), -1);
    assert_string_equal(d, "keep");
}

/* ---- strict integers ---- */

static void test_parse_i64_ok(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t v;
    } ok[] = {
        {"0", 0},
        {"-0", 0},
        {"7", 7},
        {"007", 7},
        {"-42", -42},
        {"1700000000000", 1700000000000LL},
        {"9223372036854775807", INT64_MAX},
        {"-9223372036854775808", INT64_MIN},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = 12345;
        assert_int_equal(td_parse_i64(ok[i].s, &v), 0);
        assert_true(v == ok[i].v);
    }
}

static void test_parse_i64_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "-",
        "+",
        "+1",
        " 1",
        "1 ",
        "1\n",
        "\t1",
        "12a",
        "a12",
        "1.0",
        "1e3",
        "0x10",
        "--1",
        "-+1",
        "1-",
        "9223372036854775808",  /* INT64_MAX + 1 */
        "-9223372036854775809", /* INT64_MIN - 1 */
        "99999999999999999999999",
        "١", /* a non-ASCII digit */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = 12345;
        assert_int_equal(td_parse_i64(bad[i], &v), -1);
        assert_true(v == 12345); /* untouched on failure */
    }
    int64_t v = 12345;
    assert_int_equal(td_parse_i64(NULL, &v), -1);
    assert_true(v == 12345);
}

/* ---- id character classes ---- */

static void test_is_id_chars(void **state)
{
    (void)state;
    assert_true(td_is_id_chars("abcXYZ019", 1, 64, NULL));
    assert_false(td_is_id_chars("abc-def", 1, 64, NULL));
    assert_true(td_is_id_chars("abc-def", 1, 64, "-"));
    assert_true(td_is_id_chars("m:abc_def-1", 1, 64, ":_-"));
    assert_false(td_is_id_chars("m:abc def", 1, 64, ":_-"));
    assert_false(td_is_id_chars("m/abc", 1, 64, ":_-"));
    assert_false(td_is_id_chars("m.abc", 1, 64, ":_-"));
    assert_false(td_is_id_chars("caf\xc3\xa9", 1, 64, ":_-")); /* non-ASCII */
    assert_false(td_is_id_chars("a\x7f", 1, 64, ":_-"));
    /* length bounds are inclusive */
    assert_true(td_is_id_chars("abc", 3, 3, NULL));
    assert_false(td_is_id_chars("ab", 3, 5, NULL));
    assert_false(td_is_id_chars("abcdef", 3, 5, NULL));
    assert_true(td_is_id_chars("abcde", 3, 5, NULL));
    assert_true(td_is_id_chars("", 0, 5, NULL));
    assert_false(td_is_id_chars("", 1, 5, NULL));
    /* an empty extra set adds nothing */
    assert_false(td_is_id_chars("a-b", 1, 5, ""));
}

/* Token.io examples give epoch seconds, others milliseconds: below 10^11
 * (year 5138 in seconds, 1973 in ms) a value is taken as seconds. */
static void test_epoch_to_ms(void **state)
{
    (void)state;
    assert_true(td_epoch_to_ms(0) == 0);
    assert_true(td_epoch_to_ms(1) == 1000);
    assert_true(td_epoch_to_ms(1700000000) == 1700000000000LL);
    assert_true(td_epoch_to_ms(99999999999LL) == 99999999999000LL);
    assert_true(td_epoch_to_ms(100000000000LL) == 100000000000LL);
    assert_true(td_epoch_to_ms(1700000000000LL) == 1700000000000LL);
    assert_true(td_epoch_to_ms(INT64_MAX) == INT64_MAX);
}

static void test_clocks(void **state)
{
    (void)state;
    int64_t now = td_now_ms();
    assert_true(now > 1600000000000LL); /* after 2020 */
    int64_t a = td_mono_us(), b = td_mono_us();
    assert_true(b >= a);
}

/* ---- the error registry ---- */

static void test_errors_complete(void **state)
{
    (void)state;
    for (int c = 0; c < TD_E__COUNT; c++) {
        const td_err_info *i = td_err_lookup((td_err)c);
        assert_non_null(i);
        assert_non_null(i->name);
        assert_non_null(i->tokenio);
        assert_non_null(i->message);
        assert_true(strlen(i->name) > 0);
        assert_true(strlen(i->tokenio) > 0);
        assert_true(strlen(i->message) > 0);
        assert_true(i->http_status >= 200 && i->http_status <= 599);
        if (c != TD_OK) assert_true(i->http_status >= 400);
        /* Ours (5xx) vs the caller's (4xx): caller_fault is false exactly for 5xx. */
        assert_int_equal(i->caller_fault, i->http_status < 500);
        /* names are unique: metrics and logs key on them */
        for (int d = 0; d < c; d++)
            assert_string_not_equal(td_err_lookup((td_err)d)->name, i->name);
    }
}

static void test_errors_statuses(void **state)
{
    (void)state;
    static const struct {
        td_err code;
        int status;
        const char *tokenio;
    } want[] = {
        {TD_OK, 200, "OK"},
        {TD_E_BAD_JSON, 400, "INVALID_ARGUMENT"},
        {TD_E_INVALID_ARGUMENT, 400, "INVALID_ARGUMENT"},
        {TD_E_BAD_PAGINATION, 400, "INVALID_ARGUMENT"},
        {TD_E_UNSUPPORTED_MEDIA, 415, "INVALID_ARGUMENT"},
        {TD_E_BODY_TOO_LARGE, 413, "INVALID_ARGUMENT"},
        {TD_E_URI_TOO_LONG, 414, "INVALID_ARGUMENT"},
        {TD_E_HEADERS_TOO_LARGE, 431, "INVALID_ARGUMENT"},
        {TD_E_UNAUTHENTICATED, 401, "UNAUTHENTICATED"},
        {TD_E_PERMISSION_DENIED, 403, "PermissionDenied"},
        {TD_E_NOT_FOUND, 404, "NOT_FOUND"},
        {TD_E_METHOD_NOT_ALLOWED, 405, "INVALID_ARGUMENT"},
        {TD_E_IDEMPOTENCY_REUSED, 409, "ALREADY_EXISTS"},
        {TD_E_CONFLICT, 409, "ALREADY_EXISTS"},
        {TD_E_GONE, 410, "FAILED_PRECONDITION"},
        {TD_E_RATE_LIMITED, 429, "RESOURCE_EXHAUSTED"},
        {TD_E_INTERNAL, 500, "InternalServerError"},
        {TD_E_NOT_IMPLEMENTED, 501, "UNIMPLEMENTED"},
        {TD_E_UNAVAILABLE, 503, "UNAVAILABLE"},
        {TD_E_TIMEOUT, 504, "DEADLINE_EXCEEDED"},
        {TD_E_NOT_ALLOWED_IN_STATE, 409, "FAILED_PRECONDITION"},
        {TD_E_TSP_FAILED, 502, "UNAVAILABLE"},
        {TD_E_TSP_TIMEOUT, 504, "DEADLINE_EXCEEDED"},
    };
    assert_int_equal(sizeof want / sizeof want[0], TD_E__COUNT); /* a new code needs a row here */
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const td_err_info *info = td_err_lookup(want[i].code);
        assert_int_equal(info->http_status, want[i].status);
        assert_string_equal(info->tokenio, want[i].tokenio);
    }
}

static void test_errors_lookup_out_of_range(void **state)
{
    (void)state;
    const td_err_info *internal = td_err_lookup(TD_E_INTERNAL);
    assert_ptr_equal(td_err_lookup(TD_E__COUNT), internal);
    assert_ptr_equal(td_err_lookup((td_err)(TD_E__COUNT + 100)), internal);
    assert_ptr_equal(td_err_lookup((td_err)-1), internal);
}

static void test_fail(void **state)
{
    (void)state;
    td_error e = {0};
    assert_int_equal(td_fail(&e, TD_E_NOT_FOUND, "token %s not found", "ta:1"), TD_E_NOT_FOUND);
    assert_int_equal(e.code, TD_E_NOT_FOUND);
    assert_string_equal(e.detail, "token ta:1 not found");
    /* No format: an empty detail (a previous one is cleared). */
    assert_int_equal(td_fail(&e, TD_E_CONFLICT, NULL), TD_E_CONFLICT);
    assert_int_equal(e.code, TD_E_CONFLICT);
    assert_string_equal(e.detail, "");
    /* A NULL error still returns the code. */
    assert_int_equal(td_fail(NULL, TD_E_GONE, "x"), TD_E_GONE);
    /* Long details are truncated to the buffer, NUL-terminated. */
    char longs[400];
    memset(longs, 'x', sizeof longs - 1);
    longs[sizeof longs - 1] = 0;
    td_fail(&e, TD_E_INVALID_ARGUMENT, "%s", longs);
    assert_int_equal(strlen(e.detail), sizeof e.detail - 1);
}

int main(void)
{
    if (td_crypto_init() != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_id_shape),
        cmocka_unit_test(test_new_id_unique),
        cmocka_unit_test(test_new_id_capacity),
        cmocka_unit_test(test_new_secret),
        cmocka_unit_test(test_strlcpy),
        cmocka_unit_test(test_parse_i64_ok),
        cmocka_unit_test(test_parse_i64_rejects),
        cmocka_unit_test(test_is_id_chars),
        cmocka_unit_test(test_epoch_to_ms),
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_errors_complete),
        cmocka_unit_test(test_errors_statuses),
        cmocka_unit_test(test_errors_lookup_out_of_range),
        cmocka_unit_test(test_fail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
