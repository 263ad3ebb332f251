/* test_notify.c — unit tests for the pure parts of src/notify/ (formats.c,
 * retry.c, auth.c's td_webhook_sign) against docs/notifications.md: every
 * profile (d1, classic, webhook) × row kind (digital card row, DIGITIZE
 * outcome, card-level row, end-user message):
 * URL, headers and exact bodies; d1 batching; classic's rows with nothing to
 * send; the OTP only in the message text; the Standard Webhooks signature
 * against fixed vectors; the answer classification; back-off bounds; the
 * maximum age; message templates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto/crypto.h"
#include "notify/notify.h"
#include "util/util.h"

#define ISSUER "ISSUER0001"
#define CREATED_MS 1795333347123LL /* 2026-11-22T07:42:27.123Z */
#define CREATED_ISO "2026-11-22T07:42:27.123Z"
#define EVENT_MS 1795333346000LL /* 2026-11-22T07:42:26.000Z */
#define EVENT_ISO "2026-11-22T07:42:26.000Z"
#define NOW_S 1795333400LL
#define BEARER "tok-abc"
#define OTP "739184"
/* Standard Webhooks secret: whsec_ + base64 of the key bytes. */
#define WHSEC "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

/* ---- fixtures ---- */

static td_delivery_rec delivery(const char *profile)
{
    td_delivery_rec d;
    memset(&d, 0, sizeof d);
    td_strlcpy(d.issuer_id, ISSUER, sizeof d.issuer_id);
    td_strlcpy(d.profile, profile, sizeof d.profile);
    td_strlcpy(d.base_url, strcmp(profile, "webhook") == 0 ? "https://hooks.bank.test/tokend" : "https://bank.test/api",
               sizeof d.base_url);
    td_strlcpy(d.messaging_url, "https://msg.bank.test/send", sizeof d.messaging_url);
    d.d1_batch_max = 10;
    d.max_age_ms = 24 * 3600 * 1000LL;
    d.timeout_ms = 5000;
    return d;
}

static td_dcard_rec dcard(void)
{
    td_dcard_rec dc;
    memset(&dc, 0, sizeof dc);
    td_strlcpy(dc.id, "dc_AAA", sizeof dc.id);
    td_strlcpy(dc.issuer_id, ISSUER, sizeof dc.issuer_id);
    td_strlcpy(dc.card_id, "card-0001", sizeof dc.card_id);
    td_strlcpy(dc.wallet_provider_id, "APPLE_PAY", sizeof dc.wallet_provider_id);
    td_strlcpy(dc.token_storage_id, "SE-01", sizeof dc.token_storage_id);
    td_strlcpy(dc.correlation_id, "corr-enrol", sizeof dc.correlation_id);
    td_strlcpy(dc.last4, "1111", sizeof dc.last4);
    dc.is_primary = true;
    dc.d.state = TD_DC_ACTIVE;
    dc.d.seq = 9;
    return dc;
}

/* An ISSUER row about dc_AAA. */
static td_outbox_rec issuer_row(int64_t id, const char *op, const char *status, const char *error_code,
                                const char *source)
{
    td_outbox_rec o;
    memset(&o, 0, sizeof o);
    o.id = id;
    td_strlcpy(o.issuer_id, ISSUER, sizeof o.issuer_id);
    td_strlcpy(o.channel, "ISSUER", sizeof o.channel);
    td_strlcpy(o.digital_card_id, "dc_AAA", sizeof o.digital_card_id);
    td_strlcpy(o.card_id, "card-0001", sizeof o.card_id);
    o.dcard_seq = 3;
    td_strlcpy(o.operation_id, "op_111", sizeof o.operation_id);
    td_strlcpy(o.operation, op, sizeof o.operation);
    td_strlcpy(o.status, status, sizeof o.status);
    td_strlcpy(o.error_code, error_code, sizeof o.error_code);
    td_strlcpy(o.source, source, sizeof o.source);
    td_strlcpy(o.correlation_id, "corr-enrol", sizeof o.correlation_id);
    td_strlcpy(o.wallet_provider_id, "APPLE_PAY", sizeof o.wallet_provider_id);
    o.event_ms = EVENT_MS;
    o.created_ms = o.due_ms = CREATED_MS;
    td_strlcpy(o.state, "IN_FLIGHT", sizeof o.state);
    td_strlcpy(o.order_key, "dc_AAA", sizeof o.order_key);
    return o;
}

/* A card-level row (no digital card). */
static td_outbox_rec card_row(int64_t id, const char *op)
{
    td_outbox_rec o = issuer_row(id, op, "SUCCESSFUL", "", "ISSUER");
    o.digital_card_id[0] = '\0';
    o.wallet_provider_id[0] = '\0';
    o.correlation_id[0] = '\0';
    td_strlcpy(o.operation_id, "op_card", sizeof o.operation_id);
    o.dcard_seq = 4;
    td_strlcpy(o.order_key, "card:card-0001", sizeof o.order_key);
    return o;
}

static td_outbox_rec user_row(int64_t id, const char *message, const char *method_id)
{
    td_outbox_rec o = issuer_row(id, "", "", "", "");
    td_strlcpy(o.channel, "USER", sizeof o.channel);
    o.operation_id[0] = '\0';
    td_strlcpy(o.message, message, sizeof o.message);
    td_strlcpy(o.method_id, method_id, sizeof o.method_id);
    if (strcmp(message, "OTP") == 0) {
        memset(o.secret_sealed, 0xAB, 40); /* the worker opens it; notify never reads it */
        o.secret_len = 40;
    }
    return o;
}

/* ---- helpers ---- */

/* The value of header `name` in r, or NULL. */
static const char *header(const td_notify_req *r, const char *name)
{
    size_t nl = strlen(name);
    for (int i = 0; i < r->n_headers; i++)
        if (strncasecmp(r->headers[i], name, nl) == 0 && r->headers[i][nl] == ':' && r->headers[i][nl + 1] == ' ')
            return r->headers[i] + nl + 2;
    return NULL;
}

static json_t *body_json(const td_notify_req *r)
{
    assert_non_null(r->body);
    assert_int_equal(strlen(r->body), r->body_len);
    json_error_t e;
    json_t *j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &e);
    if (!j) fail_msg("body is not JSON: %s: %s", e.text, r->body);
    return j;
}

/* The body equals `expected` (JSON text), key order aside. */
static void assert_body(const td_notify_req *r, const char *expected)
{
    json_t *got = body_json(r);
    json_error_t e;
    json_t *want = json_loads(expected, JSON_REJECT_DUPLICATES, &e);
    if (!want) fail_msg("expected is not JSON: %s", e.text);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT), *w = json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT);
        fprintf(stderr, "got:  %s\nwant: %s\n", g, w);
        free(g);
        free(w);
        fail_msg("body differs");
    }
    json_decref(got);
    json_decref(want);
}

/* The row as the write path makes it about dc (td_outbox_fill): what it says
 * about the card, as the change left it; nothing when dc is NULL. */
