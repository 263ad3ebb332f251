/* test_routes.c — unit tests for the route table (td_route_match: every
 * route, its parameters, method mismatch, near misses) and for the strict
 * validation of POST /token-requests bodies (tokenio_check_request). */
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
#include "api/tls.h"
#include "util/config.h"
#include "util/util.h"

static const td_method METHODS[] = {TD_GET, TD_POST, TD_PUT, TD_DELETE, TD_METHOD_OTHER};
#define N_METHODS (sizeof METHODS / sizeof METHODS[0])

/* Builds a concrete path from a pattern, replacing the i-th {param} with
 * values[i] (or "v<i>" when values is NULL). Returns the number of params. */
static int build_path(const char *pattern, const char *const *values, char *out, size_t cap)
{
    size_t n = 0;
    int np = 0;
    for (const char *p = pattern; *p;) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            assert_non_null(close);
            char dflt[16];
            snprintf(dflt, sizeof dflt, "v%d", np);
            const char *v = values ? values[np] : dflt;
            size_t l = strlen(v);
            assert_true(n + l < cap);
            memcpy(out + n, v, l);
            n += l;
            np++;
            p = close + 1;
        } else {
            assert_true(n + 1 < cap);
            out[n++] = *p++;
        }
    }
    out[n] = 0;
    return np;
}

static bool pattern_has_method(const char *pattern, td_method m)
{
    for (int i = 0; i < td_route_count; i++)
        if (td_routes[i].method == m && !strcmp(td_routes[i].pattern, pattern)) return true;
    return false;
}

/* ---- the table itself ---- */

/* The face --tls-client-faces names a route by, told from its path alone. */
static unsigned tls_face_by_path(const td_route *rt)
{
    const char *p = rt->pattern;
    if (!strncmp(p, "/network/", 9)) return TD_TLS_FACE_NETWORK;
    if (!strncmp(p, "/banking/", 9)) return TD_TLS_FACE_ISSUER;
    if (!strncmp(p, "/igwapi/", 8)) return TD_TLS_FACE_CLASSIC;
    if (!strncmp(p, "/admin/", 7)) return TD_TLS_FACE_ADMIN;
    if (!strncmp(p, "/consent/", 9)) return TD_TLS_FACE_CONSENT;
    if (!strcmp(p, "/healthz") || !strcmp(p, "/readyz") || !strcmp(p, "/metrics")) return TD_TLS_FACE_OPS;
    return TD_TLS_FACE_TOKEN;
}

static void test_route_tls_faces(void **state)
{
    (void)state;
    for (int i = 0; i < td_route_count; i++)
        if (td_route_tls_face(&td_routes[i]) != tls_face_by_path(&td_routes[i]))
            fail_msg("route %s: TLS face %u, expected %u", td_routes[i].pattern, td_route_tls_face(&td_routes[i]),
                     tls_face_by_path(&td_routes[i]));
}

/* Fingerprints as openssl prints them (colons, upper case) or as sha256sum
 * does; nothing else. */
