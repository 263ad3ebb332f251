/* tokenio_tokens.c — Token API: GET /tokens, GET /tokens/{tokenId},
 * PUT /tokens/{tokenId}/cancel, and 501 for the reference's operations tokend
 * does not implement. Stored token JSON is served as is, never re-rendered.
 * An issuer credential (role "issuer") on these three sees the issuer's
 * digital cards as CARD tokens (docs/network.md "Token API: CARD tokens"). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/faces.h"
#include "service/cards.h"
#include "util/buf.h"
#include "util/util.h"

static bool is_issuer(const td_req *r)
{
    return r->auth.kind == TD_CRED_ISSUER;
}

/* A CARD token id is a digitalCardId; any other well-formed token id is
 * simply not the issuer's (404, as for a member). */
static void card_get_token(td_req *r)
{
    td_dcard_rec dc;
    td_error e = {0};
    if (!td_ref_id_ok(r->params[0]) || td_svc_get_dcard(r->svc, r->auth.member_id, r->params[0], &dc, &e) != TD_OK) {
        if (!e.code) td_fail(&e, TD_E_NOT_FOUND, "token %.96s not found", r->params[0]);
        td_reply_error(r, &e, r->params[0]);
        return;
    }
    char *json = td_card_token_json(&dc);
    td_dcard_rec_free(&dc);
    if (!json) {
        td_reply_err(r, TD_E_INTERNAL, "out of memory");
        return;
    }
    td_reply_json_steal(r, 200, td_wrap("{\"token\":", json, "}"));
    free(json);
}

void tokenio_get_token(td_req *r)
{
    if (!td_param_id(r, 0, "tokenId")) return;
    if (is_issuer(r)) {
        card_get_token(r);
        return;
    }
    td_token_rec t;
    td_error e = {0};
    if (td_svc_get_token(r->svc, r->auth.member_id, r->params[0], &t, &e) != TD_OK) {
        td_reply_error(r, &e, r->params[0]);
        return;
    }
    td_reply_json_steal(r, 200, td_wrap("{\"token\":", t.json, "}"));
    td_token_rec_free(&t);
}

/* ---- GET /tokens ---- */

/* A page of tokens: at most page.limit (≤ 100) tokens of at most a few
 * tens of KB each stay far below this bound. */
#define LIST_TEXT_MAX (32u << 20)

typedef struct {
    td_buf text;
    int count;
} list_buf;

static void list_one(const char *json, void *arg)
{
    list_buf *b = arg;
    if (b->count++) td_buf_add_str(&b->text, ",");
    td_buf_add_str(&b->text, json);
}

/* The issuer's digital cards, oldest first, created in [start, end), paged;
 * role and the account filters do not apply to CARD tokens. They are listed
 * only when asked for (type=CARD): their payload has tokend's `card` body,
 * which a Token.io client's schema rejects, so a client that did not ask for
 * the extension never gets one. An issuer has no other kind of token. */
static td_err list_card_tokens(td_req *r, const td_list_query *q, list_buf *b, td_error *e)
{
    if (q->kind != (int)TD_KIND_CARD) return TD_OK;
    return td_svc_list_card_tokens(r->svc, r->auth.member_id, q->start_ms, q->end_ms, q->offset, q->limit, list_one, b,
                                   e);
}

static int query_i64(td_req *r, const char *name, int64_t lo, int64_t hi, int64_t *out, td_error *e)
{
    const char *v = td_query(r, name);
    if (!v) return 0;
    if (td_parse_i64(v, out) || *out < lo || *out > hi) {
        td_fail(e, TD_E_BAD_PAGINATION, "%s must be an integer in [%lld, %lld]", name, (long long)lo, (long long)hi);
        return -1;
    }
    return 0;
}

static const char *query_text(td_req *r, const char *name, td_error *e)
{
    const char *v = td_query(r, name);
    if (v && (!*v || strlen(v) > 128)) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "%s must be 1-128 characters", name);
        return NULL;
    }
    return v;
}