static td_outbox_rec about(const td_outbox_rec *o, const td_dcard_rec *dc)
{
    td_outbox_rec r = *o;
    if (dc) {
        td_strlcpy(r.token_storage_id, dc->token_storage_id, sizeof r.token_storage_id);
        td_strlcpy(r.last4, dc->last4, sizeof r.last4);
        r.is_primary = dc->is_primary;
        r.dcard_state = (int)dc->d.state;
    }
    return r;
}

static int build1(const td_delivery_rec *d, const td_outbox_rec *o, const td_dcard_rec *dc, const char *secret,
                  const char *bearer, const char *otp, td_notify_req *out, char *err)
{
    td_outbox_rec row = about(o, dc);
    return td_notify_build(d, &row, 1, secret, bearer, otp, NOW_S, out, err, 160);
}

/* ---- d1 ---- */

static void d1_digital_card_operation(void **state)
{
    (void)state;
    td_delivery_rec d = delivery("d1");
    td_dcard_rec dc = dcard();
    td_outbox_rec o = issuer_row(17, "SUSPEND", "SUCCESSFUL", "", "WALLET");
    td_notify_req r;
    char err[160];
    assert_int_equal(build1(&d, &o, &dc, NULL, BEARER, NULL, &r, err), 0);
    assert_string_equal(
        r.url, "https://bank.test/api/notifications/d1/v1/issuers/ISSUER0001/digitalCards/dc_AAA/notifications");
    assert_string_equal(header(&r, "Content-Type"), "application/json");
    assert_string_equal(header(&r, "x-correlation-id"), "corr-enrol");
    assert_string_equal(header(&r, "Authorization"), "Bearer " BEARER);
    assert_int_equal(r.n_headers, 3);
    assert_body(&r, "{\"operationId\":\"op_111\",\"operation\":\"SUSPEND\",\"status\":\"SUCCESSFUL\"}");
    assert_int_equal(r.n_ids, 1);
    assert_int_equal(r.ids[0], 17);
    td_notify_req_free(&r);

    /* no bearer: no Authorization; a trailing slash on the base is dropped */
    td_strlcpy(d.base_url, "https://bank.test/api/", sizeof d.base_url);
    o = issuer_row(18, "DELETE_FROM_APP", "SUCCESSFUL", "", "WALLET");
    assert_int_equal(build1(&d, &o, &dc, NULL, NULL, NULL, &r, err), 0);
    assert_string_equal(
        r.url, "https://bank.test/api/notifications/d1/v1/issuers/ISSUER0001/digitalCards/dc_AAA/notifications");
    assert_null(header(&r, "Authorization"));
    assert_body(&r, "{\"operationId\":\"op_111\",\"operation\":\"DELETE_FROM_APP\",\"status\":\"SUCCESSFUL\"}");
    td_notify_req_free(&r);
}

static void d1_digitize_failed(void **state)
{
    (void)state;
    td_delivery_rec d = delivery("d1");
    td_dcard_rec dc = dcard();
    td_outbox_rec o = issuer_row(21, "DIGITIZE", "FAILED", "CANCELED_BY_USER", "WALLET");
    td_notify_req r;
    char err[160];
    assert_int_equal(build1(&d, &o, &dc, NULL, BEARER, NULL, &r, err), 0);
    assert_string_equal(r.url, "https://bank.test/api/notifications/d1/v2/issuers/ISSUER0001/cards");
    assert_string_equal(header(&r, "x-correlation-id"), "corr-enrol");
    assert_string_equal(header(&r, "Authorization"), "Bearer " BEARER);
    assert_body(&r, "{\"operations\":[{\"operationId\":\"op_111\",\"operation\":\"DIGITIZE\",\"status\":\"FAILED\","
                    "\"startTime\":\"" CREATED_ISO "\",\"endTime\":\"" CREATED_ISO "\",\"cardId\":\"card-0001\","
                    "\"errorCode\":\"CANCELED_BY_USER\","
                    "\"error\":\"Tokenization canceled by the end user during step-up\","
                    "\"details\":{\"digitalCardId\":\"dc_AAA\",\"walletProviderId\":\"APPLE_PAY\","
                    "\"source\":\"WALLET\",\"sequence\":3,\"userStatus\":\"canceled\"}}]}");
    td_notify_req_free(&r);
}

static void d1_digitize_pending_and_successful(void **state)
{
    (void)state;
    td_delivery_rec d = delivery("d1");
    td_dcard_rec dc = dcard();
    td_outbox_rec o = issuer_row(22, "DIGITIZE", "PENDING", "", "TSP");
    td_notify_req r;
    char err[160];
    assert_int_equal(build1(&d, &o, &dc, NULL, NULL, NULL, &r, err), 0);
    assert_string_equal(r.url, "https://bank.test/api/notifications/d1/v2/issuers/ISSUER0001/cards");
    /* PENDING: no endTime, no errorCode */
    assert_body(&r, "{\"operations\":[{\"operationId\":\"op_111\",\"operation\":\"DIGITIZE\",\"status\":\"PENDING\","
                    "\"startTime\":\"" CREATED_ISO "\",\"cardId\":\"card-0001\","
                    "\"details\":{\"digitalCardId\":\"dc_AAA\",\"walletProviderId\":\"APPLE_PAY\","
                    "\"source\":\"TSP\",\"sequence\":3,\"userStatus\":\"pending\"}}]}");
    td_notify_req_free(&r);

    o = issuer_row(23, "DIGITIZE", "SUCCESSFUL", "", "TSP");
    assert_int_equal(build1(&d, &o, &dc, NULL, NULL, NULL, &r, err), 0);
    assert_body(&r, "{\"operations\":[{\"operationId\":\"op_111\",\"operation\":\"DIGITIZE\",\"status\":\"SUCCESSFUL\","
                    "\"startTime\":\"" CREATED_ISO "\",\"endTime\":\"" CREATED_ISO "\",\"cardId\":\"card-0001\","
                    "\"details\":{\"digitalCardId\":\"dc_AAA\",\"walletProviderId\":\"APPLE_PAY\","
                    "\"source\":\"TSP\",\"sequence\":3,\"userStatus\":\"active\"}}]}");
    td_notify_req_free(&r);
}

static void d1_card_level_row(void **state)
{
    (void)state;
    td_delivery_rec d = delivery("d1");
    td_outbox_rec o = card_row(30, "SUSPEND");
    td_notify_req r;
    char err[160];
    assert_int_equal(build1(&d, &o, NULL, NULL, NULL, NULL, &r, err), 0);
    assert_string_equal(r.url, "https://bank.test/api/notifications/d1/v2/issuers/ISSUER0001/cards");
    /* no correlation id on the row: the operation id */
    assert_string_equal(header(&r, "x-correlation-id"), "op_card");
    assert_body(&r, "{\"operations\":[{\"operationId\":\"op_card\",\"operation\":\"SUSPEND\",\"status\":\"SUCCESSFUL\","
                    "\"startTime\":\"" CREATED_ISO "\",\"endTime\":\"" CREATED_ISO "\",\"cardId\":\"card-0001\","
                    "\"details\":{\"source\":\"ISSUER\",\"sequence\":4,\"userStatus\":\"suspended\"}}]}");
    td_notify_req_free(&r);
}