static void test_fingerprint_parse(void **state)
{
    (void)state;
    static const char WANT[] = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
    char out[65];
    assert_int_equal(td_tls_fingerprint_parse(WANT, out), 0);
    assert_string_equal(out, WANT);
    assert_int_equal(td_tls_fingerprint_parse("0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9:"
                                              "0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9",
                                              out),
                     0);
    assert_string_equal(out, WANT);
    static const char *const bad[] = {
        "",
        "0a1b",
        "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f",   /* 63 digits */
        "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9a", /* 65 */
        "0g1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",  /* not hex */
        ":0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9:",
        "0a::1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "0a1:b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "sha256//CgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCk=",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (td_tls_fingerprint_parse(bad[i], out) == 0) fail_msg("accepted '%s'", bad[i]);
}

static void test_route_table_sane(void **state)
{
    (void)state;
    assert_true(td_route_count > 20);
    for (int i = 0; i < td_route_count; i++) {
        const td_route *rt = &td_routes[i];
        assert_non_null(rt->handler);
        assert_non_null(rt->pattern);
        assert_int_equal(rt->pattern[0], '/');
        assert_non_null(rt->name);
        assert_true(rt->method >= TD_GET && rt->method <= TD_DELETE);
        /* no two routes share a method and pattern: the second could never match */
        for (int j = 0; j < i; j++)
            assert_false(td_routes[j].method == rt->method && !strcmp(td_routes[j].pattern, rt->pattern));
        /* the admin API is admin-only; consent pages are HTML and need no auth */
        if (!strncmp(rt->pattern, "/admin/", 7)) assert_int_equal(rt->auth, TD_AUTH_ADMIN);
        if (!strncmp(rt->pattern, "/consent/", 9)) {
            assert_int_equal(rt->auth, TD_AUTH_NONE);
            assert_int_equal(rt->face, TD_FACE_HTML);
        }
        /* GET /tokens, GET /tokens/{id} and the cancel also serve issuers (CARD tokens) */
        if (!strcmp(rt->pattern, "/tokens") || !strcmp(rt->pattern, "/tokens/{tokenId}") ||
            !strcmp(rt->pattern, "/tokens/{tokenId}/cancel"))
            assert_int_equal(rt->auth, TD_AUTH_MEMBER_OR_ISSUER);
        else if (!strncmp(rt->pattern, "/tokens", 7) || !strncmp(rt->pattern, "/token-requests", 15) ||
                 !strncmp(rt->pattern, "/member/", 8))
            assert_int_equal(rt->auth, TD_AUTH_MEMBER);
        /* the network tokenization faces: their credential and error shape */
        if (!strncmp(rt->pattern, "/banking/", 9)) {
            assert_int_equal(rt->auth, TD_AUTH_ISSUER);
            assert_int_equal(rt->face, TD_FACE_D1);
        }
        if (!strncmp(rt->pattern, "/network/", 9)) {
            assert_int_equal(rt->auth, TD_AUTH_NETWORK);
            assert_int_equal(rt->face, TD_FACE_D1);
        }
        if (!strncmp(rt->pattern, "/igwapi/", 8)) {
            assert_int_equal(rt->auth, TD_AUTH_ISSUER);
            assert_int_equal(rt->face, TD_FACE_CLASSIC);
            assert_int_equal(rt->method, TD_POST);
        }
        /* a route's face is the one td_face_of_path gives its prefix (consent aside) */
        if (strncmp(rt->pattern, "/consent/", 9)) assert_int_equal(rt->face, td_face_of_path(rt->pattern));
    }
}

/* ---- matching every route ---- */

static void test_match_every_route(void **state)
{
    (void)state;
    for (int i = 0; i < td_route_count; i++) {
        const td_route *rt = &td_routes[i];
        char path[512];
        static const char *const vals[] = {"ta:4Zx9:5zKt", "m:abc_DEF-1:x", "key-id_0", "p3"};
        int np = build_path(rt->pattern, vals, path, sizeof path);
        td_req r;
        memset(&r, 0, sizeof r);
        td_route_miss mismatch = TD_MISS_METHOD;
        const td_route *got = td_route_match(&r, rt->method, path, &mismatch);
        assert_ptr_equal(got, rt);
        assert_int_equal(r.nparams, np);
        for (int k = 0; k < np; k++)
            assert_string_equal(r.params[k], vals[k]);
        /* Methods no route of this path has: not found, but flagged. */
        for (size_t m = 0; m < N_METHODS; m++) {
            if (pattern_has_method(rt->pattern, METHODS[m])) continue;
            td_req r2;
            memset(&r2, 0, sizeof r2);
            mismatch = TD_MISS_NOT_FOUND;
            assert_null(td_route_match(&r2, METHODS[m], path, &mismatch));
            assert_int_equal(mismatch, TD_MISS_METHOD);
        }
    }
}

/* Spot checks written out, so a changed table is noticed by name. */
static void test_match_examples(void **state)
{
    (void)state;
    static const struct {
        td_method m;
        const char *path;
        td_handler h;
        int np;
        const char *p0, *p1;
    } cases[] = {
        {TD_GET, "/healthz", td_ops_healthz, 0, NULL, NULL},
        {TD_GET, "/tokens", tokenio_list_tokens, 0, NULL, NULL},
        {TD_GET, "/tokens/ta:1", tokenio_get_token, 1, "ta:1", NULL},
        {TD_GET, "/tokens/cancel", tokenio_get_token, 1, "cancel", NULL},
        {TD_PUT, "/tokens/tt:9/cancel", tokenio_cancel_token, 1, "tt:9", NULL},
        {TD_POST, "/token-requests", tokenio_store_request, 0, NULL, NULL},
        {TD_GET, "/token-requests/rq:1", tokenio_get_request, 1, "rq:1", NULL},
        {TD_GET, "/token-requests/rq:1/result", tokenio_get_request_result, 1, "rq:1", NULL},
        {TD_POST, "/token-requests/rq:1/authorization", tokenio_authorize_request, 1, "rq:1", NULL},
        {TD_GET, "/member/m:1/keys", tokenio_list_keys, 1, "m:1", NULL},
        {TD_POST, "/member/m:1/keys", tokenio_add_key, 1, "m:1", NULL},
        {TD_GET, "/member/m:1/keys/k1", tokenio_get_key, 2, "m:1", "k1"},
        {TD_DELETE, "/member/m:1/keys/k1", tokenio_delete_key, 2, "m:1", "k1"},
        {TD_GET, "/consent/abc", consent_page, 1, "abc", NULL},
        {TD_POST, "/consent/abc", consent_decide, 1, "abc", NULL},
        {TD_POST, "/admin/v1/members/m:1/api-keys", admin_create_member_api_key, 1, "m:1", NULL},
        {TD_POST, "/admin/v1/issuers/iss1/api-keys", admin_create_issuer_api_key, 1, "iss1", NULL},
        {TD_PUT, "/admin/v1/issuers/ISS0000001/card-policy", admin_put_card_policy, 1, "ISS0000001", NULL},
        {TD_GET, "/admin/v1/issuers/ISS0000001/card-policy", admin_get_card_policy, 1, "ISS0000001", NULL},
        {TD_GET, "/admin/v1/issuers/ISS0000001/outbox", admin_list_outbox, 1, "ISS0000001", NULL},
        {TD_POST, "/admin/v1/tsp", admin_set_tsp, 0, NULL, NULL},
        /* notification delivery */
        {TD_PUT, "/admin/v1/issuers/ISS0000001/delivery", admin_put_delivery, 1, "ISS0000001", NULL},
        {TD_GET, "/admin/v1/issuers/ISS0000001/delivery", admin_get_delivery, 1, "ISS0000001", NULL},
        {TD_POST, "/admin/v1/issuers/ISS0000001/outbox/42/replay", admin_replay_one, 2, "ISS0000001", "42"},
        {TD_POST, "/admin/v1/issuers/ISS0000001/outbox:replay", admin_replay_all, 1, "ISS0000001", NULL},
        /* Issuer API */
        {TD_POST, "/banking/v1/issuers/ISS0000001/cards", issuer_register_card, 1, "ISS0000001", NULL},
        {TD_GET, "/banking/v1/issuers/ISS0000001/cards/card-0001", issuer_get_card, 2, "ISS0000001", "card-0001"},
        {TD_GET, "/banking/v1/issuers/ISS0000001/cards/card-0001/digitalCards", issuer_list_dcards, 2, "ISS0000001",
         "card-0001"},
        {TD_POST, "/banking/v1/issuers/ISS0000001/cards/card-0001/operations:suspend", issuer_card_suspend, 2,
         "ISS0000001", "card-0001"},
        {TD_POST, "/banking/v1/issuers/ISS0000001/cards/card-0001/operations:resume", issuer_card_resume, 2,
         "ISS0000001", "card-0001"},
        {TD_POST, "/banking/v1/issuers/ISS0000001/cards/card-0001/operations:delete", issuer_card_delete, 2,
         "ISS0000001", "card-0001"},
        {TD_GET, "/banking/v1/issuers/ISS0000001/digitalCards/dc_abc", issuer_get_dcard, 2, "ISS0000001", "dc_abc"},
        {TD_POST, "/banking/v1/issuers/ISS0000001/digitalCards/dc_abc/operations:suspend", issuer_dcard_suspend, 2,
         "ISS0000001", "dc_abc"},
        {TD_POST, "/banking/v1/issuers/ISS0000001/digitalCards/dc_abc/operations:resume", issuer_dcard_resume, 2,
         "ISS0000001", "dc_abc"},
        {TD_POST, "/banking/v1/issuers/ISS0000001/digitalCards/dc_abc/operations:delete", issuer_dcard_delete, 2,
         "ISS0000001", "dc_abc"},
        {TD_GET, "/banking/v1/issuers/ISS0000001/operations/op_xyz", issuer_get_operation, 2, "ISS0000001", "op_xyz"},
        /* "cards" is a parameter value like any other */
        {TD_GET, "/banking/v1/issuers/cards/cards/cards", issuer_get_card, 2, "cards", "cards"},
        /* Network API */
        {TD_POST, "/network/v1/tokenizations", network_tokenize, 0, NULL, NULL},
        {TD_POST, "/network/v1/digitalCards/dc_abc/otp", network_send_otp, 1, "dc_abc", NULL},
        {TD_POST, "/network/v1/events", network_event, 0, NULL, NULL},
        /* Classic RPC */
        {TD_POST, "/igwapi/v2.0/updateCardState", classic_update_card_state, 0, NULL, NULL},
        {TD_POST, "/igwapi/v2.0/getCardInfo", classic_get_card_info, 0, NULL, NULL},
        {TD_POST, "/igwapi/v2.0/getTokenInfo", classic_get_token_info, 0, NULL, NULL},
        /* the Token API routes that also serve issuers */
        {TD_GET, "/tokens/dc_abc", tokenio_get_token, 1, "dc_abc", NULL},
        {TD_PUT, "/tokens/dc_abc/cancel", tokenio_cancel_token, 1, "dc_abc", NULL},
        /* each raw segment is percent-decoded after the split: %2F stays inside its parameter */
        {TD_GET, "/tokens/a%2Fb", tokenio_get_token, 1, "a/b", NULL},
        {TD_GET, "/tokens/ta:x%2Fcancel", tokenio_get_token, 1, "ta:x/cancel", NULL},
        {TD_PUT, "/tokens/ta%3Ax%3Ay/cancel", tokenio_cancel_token, 1, "ta:x:y", NULL},
        {TD_PUT, "/tokens/ta:x/canc%65l", tokenio_cancel_token, 1, "ta:x", NULL},
        {TD_GET, "/token%73", tokenio_list_tokens, 0, NULL, NULL},
        {TD_GET, "/member/m%3A1/keys/k%2F1", tokenio_get_key, 2, "m:1", "k/1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        td_req r;
        memset(&r, 0, sizeof r);
        td_route_miss mismatch;
        const td_route *rt = td_route_match(&r, cases[i].m, cases[i].path, &mismatch);
        assert_non_null(rt);
        assert_ptr_equal(rt->handler, cases[i].h);
        assert_int_equal(r.nparams, cases[i].np);
        if (cases[i].p0) assert_string_equal(r.params[0], cases[i].p0);
        if (cases[i].p1) assert_string_equal(r.params[1], cases[i].p1);
    }
}

static void test_method_mismatch_examples(void **state)
{
    (void)state;
    static const struct {
        td_method m;
        const char *path;
    } cases[] = {
        {TD_POST, "/healthz"},
        {TD_DELETE, "/tokens"},
        {TD_GET, "/tokens/ta:1/cancel"},
        {TD_POST, "/tokens/ta:1"},
        {TD_PUT, "/member/m:1/keys"},
        {TD_METHOD_OTHER, "/consent/abc"},
        {TD_GET, "/admin/v1/members"},
        {TD_DELETE, "/token-requests"},
        {TD_GET, "/banking/v1/issuers/ISS0000001/cards"},
        {TD_DELETE, "/banking/v1/issuers/ISS0000001/cards/c1"},
        {TD_POST, "/banking/v1/issuers/ISS0000001/cards/c1"},
        {TD_GET, "/banking/v1/issuers/ISS0000001/digitalCards/dc_1/operations:suspend"},
        {TD_PUT, "/banking/v1/issuers/ISS0000001/cards/c1/operations:delete"},
        {TD_POST, "/banking/v1/issuers/ISS0000001/digitalCards/dc_1"},
        {TD_GET, "/network/v1/tokenizations"},
        {TD_GET, "/network/v1/digitalCards/dc_1/otp"},
        {TD_PUT, "/network/v1/events"},
        {TD_GET, "/igwapi/v2.0/getCardInfo"},
        {TD_POST, "/admin/v1/issuers/ISS0000001/card-policy"},
        {TD_DELETE, "/admin/v1/issuers/ISS0000001/card-policy"},
        {TD_POST, "/admin/v1/issuers/ISS0000001/outbox"},
        {TD_GET, "/admin/v1/tsp"},
        {TD_POST, "/admin/v1/issuers/ISS0000001/delivery"},
        {TD_DELETE, "/admin/v1/issuers/ISS0000001/delivery"},
        {TD_GET, "/admin/v1/issuers/ISS0000001/outbox/42/replay"},
        {TD_PUT, "/admin/v1/issuers/ISS0000001/outbox:replay"},
        {TD_GET, "/admin/v1/issuers/ISS0000001/outbox:replay"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        td_req r;
        memset(&r, 0, sizeof r);
        td_route_miss mismatch = TD_MISS_NOT_FOUND;
        assert_null(td_route_match(&r, cases[i].m, cases[i].path, &mismatch));
        assert_int_equal(mismatch, TD_MISS_METHOD);
    }
}

static void expect_no_route(const char *path);

/* The raw path is split before decoding: an encoded '/' never makes a new
 * segment, so "<id>%2Fcancel" is the id of GET /tokens/{tokenId} and never
 * reaches the cancel (PUT: 405, not a cancel). */
static void test_encoded_slash_never_splits(void **state)
{
    (void)state;
    static const char *const paths[] = {"/tokens/ta:x%2Fcancel", "/tokens/ta:x%2fcancel", "/tokens%2Fta:x/cancel",
                                        "/tokens/ta:x%2F..%2Fy/cancel%2F"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        td_req r;
        memset(&r, 0, sizeof r);
        td_route_miss miss = TD_MISS_NOT_FOUND;
        const td_route *got = td_route_match(&r, TD_PUT, paths[i], &miss);
        if (got && got->handler == tokenio_cancel_token) fail_msg("'%s' reached the cancel", paths[i]);
    }
    td_req r;
    memset(&r, 0, sizeof r);
    td_route_miss miss = TD_MISS_NOT_FOUND;
    assert_null(td_route_match(&r, TD_PUT, "/tokens/ta:x%2Fcancel", &miss));
    assert_int_equal(miss, TD_MISS_METHOD);
    assert_null(td_route_match(&r, TD_PUT, "/tokens%2Fta:x/cancel", &miss));
    assert_int_equal(miss, TD_MISS_NOT_FOUND);
}

/* A malformed escape or an encoded NUL anywhere in the path: a bad request,
 * whatever route the rest would have matched (a NUL would cut the id short). */
static void test_bad_escapes(void **state)
{
    (void)state;
    static const char *const paths[] = {"/tokens/ta:x%00/cancel", "/tokens/%00",       "/tokens/a%zz",
                                        "/tokens/a%2",            "/tokens/a%",        "/tokens/%G0",
                                        "/nope/%00",              "/healthz%00",       "/consent/abc%00def",
                                        "/tokens/a%2/cancel",     "/tokens/a%%41/x"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        for (size_t m = 0; m < N_METHODS; m++) {
            td_req r;
            memset(&r, 0, sizeof r);
            td_route_miss miss = TD_MISS_NOT_FOUND;
            const td_route *got = td_route_match(&r, METHODS[m], paths[i], &miss);
            if (got) fail_msg("'%s' matched %s", paths[i], got->pattern);
            if (miss != TD_MISS_BAD_PATH) fail_msg("'%s' not refused as a bad path (%d)", paths[i], (int)miss);
        }
    }
}

/* More segments than any pattern has, or more bytes than are kept: no route,
 * not a crash or a truncated match. */
static void test_long_paths_not_matched(void **state)
{
    (void)state;
    char path[9000];
    for (int i = 0; i < 40; i++)
        memcpy(path + 2 * i, "/a", 3);
    expect_no_route(path);
    memset(path, 'a', sizeof path - 1);
    path[0] = '/';
    memcpy(path + 1, "tokens/", 7);
    path[sizeof path - 1] = 0;
    expect_no_route(path);
}

/* ---- near misses ---- */

static void expect_no_route(const char *path)
{
    for (size_t m = 0; m < N_METHODS; m++) {
        td_req r;
        memset(&r, 0, sizeof r);
        td_route_miss mismatch = TD_MISS_METHOD;
        const td_route *got = td_route_match(&r, METHODS[m], path, &mismatch);
        if (got) fail_msg("'%s' unexpectedly matched %s", path, got->pattern);
        if (mismatch != TD_MISS_NOT_FOUND) fail_msg("'%s' flagged a method mismatch", path);
    }
}

static void test_trailing_slash_not_matched(void **state)
{
    (void)state;
    for (int i = 0; i < td_route_count; i++) {
        char path[512];
        build_path(td_routes[i].pattern, NULL, path, sizeof path - 1);
        size_t n = strlen(path);
        path[n] = '/';
        path[n + 1] = 0;
        expect_no_route(path);
    }
}

/* One more segment never matches the same route (it may match another: /tokens/x). */
static void test_extra_segment_not_matched(void **state)
{
    (void)state;
    for (int i = 0; i < td_route_count; i++) {
        char path[512];
        build_path(td_routes[i].pattern, NULL, path, sizeof path - 8);
        size_t n = strlen(path);
        memcpy(path + n, "/extra", 7);
        for (size_t m = 0; m < N_METHODS; m++) {
            td_req r;
            memset(&r, 0, sizeof r);
            td_route_miss mismatch;
            const td_route *got = td_route_match(&r, METHODS[m], path, &mismatch);
            if (got) assert_string_not_equal(got->pattern, td_routes[i].pattern);
        }
    }
    expect_no_route("/healthz/extra");
    expect_no_route("/tokens/ta:1/cancel/extra");
    expect_no_route("/member/m:1/keys/k1/extra");
    expect_no_route("/admin/v1/members/m:1/api-keys/0123456789abcdef/extra");
}

/* Each {param} left empty: an empty segment never fills a parameter. */
static void test_empty_segment_not_matched(void **state)
{
    (void)state;
    for (int i = 0; i < td_route_count; i++) {
        if (!strchr(td_routes[i].pattern, '{')) continue;
        static const char *const empty[] = {"", "", "", ""};
        char path[512];
        build_path(td_routes[i].pattern, empty, path, sizeof path);
        expect_no_route(path);
        /* and only the first one empty */
        static const char *const first_empty[] = {"", "v1", "v2", "v3"};
        build_path(td_routes[i].pattern, first_empty, path, sizeof path);
        expect_no_route(path);
    }
    expect_no_route("//healthz");
    expect_no_route("/admin//v1/members");
    expect_no_route("/member/m:1//keys");
}

static void test_other_misses(void **state)
{
    (void)state;
    static const char *const paths[] = {
        "",
        "/",
        "healthz",
        "/healthzz",
        "/health",
        "/HEALTHZ",
        "/tokens/ta:1/CANCEL",
        "/token-requests/rq/results",
        "/member/m:1/key",
        "/admin/v1",
        "/admin/v2/members",
        "/consent",
        "/v2",
        "/v2/payments/x/y",
        "/{tokenId}",
        "/tokens?x=1/cancel/a",
        /* the operation is part of the literal segment, exactly */
        "/banking/v1/issuers/ISS0000001/digitalCards/dc_1/operations:SUSPEND",
        "/banking/v1/issuers/ISS0000001/digitalCards/dc_1/operations:pause",
        "/banking/v1/issuers/ISS0000001/digitalCards/dc_1/operations",
        "/banking/v1/issuers/ISS0000001/digitalCards/dc_1/operations/suspend",
        "/banking/v1/issuers/ISS0000001/cards/c1/operations:expire",
        "/banking/v1/issuers/ISS0000001/digitalCards",
        "/banking/v1/issuers/ISS0000001/operations",
        "/banking/v1/issuers/ISS0000001",
        "/banking/v2/issuers/ISS0000001/cards",
        "/network/v1/tokenization",
        "/network/v1/digitalCards/dc_1",
        "/network/v1/digitalCards/otp",
        "/igwapi/v2.0/updatecardstate",
        "/igwapi/v2.0/notifyVirtualCardChange",
        "/igwapi/v2.0",
        "/igwapi/v2.1/getCardInfo",
        "/admin/v1/issuers/ISS0000001/policy",
        "/admin/v1/tsp/x",
        /* delivery: the literal segments, exactly */
        "/admin/v1/issuers/ISS0000001/outbox:REPLAY",
        "/admin/v1/issuers/ISS0000001/outbox:retry",
        "/admin/v1/issuers/ISS0000001/outbox/42",
        "/admin/v1/issuers/ISS0000001/outbox/42/replay:all",
        "/admin/v1/issuers/ISS0000001/outbox//replay",
        "/admin/v1/issuers/ISS0000001/deliveries",
        "/admin/v1/issuers/delivery",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        expect_no_route(paths[i]);
}

/* Unmatched paths answer in the shape of the face their prefix belongs to. */
static void test_face_of_path(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        td_face face;
    } cases[] = {
        {"/banking/v1/issuers/x/nope", TD_FACE_D1},
        {"/banking/", TD_FACE_D1},
        {"/network/v1/nope", TD_FACE_D1},
        {"/network/", TD_FACE_D1},
        {"/igwapi/v2.0/nope", TD_FACE_CLASSIC},
        {"/igwapi/v2.0/", TD_FACE_CLASSIC},
        {"/igwapi/v2.1/x", TD_FACE_TOKENIO},
        {"/banking", TD_FACE_TOKENIO},
        {"/networks/v1", TD_FACE_TOKENIO},
        {"/tokens/x/y", TD_FACE_TOKENIO},
        {"/admin/v1/nope", TD_FACE_TOKENIO},
        {"", TD_FACE_TOKENIO},
        {NULL, TD_FACE_TOKENIO},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(td_face_of_path(cases[i].path), cases[i].face);
}

/* Parameters share a fixed buffer: a path whose parameters do not fit is not
 * matched (rather than truncated or overflowed). */
static void test_param_buffer_bound(void **state)
{
    (void)state;
    td_req r;
    char big[1100], path[2400];
    memset(big, 'a', 1022);
    big[1022] = 0; /* 1022 + NUL = 1023 <= 1024: fits */
    snprintf(path, sizeof path, "/tokens/%s", big);
    memset(&r, 0, sizeof r);
    td_route_miss mismatch;
    const td_route *rt = td_route_match(&r, TD_GET, path, &mismatch);
    assert_non_null(rt);
    assert_int_equal(strlen(r.params[0]), 1022);
    memset(big, 'a', 1024);
    big[1024] = 0; /* 1025 bytes needed */
    snprintf(path, sizeof path, "/tokens/%s", big);
    memset(&r, 0, sizeof r);
    assert_null(td_route_match(&r, TD_GET, path, &mismatch));
    /* two parameters that only fit separately */
    char a[600];
    memset(a, 'k', sizeof a - 1);
    a[sizeof a - 1] = 0;
    snprintf(path, sizeof path, "/member/%s/keys/%s", a, a);
    memset(&r, 0, sizeof r);
    assert_null(td_route_match(&r, TD_GET, path, &mismatch));
}

/* ---- tokenio_check_request ---- */

static const char ACCESS_BODY[] = "{\"requestOptions\":{\"from\":{\"id\":\"m:user:1\"}},"
                                  "\"requestPayload\":{\"refId\":\"ref-123\",\"to\":{\"id\":\"m:tpp:1\"},"
                                  "\"redirectUrl\":\"https://tpp.example/cb?x=1\","
                                  "\"accessBody\":{\"resourceTypeList\":{\"resources\":[\"ACCOUNTS\",\"BALANCES\"]}}}}";

static const char ACCESS_FULL[] =
    "{\"requestOptions\":{\"from\":{\"id\":\"m:user:1\",\"alias\":{\"type\":\"EMAIL\",\"value\":\"u@x.io\","
    "\"realmId\":\"m:bank:1\"}},\"to\":{\"id\":\"m:tpp:1\"},\"bankId\":\"ob-bank\",\"psuId\":\"psu-1\","
    "\"receiptRequested\":false},"
    "\"requestPayload\":{\"refId\":\"A-1\",\"to\":{\"id\":\"m:tpp:1\",\"alias\":{\"type\":\"DOMAIN\",\"value\":\"tpp."
    "io\"}},"
    "\"redirectUrl\":\"http://localhost:3000/cb\",\"description\":\"read my accounts\",\"callbackState\":\"s\","
    "\"countries\":[\"GB\",\"DE\"],\"actingAs\":{\"displayName\":\"Shop\",\"refId\":\"shop-1\",\"secondaryName\":\"x\"}"
    ","
    "\"userRefId\":\"u1\",\"disableFutureDatedPaymentConversion\":true,\"id\":\"rq:client:1\","
    "\"tokenExpiration\":\"4102444800000\","
    "\"accessBody\":{\"transactionHistoryDays\":90,\"resourceTypeList\":{\"resources\":[\"ACCOUNTS\",\"BALANCES\","
    "\"TRANSACTIONS\",\"TRANSFER_DESTINATIONS\",\"STANDING_ORDERS\"],\"source\":{}}}}}";

static const char TRANSFER_BODY[] =
    "{\"requestOptions\":{\"from\":{\"id\":\"m:user:1\"}},"
    "\"requestPayload\":{\"refId\":\"pay-1\",\"to\":{\"id\":\"m:tpp:1\"},\"redirectUrl\":\"https://tpp.example/cb\","
    "\"transferBody\":{\"currency\":\"EUR\",\"lifetimeAmount\":\"100.00\",\"amount\":\"25.5\","
    "\"instructions\":{\"transferDestinations\":[{\"sepa\":{\"iban\":\"DE89\"}}]},\"executionDate\":\"2025-01-01\","
    "\"confirmFunds\":true,\"remittanceReference\":\"inv 42\",\"returnRefundAccount\":false,"
    "\"setTransferDestinationsUrl\":\"https://tpp.example/dest\"}}}";

static const char STANDING_ORDER_BODY[] =
    "{\"requestOptions\":{\"from\":{\"id\":\"m:user:1\"}},"
    "\"requestPayload\":{\"refId\":\"so-1\",\"to\":{\"id\":\"m:tpp:1\"},\"redirectUrl\":\"https://tpp.example/cb\","
    "\"standingOrderBody\":{\"amount\":\"10\",\"currency\":\"GBP\","
    "\"instructions\":{\"transferDestinations\":[{\"fasterPayments\":{\"accountNumber\":\"31926819\","
    "\"sortCode\":\"601613\"}}]},\"frequency\":\"MNTH\","
    "\"startDate\":\"2025-01-01\",\"endDate\":\"2026-01-01\",\"remittanceReference\":\"rent\","
    "\"returnRefundAccount\":true}}}";

static json_t *load(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!v) fail_msg("fixture does not parse: %s (line %d col %d)", je.text, je.line, je.column);
    return v;
}

/* Follows a dotted path of object keys ("requestPayload.to.alias"). */
static json_t *at(json_t *root, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = root;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save)) {
        v = json_object_get(v, k);
        if (!v) fail_msg("fixture has no %s", path);
    }
    return v;
}

static void expect_valid(json_t *body, td_kind want)
{
    td_error e = {0};
    td_kind kind = (td_kind)-1;
    int rc = tokenio_check_request(body, &kind, &e);
    if (rc != 0) fail_msg("valid body refused: %s", e.detail);
    assert_int_equal(e.code, TD_OK);
    assert_int_equal(kind, want);
}

/* The body must be refused as INVALID_ARGUMENT with a message naming `field`. */
static void expect_invalid(json_t *body, const char *field)
{
    td_error e = {0};
    td_kind kind = TD_KIND_ACCESS;
    assert_int_equal(tokenio_check_request(body, &kind, &e), -1);
    assert_int_equal(e.code, TD_E_INVALID_ARGUMENT);
    if (!strstr(e.detail, field)) fail_msg("message '%s' does not name '%s'", e.detail, field);
}

static void test_check_valid_bodies(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        td_kind kind;
    } ok[] = {
        {ACCESS_BODY, TD_KIND_ACCESS},
        {ACCESS_FULL, TD_KIND_ACCESS},
        {TRANSFER_BODY, TD_KIND_TRANSFER},
        {STANDING_ORDER_BODY, TD_KIND_STANDING_ORDER},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        json_t *b = load(ok[i].text);
        expect_valid(b, ok[i].kind);
        json_decref(b);
    }
    /* Minimal transfer: no amount, no date, no URL; one destination. */
    json_t *b = load(TRANSFER_BODY);
    json_t *tb = at(b, "requestPayload.transferBody");
    json_object_del(tb, "amount");
    json_object_del(tb, "executionDate");
    json_object_del(tb, "setTransferDestinationsUrl");
    expect_valid(b, TD_KIND_TRANSFER);
    json_decref(b);
}

