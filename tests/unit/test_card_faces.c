/* test_card_faces.c — unit tests for the network tokenization faces' pure
 * parts: the identifier and field validators (face_util.c), the classic
 * header checks (classic.c), the error shapes of the D1 and classic faces
 * (td_reply_error, also on unmatched paths), and the body helpers that must
 * never echo a secret. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/faces.h"
#include "api/http.h"
#include "util/util.h"

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = 0;
    return s;
}

/* ---- identifiers ---- */

static void test_issuer_id(void **state)
{
    (void)state;
    assert_true(td_issuer_id_ok("ISS0000001"));
    assert_true(td_issuer_id_ok("a_b-c_d-e1"));
    assert_false(td_issuer_id_ok("ISS000001"));
    assert_false(td_issuer_id_ok("ISS00000001"));
    assert_false(td_issuer_id_ok("ISS 000001"));
    assert_false(td_issuer_id_ok("ISS:000001"));
    assert_false(td_issuer_id_ok(""));
    assert_false(td_issuer_id_ok(NULL));
}

static void test_card_id(void **state)
{
    (void)state;
    char *s48 = repeat('a', 48), *s49 = repeat('a', 49);
    assert_true(td_card_id_ok("card-0001"));
    assert_true(td_card_id_ok("A_z-9"));
    assert_true(td_card_id_ok("x"));
    assert_true(td_card_id_ok(s48));
    assert_false(td_card_id_ok(s49));
    assert_false(td_card_id_ok(""));
    assert_false(td_card_id_ok("card 1"));
    assert_false(td_card_id_ok("card:1"));
    assert_false(td_card_id_ok("card/1"));
    assert_false(td_card_id_ok("carte-\xc3\xa9"));
    assert_false(td_card_id_ok(NULL));
    free(s48);
    free(s49);
}

static void test_ref_id(void **state)
{
    (void)state;
    char *s64 = repeat('Z', 64), *s65 = repeat('Z', 65);
    assert_true(td_ref_id_ok("dc_4Zx9abcdefghijklmnopq"));
    assert_true(td_ref_id_ok("op_1"));
    assert_true(td_ref_id_ok("ev-1"));
    assert_true(td_ref_id_ok(s64));
    assert_false(td_ref_id_ok(s65));
    assert_false(td_ref_id_ok(""));
    assert_false(td_ref_id_ok("dc.1"));
    assert_false(td_ref_id_ok("ta:1"));
    assert_false(td_ref_id_ok("dc 1"));
    free(s64);
    free(s65);
}

static void test_reason(void **state)
{
    (void)state;
    char *s64 = repeat('r', 64), *s65 = repeat('r', 65);
    assert_true(td_reason_ok("Lost phone"));
    assert_true(td_reason_ok("x"));
    assert_true(td_reason_ok("Reason 42"));
    assert_true(td_reason_ok(s64));
    assert_false(td_reason_ok(s65));
    assert_false(td_reason_ok(""));
    assert_false(td_reason_ok("Lost phone!"));
    assert_false(td_reason_ok("lost_phone"));
    assert_false(td_reason_ok("lost-phone"));
    assert_false(td_reason_ok("tab\there"));
    assert_false(td_reason_ok("perdu \xc3\xa9"));
    free(s64);
    free(s65);
}

static void test_phone(void **state)
{
    (void)state;
    assert_true(td_phone_ok("+33 6 12 34 56 78"));
    assert_true(td_phone_ok("+33612345678"));
    assert_true(td_phone_ok("(020) 7946-0958"));
    assert_true(td_phone_ok("1234567"));           /* 7 digits */
    assert_true(td_phone_ok("123456789012345"));   /* 15 digits */
    assert_false(td_phone_ok("1234567890123456")); /* 16 digits */
    assert_false(td_phone_ok("123456"));
    assert_false(td_phone_ok("+33 6 12 34 56 7x"));
    assert_false(td_phone_ok("+33.6.12.34.56.78"));
    assert_false(td_phone_ok(""));
    assert_false(td_phone_ok("+ 1 - 2 - 3 - 4 - 5 - 6 - 7 - 8 - 9 - 0-")); /* 40 characters */
    assert_true(td_phone_ok("+ 1 - 2 - 3 - 4 - 5 - 6 - 7 - 8 - 9 - 0"));   /* 39 */
    assert_false(td_phone_ok(NULL));
}

