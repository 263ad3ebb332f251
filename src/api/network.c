/* network.c — the Network API (docs/network.md): the TSP's tokenization
 * requests, OTP deliveries and lifecycle events, each for the issuer whose
 * "network" key calls. Bodies are strict; the PAN and the OTP are never
 * echoed in an error (nor logged: the request log has no bodies), and the
 * request body is wiped once the command holds what it needs. D1 errors. */
#include <stdlib.h>
#include <string.h>

#include "api/faces.h"
#include "crypto/crypto.h"
#include "service/cards.h"
#include "util/util.h"

#define REF_ID_RULE "must match ^[A-Za-z0-9_-]{1,64}$"
#define DEVICE_MAX 2048 /* bytes of the serialized device object */

/* Copies the answer the service made (it frees its own copy). */
static void answer_copy(td_write *w, int status, const char *json)
{
    w->status = status;
    w->body = json ? strdup(json) : NULL;
}

/* Wipes a string inside a parsed tree before the tree is freed. */
static void wipe_string(json_t *v)
{
    if (json_is_string(v)) td_wipe((char *)json_string_value(v), json_string_length(v));
}

static bool score_ok(json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 5;
}

static bool mmyy_ok(const char *s)
{
    int m, y;
    return td_expiry_parse(s, &m, &y) == 0;
}

static bool wallet_provider_ok(const char *s)
{
    return td_printable_ok(s, 128);
}

static bool token_requestor_ok(const char *s)
{
    return td_printable_ok(s, 64);
}

static bool token_storage_ok(const char *s)
{
    return td_printable_ok(s, 128);
}

/* ---- POST /network/v1/tokenizations ---- */

static void render_tokenize(td_write *w)
{
    answer_copy(w, 200, ((td_tokenize *)w)->answer_json);
}

/* card: {"pan", "expiry"} or {"cardId"[, "expiry"]}. */
static int parse_card(json_t *card, td_tokenize *cmd, td_error *e)
{
    static const char *const ALLOWED[] = {"pan", "expiry", "cardId", NULL};
    const char *pan = NULL, *card_id = NULL, *expiry = NULL;
    int rc = -1;
    if (td_json_only(card, "card", ALLOWED, e) || td_json_string(card, "card", "pan", false, 64, &pan, e) ||
        td_json_str_ok(card, "card", "cardId", false, 48, td_card_id_ok, "must match ^[A-Za-z0-9_-]{1,48}$", &card_id,
                       e) ||
        td_json_str_ok(card, "card", "expiry", false, 4, mmyy_ok, "must be MMYY", &expiry, e))
        goto out;
    if (!pan == !card_id) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "card must have exactly one of pan and cardId");
        goto out;
    }
    if (pan) {
        td_pan_status ps = td_pan_check(pan);
        if (ps != TD_PAN_OK) {
            td_fail(e, TD_E_INVALID_ARGUMENT, "card.pan must be 10-19 digits passing the Luhn check (%s)",
                    td_pan_status_name(ps));
            goto out;
        }
        if (!expiry) {
            td_fail(e, TD_E_INVALID_ARGUMENT, "card.expiry is required with card.pan");
            goto out;
        }
        td_strlcpy(cmd->pan, pan, sizeof cmd->pan);
    } else {
        td_strlcpy(cmd->card_id, card_id, sizeof cmd->card_id);
    }
    td_strlcpy(cmd->expiry, expiry ? expiry : "", sizeof cmd->expiry);
    rc = 0;
out:
    wipe_string(json_object_get(card, "pan"));
    return rc;
}

static int parse_scores(json_t *s, td_tokenize *cmd, td_error *e)
{
    static const char *const ALLOWED[] = {"wallet", "device", NULL};
    if (td_json_only(s, "scores", ALLOWED, e)) return -1;
    json_t *w = json_object_get(s, "wallet"), *d = json_object_get(s, "device");
    if ((w && !score_ok(w)) || (d && !score_ok(d))) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "scores.%s must be an integer from 1 to 5",
                w && !score_ok(w) ? "wallet" : "device");
        return -1;
    }
    cmd->wallet_score = w ? (int)json_integer_value(w) : 0;
    cmd->device_score = d ? (int)json_integer_value(d) : 0;
    return 0;
}