/* A mutation applied to a valid fixture, and the field the message must name. */
typedef struct {
    const char *fixture;
    const char *where; /* dotted path of the object to change ("" = root) */
    const char *key;
    const char *value_json; /* NULL = delete the key */
    const char *field;
} mutation;

static void apply_and_expect(const mutation *m)
{
    json_t *b = load(m->fixture);
    json_t *obj = m->where[0] ? at(b, m->where) : b;
    if (m->value_json) {
        json_t *v = json_loads(m->value_json, JSON_DECODE_ANY, NULL);
        if (!v) fail_msg("bad mutation value %s", m->value_json);
        json_object_set_new(obj, m->key, v);
    } else {
        json_object_del(obj, m->key);
    }
    expect_invalid(b, m->field);
    json_decref(b);
}

static void run_mutations(const mutation *ms, size_t n)
{
    for (size_t i = 0; i < n; i++)
        apply_and_expect(&ms[i]);
}

static void test_check_unknown_fields(void **state)
{
    (void)state;
    static const mutation ms[] = {
        {ACCESS_BODY, "", "extra", "1", "unknown field 'extra'"},
        {ACCESS_BODY, "requestOptions", "pin", "\"1234\"", "requestOptions: unknown field 'pin'"},
        {ACCESS_BODY, "requestOptions.from", "name", "\"x\"", "requestOptions.from: unknown field 'name'"},
        {ACCESS_BODY, "requestPayload", "amount", "\"1\"", "requestPayload: unknown field 'amount'"},
        {ACCESS_BODY, "requestPayload.to", "x", "null", "requestPayload.to: unknown field 'x'"},
        {ACCESS_BODY, "requestPayload.accessBody", "accounts", "[]",
         "requestPayload.accessBody: unknown field 'accounts'"},
        {ACCESS_BODY, "requestPayload.accessBody.resourceTypeList", "more", "1",
         "requestPayload.accessBody.resourceTypeList: unknown field 'more'"},
        {TRANSFER_BODY, "requestPayload.transferBody", "fee", "\"1\"",
         "requestPayload.transferBody: unknown field 'fee'"},
        {STANDING_ORDER_BODY, "requestPayload.standingOrderBody", "lifetimeAmount", "\"1\"",
         "requestPayload.standingOrderBody: unknown field 'lifetimeAmount'"},
        {ACCESS_FULL, "requestPayload.actingAs", "x", "1", "requestPayload.actingAs: unknown field 'x'"},
        {ACCESS_FULL, "requestOptions.from.alias", "x", "1", "requestOptions.from.alias: unknown field 'x'"},
    };
    run_mutations(ms, sizeof ms / sizeof ms[0]);
}