static void test_email(void **state)
{
    (void)state;
    char *local = repeat('a', 251), big[300];
    assert_true(td_email_ok("jane@example.com"));
    assert_true(td_email_ok("j@x"));
    assert_true(td_email_ok("j\xc3\xa9r\xc3\xb4me@exemple.fr")); /* UTF-8 */
    assert_false(td_email_ok("jane.example.com"));
    assert_false(td_email_ok("jane@@example.com"));
    assert_false(td_email_ok("ja@ne@example.com"));
    assert_false(td_email_ok("@example.com"));
    assert_false(td_email_ok("jane@"));
    assert_false(td_email_ok("jane doe@example.com"));
    assert_false(td_email_ok("jane@exa\tmple.com"));
    assert_false(td_email_ok(""));
    snprintf(big, sizeof big, "%s@x.io", local); /* 256 */
    assert_false(td_email_ok(big));
    local[250] = 0;
    snprintf(big, sizeof big, "%s@x.io", local); /* 255 */
    assert_true(td_email_ok(big));
    assert_false(td_email_ok(NULL));
    free(local);
}

static void test_printable(void **state)
{
    (void)state;
    char *s128 = repeat('~', 128), *s129 = repeat('~', 129), *s64 = repeat(' ', 64), *s65 = repeat('!', 65);
    assert_true(td_printable_ok("APPLE_PAY", 128));
    assert_true(td_printable_ok("Jane's phone (2)", 128));
    assert_true(td_printable_ok(s128, 128));
    assert_false(td_printable_ok(s129, 128));
    assert_false(td_printable_ok("", 128));
    assert_false(td_printable_ok("line\nbreak", 128));
    assert_false(td_printable_ok("del\x7f", 128));
    assert_false(td_printable_ok("caf\xc3\xa9", 128));
    assert_true(td_correlation_header_ok("corr-123"));
    assert_true(td_correlation_header_ok(s64));
    assert_false(td_correlation_header_ok(s65));
    assert_false(td_correlation_header_ok(""));
    assert_false(td_correlation_header_ok(NULL));
    free(s128);
    free(s129);
    free(s64);
    free(s65);
}

/* ---- classic headers ---- */

static void expect_headers(const char *corr, const char *iss, const char *caller, int code)
{
    td_error e = {0};
    int rc = classic_check_headers(corr, iss, caller, &e);
    if (!code) {
        assert_int_equal(rc, 0);
        assert_int_equal(e.code, TD_OK);
        return;
    }
    assert_int_equal(rc, -1);
    assert_int_not_equal(e.code, TD_OK);
    if (e.classic != code)
        fail_msg("headers (%s, %s): responseCode %d, expected %d", corr ? corr : "(null)", iss ? iss : "(null)",
                 e.classic, code);
}

static void test_classic_headers(void **state)
{
    (void)state;
    char *c64 = repeat('c', 64), *c65 = repeat('c', 65);
    expect_headers("corr-1", "ISS0000001", "ISS0000001", 0);
    expect_headers(c64, "ISS0000001", "ISS0000001", 0);
    /* missing (or empty) → 111 */
    expect_headers(NULL, "ISS0000001", "ISS0000001", 111);
    expect_headers("", "ISS0000001", "ISS0000001", 111);
    expect_headers("corr-1", NULL, "ISS0000001", 111);
    expect_headers("corr-1", "", "ISS0000001", 111);
    expect_headers(NULL, NULL, "ISS0000001", 111);
    /* bad format → 112 */
    expect_headers(c65, "ISS0000001", "ISS0000001", 112);
    expect_headers("corr\n1", "ISS0000001", "ISS0000001", 112);
    expect_headers("corr-1", "ISS000001", "ISS0000001", 112);
    expect_headers("corr-1", "ISS00000001", "ISS0000001", 112);
    expect_headers("corr-1", "ISS 000001", "ISS0000001", 112);
    /* well formed, another issuer → 113 */
    expect_headers("corr-1", "ISS0000002", "ISS0000001", 113);
    expect_headers("corr-1", "iss0000001", "ISS0000001", 113);
    free(c64);
    free(c65);
}

