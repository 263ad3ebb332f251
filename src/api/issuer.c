/* issuer.c — the Issuer API (D1-compatible, docs/network.md): register and
 * read cards, read digital cards and operations, and the issuer's lifecycle
 * operations on digital cards and cards. Ids and bodies are checked exactly;
 * the PAN is never echoed; errors take the D1 shape (the route's face). The
 * card and digital card views are shared with the classic face. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/faces.h"
#include "crypto/crypto.h"
#include "service/cards.h"
#include "util/util.h"

#define CARD_ID_RULE "must match ^[A-Za-z0-9_-]{1,48}$"
#define REF_ID_RULE "must match ^[A-Za-z0-9_-]{1,64}$"

/* ---- views ---- */

/* An ISO 8601 time, or "" when not set (0). */
static json_t *time_json(int64_t ms)
{
    char buf[40] = "";
    if (ms) td_iso8601_ms(ms, buf, sizeof buf);
    return json_string(buf);
}

json_t *td_suspenders_json(td_suspenders set)
{
    json_t *a = json_array();
    for (unsigned bit = 1; a && bit <= TD_PARTY_ALL; bit <<= 1)
        if (set & bit) json_array_append_new(a, json_string(td_party_name((td_party)bit)));
    return a;
}

json_t *td_stored_json(const char *text, json_t *fallback)
{
    json_t *v = text && *text ? json_loads(text, 0, NULL) : NULL;
    if (!v) return fallback;
    json_decref(fallback);
    return v;
}

/* Masked contact data; "" when none. A value the masker cannot use (never
 * stored by this face) is shown fully masked rather than in clear. */
static json_t *masked(const char *value, int (*mask)(const char *, char *, size_t))
{
    char buf[300];
    if (!value || !*value) return json_string("");
    if (mask(value, buf, sizeof buf)) return json_string("***");
    return json_string(buf);
}

json_t *issuer_dcard_view(const td_dcard_rec *dc)
{
    json_t *v = json_object();
    json_object_set_new(v, "digitalCardId", json_string(dc->id));
    json_object_set_new(v, "cardId", json_string(dc->card_id));
    json_object_set_new(v, "state", json_string(td_dcard_state_name(dc->d.state)));
    json_object_set_new(v, "suspendedBy", td_suspenders_json(dc->d.suspended_by));
    json_object_set_new(v, "walletProviderId", json_string(dc->wallet_provider_id));
    json_object_set_new(v, "tokenRequestorId", json_string(dc->token_requestor_id));
    json_object_set_new(v, "tokenStorageId", json_string(dc->token_storage_id));
    json_object_set_new(v, "isPrimary", json_boolean(dc->is_primary));
    json_object_set_new(v, "last4", json_string(dc->last4));
    json_object_set_new(v, "decision", json_string(td_verdict_name(dc->verdict)));
    json_object_set_new(v, "decisionReason", json_string(dc->decision_reason));
    json_object_set_new(v, "deviceInformation", td_stored_json(dc->device_json, json_object()));
    json_object_set_new(v, "idvMethods", td_stored_json(dc->idv_json, json_array()));
    json_object_set_new(v, "stepUpExpiresAt", time_json(dc->stepup_deadline_ms));
    json_object_set_new(v, "correlationId", json_string(dc->correlation_id));
    json_object_set_new(v, "sequence", json_integer(dc->d.seq));
    json_object_set_new(v, "createdAt", time_json(dc->created_ms));
    json_object_set_new(v, "updatedAt", time_json(dc->updated_ms));
    return v;
}

json_t *issuer_card_view(const td_card_rec *c, json_t *dcards)
{
    json_t *v = json_object();
    json_object_set_new(v, "cardId", json_string(c->card_id));
    json_object_set_new(v, "consumerId", json_string(c->consumer_id));
    json_object_set_new(v, "last4", json_string(c->last4));
    json_object_set_new(v, "expiry", json_string(c->expiry));
    json_object_set_new(v, "state", json_string(td_card_state_name(c->state)));
    json_object_set_new(v, "phone", masked(c->phone, td_mask_phone));
    json_object_set_new(v, "email", masked(c->email, td_mask_email));
    json_object_set_new(v, "createdAt", time_json(c->created_ms));
    json_object_set_new(v, "updatedAt", time_json(c->updated_ms));
    json_object_set_new(v, "digitalCards", dcards ? dcards : json_array());
    return v;
}