static void test_check_wrong_types(void **state)
{
    (void)state;
    static const mutation ms[] = {
        {ACCESS_BODY, "", "requestOptions", "[]", "body.requestOptions must be an object"},
        {ACCESS_BODY, "", "requestPayload", "\"x\"", "body.requestPayload must be an object"},
        {ACCESS_BODY, "", "requestPayload", NULL, "body.requestPayload is required"},
        {ACCESS_BODY, "requestOptions", "from", NULL, "requestOptions.from is required"},
        {ACCESS_BODY, "requestOptions", "from", "\"m:user:1\"", "requestOptions.from must be an object"},
        {ACCESS_BODY, "requestOptions", "receiptRequested", "\"true\"",
         "requestOptions.receiptRequested must be a boolean"},
        {ACCESS_BODY, "requestOptions", "bankId", "7", "requestOptions.bankId must be a string"},
        {ACCESS_BODY, "requestOptions.from", "id", "1", "requestOptions.from.id must be a string"},
        {ACCESS_BODY, "requestOptions.from", "id", "\"bad id\"", "requestOptions.from.id is not a valid member id"},
        {ACCESS_BODY, "requestOptions.from", "id", "\"m\"", "requestOptions.from.id is not a valid member id"},
        {ACCESS_BODY, "requestPayload", "refId", "12", "requestPayload.refId must be a string"},
        {ACCESS_BODY, "requestPayload", "refId", NULL, "requestPayload.refId is required"},
        {ACCESS_BODY, "requestPayload", "to", NULL, "requestPayload.to is required"},
        {ACCESS_BODY, "requestPayload.to", "alias", "\"EMAIL\"", "requestPayload.to.alias must be an object"},
        {ACCESS_BODY, "requestPayload", "redirectUrl", "true", "requestPayload.redirectUrl must be a string"},
        {ACCESS_BODY, "requestPayload", "redirectUrl", NULL, "requestPayload.redirectUrl is required"},
        {ACCESS_BODY, "requestPayload", "description", "{}", "requestPayload.description must be a string"},
        {ACCESS_BODY, "requestPayload", "actingAs", "\"shop\"", "requestPayload.actingAs must be an object"},
        {ACCESS_BODY, "requestPayload", "disableFutureDatedPaymentConversion", "0",
         "requestPayload.disableFutureDatedPaymentConversion must be a boolean"},
        {ACCESS_BODY, "requestPayload", "countries", "\"GB\"", "requestPayload.countries"},
        {ACCESS_BODY, "requestPayload", "countries", "[\"GBR\"]", "requestPayload.countries[0]"},
        {ACCESS_BODY, "requestPayload", "countries", "[\"GB\",1]", "requestPayload.countries[1]"},
        {ACCESS_BODY, "requestPayload", "accessBody", "[]", "requestPayload.accessBody must be an object"},
        {ACCESS_BODY, "requestPayload.accessBody", "transactionHistoryDays", "\"90\"",
         "requestPayload.accessBody.transactionHistoryDays must be an integer"},
        {ACCESS_BODY, "requestPayload.accessBody", "transactionHistoryDays", "3651",
         "requestPayload.accessBody.transactionHistoryDays"},
        {ACCESS_BODY, "requestPayload.accessBody", "transactionHistoryDays", "-1",
         "requestPayload.accessBody.transactionHistoryDays"},
        {ACCESS_BODY, "requestPayload.accessBody", "resourceTypeList", NULL,
         "requestPayload.accessBody.resourceTypeList is required"},
        {ACCESS_BODY, "requestPayload.accessBody.resourceTypeList", "resources", "[]",
         "requestPayload.accessBody.resourceTypeList.resources"},
        {ACCESS_BODY, "requestPayload.accessBody.resourceTypeList", "resources", "\"ACCOUNTS\"",
         "requestPayload.accessBody.resourceTypeList.resources"},
        {ACCESS_BODY, "requestPayload.accessBody.resourceTypeList", "resources", "[\"ACCOUNTS\",\"PASSWORDS\"]",
         "requestPayload.accessBody.resourceTypeList.resources[1]"},
        {ACCESS_BODY, "requestPayload.accessBody.resourceTypeList", "resources", "[1]",
         "requestPayload.accessBody.resourceTypeList.resources[0]"},
        {ACCESS_BODY, "requestPayload.accessBody.resourceTypeList", "source", "[]",
         "requestPayload.accessBody.resourceTypeList.source must be an object"},
        {TRANSFER_BODY, "requestPayload.transferBody", "confirmFunds", "\"yes\"",
         "requestPayload.transferBody.confirmFunds must be a boolean"},
        {TRANSFER_BODY, "requestPayload.transferBody", "instructions", NULL,
         "requestPayload.transferBody.instructions is required"},
        {TRANSFER_BODY, "requestPayload.transferBody.instructions", "transferDestinations", "{}",
         "requestPayload.transferBody.instructions.transferDestinations must be an array of 1 to 16"},
        {STANDING_ORDER_BODY, "requestPayload.standingOrderBody", "frequency", "12",
         "requestPayload.standingOrderBody.frequency must be a string"},
        {STANDING_ORDER_BODY, "requestPayload.standingOrderBody", "returnRefundAccount", "1",
         "requestPayload.standingOrderBody.returnRefundAccount must be a boolean"},
    };
    run_mutations(ms, sizeof ms / sizeof ms[0]);
}