static int parse_end_user(json_t *u, td_tokenize *cmd, td_error *e)
{
    static const char *const ALLOWED[] = {"phone", "email", "name", NULL};
    const char *phone, *email, *name;
    if (td_json_only(u, "endUser", ALLOWED, e) ||
        td_json_str_ok(u, "endUser", "phone", false, 39, td_phone_ok,
                       "must be 7-15 digits with optional '+', blanks, '-', '(' and ')', at most 39 characters", &phone,
                       e) ||
        td_json_str_ok(u, "endUser", "email", false, 255, td_email_ok, "must be an email address (one '@')", &email,
                       e) ||
        td_json_str_ok(u, "endUser", "name", false, 255, NULL, NULL, &name, e)) /* accepted, not used */
        return -1;
    td_strlcpy(cmd->phone, phone ? phone : "", sizeof cmd->phone);
    td_strlcpy(cmd->email, email ? email : "", sizeof cmd->email);
    return 0;
}

static int parse_device(json_t *d, td_tokenize *cmd, td_error *e)
{
    char *s = json_dumps(d, JSON_COMPACT);
    if (!s) return td_fail(e, TD_E_INTERNAL, "out of memory"), -1;
    if (strlen(s) > DEVICE_MAX) {
        free(s);
        td_fail(e, TD_E_INVALID_ARGUMENT, "device must be at most %d bytes serialized", DEVICE_MAX);
        return -1;
    }
    cmd->device_json = s;
    return 0;
}

/* The whole body (faces.h); card is parse_card's. */
int network_parse_tokenize(json_t *b, td_tokenize *cmd, td_error *e)
{
    static const char *const ALLOWED[] = {"correlationId",  "card",      "walletProviderId", "tokenRequestorId",
                                          "tokenStorageId", "isPrimary", "device",           "scores",
                                          "endUser",        NULL};
    const char *corr, *wp, *tr, *ts;
    json_t *card, *device, *scores, *user, *primary;
    if (td_json_only(b, "body", ALLOWED, e) ||
        td_json_str_ok(b, "body", "correlationId", true, 64, td_ref_id_ok, REF_ID_RULE, &corr, e) ||
        td_json_object(b, "body", "card", true, &card, e) || parse_card(card, cmd, e) ||
        td_json_str_ok(b, "body", "walletProviderId", true, 128, wallet_provider_ok,
                       "must be 1-128 printable characters", &wp, e) ||
        td_json_str_ok(b, "body", "tokenRequestorId", false, 64, token_requestor_ok,
                       "must be 1-64 printable characters", &tr, e) ||
        td_json_str_ok(b, "body", "tokenStorageId", false, 128, token_storage_ok, "must be 1-128 printable characters",
                       &ts, e) ||
        td_json_object(b, "body", "device", false, &device, e) || (device && parse_device(device, cmd, e)) ||
        td_json_object(b, "body", "scores", false, &scores, e) || (scores && parse_scores(scores, cmd, e)) ||
        td_json_object(b, "body", "endUser", false, &user, e) || (user && parse_end_user(user, cmd, e)))
        return -1;
    primary = json_object_get(b, "isPrimary");
    if (primary && !json_is_boolean(primary)) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "body.isPrimary must be a boolean");
        return -1;
    }
    cmd->is_primary = primary ? json_is_true(primary) : true;
    td_strlcpy(cmd->correlation_id, corr, sizeof cmd->correlation_id);
    td_strlcpy(cmd->wallet_provider_id, wp, sizeof cmd->wallet_provider_id);
    td_strlcpy(cmd->token_requestor_id, tr ? tr : "", sizeof cmd->token_requestor_id);
    td_strlcpy(cmd->token_storage_id, ts ? ts : "", sizeof cmd->token_storage_id);
    return 0;
}