static json_t *operation_view(const td_operation_rec *o)
{
    json_t *v = json_object();
    json_object_set_new(v, "operationId", json_string(o->id));
    json_object_set_new(v, "operation", json_string(o->operation));
    json_object_set_new(v, "status", json_string(o->status));
    json_object_set_new(v, "startTime", time_json(o->start_ms));
    json_object_set_new(v, "endTime", time_json(o->end_ms));
    json_object_set_new(v, "requestorType", json_string(o->requestor_type));
    json_object_set_new(v, "reason", json_string(o->reason));
    json_object_set_new(v, "reasonCode", json_string(o->reason_code));
    json_object_set_new(v, "digitalCardId", json_string(o->digital_card_id));
    json_object_set_new(v, "cardId", json_string(o->card_id));
    json_object_set_new(v, "errorCode", json_string(o->error_code));
    return v;
}

/* ---- path checks ---- */

/* The path's issuerId: outside its pattern 400; well formed but not the
 * caller's 404 (tenancy: another issuer looks like no issuer). */
static bool own_issuer(td_req *r)
{
    if (r->nparams < 1 || !td_issuer_id_ok(r->params[0])) {
        td_reply_err(r, TD_E_INVALID_ARGUMENT, "issuerId must be exactly 10 characters of [A-Za-z0-9_-]");
        return false;
    }
    if (!strcmp(r->params[0], r->auth.member_id)) return true;
    td_reply_err(r, TD_E_NOT_FOUND, "issuer not found");
    return false;
}

/* Path parameter i checked by ok; a 400 naming the rule otherwise. */
static bool param_ok(td_req *r, int i, bool (*ok)(const char *), const char *name, const char *rule)
{
    if (i < r->nparams && ok(r->params[i])) return true;
    td_error e = {0};
    td_fail(&e, TD_E_INVALID_ARGUMENT, "%s %s", name, rule);
    td_reply_error(r, &e, "");
    return false;
}

/* The x-correlation-id header, if given: 1–64 printable characters. */
static int correlation_header(td_req *r, char out[65], td_error *e)
{
    const char *h = td_header(r, "x-correlation-id");
    out[0] = 0;
    if (!h) return 0;
    if (!td_correlation_header_ok(h)) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "x-correlation-id must be 1-64 printable characters");
        return -1;
    }
    td_strlcpy(out, h, 65);
    return 0;
}

/* ---- POST …/cards ---- */

static void render_register(td_write *w)
{
    td_register_card *cmd = (td_register_card *)w;
    td_write_answer(w, 201, issuer_card_view(&cmd->out, NULL));
}

int issuer_parse_register(json_t *b, issuer_card_fields *f, td_error *e)
{
    static const char *const ALLOWED[] = {"cardId", "consumerId", "pan", "expiry", "phone", "email", "state", NULL};
    const char *state = NULL;
    int mm, yy;
    *f = (issuer_card_fields){.state = TD_CS_ACTIVE};
    if (td_json_only(b, "body", ALLOWED, e) ||
        td_json_str_ok(b, "body", "cardId", true, 48, td_card_id_ok, CARD_ID_RULE, &f->card_id, e) ||
        td_json_str_ok(b, "body", "consumerId", true, 64, td_ref_id_ok, REF_ID_RULE, &f->consumer_id, e) ||
        td_json_string(b, "body", "pan", true, 64, &f->pan, e) ||
        (td_pan_check(f->pan) != TD_PAN_OK &&
         td_fail(e, TD_E_INVALID_ARGUMENT, "body.pan must be 10-19 digits passing the Luhn check (%s)",
                 td_pan_status_name(td_pan_check(f->pan)))) ||
        td_json_str_ok(b, "body", "expiry", true, 4, NULL, NULL, &f->expiry, e) ||
        (td_expiry_parse(f->expiry, &mm, &yy) && td_fail(e, TD_E_INVALID_ARGUMENT, "body.expiry must be MMYY")) ||
        td_json_str_ok(b, "body", "phone", false, 39, td_phone_ok,
                       "must be 7-15 digits with optional '+', blanks, '-', '(' and ')', at most 39 characters",
                       &f->phone, e) ||
        td_json_str_ok(b, "body", "email", false, 255, td_email_ok, "must be an email address (one '@')", &f->email,
                       e) ||
        td_json_str_ok(b, "body", "state", false, 16, NULL, NULL, &state, e) ||
        (state && (td_card_state_parse(state, &f->state) || f->state == TD_CS_DELETED) &&
         td_fail(e, TD_E_INVALID_ARGUMENT, "body.state must be ACTIVE or SUSPENDED")))
        return -1;
    return 0;
}