void tokenio_list_tokens(td_req *r)
{
    static const char *const ALLOWED[] = {"type",
                                          "page.offset",
                                          "page.limit",
                                          "filter.sourceAccountId",
                                          "filter.destinationAccountId",
                                          "filter.startTimeMs",
                                          "filter.endTimeMs",
                                          "filter.role",
                                          "filter.actingAsRefId",
                                          NULL};
    td_error e = {0};
    td_list_query q = {.caller = r->auth.member_id, .kind = -1};
    int64_t limit = -1;
    if (td_query_allowed(r, ALLOWED, &e)) goto fail;
    const char *type = td_query(r, "type");
    if (type && strcmp(type, "INVALID")) {
        td_kind k;
        /* Only an issuer may name CARD (its only kind of token). */
        if (td_kind_parse(type, &k) || (k == TD_KIND_CARD && !is_issuer(r))) {
            td_fail(&e, TD_E_INVALID_ARGUMENT, "type must be one of INVALID, ACCESS, TRANSFER, STANDING_ORDER%s",
                    is_issuer(r) ? ", CARD" : "");
            goto fail;
        }
        q.kind = (int)k;
    }
    if (!td_query(r, "page.limit")) {
        td_fail(&e, TD_E_BAD_PAGINATION, "page.limit is required");
        goto fail;
    }
    /* An empty page.offset is the first page (the reference: "no offset was
     * provided ... this is the first page"). */
    const char *offset = td_query(r, "page.offset");
    if (query_i64(r, "page.limit", 1, 199, &limit, &e) ||
        (offset && *offset && query_i64(r, "page.offset", 0, 1000000000, &q.offset, &e)) ||
        query_i64(r, "filter.startTimeMs", 0, INT64_MAX, &q.start_ms, &e) ||
        query_i64(r, "filter.endTimeMs", 0, INT64_MAX, &q.end_ms, &e))
        goto fail;
    q.limit = (int)limit;
    const char *role = td_query(r, "filter.role");
    static const char *const ROLES[] = {"ANY", "FROM", "TO", "ISSUER"};
    if (role) {
        q.role = -1;
        for (int i = 0; i < 4; i++)
            if (!strcmp(role, ROLES[i])) q.role = i;
        if (q.role < 0) {
            td_fail(&e, TD_E_INVALID_ARGUMENT, "filter.role must be one of ANY, FROM, TO, ISSUER");
            goto fail;
        }
    }
    q.source_account = query_text(r, "filter.sourceAccountId", &e);
    q.destination_account = query_text(r, "filter.destinationAccountId", &e);
    q.acting_as_ref_id = query_text(r, "filter.actingAsRefId", &e);
    if (e.code) goto fail;

    list_buf b = {.text = td_buf_bounded(LIST_TEXT_MAX)};
    td_buf_add_str(&b.text, "{\"tokens\":[");
    if (is_issuer(r) ? list_card_tokens(r, &q, &b, &e) != TD_OK
                     : td_svc_list_tokens(r->svc, &q, list_one, &b, &e) != TD_OK) {
        td_buf_reset(&b.text);
        goto fail;
    }
    /* offset is the next page's page.offset, or empty once there is no more. */
    char tail[64];
    if (b.count == q.limit)
        snprintf(tail, sizeof tail, "],\"offset\":\"%lld\"}", (long long)(q.offset + b.count));
    else
        snprintf(tail, sizeof tail, "],\"offset\":\"\"}");
    td_buf_add_str(&b.text, tail);
    if (!td_buf_ok(&b.text)) {
        td_buf_reset(&b.text);
        td_reply_err(r, TD_E_INTERNAL, "out of memory");
        return;
    }
    td_reply_json_steal(r, 200, td_buf_steal(&b.text));
    return;
fail:
    td_reply_error(r, &e, "");
}

/* ---- PUT /tokens/{tokenId}/cancel ---- */

static void render_cancel(td_write *w)
{
    td_cancel *cmd = (td_cancel *)w;
    char prefix[96];
    snprintf(prefix, sizeof prefix, "{\"result\":{\"status\":\"%s\",\"token\":", td_cancel_status_name(cmd->outcome));
    w->status = 200;
    w->body = td_wrap(prefix, cmd->token_json ? cmd->token_json : "{}", "}}");
}

static void dispose_cancel(td_write *w)
{
    td_cancel_free((td_cancel *)w);
}

/* The optional customer headers of the reference, validated and recorded on the event. */
static int customer_headers(td_req *r, td_cancel *cmd, td_error *e)
{
    const char *ip = td_header(r, "token-customer-ip-address");
    const char *ci = td_header(r, "customer-initiated");
    const char *dev = td_header(r, "token-customer-device-id");
    if (ip) {
        unsigned char buf[16];
        if (inet_pton(AF_INET, ip, buf) != 1 && inet_pton(AF_INET6, ip, buf) != 1)
            return td_fail(e, TD_E_INVALID_ARGUMENT, "token-customer-ip-address must be an IP address"), -1;
        td_strlcpy(cmd->customer_ip, ip, sizeof cmd->customer_ip);
    }
    if (ci) {
        if (strcmp(ci, "true") && strcmp(ci, "false"))
            return td_fail(e, TD_E_INVALID_ARGUMENT, "customer-initiated must be true or false"), -1;
        td_strlcpy(cmd->customer_initiated, ci, sizeof cmd->customer_initiated);
    }
    if (dev) {
        if (!*dev || strlen(dev) >= sizeof cmd->customer_device_id)
            return td_fail(e, TD_E_INVALID_ARGUMENT, "token-customer-device-id must be 1-127 characters"), -1;
        td_strlcpy(cmd->customer_device_id, dev, sizeof cmd->customer_device_id);
    }
    return 0;
}