/* ---- error shapes ---- */

typedef struct {
    td_req r;
    json_t *body;
} answer;

/* Renders e on the route matching (method, path), or on no route. */
static void render(answer *a, td_method m, const char *path, bool routed, const td_error *e)
{
    memset(a, 0, sizeof *a);
    td_route_miss mismatch;
    a->r.path = path;
    td_strlcpy(a->r.trace_id, "trace-1", sizeof a->r.trace_id);
    if (routed) {
        a->r.route = td_route_match(&a->r, m, path, &mismatch);
        assert_non_null(a->r.route);
    }
    td_reply_error(&a->r, e, "asked");
    assert_true(a->r.ready);
    a->body = a->r.resp_len ? json_loadb(a->r.resp, a->r.resp_len, 0, NULL) : NULL;
}

static void done(answer *a)
{
    json_decref(a->body);
    free(a->r.resp);
}

static td_error err(td_err code, const char *msg, int classic)
{
    td_error e = {0};
    td_fail(&e, code, "%s", msg);
    e.classic = classic;
    return e;
}

static void test_d1_shape(void **state)
{
    (void)state;
    answer a;
    td_error e = err(TD_E_NOT_ALLOWED_IN_STATE, "digital card dc_x is DELETED", 0);
    render(&a, TD_POST, "/banking/v1/issuers/ISS0000001/digitalCards/dc_x/operations:suspend", true, &e);
    assert_int_equal(a.r.status, 409);
    assert_non_null(a.body);
    assert_int_equal(json_object_size(a.body), 3);
    assert_string_equal(json_string_value(json_object_get(a.body, "error")), "digital card dc_x is DELETED");
    assert_string_equal(json_string_value(json_object_get(a.body, "errorCode")), "NOT_ALLOWED_IN_STATE");
    assert_string_equal(json_string_value(json_object_get(a.body, "traceId")), "trace-1");
    done(&a);

    /* malformed input is INVALID_ARGUMENT whatever the registry's name */
    e = err(TD_E_BAD_JSON, "", 0);
    render(&a, TD_POST, "/network/v1/tokenizations", true, &e);
    assert_int_equal(a.r.status, 400);
    assert_string_equal(json_string_value(json_object_get(a.body, "errorCode")), "INVALID_ARGUMENT");
    assert_string_equal(json_string_value(json_object_get(a.body, "error")), "The request body is not valid JSON");
    done(&a);

    e = err(TD_E_TSP_TIMEOUT, "slow", 0);
    render(&a, TD_POST, "/banking/v1/issuers/ISS0000001/cards/c1/operations:delete", true, &e);
    assert_int_equal(a.r.status, 504);
    assert_string_equal(json_string_value(json_object_get(a.body, "errorCode")), "TSP_TIMEOUT");
    done(&a);

    e = err(TD_E_RATE_LIMITED, "too many", 0);
    render(&a, TD_POST, "/network/v1/digitalCards/dc_1/otp", true, &e);
    assert_int_equal(a.r.status, 429);
    assert_true(a.r.retry_after_s >= 1);
    assert_string_equal(json_string_value(json_object_get(a.body, "errorCode")), "RATE_LIMITED");
    done(&a);

    /* no route: the prefix decides */
    e = err(TD_E_NOT_FOUND, "no such endpoint", 0);
    render(&a, TD_GET, "/banking/v1/nope", false, &e);
    assert_int_equal(a.r.status, 404);
    assert_string_equal(json_string_value(json_object_get(a.body, "errorCode")), "NOT_FOUND");
    assert_non_null(json_object_get(a.body, "traceId"));
    done(&a);
}