/* The reference's TransferInstructions: a payee is required, and each scheme's
 * own required fields (issue 12: `instructions: {}`, `transferDestinations: []`
 * and `sepa: {}` were signed). */
static void test_check_transfer_destinations(void **state)
{
    (void)state;
#define TI "requestPayload.transferBody"
#define TD TI ".instructions.transferDestinations[0]"
    static const mutation ms[] = {
        {TRANSFER_BODY, TI, "instructions", "{}", TI ".instructions.transferDestinations must be an array of 1"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":[]}",
         TI ".instructions.transferDestinations must be an array of 1"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":null}",
         TI ".instructions.transferDestinations must be an array of 1"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":[{}]}", TD " names no payment scheme"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":[{\"sepa\":null,\"bankgiro\":null}]}",
         TD " names no payment scheme"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":[\"DE89\"]}", TD " must be an object"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":[{\"sepa\":{}}]}", TD ".sepa.iban is required"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":[{\"sepa\":{\"iban\":\"\"}}]}",
         TD ".sepa.iban must not be empty"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":[{\"sepa\":{\"iban\":7}}]}",
         TD ".sepa.iban must be a string"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":[{\"sepa\":{\"iban\":\"DE89\",\"pan\":\"4\"}}]}",
         TD ".sepa: unknown field 'pan'"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":[{\"sepa\":\"DE89\"}]}",
         TD ".sepa must be an object"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":[{\"sepaInstant\":{\"bic\":\"COBADEFF\"}}]}",
         TD ".sepaInstant.iban is required"},
        {TRANSFER_BODY, TI, "instructions",
         "{\"transferDestinations\":[{\"fasterPayments\":{\"accountNumber\":\"31926819\"}}]}",
         TD ".fasterPayments.sortCode is required"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":[{\"elixir\":{}}]}",
         TD ".elixir.accountNumber is required"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":[{\"euDomesticNonEuro\":{\"bic\":\"X\"}}]}",
         TD ".euDomesticNonEuro needs iban or bban"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":[{\"euDomesticNonEuroInstant\":{}}]}",
         TD ".euDomesticNonEuroInstant needs iban or bban"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":[{\"bankgiro\":{}}]}",
         TD ".bankgiro.bankgiroNumber is required"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":[{\"plusgiro\":{\"bic\":\"X\"}}]}",
         TD ".plusgiro.plusgiroNumber is required"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":[{\"token\":{}}]}",
         TD ".token needs accountId or memberId"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":[{\"virtualAccount\":{\"id\":\"pa:1\"}}]}",
         TD ".virtualAccount.localInstrument is required"},
        {TRANSFER_BODY, TI, "instructions",
         "{\"transferDestinations\":[{\"virtualAccount\":{\"id\":\"pa:1\",\"localInstrument\":\"SWIFT\"}}]}",
         TD ".virtualAccount.localInstrument must be SEPA"},
        {TRANSFER_BODY, TI, "instructions",
         "{\"transferDestinations\":[{\"sepa\":{\"iban\":\"DE89\"},\"elixir\":{\"accountNumber\":\"1\"}}]}",
         TD " names two payment schemes"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":[{\"sepa\":{\"iban\":\"DE89\"},\"swift\":{}}]}",
         TD ": unknown field 'swift'"},
        {TRANSFER_BODY, TI, "instructions",
         "{\"transferDestinations\":[{\"sepa\":{\"iban\":\"DE89\"},\"customerData\":{}}]}",
         TD ".customerData.legalNames must be an array of 1"},
        {TRANSFER_BODY, TI, "instructions",
         "{\"transferDestinations\":[{\"sepa\":{\"iban\":\"DE89\"},\"customerData\":{\"legalNames\":[\"\"]}}]}",
         TD ".customerData.legalNames[0]"},
        {TRANSFER_BODY, TI, "instructions",
         "{\"transferDestinations\":[{\"sepa\":{\"iban\":\"DE89\"},\"type\":\"PERSONAL\"}]}",
         TD ".type must be UNKNOWN or BUSINESS"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":[{\"sepa\":{\"iban\":\"DE89\"}},{\"sepa\":{}}]}",
         TI ".instructions.transferDestinations[1].sepa.iban is required"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":[{\"sepa\":{\"iban\":\"DE89\"}}],\"payee\":1}",
         TI ".instructions: unknown field 'payee'"},
        {TRANSFER_BODY, TI, "instructions", "{\"transferDestinations\":[{\"sepa\":{\"iban\":\"DE89\"}}],\"source\":1}",
         TI ".instructions.source must be an object"},
        {STANDING_ORDER_BODY, "requestPayload.standingOrderBody", "instructions", "{}",
         "requestPayload.standingOrderBody.instructions.transferDestinations must be an array of 1"},
        {STANDING_ORDER_BODY, "requestPayload.standingOrderBody", "instructions",
         "{\"transferDestinations\":[{\"sepa\":{}}]}",
         "requestPayload.standingOrderBody.instructions.transferDestinations[0].sepa.iban is required"},
    };
    run_mutations(ms, sizeof ms / sizeof ms[0]);
    /* Every scheme with only its required fields, the reference's ten-key form
     * (nine nulls), and a debtor source with metadata, are accepted. */
    static const char *const ok[] = {
        "{\"transferDestinations\":[{\"sepaInstant\":{\"iban\":\"DE89\"}}]}",
        "{\"transferDestinations\":[{\"fasterPayments\":{\"accountNumber\":\"1\",\"sortCode\":\"2\"}}]}",
        "{\"transferDestinations\":[{\"elixir\":{\"accountNumber\":\"1\"}}]}",
        "{\"transferDestinations\":[{\"euDomesticNonEuro\":{\"bban\":\"1\",\"clearingNumber\":\"2\"}}]}",
        "{\"transferDestinations\":[{\"euDomesticNonEuroInstant\":{\"iban\":\"SE45\"}}]}",
        "{\"transferDestinations\":[{\"bankgiro\":{\"bankgiroNumber\":\"1234567\"}}]}",
        "{\"transferDestinations\":[{\"plusgiro\":{\"plusgiroNumber\":\"1234567\",\"bic\":\"NDEASESS\"}}]}",
        "{\"transferDestinations\":[{\"token\":{\"memberId\":\"m:payee:1\"}}]}",
        "{\"transferDestinations\":[{\"virtualAccount\":{\"id\":\"pa:1\",\"localInstrument\":\"SEPA_INSTANT\"}}]}",
        "{\"transferDestinations\":[{\"customerData\":{\"legalNames\":[\"Jane Doe\"],\"address\":{}},\"type\":"
        "\"BUSINESS\",\"sepa\":{\"iban\":\"DE89\"},\"sepaInstant\":null,\"fasterPayments\":null,\"plusgiro\":null,"
        "\"bankgiro\":null,\"elixir\":null,\"euDomesticNonEuro\":null,\"euDomesticNonEuroInstant\":null,"
        "\"virtualAccount\":null}]}",
        "{\"transferDestinations\":[{\"sepa\":{\"iban\":\"DE89\"}}],\"source\":{\"accountIdentifier\":{}},"
        "\"metadata\":{\"purposeCode\":\"SUPP\"}}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        json_t *b = load(TRANSFER_BODY);
        json_object_set_new(at(b, TI), "instructions", load(ok[i]));
        expect_valid(b, TD_KIND_TRANSFER);
        json_decref(b);
    }
    /* At most 16 destinations. */
    json_t *b = load(TRANSFER_BODY);
    json_t *dests = at(b, TI ".instructions.transferDestinations");
    while (json_array_size(dests) < 17)
        json_array_append_new(dests, load("{\"sepa\":{\"iban\":\"DE89\"}}"));
    expect_invalid(b, TI ".instructions.transferDestinations must be an array of 1 to 16");
    json_decref(b);
#undef TD
#undef TI
}