static void d1_batching(void **state)
{
    (void)state;
    td_delivery_rec d = delivery("d1");
    td_dcard_rec dc1 = dcard(), dc2 = dcard();
    td_strlcpy(dc2.id, "dc_BBB", sizeof dc2.id);
    td_outbox_rec rows[3];
    rows[0] = issuer_row(40, "DIGITIZE", "SUCCESSFUL", "", "TSP");
    rows[1] = card_row(41, "DELETE");
    rows[2] = issuer_row(42, "DIGITIZE", "FAILED", "DECLINED", "TSP");
    td_strlcpy(rows[2].digital_card_id, "dc_BBB", sizeof rows[2].digital_card_id);
    td_strlcpy(rows[2].operation_id, "op_222", sizeof rows[2].operation_id);
    td_strlcpy(rows[2].correlation_id, "corr-other", sizeof rows[2].correlation_id);
    rows[2].dcard_seq = 1;
    rows[0] = about(&rows[0], &dc1);
    rows[2] = about(&rows[2], &dc2);
    td_notify_req r;
    char err[160];
    assert_int_equal(td_notify_build(&d, rows, 3, NULL, BEARER, NULL, NOW_S, &r, err, sizeof err), 0);
    assert_string_equal(r.url, "https://bank.test/api/notifications/d1/v2/issuers/ISSUER0001/cards");
    assert_string_equal(header(&r, "x-correlation-id"), "corr-enrol"); /* the first row's */
    assert_int_equal(r.n_ids, 3);
    assert_int_equal(r.ids[0], 40);
    assert_int_equal(r.ids[1], 41);
    assert_int_equal(r.ids[2], 42);
    assert_body(&r, "{\"operations\":["
                    "{\"operationId\":\"op_111\",\"operation\":\"DIGITIZE\",\"status\":\"SUCCESSFUL\","
                    "\"startTime\":\"" CREATED_ISO "\",\"endTime\":\"" CREATED_ISO "\",\"cardId\":\"card-0001\","
                    "\"details\":{\"digitalCardId\":\"dc_AAA\",\"walletProviderId\":\"APPLE_PAY\","
                    "\"source\":\"TSP\",\"sequence\":3,\"userStatus\":\"active\"}},"
                    "{\"operationId\":\"op_card\",\"operation\":\"DELETE\",\"status\":\"SUCCESSFUL\","
                    "\"startTime\":\"" CREATED_ISO "\",\"endTime\":\"" CREATED_ISO "\",\"cardId\":\"card-0001\","
                    "\"details\":{\"source\":\"ISSUER\",\"sequence\":4,\"userStatus\":\"deleted\"}},"
                    "{\"operationId\":\"op_222\",\"operation\":\"DIGITIZE\",\"status\":\"FAILED\","
                    "\"startTime\":\"" CREATED_ISO "\",\"endTime\":\"" CREATED_ISO "\",\"cardId\":\"card-0001\","
                    "\"errorCode\":\"DECLINED\",\"error\":\"Tokenization declined by the issuer's decision rules\","
                    "\"details\":{\"digitalCardId\":\"dc_BBB\",\"walletProviderId\":\"APPLE_PAY\","
                    "\"source\":\"TSP\",\"sequence\":1,\"userStatus\":\"declined\"}}]}");
    td_notify_req_free(&r);
}

static void batchable_rules(void **state)
{
    (void)state;
    td_delivery_rec d1 = delivery("d1"), cl = delivery("classic"), wh = delivery("webhook");
    td_outbox_rec dig = issuer_row(1, "DIGITIZE", "PENDING", "", "TSP");
    td_outbox_rec card = card_row(2, "RESUME");
    td_outbox_rec susp = issuer_row(3, "SUSPEND", "SUCCESSFUL", "", "ISSUER");
    td_outbox_rec user = user_row(4, "ACTIVATION", "");
    td_outbox_rec other = issuer_row(5, "DIGITIZE", "SUCCESSFUL", "", "TSP");
    td_strlcpy(other.issuer_id, "ISSUER0002", sizeof other.issuer_id);

    assert_true(td_notify_batchable(&d1, &dig, &card));
    assert_true(td_notify_batchable(&d1, &card, &dig));
    assert_true(td_notify_batchable(&d1, &dig, &dig));
    assert_false(td_notify_batchable(&d1, &dig, &susp)); /* Notify Digital Card Operation: never batched */
    assert_false(td_notify_batchable(&d1, &susp, &susp));
    assert_false(td_notify_batchable(&d1, &dig, &user));
    assert_false(td_notify_batchable(&d1, &user, &user));
    assert_false(td_notify_batchable(&d1, &dig, &other)); /* another issuer */
    assert_false(td_notify_batchable(&cl, &dig, &card));
    assert_false(td_notify_batchable(&wh, &dig, &card));
    d1.d1_batch_max = 1; /* batching off */
    assert_false(td_notify_batchable(&d1, &dig, &card));

    /* rows that cannot share a request are refused, not half-sent */
    d1.d1_batch_max = 10;
    td_outbox_rec pair[2] = {dig, susp};
    td_notify_req r;
    char err[160];
    assert_int_equal(td_notify_build(&d1, pair, 2, NULL, NULL, NULL, NOW_S, &r, err, sizeof err), -1);
    assert_string_equal(err, "rows cannot share a request");
    assert_null(r.body);
    td_outbox_rec two[2] = {dig, card};
    assert_int_equal(td_notify_build(&cl, two, 2, NULL, NULL, NULL, NOW_S, &r, err, sizeof err), -1);
    assert_int_equal(td_notify_build(&d1, two, 0, NULL, NULL, NULL, NOW_S, &r, err, sizeof err), -1);
    assert_int_equal(td_notify_build(&d1, two, 65, NULL, NULL, NULL, NOW_S, &r, err, sizeof err), -1);

    /* 64 rows fit in one request */
    td_outbox_rec many[64];
    for (int i = 0; i < 64; i++)
        many[i] = card_row(100 + i, "SUSPEND");
    assert_int_equal(td_notify_build(&d1, many, 64, NULL, NULL, NULL, NOW_S, &r, err, sizeof err), 0);
    json_t *j = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "operations")), 64);
    assert_int_equal(r.n_ids, 64);
    assert_int_equal(r.ids[63], 163);
    json_decref(j);
    td_notify_req_free(&r);
}