void issuer_register_card(td_req *r)
{
    if (!own_issuer(r)) return;
    td_error e = {0};
    issuer_card_fields f = {0};
    json_t *b = td_body_json(r, &e);
    if (!b || issuer_parse_register(b, &f, &e)) {
        if (f.pan) td_wipe((char *)f.pan, strlen(f.pan));
        json_decref(b);
        td_wipe(r->body, r->body_len);
        td_reply_error(r, &e, "");
        return;
    }
    td_register_card *cmd = td_face_new_write(r, sizeof *cmd, render_register);
    if (cmd) {
        td_strlcpy(cmd->issuer_id, r->auth.member_id, sizeof cmd->issuer_id);
        td_strlcpy(cmd->card_id, f.card_id, sizeof cmd->card_id);
        td_strlcpy(cmd->consumer_id, f.consumer_id ? f.consumer_id : "", sizeof cmd->consumer_id);
        td_strlcpy(cmd->pan, f.pan, sizeof cmd->pan);
        td_strlcpy(cmd->expiry, f.expiry, sizeof cmd->expiry);
        td_strlcpy(cmd->phone, f.phone ? f.phone : "", sizeof cmd->phone);
        td_strlcpy(cmd->email, f.email ? f.email : "", sizeof cmd->email);
        cmd->state = f.state;
        cmd->w.subject = cmd->card_id;
    }
    /* The PAN leaves no copy behind: neither in the parsed tree nor in the body. */
    td_wipe((char *)f.pan, strlen(f.pan));
    json_decref(b);
    td_wipe(r->body, r->body_len);
    if (cmd) td_svc_register_card(r->svc, cmd);
}

/* ---- reads ---- */

static void append_dcard_view(const td_dcard_rec *dc, void *arg)
{
    json_array_append_new((json_t *)arg, issuer_dcard_view(dc));
}

void issuer_get_card(td_req *r)
{
    if (!own_issuer(r) || !param_ok(r, 1, td_card_id_ok, "cardId", CARD_ID_RULE)) return;
    td_error e = {0};
    td_card_rec card;
    json_t *dcards = json_array();
    if (td_svc_get_card(r->svc, r->auth.member_id, r->params[1], &card, &e) != TD_OK ||
        td_svc_list_dcards(r->svc, r->auth.member_id, r->params[1], append_dcard_view, dcards, &e) != TD_OK) {
        json_decref(dcards);
        td_reply_error(r, &e, r->params[1]);
        return;
    }
    json_t *v = issuer_card_view(&card, dcards);
    td_wipe(&card, sizeof card);
    td_reply_json(r, 200, v);
    json_decref(v);
}

void issuer_list_dcards(td_req *r)
{
    if (!own_issuer(r) || !param_ok(r, 1, td_card_id_ok, "cardId", CARD_ID_RULE)) return;
    td_error e = {0};
    json_t *dcards = json_array();
    if (td_svc_list_dcards(r->svc, r->auth.member_id, r->params[1], append_dcard_view, dcards, &e) != TD_OK) {
        json_decref(dcards);
        td_reply_error(r, &e, r->params[1]);
        return;
    }
    json_t *v = json_pack("{s:o}", "digitalCards", dcards);
    td_reply_json(r, 200, v);
    json_decref(v);
}

void issuer_get_dcard(td_req *r)
{
    if (!own_issuer(r) || !param_ok(r, 1, td_ref_id_ok, "digitalCardId", REF_ID_RULE)) return;
    td_error e = {0};
    td_dcard_rec dc;
    if (td_svc_get_dcard(r->svc, r->auth.member_id, r->params[1], &dc, &e) != TD_OK) {
        td_reply_error(r, &e, r->params[1]);
        return;
    }
    json_t *v = issuer_dcard_view(&dc);
    td_dcard_rec_free(&dc);
    td_reply_json(r, 200, v);
    json_decref(v);
}

void issuer_get_operation(td_req *r)
{
    if (!own_issuer(r) || !param_ok(r, 1, td_ref_id_ok, "operationId", REF_ID_RULE)) return;
    td_error e = {0};
    td_operation_rec o;
    if (td_svc_get_operation(r->svc, r->auth.member_id, r->params[1], &o, &e) != TD_OK) {
        td_reply_error(r, &e, r->params[1]);
        return;
    }
    json_t *v = operation_view(&o);
    td_reply_json(r, 200, v);
    json_decref(v);
}

/* ---- operations ---- */