static void test_check_ref_id(void **state)
{
    (void)state;
    static const mutation ms[] = {
        {ACCESS_BODY, "requestPayload", "refId", "\"1234567890123456789\"", "requestPayload.refId is longer than 18"},
        {ACCESS_BODY, "requestPayload", "refId", "\"\"", "requestPayload.refId must not be empty"},
        {ACCESS_BODY, "requestPayload", "refId", "\"ref_1\"", "requestPayload.refId"},
        {ACCESS_BODY, "requestPayload", "refId", "\"ref 1\"", "requestPayload.refId"},
        {ACCESS_BODY, "requestPayload", "refId", "\"ref:1\"", "requestPayload.refId"},
        {ACCESS_BODY, "requestPayload", "refId", "\"r\\u00e9f\"", "requestPayload.refId"},
    };
    run_mutations(ms, sizeof ms / sizeof ms[0]);
    /* 18 characters is the limit, inclusive. */
    json_t *b = load(ACCESS_BODY);
    json_object_set_new(at(b, "requestPayload"), "refId", json_string("123456789012345678"));
    expect_valid(b, TD_KIND_ACCESS);
    json_decref(b);
}

static void test_check_bodies_count(void **state)
{
    (void)state;
    static const mutation ms[] = {
        /* two bodies */
        {ACCESS_BODY, "requestPayload", "transferBody",
         "{\"currency\":\"EUR\",\"lifetimeAmount\":\"1\",\"instructions\":{\"transferDestinations\":[{\"sepa\":"
         "{\"iban\":\"DE89\"}}]}}",
         "requestPayload must have exactly one"},
        {TRANSFER_BODY, "requestPayload", "standingOrderBody", "{}", "requestPayload must have exactly one"},
        /* none */
        {ACCESS_BODY, "requestPayload", "accessBody", NULL, "requestPayload must have exactly one"},
        {TRANSFER_BODY, "requestPayload", "transferBody", NULL, "requestPayload must have exactly one"},
        /* a null body is present, and not an object */
        {ACCESS_BODY, "requestPayload", "accessBody", "null", "requestPayload.accessBody must be an object"},
    };
    run_mutations(ms, sizeof ms / sizeof ms[0]);
    /* All three. */
    json_t *b = load(ACCESS_BODY);
    json_object_set_new(at(b, "requestPayload"), "transferBody", json_object());
    json_object_set_new(at(b, "requestPayload"), "standingOrderBody", json_object());
    expect_invalid(b, "requestPayload must have exactly one");
    json_decref(b);
}

static void test_check_alias(void **state)
{
    (void)state;
    static const mutation ms[] = {
        {ACCESS_BODY, "requestPayload.to", "alias", "{\"type\":\"TWITTER\",\"value\":\"x\"}",
         "requestPayload.to.alias.type is not a known alias type"},
        {ACCESS_BODY, "requestOptions.from", "alias", "{\"type\":\"email\"}",
         "requestOptions.from.alias.type is not a known alias type"},
        {ACCESS_BODY, "requestOptions.from", "alias", "{\"type\":5}",
         "requestOptions.from.alias.type must be a string"},
        {ACCESS_BODY, "requestOptions.from", "alias", "{\"value\":[]}",
         "requestOptions.from.alias.value must be a string"},
    };
    run_mutations(ms, sizeof ms / sizeof ms[0]);
    /* Every documented alias type is accepted. */
    static const char *const types[] = {"INVALID", "UNKNOWN", "EMAIL", "PHONE", "DOMAIN", "BANK", "CUSTOM", "EIDAS"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        json_t *b = load(ACCESS_BODY);
        json_object_set_new(at(b, "requestPayload.to"), "alias",
                            json_pack("{s:s,s:s}", "type", types[i], "value", "v"));
        expect_valid(b, TD_KIND_ACCESS);
        json_decref(b);
    }
}