/* The DIGITIZE FAILED table: errorCode → error text and userStatus (d1 and webhook). */
static void digitize_failed_table(void **state)
{
    (void)state;
    static const char *const T[][3] = {
        {"CANCELED_BY_USER", "Tokenization canceled by the end user during step-up", "canceled"},
        {"CANCELED_BY_ISSUER", "Tokenization canceled by the issuer during step-up", "canceled"},
        {"DECLINED", "Tokenization declined by the issuer's decision rules", "declined"},
        {"STEP_UP_EXPIRED", "Step-up session expired before the end user verified their identity", "expired"},
        {"IDV_FAILED", "Identity verification failed and the step-up session expired", "expired"},
        {"SOMETHING_NEW", "SOMETHING_NEW", "declined"},
    };
    td_delivery_rec d1 = delivery("d1"), wh = delivery("webhook");
    td_dcard_rec dc = dcard();
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        td_outbox_rec o = issuer_row(50, "DIGITIZE", "FAILED", T[i][0], "TSP");
        td_notify_req r;
        char err[160];
        assert_int_equal(build1(&d1, &o, &dc, NULL, NULL, NULL, &r, err), 0);
        json_t *j = body_json(&r);
        json_t *op = json_array_get(json_object_get(j, "operations"), 0);
        assert_string_equal(json_string_value(json_object_get(op, "errorCode")), T[i][0]);
        assert_string_equal(json_string_value(json_object_get(op, "error")), T[i][1]);
        assert_string_equal(json_string_value(json_object_get(json_object_get(op, "details"), "userStatus")), T[i][2]);
        json_decref(j);
        td_notify_req_free(&r);

        assert_int_equal(build1(&wh, &o, &dc, NULL, NULL, NULL, &r, err), 0);
        j = body_json(&r);
        json_t *data = json_object_get(j, "data");
        assert_string_equal(json_string_value(json_object_get(data, "errorCode")), T[i][0]);
        assert_string_equal(json_string_value(json_object_get(data, "error")), T[i][1]);
        assert_string_equal(json_string_value(json_object_get(data, "userStatus")), T[i][2]);
        json_decref(j);
        td_notify_req_free(&r);
    }
}

/* userStatus of the other outcomes (webhook data.userStatus). */
static const char *webhook_user_status(td_outbox_rec *o, const td_dcard_rec *dc, char *buf)
{
    td_delivery_rec wh = delivery("webhook");
    td_notify_req r;
    char err[160];
    assert_int_equal(build1(&wh, o, dc, NULL, NULL, NULL, &r, err), 0);
    json_t *j = body_json(&r);
    json_t *us = json_object_get(json_object_get(j, "data"), "userStatus");
    assert_non_null(us);
    if (json_is_null(us))
        td_strlcpy(buf, "(null)", 16);
    else
        td_strlcpy(buf, json_string_value(us), 16);
    json_decref(j);
    td_notify_req_free(&r);
    return buf;
}

static void user_status_table(void **state)
{
    (void)state;
    td_dcard_rec dc = dcard();
    char b[16];
    static const char *const T[][3] = {
        {"DIGITIZE", "PENDING", "pending"},      {"DIGITIZE", "SUCCESSFUL", "active"},
        {"SUSPEND", "SUCCESSFUL", "suspended"},  {"RESUME", "SUCCESSFUL", "active"},
        {"DELETE", "SUCCESSFUL", "deleted"},     {"DELETE_FROM_APP", "SUCCESSFUL", "deleted"},
        {"EXPIRE", "SUCCESSFUL", "expired"},     {"SUSPEND", "FAILED", "(null)"},
        {"SOME_NEW_OP", "SUCCESSFUL", "(null)"},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        td_outbox_rec o = issuer_row(60, T[i][0], T[i][1], "", "ISSUER");
        assert_string_equal(webhook_user_status(&o, &dc, b), T[i][2]);
    }
    /* RESUME while another party still holds a suspension: the change left the
     * card SUSPENDED (the row says so) */
    td_outbox_rec o = issuer_row(61, "RESUME", "SUCCESSFUL", "", "ISSUER");
    dc.d.state = TD_DC_SUSPENDED;
    assert_string_equal(webhook_user_status(&o, &dc, b), "suspended");
    o.dcard_state = -1; /* a row older than migration 007 whose card changed again: cannot tell */
    assert_string_equal(webhook_user_status(&o, NULL, b), "active");
    /* card-level rows: the card's status */
    o = card_row(62, "RESUME");
    assert_string_equal(webhook_user_status(&o, NULL, b), "active");
    o = card_row(63, "DELETE");
    assert_string_equal(webhook_user_status(&o, NULL, b), "deleted");
}

/* ---- classic ---- */

static void classic_activate(void **state)
{
    (void)state;
    td_delivery_rec d = delivery("classic");
    td_dcard_rec dc = dcard();
    td_outbox_rec o = issuer_row(70, "DIGITIZE", "SUCCESSFUL", "", "TSP");
    td_notify_req r;
    char err[160];
    assert_int_equal(build1(&d, &o, &dc, NULL, BEARER, NULL, &r, err), 0);
    assert_string_equal(r.url, "https://bank.test/api/notifyVirtualCardChange");
    assert_string_equal(header(&r, "Content-Type"), "application/json");
    assert_string_equal(header(&r, "x-correlation-id"), "corr-enrol"); /* the enrolment session's */
    assert_string_equal(header(&r, "x-issuer-id"), ISSUER);
    assert_string_equal(header(&r, "Authorization"), "Bearer " BEARER);
    assert_int_equal(r.n_headers, 4);
    assert_body(&r,
                "{\"issuerCardRefId\":\"card-0001\",\"virtualCardId\":\"dc_AAA\",\"walletProviderId\":\"APPLE_PAY\","
                "\"isPrimary\":true,\"tokenStorageId\":\"SE-01\",\"action\":\"ACTIVATE\",\"source\":\"TSP\","
                "\"tokenInfo\":{\"last4\":\"1111\"},\"operationId\":\"op_111\",\"sequence\":3}");
    td_notify_req_free(&r);
}

static void classic_digitize_failed_is_delete(void **state)
{
    (void)state;
    td_delivery_rec d = delivery("classic");
    td_dcard_rec dc = dcard();
    dc.token_storage_id[0] = '\0'; /* none given: the digital card id stands in */
    dc.is_primary = false;
    td_outbox_rec o = issuer_row(71, "DIGITIZE", "FAILED", "CANCELED_BY_USER", "WALLET");
    td_notify_req r;
    char err[160];
    assert_int_equal(build1(&d, &o, &dc, NULL, NULL, NULL, &r, err), 0);
    assert_null(header(&r, "Authorization"));
    assert_body(&r,
                "{\"issuerCardRefId\":\"card-0001\",\"virtualCardId\":\"dc_AAA\",\"walletProviderId\":\"APPLE_PAY\","
                "\"isPrimary\":false,\"tokenStorageId\":\"dc_AAA\",\"action\":\"DELETE\",\"source\":\"WALLET\","
                "\"errorCode\":\"CANCELED_BY_USER\",\"operationId\":\"op_111\",\"sequence\":3}");
    td_notify_req_free(&r);
}

static void classic_lifecycle_actions(void **state)
{
    (void)state;
    td_delivery_rec d = delivery("classic");
    td_dcard_rec dc = dcard();
    static const char *const T[][2] = {
        {"SUSPEND", "SUSPEND"}, {"RESUME", "RESUME"}, {"DELETE", "DELETE"}, {"DELETE_FROM_APP", "DELETE_FROM_APP"},
        {"EXPIRE", "EXPIRE"},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        td_outbox_rec o = issuer_row(72, T[i][0], "SUCCESSFUL", "", "WALLET");
        td_strlcpy(o.correlation_id, "corr-lcm", sizeof o.correlation_id);
        td_notify_req r;
        char err[160];
        assert_int_equal(build1(&d, &o, &dc, NULL, NULL, NULL, &r, err), 0);
        assert_string_equal(header(&r, "x-correlation-id"), "corr-lcm");
        char want[600];
        snprintf(want, sizeof want,
                 "{\"issuerCardRefId\":\"card-0001\",\"virtualCardId\":\"dc_AAA\",\"walletProviderId\":\"APPLE_PAY\","
                 "\"isPrimary\":true,\"tokenStorageId\":\"SE-01\",\"action\":\"%s\",\"source\":\"WALLET\","
                 "\"operationId\":\"op_111\",\"sequence\":3}",
                 T[i][1]);
        assert_body(&r, want);
        td_notify_req_free(&r);
    }
}