int issuer_parse_operation(json_t *b, bool card_level, char reason[65], char code[40], td_error *e)
{
    static const char *const ALLOWED[] = {"reason", "reasonCode", NULL};
    const char *rs = NULL, *rc = NULL;
    if (b && (td_json_only(b, "body", ALLOWED, e) ||
              td_json_str_ok(b, "body", "reason", false, 64, td_reason_ok, "must match ^[a-zA-Z0-9 ]{1,64}$", &rs, e) ||
              td_json_str_ok(b, "body", "reasonCode", false, 39, NULL, NULL, &rc, e)))
        return -1;
    if (rc && !(card_level ? td_card_reason_code_ok(rc) : td_dcard_reason_code_ok(rc))) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "body.reasonCode must be one of %s",
                card_level ? "CARD_LOST, CARD_FOUND, CARD_STOLEN, CARD_BROKEN, FRAUD, USER_DECISION, "
                             "ISSUER_DECISION, CLOSED_ACCOUNT, CLOSED_CARD"
                           : "USER_DECISION, ISSUER_DECISION, DEVICE_LOST, DEVICE_STOLEN, DEVICE_FOUND, "
                             "SUSPECTED_FRAUD, NOT_FRAUD, ACCOUNT_CLOSED, OTHER");
        return -1;
    }
    td_strlcpy(reason, rs ? rs : "", 65);
    td_strlcpy(code, rc ? rc : "ISSUER_DECISION", 40);
    return 0;
}

/* The optional body {"reason", "reasonCode"} and the x-correlation-id header.
 * An empty body (or none) takes the defaults: no reason, ISSUER_DECISION. */
static int op_inputs(td_req *r, bool card_level, char reason[65], char code[40], char corr[65], td_error *e)
{
    bool failed;
    json_t *b = td_body_json_optional(r, &failed, e);
    if (failed) return -1;
    int rc = issuer_parse_operation(b, card_level, reason, code, e);
    json_decref(b);
    if (rc) return -1;
    return correlation_header(r, corr, e);
}

static void render_dcard_op(td_write *w)
{
    td_write_answer(w, 200, json_pack("{s:s}", "operationId", ((td_dcard_op *)w)->operation_id));
}

static void dispose_dcard_op(td_write *w)
{
    td_dcard_rec_free(&((td_dcard_op *)w)->after);
}

static void dcard_op(td_req *r, td_dcard_ev type)
{
    if (!own_issuer(r) || !param_ok(r, 1, td_ref_id_ok, "digitalCardId", REF_ID_RULE)) return;
    td_error e = {0};
    char reason[65], code[40], corr[65];
    if (op_inputs(r, false, reason, code, corr, &e)) {
        td_reply_error(r, &e, r->params[1]);
        return;
    }
    td_dcard_op *cmd = td_face_new_write(r, sizeof *cmd, render_dcard_op);
    if (!cmd) return;
    cmd->w.dispose = dispose_dcard_op;
    td_strlcpy(cmd->issuer_id, r->auth.member_id, sizeof cmd->issuer_id);
    td_strlcpy(cmd->digital_card_id, r->params[1], sizeof cmd->digital_card_id);
    cmd->type = type;
    memcpy(cmd->reason, reason, sizeof cmd->reason);
    memcpy(cmd->reason_code, code, sizeof cmd->reason_code);
    memcpy(cmd->correlation_id, corr, sizeof cmd->correlation_id);
    cmd->w.subject = cmd->digital_card_id;
    td_svc_dcard_op(r->svc, cmd);
}

void issuer_dcard_suspend(td_req *r)
{
    dcard_op(r, TD_EV_SUSPEND);
}

void issuer_dcard_resume(td_req *r)
{
    dcard_op(r, TD_EV_RESUME);
}

void issuer_dcard_delete(td_req *r)
{
    dcard_op(r, TD_EV_DELETE);
}

static void render_card_op(td_write *w)
{
    td_write_answer(w, 200, json_pack("{s:s}", "operationId", ((td_card_op_cmd *)w)->operation_id));
}

static void card_op(td_req *r, td_card_cmd c)
{
    if (!own_issuer(r) || !param_ok(r, 1, td_card_id_ok, "cardId", CARD_ID_RULE)) return;
    td_error e = {0};
    char reason[65], code[40], corr[65];
    if (op_inputs(r, true, reason, code, corr, &e)) {
        td_reply_error(r, &e, r->params[1]);
        return;
    }
    td_card_op_cmd *cmd = td_face_new_write(r, sizeof *cmd, render_card_op);
    if (!cmd) return;
    td_strlcpy(cmd->issuer_id, r->auth.member_id, sizeof cmd->issuer_id);
    td_strlcpy(cmd->card_id, r->params[1], sizeof cmd->card_id);
    cmd->cmd = c;
    memcpy(cmd->reason, reason, sizeof cmd->reason);
    memcpy(cmd->reason_code, code, sizeof cmd->reason_code);
    memcpy(cmd->correlation_id, corr, sizeof cmd->correlation_id);
    cmd->w.subject = cmd->card_id;
    td_svc_card_op(r->svc, cmd);
}

void issuer_card_suspend(td_req *r)
{
    card_op(r, TD_CARD_SUSPEND);
}

void issuer_card_resume(td_req *r)
{
    card_op(r, TD_CARD_RESUME);
}

void issuer_card_delete(td_req *r)
{
    card_op(r, TD_CARD_DELETE);
}