static void test_classic_shape(void **state)
{
    (void)state;
    answer a;
    const char *path = "/igwapi/v2.0/updateCardState";
    /* the registry's code */
    td_error e = err(TD_E_TSP_FAILED, "the TSP refused", 0);
    render(&a, TD_POST, path, true, &e);
    assert_int_equal(a.r.status, 400);
    assert_int_equal(json_object_size(a.body), 2);
    assert_int_equal(json_integer_value(json_object_get(a.body, "responseCode")), 911);
    assert_string_equal(json_string_value(json_object_get(a.body, "errorMessage")), "the TSP refused");
    done(&a);
    /* an explicit code wins */
    e = err(TD_E_NOT_FOUND, "unknown virtual card", 119);
    render(&a, TD_POST, path, true, &e);
    assert_int_equal(a.r.status, 400);
    assert_int_equal(json_integer_value(json_object_get(a.body, "responseCode")), 119);
    done(&a);
    e = err(TD_E_NOT_FOUND, "", 0);
    render(&a, TD_POST, path, true, &e);
    assert_int_equal(json_integer_value(json_object_get(a.body, "responseCode")), 116);
    done(&a);
    /* a stray value is never shown */
    e = err(TD_E_NOT_ALLOWED_IN_STATE, "", 12345);
    render(&a, TD_POST, path, true, &e);
    assert_int_equal(json_integer_value(json_object_get(a.body, "responseCode")), 432);
    done(&a);
    e = err(TD_E_UNAVAILABLE, "", 0);
    render(&a, TD_POST, path, true, &e);
    assert_int_equal(a.r.status, 400);
    assert_int_equal(json_integer_value(json_object_get(a.body, "responseCode")), 921);
    done(&a);
    /* 500: no body */
    e = err(TD_E_INTERNAL, "a bug", 0);
    render(&a, TD_POST, path, true, &e);
    assert_int_equal(a.r.status, 500);
    assert_int_equal(a.r.resp_len, 0);
    assert_null(a.body);
    done(&a);
    /* the credential: 401, its rate: 429 with Retry-After, 921 (retry) */
    e = err(TD_E_UNAUTHENTICATED, "", 0);
    render(&a, TD_POST, path, true, &e);
    assert_int_equal(a.r.status, 401);
    assert_int_equal(json_integer_value(json_object_get(a.body, "responseCode")), 113);
    done(&a);
    e = err(TD_E_RATE_LIMITED, "", 0);
    render(&a, TD_POST, path, true, &e);
    assert_int_equal(a.r.status, 429);
    assert_true(a.r.retry_after_s >= 1);
    assert_int_equal(json_integer_value(json_object_get(a.body, "responseCode")), 921);
    done(&a);
    /* no route under the prefix: classic, 112 as the server sets it */
    e = err(TD_E_NOT_FOUND, "no such endpoint", 112);
    render(&a, TD_POST, "/igwapi/v2.0/sendMessage", false, &e);
    assert_int_equal(a.r.status, 400);
    assert_int_equal(json_integer_value(json_object_get(a.body, "responseCode")), 112);
    done(&a);
}

static void test_tokenio_shape_unchanged(void **state)
{
    (void)state;
    answer a;
    td_error e = err(TD_E_NOT_FOUND, "", 119); /* the classic override means nothing here */
    render(&a, TD_GET, "/tokens/ta:1", true, &e);
    assert_int_equal(a.r.status, 404);
    json_t *er = json_object_get(a.body, "error");
    assert_non_null(er);
    assert_string_equal(json_string_value(json_object_get(er, "errorCode")), "NOT_FOUND");
    assert_string_equal(json_string_value(json_object_get(er, "paymentId")), "asked");
    done(&a);
    e = err(TD_E_NOT_FOUND, "", 0);
    render(&a, TD_GET, "/nothing/here", false, &e);
    assert_non_null(json_object_get(a.body, "error"));
    done(&a);
}

/* ---- bodies ---- */

static void body_req(td_req *r, const char *body)
{
    memset(r, 0, sizeof *r);
    r->body = (char *)body;
    r->body_len = strlen(body);
}