static void classic_nothing_to_send(void **state)
{
    (void)state;
    td_delivery_rec d = delivery("classic");
    td_dcard_rec dc = dcard();
    td_outbox_rec rows[3] = {issuer_row(80, "DIGITIZE", "PENDING", "", "TSP"), card_row(81, "DELETE"),
                             issuer_row(82, "SUSPEND", "FAILED", "", "ISSUER")};
    for (int i = 0; i < 3; i++) {
        td_notify_req r;
        char err[160];
        assert_int_equal(build1(&d, &rows[i], i == 1 ? NULL : &dc, NULL, BEARER, NULL, &r, err), 1);
        assert_null(r.body);
        assert_int_equal(r.n_headers, 0);
        assert_int_equal(r.n_ids, 1);
        assert_int_equal(r.ids[0], rows[i].id);
        td_notify_req_free(&r);
    }
}

/* ---- webhook ---- */

static void webhook_digital_card_event(void **state)
{
    (void)state;
    td_delivery_rec d = delivery("webhook");
    td_dcard_rec dc = dcard();
    td_outbox_rec o = issuer_row(90, "DIGITIZE", "FAILED", "STEP_UP_EXPIRED", "ISSUER");
    td_notify_req r, r2;
    char err[160];
    assert_int_equal(build1(&d, &o, &dc, WHSEC, NULL, NULL, &r, err), 0);
    assert_string_equal(r.url, "https://hooks.bank.test/tokend");
    assert_string_equal(header(&r, "Content-Type"), "application/json");
    assert_string_equal(header(&r, "webhook-id"), "msg_ISSUER0001_90");
    char ts[24];
    snprintf(ts, sizeof ts, "%lld", (long long)NOW_S);
    assert_string_equal(header(&r, "webhook-timestamp"), ts);
    assert_null(header(&r, "Authorization"));
    assert_body(&r, "{\"type\":\"digitalCard.operation\",\"timestamp\":\"" CREATED_ISO "\",\"data\":{"
                    "\"operationId\":\"op_111\",\"operation\":\"DIGITIZE\",\"status\":\"FAILED\","
                    "\"errorCode\":\"STEP_UP_EXPIRED\","
                    "\"error\":\"Step-up session expired before the end user verified their identity\","
                    "\"userStatus\":\"expired\",\"issuerId\":\"ISSUER0001\",\"cardId\":\"card-0001\","
                    "\"digitalCardId\":\"dc_AAA\",\"walletProviderId\":\"APPLE_PAY\",\"source\":\"ISSUER\","
                    "\"correlationId\":\"corr-enrol\",\"sequence\":3,\"eventTime\":\"" EVENT_ISO "\"}}");
    /* the signature is over id.timestamp.body with the decoded secret */
    char sig[128];
    assert_int_equal(td_webhook_sign(WHSEC, "msg_ISSUER0001_90", NOW_S, r.body, r.body_len, sig, sizeof sig), 0);
    assert_string_equal(header(&r, "webhook-signature"), sig);

    /* a later attempt: same id and body, its own timestamp and signature */
    td_outbox_rec row = about(&o, &dc);
    assert_int_equal(td_notify_build(&d, &row, 1, WHSEC, NULL, NULL, NOW_S + 60, &r2, err, sizeof err), 0);
    assert_string_equal(header(&r2, "webhook-id"), "msg_ISSUER0001_90");
    assert_string_not_equal(header(&r2, "webhook-timestamp"), ts);
    assert_string_not_equal(header(&r2, "webhook-signature"), header(&r, "webhook-signature"));
    assert_int_equal(r.body_len, r2.body_len);
    assert_memory_equal(r.body, r2.body, r.body_len);
    td_notify_req_free(&r);
    td_notify_req_free(&r2);
}

static void webhook_card_event_and_auth(void **state)
{
    (void)state;
    td_delivery_rec d = delivery("webhook");
    td_outbox_rec o = card_row(91, "SUSPEND");
    td_notify_req r;
    char err[160];
    /* bearer instead of a secret: no signature, Authorization */
    assert_int_equal(build1(&d, &o, NULL, NULL, BEARER, NULL, &r, err), 0);
    assert_null(header(&r, "webhook-signature"));
    assert_string_equal(header(&r, "webhook-id"), "msg_ISSUER0001_91");
    assert_string_equal(header(&r, "Authorization"), "Bearer " BEARER);
    assert_body(&r, "{\"type\":\"card.operation\",\"timestamp\":\"" CREATED_ISO "\",\"data\":{"
                    "\"operationId\":\"op_card\",\"operation\":\"SUSPEND\",\"status\":\"SUCCESSFUL\","
                    "\"errorCode\":null,\"error\":null,\"userStatus\":\"suspended\",\"issuerId\":\"ISSUER0001\","
                    "\"cardId\":\"card-0001\",\"digitalCardId\":null,\"walletProviderId\":null,\"source\":\"ISSUER\","
                    "\"correlationId\":null,\"sequence\":4,\"eventTime\":\"" EVENT_ISO "\"}}");
    td_notify_req_free(&r);

    /* an unusable secret: the row cannot be signed */
    assert_int_equal(build1(&d, &o, NULL, "whsec_!!not base64!!", NULL, NULL, &r, err), -1);
    assert_string_equal(err, "webhook secret unusable");
    assert_null(r.body);
}

/* Fixed vectors. The first is the Standard Webhooks specification's own; both
 * were checked with Python's hmac:
 *   python3 -c 'import hmac,hashlib,base64;k=base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
 *     print("v1,"+base64.b64encode(hmac.new(k,b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{\"test\": 2432232314}",
 *     hashlib.sha256).digest()).decode())'
 *   → v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
 *   python3 -c 'import hmac,hashlib,base64;print("v1,"+base64.b64encode(hmac.new(b"raw-secret-no-prefix",
 *     b"msg_ISSUER0001_7.1700000000.{\"a\":1}",hashlib.sha256).digest()).decode())'
 *   → v1,UBTvhN7KAe1dtN2IvF+HmcFZ8/0DTea1Q66gDyvHvHs=
 *   python3 -c 'import hmac,hashlib,base64;k=bytes(range(1,26));print(base64.b64encode(k).decode(),"v1,"+
 *     base64.b64encode(hmac.new(k,b"msg_ISSUER0001_8.1700000001.{}",hashlib.sha256).digest()).decode())'
 *   → AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGQ== v1,PSzB/8tO9C4G2OZ81T+ZNKsqoaaViYuv9GgEtjKvUMI= */