void network_tokenize(td_req *r)
{
    td_error e = {0};
    json_t *b = td_body_json(r, &e);
    if (!b) {
        td_wipe(r->body, r->body_len);
        td_reply_error(r, &e, "");
        return;
    }
    td_tokenize *cmd = td_face_new_write(r, sizeof *cmd, render_tokenize);
    if (!cmd) {
        json_decref(b);
        td_wipe(r->body, r->body_len);
        return;
    }
    int rc = network_parse_tokenize(b, cmd, &e);
    json_t *card = json_object_get(b, "card");
    if (json_is_object(card)) wipe_string(json_object_get(card, "pan"));
    json_decref(b);
    td_wipe(r->body, r->body_len);
    if (rc) {
        td_wipe(cmd->pan, sizeof cmd->pan);
        free(cmd->device_json);
        free(cmd);
        td_reply_error(r, &e, "");
        return;
    }
    td_strlcpy(cmd->issuer_id, r->auth.member_id, sizeof cmd->issuer_id);
    cmd->w.subject = cmd->correlation_id;
    td_svc_tokenize(r->svc, cmd);
}

/* ---- POST /network/v1/digitalCards/{digitalCardId}/otp ---- */

static bool method_id_ok(const char *s)
{
    return td_is_id_chars(s, 1, 23, "_-");
}

static bool otp_ok(const char *s)
{
    return td_is_id_chars(s, 4, 12, NULL);
}

static void render_otp(td_write *w)
{
    td_send_otp *cmd = (td_send_otp *)w;
    td_write_answer(
        w, 202,
        json_pack("{s:s, s:s, s:s}", "status", "QUEUED", "methodId", cmd->method_id, "target", cmd->masked_target));
}

/* Over the per-card rate, the answer says when to retry. */
static void complete_otp(td_write *w)
{
    td_send_otp *cmd = (td_send_otp *)w;
    if (w->err.code == TD_E_RATE_LIMITED) {
        td_req *r = w->face;
        r->retry_after_s = cmd->retry_after_s < 1 ? 1 : cmd->retry_after_s > 86400 ? 86400 : (int)cmd->retry_after_s;
    }
    td_face_complete(w);
}

int network_parse_otp(json_t *b, const char **method, const char **otp, td_error *e)
{
    static const char *const ALLOWED[] = {"methodId", "otp", NULL};
    *method = *otp = NULL;
    if (td_json_only(b, "body", ALLOWED, e) ||
        td_json_str_ok(b, "body", "methodId", true, 23, method_id_ok, "must match ^[A-Za-z0-9_-]{1,23}$", method, e) ||
        td_json_str_ok(b, "body", "otp", true, 12, otp_ok, "must be 4-12 characters of [A-Za-z0-9]", otp, e))
        return -1;
    return 0;
}

void network_send_otp(td_req *r)
{
    td_error e = {0};
    const char *method = NULL, *otp = NULL;
    if (r->nparams < 1 || !td_ref_id_ok(r->params[0])) {
        td_wipe(r->body, r->body_len);
        td_reply_err(r, TD_E_INVALID_ARGUMENT, "digitalCardId " REF_ID_RULE);
        return;
    }
    json_t *b = td_body_json(r, &e);
    int rc = !b || network_parse_otp(b, &method, &otp, &e);
    td_send_otp *cmd = rc ? NULL : td_face_new_write(r, sizeof *cmd, render_otp);
    if (cmd) {
        td_strlcpy(cmd->issuer_id, r->auth.member_id, sizeof cmd->issuer_id);
        td_strlcpy(cmd->digital_card_id, r->params[0], sizeof cmd->digital_card_id);
        td_strlcpy(cmd->method_id, method, sizeof cmd->method_id);
        td_strlcpy(cmd->otp, otp, sizeof cmd->otp);
        cmd->w.complete = complete_otp;
        cmd->w.subject = cmd->digital_card_id;
    }
    if (b) wipe_string(json_object_get(b, "otp"));
    json_decref(b);
    td_wipe(r->body, r->body_len);
    if (rc) {
        td_reply_error(r, &e, "");
        return;
    }
    if (cmd) td_svc_send_otp(r->svc, cmd);
}

/* ---- POST /network/v1/events ---- */

static void render_event(td_write *w)
{
    answer_copy(w, 200, ((td_ingest_event *)w)->answer_json);
}