static void test_secret_body_not_echoed(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"card\":{\"pan\":4111111111111111x}}",
        "{\"otp\":\"987654\",\"otp\":\"987654\"}",
        "{\"otp\": 987654abc}",
        "{\"pan\":\"4111111111111111\"} 987654",
        "[\"4111111111111111\"",
        "{\"methodId\":\"otp-sms\",\"otp\":987654",
        "{\"consentAccepted\":true,\"credentials\":{\"password\":987654x}}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        td_req r;
        td_error e = {0};
        body_req(&r, bodies[i]);
        json_t *v = td_body_json(&r, &e);
        if (v) {
            json_decref(v);
            fail_msg("body %zu parsed", i);
        }
        assert_int_equal(e.code, TD_E_BAD_JSON);
        if (strstr(e.detail, "4111") || strstr(e.detail, "987654"))
            fail_msg("body %zu: the error quotes the secret: %s", i, e.detail);
    }
    /* and a valid body parses as usual */
    td_req r;
    td_error e = {0};
    body_req(&r, "{\"otp\":\"987654\"}");
    json_t *v = td_body_json(&r, &e);
    assert_non_null(v);
    json_decref(v);
}

static void test_optional_body(void **state)
{
    (void)state;
    td_req r;
    td_error e = {0};
    bool failed = true;
    body_req(&r, "");
    assert_null(td_body_json_optional(&r, &failed, &e));
    assert_false(failed);
    body_req(&r, " \r\n\t");
    assert_null(td_body_json_optional(&r, &failed, &e));
    assert_false(failed);
    body_req(&r, "{}");
    json_t *v = td_body_json_optional(&r, &failed, &e);
    assert_non_null(v);
    assert_false(failed);
    json_decref(v);
    body_req(&r, "nope");
    assert_null(td_body_json_optional(&r, &failed, &e));
    assert_true(failed);
    assert_int_equal(e.code, TD_E_BAD_JSON);
    body_req(&r, "[]");
    assert_null(td_body_json_optional(&r, &failed, &e));
    assert_true(failed);
}

static void test_json_str_ok(void **state)
{
    (void)state;
    json_t *b = json_loads("{\"id\":\"ok-1\",\"nul\":\"a\\u0000b\",\"bad\":\"a b\",\"num\":5,\"empty\":\"\"}",
                           JSON_ALLOW_NUL, NULL);
    assert_non_null(b);
    const char *out;
    td_error e = {0};
    assert_int_equal(td_json_str_ok(b, "body", "id", true, 64, td_ref_id_ok, "must be an id", &out, &e), 0);
    assert_string_equal(out, "ok-1");
    assert_int_equal(td_json_str_ok(b, "body", "absent", false, 64, td_ref_id_ok, "must be an id", &out, &e), 0);
    assert_null(out);
    assert_int_equal(td_json_str_ok(b, "body", "absent", true, 64, td_ref_id_ok, "must be an id", &out, &e), -1);
    assert_string_equal(e.detail, "body.absent is required");
    assert_int_equal(td_json_str_ok(b, "body", "nul", true, 64, NULL, NULL, &out, &e), -1);
    assert_int_equal(e.code, TD_E_INVALID_ARGUMENT);
    assert_int_equal(td_json_str_ok(b, "body", "bad", true, 64, td_ref_id_ok, "must be an id", &out, &e), -1);
    assert_string_equal(e.detail, "body.bad must be an id");
    assert_null(strstr(e.detail, "a b")); /* the value is not echoed */
    assert_int_equal(td_json_str_ok(b, "body", "num", true, 64, NULL, NULL, &out, &e), -1);
    assert_string_equal(e.detail, "body.num must be a string");
    assert_int_equal(td_json_str_ok(b, "body", "id", true, 3, NULL, NULL, &out, &e), -1);
    assert_int_equal(td_json_str_ok(b, "body", "empty", false, 8, td_ref_id_ok, "must be an id", &out, &e), -1);
    json_decref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issuer_id),
        cmocka_unit_test(test_card_id),
        cmocka_unit_test(test_ref_id),
        cmocka_unit_test(test_reason),
        cmocka_unit_test(test_phone),
        cmocka_unit_test(test_email),
        cmocka_unit_test(test_printable),
        cmocka_unit_test(test_classic_headers),
        cmocka_unit_test(test_d1_shape),
        cmocka_unit_test(test_classic_shape),
        cmocka_unit_test(test_tokenio_shape_unchanged),
        cmocka_unit_test(test_secret_body_not_echoed),
        cmocka_unit_test(test_optional_body),
        cmocka_unit_test(test_json_str_ok),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