static void webhook_signature_vectors(void **state)
{
    (void)state;
    char sig[128];
    const char *body = "{\"test\": 2432232314}";
    assert_int_equal(
        td_webhook_sign(WHSEC, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body), sig, sizeof sig), 0);
    assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    const char *b2 = "{\"a\":1}";
    assert_int_equal(
        td_webhook_sign("raw-secret-no-prefix", "msg_ISSUER0001_7", 1700000000, b2, strlen(b2), sig, sizeof sig), 0);
    assert_string_equal(sig, "v1,UBTvhN7KAe1dtN2IvF+HmcFZ8/0DTea1Q66gDyvHvHs=");
    /* a key whose base64 has padding, given with and without it */
    const char *want = "v1,PSzB/8tO9C4G2OZ81T+ZNKsqoaaViYuv9GgEtjKvUMI=";
    assert_int_equal(td_webhook_sign("whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGQ==", "msg_ISSUER0001_8", 1700000001, "{}",
                                     2, sig, sizeof sig),
                     0);
    assert_string_equal(sig, want);
    assert_int_equal(td_webhook_sign("whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGQ", "msg_ISSUER0001_8", 1700000001, "{}",
                                     2, sig, sizeof sig),
                     0);
    assert_string_equal(sig, want);
    /* refusals */
    assert_int_equal(td_webhook_sign("", "m", 1, "x", 1, sig, sizeof sig), -1);
    assert_int_equal(td_webhook_sign(NULL, "m", 1, "x", 1, sig, sizeof sig), -1);
    assert_int_equal(td_webhook_sign("whsec_", "m", 1, "x", 1, sig, sizeof sig), -1);
    assert_int_equal(td_webhook_sign("whsec_%%%", "m", 1, "x", 1, sig, sizeof sig), -1);
    assert_int_equal(td_webhook_sign(WHSEC, "m", 1, "x", 1, sig, 47), -1); /* "v1," + 44 + NUL = 48 */
    assert_int_equal(td_webhook_sign(WHSEC, "m", 1, "x", 1, sig, 48), 0);
    assert_int_equal(strlen(sig), 47);
}

/* ---- end-user messages ---- */

static void messages_every_profile(void **state)
{
    (void)state;
    static const char *const PROFILES[] = {"d1", "classic", "webhook"};
    td_dcard_rec dc = dcard();
    for (int p = 0; p < 3; p++) {
        td_delivery_rec d = delivery(PROFILES[p]);
        td_outbox_rec o = user_row(100, "ACTIVATION", "");
        td_notify_req r;
        char err[160];
        bool wh = strcmp(PROFILES[p], "webhook") == 0;
        assert_int_equal(build1(&d, &o, &dc, wh ? WHSEC : NULL, wh ? NULL : BEARER, NULL, &r, err), 0);
        assert_string_equal(r.url, "https://msg.bank.test/send");
        assert_string_equal(header(&r, "Content-Type"), "application/json");
        assert_body(&r, "{\"messageId\":\"msg_ISSUER0001_100\",\"issuerId\":\"ISSUER0001\",\"cardId\":\"card-0001\","
                        "\"digitalCardId\":\"dc_AAA\",\"message\":\"ACTIVATION\",\"channel\":\"\","
                        "\"text\":\"Your card ending 1111 is ready in Apple Pay.\"}");
        if (wh) {
            /* the webhook profile signs its messages with the same secret */
            assert_null(header(&r, "Authorization"));
            assert_string_equal(header(&r, "webhook-id"), "msg_ISSUER0001_100");
            char sig[128];
            assert_int_equal(td_webhook_sign(WHSEC, "msg_ISSUER0001_100", NOW_S, r.body, r.body_len, sig, sizeof sig),
                             0);
            assert_string_equal(header(&r, "webhook-signature"), sig);
        } else {
            assert_string_equal(header(&r, "Authorization"), "Bearer " BEARER);
            assert_null(header(&r, "webhook-signature"));
            assert_int_equal(r.n_headers, 2);
        }
        assert_int_equal(r.n_ids, 1);
        td_notify_req_free(&r);

        /* no messaging endpoint: dead */
        d.messaging_url[0] = '\0';
        assert_int_equal(build1(&d, &o, &dc, NULL, BEARER, NULL, &r, err), -1);
        assert_string_equal(err, "no messaging endpoint");
        assert_null(r.body);
    }
}

static void message_kinds(void **state)
{
    (void)state;
    static const char *const T[][2] = {
        {"REMINDER", "Finish adding your card ending 1111 to Google Pay: verify your identity in the wallet."},
        {"DELETION", "Your card ending 1111 was removed from Google Pay."},
        {"CANCELLATION", "Adding your card ending 1111 to Google Pay was canceled."},
    };
    td_delivery_rec d = delivery("d1");
    td_dcard_rec dc = dcard();
    td_strlcpy(dc.wallet_provider_id, "ANDROID_PAY", sizeof dc.wallet_provider_id);
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        td_outbox_rec o = user_row(101, T[i][0], "");
        td_strlcpy(o.wallet_provider_id, "ANDROID_PAY", sizeof o.wallet_provider_id);
        td_notify_req r;
        char err[160];
        /* an OTP passed with a row that is not an OTP delivery is not used */
        assert_int_equal(build1(&d, &o, &dc, NULL, NULL, OTP, &r, err), 0);
        assert_null(strstr(r.body, OTP));
        json_t *j = body_json(&r);
        assert_string_equal(json_string_value(json_object_get(j, "message")), T[i][0]);
        assert_string_equal(json_string_value(json_object_get(j, "text")), T[i][1]);
        json_decref(j);
        td_notify_req_free(&r);
    }
    /* an unknown message with no template */
    td_outbox_rec o = user_row(102, "PROMO", "");
    td_notify_req r;
    char err[160];
    assert_int_equal(build1(&d, &o, &dc, NULL, NULL, NULL, &r, err), -1);
    assert_string_equal(err, "no template for message");
}

static bool contains(const char *hay, const char *needle)
{
    return hay && strstr(hay, needle) != NULL;
}