/* ---- PUT /tokens/{digitalCardId}/cancel for an issuer: an issuer delete ---- */

static char *card_cancel_body(const char *status, const td_dcard_rec *dc)
{
    char prefix[96];
    char *json = td_card_token_json(dc);
    if (!json) return NULL;
    snprintf(prefix, sizeof prefix, "{\"result\":{\"status\":\"%s\",\"token\":", status);
    char *body = td_wrap(prefix, json, "}}");
    free(json);
    return body;
}

static void render_card_cancel(td_write *w)
{
    w->status = 200;
    w->body = card_cancel_body("SUCCESS", &((td_dcard_op *)w)->after);
}

/* A deleted card is SUCCESS again (the engine answers that itself: a
 * repeat); a declined record cannot be canceled: INVALID. A TSP failure is an
 * upstream failure: 503 with token-external-error. */
static void complete_card_cancel(td_write *w)
{
    td_dcard_op *cmd = (td_dcard_op *)w;
    td_req *r = w->face;
    if (w->err.code == TD_E_NOT_ALLOWED_IN_STATE && cmd->after.id[0]) {
        char *body = card_cancel_body(cmd->why == TD_DCW_DELETED ? "SUCCESS" : "INVALID", &cmd->after);
        if (body) {
            memset(&w->err, 0, sizeof w->err);
            free(w->body);
            w->status = 200;
            w->body = body;
        }
    } else if (w->err.code == TD_E_TSP_FAILED || w->err.code == TD_E_TSP_TIMEOUT) {
        r->external_error = true;
        w->err.code = TD_E_UNAVAILABLE;
    }
    td_face_complete(w);
}

static void dispose_card_cancel(td_write *w)
{
    td_dcard_rec_free(&((td_dcard_op *)w)->after);
}

static void card_cancel(td_req *r)
{
    td_error e = {0};
    if (!td_ref_id_ok(r->params[0])) {
        td_fail(&e, TD_E_NOT_FOUND, "token %.96s not found", r->params[0]);
        td_reply_error(r, &e, r->params[0]);
        return;
    }
    td_dcard_op *cmd = td_face_new_write(r, sizeof *cmd, render_card_cancel);
    if (!cmd) return;
    cmd->w.complete = complete_card_cancel;
    cmd->w.dispose = dispose_card_cancel;
    td_strlcpy(cmd->issuer_id, r->auth.member_id, sizeof cmd->issuer_id);
    td_strlcpy(cmd->digital_card_id, r->params[0], sizeof cmd->digital_card_id);
    cmd->type = TD_EV_DELETE;
    td_strlcpy(cmd->reason_code, "ISSUER_DECISION", sizeof cmd->reason_code);
    cmd->w.subject = cmd->digital_card_id;
    td_svc_dcard_op(r->svc, cmd);
}

void tokenio_cancel_token(td_req *r)
{
    if (!td_param_id(r, 0, "tokenId")) return;
    td_error e = {0};
    /* The operation has no request body; an empty object is tolerated. */
    if (r->body_len) {
        json_t *b = td_body_json(r, &e);
        bool empty = b && json_object_size(b) == 0;
        json_decref(b);
        if (!empty) {
            if (!e.code) td_fail(&e, TD_E_INVALID_ARGUMENT, "this operation takes no request body");
            td_reply_error(r, &e, "");
            return;
        }
    }
    if (is_issuer(r)) {
        /* The customer headers are checked as for any caller; a CARD token's
         * events do not record them. */
        td_cancel probe = {0};
        if (customer_headers(r, &probe, &e)) {
            td_reply_error(r, &e, "");
            return;
        }
        card_cancel(r);
        return;
    }
    td_cancel *cmd = td_face_new_write(r, sizeof *cmd, render_cancel);
    if (!cmd) return;
    cmd->w.dispose = dispose_cancel;
    if (customer_headers(r, cmd, &e)) {
        td_reply_error(r, &e, "");
        free(cmd);
        return;
    }
    td_strlcpy(cmd->caller, r->auth.member_id, sizeof cmd->caller);
    cmd->level = r->auth.level;
    td_strlcpy(cmd->token_id, r->params[0], sizeof cmd->token_id);
    cmd->w.subject = cmd->token_id;
    td_svc_cancel(r->svc, cmd);
}

void tokenio_not_implemented(td_req *r)
{
    td_error e;
    td_fail(&e, TD_E_NOT_IMPLEMENTED, "%s is not implemented by tokend", r->route->pattern);
    td_reply_error(r, &e, r->nparams ? r->params[0] : "");
}