static void test_check_redirect_url(void **state)
{
    (void)state;
    static const mutation ms[] = {
        {ACCESS_BODY, "requestPayload", "redirectUrl", "\"ftp://tpp.example/cb\"",
         "requestPayload.redirectUrl must be an http(s) URL"},
        {ACCESS_BODY, "requestPayload", "redirectUrl", "\"javascript:alert(1)\"", "requestPayload.redirectUrl"},
        {ACCESS_BODY, "requestPayload", "redirectUrl", "\"//tpp.example/cb\"", "requestPayload.redirectUrl"},
        {ACCESS_BODY, "requestPayload", "redirectUrl", "\"\"", "requestPayload.redirectUrl"},
        {ACCESS_BODY, "requestPayload", "redirectUrl", "\"https://tpp.example/a b\"",
         "requestPayload.redirectUrl contains"},
        {ACCESS_BODY, "requestPayload", "redirectUrl", "\"https://tpp.example/\\\"x\"",
         "requestPayload.redirectUrl contains"},
        {ACCESS_BODY, "requestPayload", "redirectUrl", "\"https://tpp.example/<x>\"",
         "requestPayload.redirectUrl contains"},
        {ACCESS_BODY, "requestPayload", "redirectUrl", "\"https://tpp.example/\\n\"",
         "requestPayload.redirectUrl contains"},
    };
    run_mutations(ms, sizeof ms / sizeof ms[0]);
    /* 2,000 characters at most (docs/api.md): the consent redirect is built on it */
    char url[2100];
    for (size_t len = 1999; len <= 2001; len++) {
        json_t *b = load(ACCESS_BODY);
        size_t n = strlen("https://tpp.example/");
        memcpy(url, "https://tpp.example/", n);
        memset(url + n, 'p', len - n);
        url[len] = 0;
        json_object_set_new(at(b, "requestPayload"), "redirectUrl", json_string(url));
        if (len <= 2000)
            expect_valid(b, TD_KIND_ACCESS);
        else
            expect_invalid(b, "requestPayload.redirectUrl is longer than 2000 characters");
        json_decref(b);
    }
}

static void test_check_currency_and_amount(void **state)
{
    (void)state;
    static const mutation ms[] = {
        {TRANSFER_BODY, "requestPayload.transferBody", "currency", "\"EU\"", "requestPayload.transferBody.currency"},
        {TRANSFER_BODY, "requestPayload.transferBody", "currency", "\"EURO\"", "requestPayload.transferBody.currency"},
        {TRANSFER_BODY, "requestPayload.transferBody", "currency", "\"E$R\"", "requestPayload.transferBody.currency"},
        {TRANSFER_BODY, "requestPayload.transferBody", "currency", "\"\"", "requestPayload.transferBody.currency"},
        {TRANSFER_BODY, "requestPayload.transferBody", "currency", "978", "requestPayload.transferBody.currency"},
        {TRANSFER_BODY, "requestPayload.transferBody", "currency", NULL,
         "requestPayload.transferBody.currency is required"},
        {STANDING_ORDER_BODY, "requestPayload.standingOrderBody", "currency", "\"G P\"",
         "requestPayload.standingOrderBody.currency"},
        {TRANSFER_BODY, "requestPayload.transferBody", "lifetimeAmount", "\"abc\"",
         "requestPayload.transferBody.lifetimeAmount must be a decimal amount"},
        {TRANSFER_BODY, "requestPayload.transferBody", "lifetimeAmount", "\"1.2.3\"",
         "requestPayload.transferBody.lifetimeAmount"},
        {TRANSFER_BODY, "requestPayload.transferBody", "lifetimeAmount", "\"-5\"",
         "requestPayload.transferBody.lifetimeAmount"},
        {TRANSFER_BODY, "requestPayload.transferBody", "lifetimeAmount", "\".\"",
         "requestPayload.transferBody.lifetimeAmount"},
        {TRANSFER_BODY, "requestPayload.transferBody", "lifetimeAmount", "\"1e5\"",
         "requestPayload.transferBody.lifetimeAmount"},
        {TRANSFER_BODY, "requestPayload.transferBody", "lifetimeAmount", "\"\"",
         "requestPayload.transferBody.lifetimeAmount"},
        {TRANSFER_BODY, "requestPayload.transferBody", "lifetimeAmount", "100",
         "requestPayload.transferBody.lifetimeAmount must be a string"},
        {TRANSFER_BODY, "requestPayload.transferBody", "lifetimeAmount", NULL,
         "requestPayload.transferBody.lifetimeAmount is required"},
        {TRANSFER_BODY, "requestPayload.transferBody", "lifetimeAmount", "\"123456789012345678901234567890123\"",
         "requestPayload.transferBody.lifetimeAmount is longer than 32"},
        {TRANSFER_BODY, "requestPayload.transferBody", "amount", "\"\"", "requestPayload.transferBody.amount"},
        {TRANSFER_BODY, "requestPayload.transferBody", "amount", "\"1,00\"", "requestPayload.transferBody.amount"},
        {STANDING_ORDER_BODY, "requestPayload.standingOrderBody", "amount", "\"ten\"",
         "requestPayload.standingOrderBody.amount must be a decimal amount"},
        {STANDING_ORDER_BODY, "requestPayload.standingOrderBody", "amount", NULL,
         "requestPayload.standingOrderBody.amount is required"},
    };
    run_mutations(ms, sizeof ms / sizeof ms[0]);
    /* Accepted amount shapes. */
    static const char *const amounts[] = {"0", "1", "1.", ".5", "100.00", "12345678901234567890123456789012"};
    for (size_t i = 0; i < sizeof amounts / sizeof amounts[0]; i++) {
        json_t *b = load(TRANSFER_BODY);
        json_object_set_new(at(b, "requestPayload.transferBody"), "lifetimeAmount", json_string(amounts[i]));
        expect_valid(b, TD_KIND_TRANSFER);
        json_decref(b);
    }
}

static void test_check_token_expiration(void **state)
{
    (void)state;
    static const mutation ms[] = {
        {TRANSFER_BODY, "requestPayload", "tokenExpiration", "\"4102444800\"",
         "requestPayload.tokenExpiration applies to access requests only"},
        {STANDING_ORDER_BODY, "requestPayload", "tokenExpiration", "\"4102444800\"",
         "requestPayload.tokenExpiration applies to access requests only"},
        {ACCESS_BODY, "requestPayload", "tokenExpiration", "\"soon\"", "requestPayload.tokenExpiration"},
        {ACCESS_BODY, "requestPayload", "tokenExpiration", "\"0\"", "requestPayload.tokenExpiration"},
        {ACCESS_BODY, "requestPayload", "tokenExpiration", "\"-1\"", "requestPayload.tokenExpiration"},
        {ACCESS_BODY, "requestPayload", "tokenExpiration", "4102444800",
         "requestPayload.tokenExpiration must be a string"},
        {ACCESS_BODY, "requestPayload", "tokenExpiration", "\"12345678901234567\"",
         "requestPayload.tokenExpiration is longer than 16"},
    };
    run_mutations(ms, sizeof ms / sizeof ms[0]);
    /* Seconds or milliseconds (below 10^11 means seconds), in the future;
     * 4102444800 is 2100-01-01. */
    static const char *const future[] = {"4102444800", "4102444800000", "99999999999"};
    for (size_t i = 0; i < sizeof future / sizeof future[0]; i++) {
        json_t *b = load(ACCESS_BODY);
        json_object_set_new(at(b, "requestPayload"), "tokenExpiration", json_string(future[i]));
        expect_valid(b, TD_KIND_ACCESS);
        json_decref(b);
    }
    /* In the past, whichever unit: 2001 in seconds or in ms; 10^11 is read as ms (1973). */
    static const char *const past[] = {"1000000000", "1000000000000", "100000000000", "1"};
    for (size_t i = 0; i < sizeof past / sizeof past[0]; i++) {
        json_t *b = load(ACCESS_BODY);
        json_object_set_new(at(b, "requestPayload"), "tokenExpiration", json_string(past[i]));
        expect_invalid(b, "requestPayload.tokenExpiration must be in the future");
        json_decref(b);
    }
}

/* The same body the server would parse: duplicates are refused by the parser,
 * before validation ever sees them. */
static void test_check_duplicates_rejected_by_parser(void **state)
{
    (void)state;
    const char dup[] = "{\"requestOptions\":{},\"requestOptions\":{}}";
    assert_null(json_loadb(dup, sizeof dup - 1, JSON_REJECT_DUPLICATES, NULL));
}

/* ---- admin_parse_delivery: PUT /admin/v1/issuers/{id}/delivery ---- */

static int parse_delivery(const char *text, td_delivery_rec *d, const char **secret, td_error *e)
{
    json_error_t err;
    static json_t *held; /* the body the secret points into, kept until the next call */
    json_decref(held);
    held = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    assert_non_null(held);
    memset(d, 0, sizeof *d);
    memset(e, 0, sizeof *e);
    return admin_parse_delivery(held, d, secret, e);
}