static void otp_only_in_text(void **state)
{
    (void)state;
    static const char *const PROFILES[] = {"d1", "classic", "webhook"};
    static const char *const METHODS[][2] = {{"otp-sms", "sms"}, {"otp-email", "email"}};
    td_dcard_rec dc = dcard();
    for (int p = 0; p < 3; p++)
        for (int m = 0; m < 2; m++) {
            td_delivery_rec d = delivery(PROFILES[p]);
            td_outbox_rec o = user_row(110, "OTP", METHODS[m][0]);
            td_notify_req r;
            char err[160];
            bool wh = strcmp(PROFILES[p], "webhook") == 0;
            assert_int_equal(build1(&d, &o, &dc, wh ? WHSEC : NULL, BEARER, OTP, &r, err), 0);
            json_t *j = body_json(&r);
            assert_string_equal(json_string_value(json_object_get(j, "message")), "OTP");
            assert_string_equal(json_string_value(json_object_get(j, "channel")), METHODS[m][1]);
            assert_string_equal(json_string_value(json_object_get(j, "text")),
                                "Your code to add your card ending 1111 to Apple Pay is " OTP ". Never share it.");
            /* nowhere else: no other field, no header, not the URL */
            const char *key;
            json_t *v;
            json_object_foreach(j, key, v)
            {
                if (strcmp(key, "text") == 0) continue;
                assert_false(contains(json_string_value(v), OTP));
            }
            for (int h = 0; h < r.n_headers; h++)
                assert_false(contains(r.headers[h], OTP));
            assert_false(contains(r.url, OTP));
            /* exactly once in the body */
            const char *first = strstr(r.body, OTP);
            assert_non_null(first);
            assert_null(strstr(first + 1, OTP));
            json_decref(j);
            td_notify_req_free(&r);
            assert_null(r.body);
        }

    /* an OTP row whose OTP could not be opened is dead */
    td_delivery_rec d = delivery("d1");
    td_outbox_rec o = user_row(111, "OTP", "otp-sms");
    td_notify_req r;
    char err[160];
    assert_int_equal(build1(&d, &o, &dc, NULL, NULL, NULL, &r, err), -1);
    assert_string_equal(err, "OTP row without its OTP");
    assert_int_equal(build1(&d, &o, &dc, NULL, NULL, "", &r, err), -1);
    /* an unknown method: no channel */
    td_strlcpy(o.method_id, "otp-pigeon", sizeof o.method_id);
    assert_int_equal(build1(&d, &o, &dc, NULL, NULL, OTP, &r, err), 0);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "channel")), "");
    json_decref(j);
    td_notify_req_free(&r);
    /* a template override still gets the OTP only in the text */
    d.templates_json = (char *)"{\"OTP\":\"{otp} is your {issuer} code\"}";
    assert_int_equal(build1(&d, &o, &dc, NULL, NULL, OTP, &r, err), 0);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "text")), OTP " is your ISSUER0001 code");
    json_decref(j);
    td_notify_req_free(&r);
}

/* ---- refusals and header hygiene ---- */

static void bad_configuration(void **state)
{
    (void)state;
    td_dcard_rec dc = dcard();
    td_outbox_rec o = issuer_row(120, "SUSPEND", "SUCCESSFUL", "", "ISSUER");
    td_notify_req r;
    char err[160];
    td_delivery_rec d = delivery("smoke-signals");
    assert_int_equal(build1(&d, &o, &dc, NULL, NULL, NULL, &r, err), -1);
    assert_string_equal(err, "unknown delivery profile");
    d = delivery("d1");
    d.base_url[0] = '\0';
    assert_int_equal(build1(&d, &o, &dc, NULL, NULL, NULL, &r, err), -1);
    assert_string_equal(err, "no endpoint configured");
    /* a bearer that would end the header, or one too long for it */
    d = delivery("d1");
    assert_int_equal(build1(&d, &o, &dc, NULL, "abc\r\nX-Evil: 1", NULL, &r, err), -1);
    assert_null(r.body);
    char long_bearer[700];
    memset(long_bearer, 'a', sizeof long_bearer - 1);
    long_bearer[sizeof long_bearer - 1] = '\0';
    assert_int_equal(build1(&d, &o, &dc, NULL, long_bearer, NULL, &r, err), -1);
    /* a digital card id that cannot go in a path */
    td_strlcpy(o.digital_card_id, "dc/../x", sizeof o.digital_card_id);
    assert_int_equal(build1(&d, &o, &dc, NULL, NULL, NULL, &r, err), -1);
}

/* ---- what an answer means ---- */