static bool event_type_ok(const char *s)
{
    return td_printable_ok(s, sizeof((td_ingest_event *)0)->type - 1);
}

static bool event_reason_ok(const char *s)
{
    return td_printable_ok(s, sizeof((td_ingest_event *)0)->reason_code - 1);
}

static bool suspended_by_ok(const char *s)
{
    return td_printable_ok(s, sizeof((td_ingest_event *)0)->suspended_by - 1);
}

int network_parse_event(json_t *b, td_ingest_event *cmd, td_error *e)
{
    static const char *const ALLOWED[] = {"eventId",    "digitalCardId", "type",    "source", "eventTime",
                                          "reasonCode", "suspendedBy",   "details", NULL};
    const size_t type_max = sizeof cmd->type - 1, reason_max = sizeof cmd->reason_code - 1,
                 susp_max = sizeof cmd->suspended_by - 1;
    const char *id, *dc, *type, *source, *when, *reason, *susp;
    json_t *details;
    if (td_json_only(b, "body", ALLOWED, e) ||
        td_json_str_ok(b, "body", "eventId", true, 64, td_ref_id_ok, REF_ID_RULE, &id, e) ||
        td_json_str_ok(b, "body", "digitalCardId", true, 64, td_ref_id_ok, REF_ID_RULE, &dc, e) ||
        td_json_str_ok(b, "body", "type", true, type_max, event_type_ok, "must be printable characters", &type, e) ||
        td_json_str_ok(b, "body", "source", true, 8, NULL, NULL, &source, e) ||
        (td_source_parse(source, &cmd->source) &&
         td_fail(e, TD_E_INVALID_ARGUMENT, "body.source must be WALLET, TSP or ISSUER")) ||
        td_json_str_ok(b, "body", "eventTime", false, 64, NULL, NULL, &when, e) ||
        (when && td_parse_iso8601_ms(when, &cmd->event_ms) &&
         td_fail(e, TD_E_INVALID_ARGUMENT, "body.eventTime must be an ISO 8601 time with Z or a +hh:mm offset")) ||
        td_json_str_ok(b, "body", "reasonCode", false, reason_max, event_reason_ok, "must be printable characters",
                       &reason, e) ||
        td_json_str_ok(b, "body", "suspendedBy", false, susp_max, suspended_by_ok, "must be printable characters",
                       &susp, e) ||
        td_json_object(b, "body", "details", false, &details, e))
        return -1;
    /* source parses case-sensitively here: the contract spells it in capitals */
    if (strcmp(source, td_source_name(cmd->source)))
        return td_fail(e, TD_E_INVALID_ARGUMENT, "body.source must be WALLET, TSP or ISSUER"), -1;
    if (details && !(cmd->detail_json = json_dumps(details, JSON_COMPACT)))
        return td_fail(e, TD_E_INTERNAL, "out of memory"), -1;
    td_strlcpy(cmd->event_id, id, sizeof cmd->event_id);
    td_strlcpy(cmd->digital_card_id, dc, sizeof cmd->digital_card_id);
    td_strlcpy(cmd->type, type, sizeof cmd->type);
    td_strlcpy(cmd->reason_code, reason ? reason : "", sizeof cmd->reason_code);
    td_strlcpy(cmd->suspended_by, susp ? susp : "", sizeof cmd->suspended_by);
    return 0;
}

void network_event(td_req *r)
{
    td_error e = {0};
    json_t *b = td_body_json(r, &e);
    td_ingest_event *cmd = b ? td_face_new_write(r, sizeof *cmd, render_event) : NULL;
    if (b && !cmd) {
        json_decref(b);
        return;
    }
    if (!b || network_parse_event(b, cmd, &e)) {
        json_decref(b);
        if (cmd) {
            free(cmd->detail_json);
            free(cmd);
        }
        td_reply_error(r, &e, "");
        return;
    }
    json_decref(b);
    td_strlcpy(cmd->issuer_id, r->auth.member_id, sizeof cmd->issuer_id);
    cmd->w.subject = cmd->digital_card_id;
    td_svc_ingest_event(r->svc, cmd);
}