static void test_delivery_valid(void **state)
{
    (void)state;
    td_delivery_rec d;
    td_error e;
    const char *secret;
    assert_int_equal(
        parse_delivery("{\"profile\": \"d1\", \"baseUrl\": \"https://bank.example/api\"}", &d, &secret, &e), 0);
    assert_string_equal(d.profile, "d1");
    assert_string_equal(d.base_url, "https://bank.example/api");
    assert_string_equal(d.auth, "none");
    assert_null(secret);
    assert_int_equal(d.d1_batch_max, 1);
    assert_int_equal(d.max_age_ms, 86400000);
    assert_int_equal(d.timeout_ms, 5000);

    assert_int_equal(
        parse_delivery(
            "{\"profile\": \"classic\", \"baseUrl\": \"http://127.0.0.1:9/igw\", "
            "\"auth\": {\"type\": \"oauth2\", \"clientId\": \"tokend\", \"clientSecret\": \"s3cr3t\", "
            "\"tokenUrl\": \"http://127.0.0.1:9/oauth2/token\", \"scope\": \"notify\"}, "
            "\"tls\": {\"certFile\": \"/etc/c.pem\", \"keyFile\": \"/etc/k.pem\", \"caFile\": \"/etc/ca.pem\", "
            "\"pinnedPublicKey\": \"sha256//AAAA\"}, \"d1BatchMax\": 64, \"maxAgeSeconds\": 60, "
            "\"timeoutMs\": 100, \"messagingUrl\": \"http://127.0.0.1:9/messages\", "
            "\"templates\": {\"OTP\": \"code {otp}\", \"ACTIVATION\": \"ready {last4}\"}}",
            &d, &secret, &e),
        0);
    assert_string_equal(d.auth, "oauth2");
    assert_string_equal(secret, "s3cr3t");
    assert_string_equal(d.oauth_client_id, "tokend");
    assert_string_equal(d.oauth_token_url, "http://127.0.0.1:9/oauth2/token");
    assert_string_equal(d.oauth_scope, "notify");
    assert_string_equal(d.tls_cert_file, "/etc/c.pem");
    assert_string_equal(d.tls_key_file, "/etc/k.pem");
    assert_string_equal(d.tls_ca_file, "/etc/ca.pem");
    assert_string_equal(d.tls_pinned_key, "sha256//AAAA");
    assert_int_equal(d.d1_batch_max, 64);
    assert_int_equal(d.max_age_ms, 60000);
    assert_int_equal(d.timeout_ms, 100);
    assert_string_equal(d.messaging_url, "http://127.0.0.1:9/messages");
    assert_non_null(d.templates_json);
    assert_non_null(strstr(d.templates_json, "code {otp}"));
    free(d.templates_json);

    assert_int_equal(parse_delivery("{\"profile\": \"webhook\", \"baseUrl\": \"http://h/webhook\", "
                                    "\"auth\": {\"type\": \"webhook\", \"secret\": \"whsec_AAAA\"}}",
                                    &d, &secret, &e),
                     0);
    assert_string_equal(d.auth, "webhook");
    assert_string_equal(secret, "whsec_AAAA");
    /* the secret may be left out (the stored one is kept) */
    assert_int_equal(
        parse_delivery("{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"auth\": {\"type\": \"bearer\"}}", &d,
                       &secret, &e),
        0);
    assert_string_equal(d.auth, "bearer");
    assert_null(secret);
}

static void test_delivery_refused(void **state)
{
    (void)state;
    static const struct {
        const char *body, *names;
    } cases[] = {
        {"{}", "profile"},
        {"{\"profile\": \"d1\"}", "baseUrl"},
        {"{\"profile\": \"D1\", \"baseUrl\": \"http://h\"}", "profile"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"extra\": 1}", "extra"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"ftp://h\"}", "baseUrl"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://\"}", "baseUrl"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h/a b\"}", "baseUrl"},
        {"{\"profile\": \"d1\", \"baseUrl\": 5}", "baseUrl"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"messagingUrl\": \"file:///x\"}", "messagingUrl"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"d1BatchMax\": 0}", "d1BatchMax"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"d1BatchMax\": 65}", "d1BatchMax"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"d1BatchMax\": \"2\"}", "d1BatchMax"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"maxAgeSeconds\": 59}", "maxAgeSeconds"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"maxAgeSeconds\": 604801}", "maxAgeSeconds"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"timeoutMs\": 99}", "timeoutMs"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"timeoutMs\": 60001}", "timeoutMs"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"auth\": \"bearer\"}", "auth"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"auth\": {}}", "type"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"auth\": {\"type\": \"basic\"}}", "type"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"auth\": {\"type\": \"none\", \"token\": \"x\"}}", "token"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"auth\": {\"type\": \"bearer\", \"secret\": \"x\"}}",
         "secret"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"auth\": {\"type\": \"bearer\", \"token\": \"a b\"}}",
         "token"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"auth\": {\"type\": \"oauth2\", \"clientId\": \"c\"}}",
         "tokenUrl"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"auth\": {\"type\": \"oauth2\", \"tokenUrl\": "
         "\"http://h\"}}",
         "clientId"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"auth\": {\"type\": \"webhook\", \"secret\": \"x\"}}",
         "webhook"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"tls\": {\"keyFile\": \"/k\"}}", "certFile"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"tls\": {\"crlFile\": \"/k\"}}", "crlFile"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"templates\": {\"WELCOME\": \"hi\"}}", "WELCOME"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"templates\": {\"OTP\": 1}}", "OTP"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"templates\": {\"OTP\": \"\"}}", "OTP"},
        {"{\"profile\": \"d1\", \"baseUrl\": \"http://h\", \"templates\": []}", "templates"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        td_delivery_rec d;
        td_error e;
        const char *secret;
        if (parse_delivery(cases[i].body, &d, &secret, &e) == 0) fail_msg("accepted: %s", cases[i].body);
        assert_int_equal(e.code, TD_E_INVALID_ARGUMENT);
        if (!strstr(e.detail, cases[i].names))
            fail_msg("'%s' does not name %s: %s", cases[i].body, cases[i].names, e.detail);
        free(d.templates_json);
    }
}

/* The view never holds the secret, only whether one is set. */
static void test_delivery_view(void **state)
{
    (void)state;
    td_delivery_rec d;
    memset(&d, 0, sizeof d);
    td_strlcpy(d.issuer_id, "ISS0000001", sizeof d.issuer_id);
    td_strlcpy(d.profile, "d1", sizeof d.profile);
    td_strlcpy(d.base_url, "http://h", sizeof d.base_url);
    td_strlcpy(d.auth, "oauth2", sizeof d.auth);
    td_strlcpy(d.oauth_client_id, "cid", sizeof d.oauth_client_id);
    td_strlcpy(d.oauth_token_url, "http://h/t", sizeof d.oauth_token_url);
    memcpy(d.secret_sealed, "SEALED-SECRET", 13);
    d.secret_len = 13;
    d.d1_batch_max = 5;
    d.max_age_ms = 120000;
    d.timeout_ms = 700;
    json_t *v = admin_delivery_view(&d, true);
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(s);
    assert_null(strstr(s, "SEALED"));
    json_t *auth = json_object_get(v, "auth");
    assert_true(json_is_true(json_object_get(auth, "secretSet")));
    assert_string_equal(json_string_value(json_object_get(auth, "clientId")), "cid");
    assert_int_equal(json_integer_value(json_object_get(v, "maxAgeSeconds")), 120);
    assert_int_equal(json_integer_value(json_object_get(v, "d1BatchMax")), 5);
    assert_true(json_is_object(json_object_get(v, "templates")));
    assert_true(json_is_null(json_object_get(v, "messagingUrl")));
    free(s);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_table_sane),
        cmocka_unit_test(test_delivery_valid),
        cmocka_unit_test(test_delivery_refused),
        cmocka_unit_test(test_delivery_view),
        cmocka_unit_test(test_match_every_route),
        cmocka_unit_test(test_match_examples),
        cmocka_unit_test(test_method_mismatch_examples),
        cmocka_unit_test(test_trailing_slash_not_matched),
        cmocka_unit_test(test_extra_segment_not_matched),
        cmocka_unit_test(test_empty_segment_not_matched),
        cmocka_unit_test(test_other_misses),
        cmocka_unit_test(test_encoded_slash_never_splits),
        cmocka_unit_test(test_bad_escapes),
        cmocka_unit_test(test_long_paths_not_matched),
        cmocka_unit_test(test_face_of_path),
        cmocka_unit_test(test_param_buffer_bound),
        cmocka_unit_test(test_check_valid_bodies),
        cmocka_unit_test(test_check_unknown_fields),
        cmocka_unit_test(test_check_wrong_types),
        cmocka_unit_test(test_check_transfer_destinations),
        cmocka_unit_test(test_check_ref_id),
        cmocka_unit_test(test_check_bodies_count),
        cmocka_unit_test(test_check_alias),
        cmocka_unit_test(test_check_redirect_url),
        cmocka_unit_test(test_check_currency_and_amount),
        cmocka_unit_test(test_check_token_expiration),
        cmocka_unit_test(test_check_duplicates_rejected_by_parser),
        cmocka_unit_test(test_route_tls_faces),
        cmocka_unit_test(test_fingerprint_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