static void classify_table(void **state)
{
    (void)state;
    static const struct {
        int status;
        td_attempt_class c;
    } T[] = {
        {200, TD_ATTEMPT_DELIVERED}, {201, TD_ATTEMPT_DELIVERED}, {202, TD_ATTEMPT_DELIVERED},
        {204, TD_ATTEMPT_DELIVERED}, {299, TD_ATTEMPT_DELIVERED}, {401, TD_ATTEMPT_REAUTH},
        {408, TD_ATTEMPT_RETRY},     {429, TD_ATTEMPT_RETRY},     {500, TD_ATTEMPT_RETRY},
        {502, TD_ATTEMPT_RETRY},     {503, TD_ATTEMPT_RETRY},     {504, TD_ATTEMPT_RETRY},
        {599, TD_ATTEMPT_RETRY},     {0, TD_ATTEMPT_RETRY},       {-1, TD_ATTEMPT_RETRY},
        {400, TD_ATTEMPT_PERMANENT}, {403, TD_ATTEMPT_PERMANENT}, {404, TD_ATTEMPT_PERMANENT},
        {405, TD_ATTEMPT_PERMANENT}, {409, TD_ATTEMPT_PERMANENT}, {410, TD_ATTEMPT_PERMANENT},
        {413, TD_ATTEMPT_PERMANENT}, {422, TD_ATTEMPT_PERMANENT}, {301, TD_ATTEMPT_PERMANENT},
        {302, TD_ATTEMPT_PERMANENT}, {304, TD_ATTEMPT_PERMANENT}, {100, TD_ATTEMPT_PERMANENT},
        {600, TD_ATTEMPT_PERMANENT},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        if (td_attempt_classify(T[i].status) != T[i].c)
            fail_msg("status %d: got %d, want %d", T[i].status, td_attempt_classify(T[i].status), T[i].c);
}

static void backoff_bounds(void **state)
{
    (void)state;
    const int64_t base = 1000, cap = 3600000;
    static const double R[] = {0.0, 0.25, 0.5, 0.999999, 0.9999999999999999};
    for (int a = 0; a <= 100; a++) {
        /* the ceiling min(cap, base * 2^a), computed without overflow */
        int64_t ceiling = a >= 22 ? cap : (base << a < cap ? base << a : cap);
        for (size_t i = 0; i < sizeof R / sizeof R[0]; i++) {
            int64_t v = td_backoff_ms(a, base, cap, 0, R[i]);
            if (v < 0 || v >= ceiling)
                fail_msg("attempt %d rnd %.17g: %lld outside [0, %lld)", a, R[i], (long long)v, (long long)ceiling);
        }
        assert_int_equal(td_backoff_ms(a, base, cap, 0, 0.0), 0);
        /* the top of the range is reached (full jitter, not equal jitter) */
        assert_true(td_backoff_ms(a, base, cap, 0, 0.999999) >= ceiling - ceiling / 100000 - 1);
    }
    assert_int_equal(td_backoff_ms(0, base, cap, 0, 0.5), 500);
    assert_int_equal(td_backoff_ms(3, base, cap, 0, 0.5), 4000);
    assert_int_equal(td_backoff_ms(100, base, cap, 0, 0.5), 1800000);
    assert_int_equal(td_backoff_ms(INT32_MAX, base, cap, 0, 0.5), 1800000);
    assert_int_equal(td_backoff_ms(-5, base, cap, 0, 0.5), 500);
    /* Retry-After is a floor, even beyond the cap; a short one changes nothing */
    assert_int_equal(td_backoff_ms(0, base, cap, 30, 0.5), 30000);
    assert_int_equal(td_backoff_ms(20, base, cap, 2, 0.5), 1800000);
    assert_int_equal(td_backoff_ms(1, base, cap, 7200, 0.1), 7200000);
    /* absurd Retry-After: bounded at 30 days, no overflow */
    assert_int_equal(td_backoff_ms(1, base, cap, INT64_MAX, 0.1), 30LL * 24 * 3600 * 1000);
    assert_int_equal(td_backoff_ms(1, base, cap, -7, 0.5), 1000);
    /* rnd outside [0,1) and NaN */
    assert_int_equal(td_backoff_ms(2, base, cap, 0, -1.0), 0);
    assert_int_equal(td_backoff_ms(2, base, cap, 0, 1.0), 0);
    assert_int_equal(td_backoff_ms(2, base, cap, 0, NAN), 0);
    /* defaults when base/cap are not given; a base above the cap */
    assert_int_equal(td_backoff_ms(0, 0, 0, 0, 0.5), 500);
    assert_int_equal(td_backoff_ms(100, 0, 0, 0, 0.5), 1800000);
    assert_int_equal(td_backoff_ms(0, 10000, 4000, 0, 0.5), 2000);
    /* huge base and cap: still no overflow */
    int64_t v = td_backoff_ms(100, INT64_MAX / 2, INT64_MAX, 0, 0.999);
    assert_true(v > 0);
}

static void max_age(void **state)
{
    (void)state;
    td_outbox_rec o = issuer_row(1, "SUSPEND", "SUCCESSFUL", "", "ISSUER");
    int64_t day = 24 * 3600 * 1000LL;
    assert_false(td_past_max_age(&o, CREATED_MS + day, day));
    assert_true(td_past_max_age(&o, CREATED_MS + day + 1, day));
    assert_false(td_past_max_age(&o, CREATED_MS + 3600000, 7200000));
    assert_true(td_past_max_age(&o, CREATED_MS + 7200001, 7200000));
    /* 0 = the default, 24 h */
    assert_false(td_past_max_age(&o, CREATED_MS + day, 0));
    assert_true(td_past_max_age(&o, CREATED_MS + day + 1, 0));
    /* no overflow */
    assert_false(td_past_max_age(&o, INT64_MAX, INT64_MAX));
    /* a replayed row counts from its new first attempt, not from its creation */
    o.replayed_ms = CREATED_MS + 3 * day;
    assert_false(td_past_max_age(&o, CREATED_MS + 3 * day + 3600000, day));
    assert_true(td_past_max_age(&o, CREATED_MS + 4 * day + 1, day));
}

/* ---- templates ---- */

static void templates(void **state)
{
    (void)state;
    char *t;
    /* the defaults */
    t = td_render_message(NULL, "ACTIVATION", "4444", "Samsung Pay", NULL, ISSUER);
    assert_string_equal(t, "Your card ending 4444 is ready in Samsung Pay.");
    free(t);
    t = td_render_message("", "OTP", "4444", "Samsung Pay", "12ab", ISSUER);
    assert_string_equal(t, "Your code to add your card ending 4444 to Samsung Pay is 12ab. Never share it.");
    free(t);
    /* an override for one message; the others keep their default */
    const char *tj = "{\"DELETION\":\"{issuer}: card *{last4} left {wallet} ({unknown}) {last4\",\"REMINDER\":7}";
    t = td_render_message(tj, "DELETION", "4444", "Garmin Pay", NULL, ISSUER);
    assert_string_equal(t, "ISSUER0001: card *4444 left Garmin Pay ({unknown}) {last4");
    free(t);
    t = td_render_message(tj, "CANCELLATION", "4444", "Garmin Pay", NULL, ISSUER);
    assert_string_equal(t, "Adding your card ending 4444 to Garmin Pay was canceled.");
    free(t);
    /* a non-string override is ignored */
    t = td_render_message(tj, "REMINDER", "4444", "Garmin Pay", NULL, ISSUER);
    assert_string_equal(t, "Finish adding your card ending 4444 to Garmin Pay: verify your identity in the wallet.");
    free(t);
    /* {otp} outside an OTP message renders empty, even if an OTP is passed */
    t = td_render_message("{\"ACTIVATION\":\"ready{otp}!\"}", "ACTIVATION", "4444", "X", "999999", ISSUER);
    assert_string_equal(t, "ready!");
    free(t);
    /* an OTP message with no OTP: empty */
    t = td_render_message(NULL, "OTP", "4444", "X", NULL, ISSUER);
    assert_string_equal(t, "Your code to add your card ending 4444 to X is . Never share it.");
    free(t);
    /* a message only a template knows */
    t = td_render_message("{\"PROMO\":\"{wallet}{wallet}\"}", "PROMO", "", "W", NULL, ISSUER);
    assert_string_equal(t, "WW");
    free(t);
    assert_null(td_render_message(NULL, "PROMO", "1", "W", NULL, ISSUER));
    assert_null(td_render_message(NULL, NULL, "1", "W", NULL, ISSUER));
    /* templates that do not parse: the defaults */
    t = td_render_message("{not json", "ACTIVATION", "4444", "W", NULL, ISSUER);
    assert_string_equal(t, "Your card ending 4444 is ready in W.");
    free(t);
    t = td_render_message("[\"ACTIVATION\"]", "ACTIVATION", "4444", "W", NULL, ISSUER);
    assert_string_equal(t, "Your card ending 4444 is ready in W.");
    free(t);
    /* NULL values render empty; empty template renders empty */
    t = td_render_message("{\"ACTIVATION\":\"[{last4}|{wallet}|{issuer}]\"}", "ACTIVATION", NULL, NULL, NULL, NULL);
    assert_string_equal(t, "[||]");
    free(t);
    t = td_render_message("{\"ACTIVATION\":\"\"}", "ACTIVATION", "1", "W", NULL, ISSUER);
    assert_string_equal(t, "");
    free(t);
    /* UTF-8 and braces that are not placeholders pass through */
    t = td_render_message("{\"ACTIVATION\":\"Carte \\u00e9 {{last4}} {}\"}", "ACTIVATION", "4444", "W", NULL, ISSUER);
    assert_string_equal(t, "Carte \xc3\xa9 {4444} {}");
    free(t);
}

int main(void)
{
    if (td_crypto_init()) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(d1_digital_card_operation),
        cmocka_unit_test(d1_digitize_failed),
        cmocka_unit_test(d1_digitize_pending_and_successful),
        cmocka_unit_test(d1_card_level_row),
        cmocka_unit_test(d1_batching),
        cmocka_unit_test(batchable_rules),
        cmocka_unit_test(digitize_failed_table),
        cmocka_unit_test(user_status_table),
        cmocka_unit_test(classic_activate),
        cmocka_unit_test(classic_digitize_failed_is_delete),
        cmocka_unit_test(classic_lifecycle_actions),
        cmocka_unit_test(classic_nothing_to_send),
        cmocka_unit_test(webhook_digital_card_event),
        cmocka_unit_test(webhook_card_event_and_auth),
        cmocka_unit_test(webhook_signature_vectors),
        cmocka_unit_test(messages_every_profile),
        cmocka_unit_test(message_kinds),
        cmocka_unit_test(otp_only_in_text),
        cmocka_unit_test(bad_configuration),
        cmocka_unit_test(classify_table),
        cmocka_unit_test(backoff_bounds),
        cmocka_unit_test(max_age),
        cmocka_unit_test(templates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
