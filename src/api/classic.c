/* classic.c — the Classic RPC face (Thales IGW-compatible, docs/network.md):
 * POST /igwapi/v2.0/{updateCardState, getCardInfo, getTokenInfo}. Every call
 * carries x-correlation-id and x-issuer-id; failures are 400 with a numeric
 * responseCode chosen for the context (td_error.classic): 111 missing, 112
 * bad format, 113 another issuer, 116 unknown card, 119 unknown virtual card,
 * 160 card deleted, 432 not allowed, 911 TSP failure, 921 store trouble.
 *
 * updateCardState runs its operations one after the other on this worker
 * thread, waiting for each commit (an operation calls the TSP on the calling
 * thread anyway), so a whole-card action is one answer listing each token.
 * Idempotency-Key is not honoured here (the IGW has none; a per-token
 * operation that changes nothing is answered with a new operationId). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/faces.h"
#include "service/cards.h"
#include "util/util.h"

/* Sets e with an explicit responseCode; returns code. */
static td_err cfail(td_error *e, td_err code, int classic, const char *msg)
{
    td_fail(e, code, "%s", msg);
    e->classic = classic;
    return code;
}

int classic_check_headers(const char *correlation_id, const char *issuer_hdr, const char *caller_issuer, td_error *e)
{
    if (!correlation_id || !*correlation_id)
        return cfail(e, TD_E_INVALID_ARGUMENT, 111, "missing mandatory header x-correlation-id"), -1;
    if (!issuer_hdr || !*issuer_hdr)
        return cfail(e, TD_E_INVALID_ARGUMENT, 111, "missing mandatory header x-issuer-id"), -1;
    if (!td_correlation_header_ok(correlation_id))
        return cfail(e, TD_E_INVALID_ARGUMENT, 112, "x-correlation-id must be 1-64 printable characters"), -1;
    if (!td_issuer_id_ok(issuer_hdr))
        return cfail(e, TD_E_INVALID_ARGUMENT, 112, "x-issuer-id must be exactly 10 characters of [A-Za-z0-9_-]"), -1;
    if (!caller_issuer || strcmp(issuer_hdr, caller_issuer)) return cfail(e, TD_E_NOT_FOUND, 113, "unknown issuer"), -1;
    return 0;
}

/* ---- inputs ---- */

/* A string field: missing → 111; not a string, or outside its pattern → 112. */
static int field(json_t *b, const char *key, bool required, bool (*ok)(const char *), const char **out, td_error *e)
{
    char msg[128];
    json_t *v = json_object_get(b, key);
    *out = NULL;
    if (!v) {
        if (!required) return 0;
        snprintf(msg, sizeof msg, "missing mandatory parameter %s", key);
        return cfail(e, TD_E_INVALID_ARGUMENT, 111, msg), -1;
    }
    const char *s = json_string_value(v);
    if (!s || strlen(s) != json_string_length(v) || (ok && !ok(s))) {
        snprintf(msg, sizeof msg, "bad format for parameter %s", key);
        return cfail(e, TD_E_INVALID_ARGUMENT, 112, msg), -1;
    }
    *out = s;
    return 0;
}

/* Headers, then the strict body; NULL after answering the error. */
static json_t *begin(td_req *r, char corr[65])
{
    td_error e = {0};
    const char *h = td_header(r, "x-correlation-id");
    if (classic_check_headers(h, td_header(r, "x-issuer-id"), r->auth.member_id, &e)) {
        td_reply_error(r, &e, "");
        return NULL;
    }
    td_strlcpy(corr, h, 65);
    json_t *b = td_body_json(r, &e);
    if (!b) {
        e.classic = 112; /* bad JSON */
        td_reply_error(r, &e, "");
    }
    return b;
}

/* Only the allowed fields: an unknown one → 112. */
static int only(json_t *b, const char *const *allowed, td_error *e)
{
    if (!td_json_only(b, "body", allowed, e)) return 0;
    e->classic = 112;
    return -1;
}

int classic_parse_card_info(json_t *b, const char **card_id, td_error *e)
{
    static const char *const ALLOWED[] = {"issuerCardRefId", NULL};
    *card_id = NULL;
    return only(b, ALLOWED, e) || field(b, "issuerCardRefId", true, td_card_id_ok, card_id, e) ? -1 : 0;
}

int classic_parse_token_info(json_t *b, const char **card_id, const char **virtual_card_id, td_error *e)
{
    static const char *const ALLOWED[] = {"issuerCardRefId", "virtualCardId", NULL};
    *card_id = *virtual_card_id = NULL;
    return only(b, ALLOWED, e) || field(b, "issuerCardRefId", true, td_card_id_ok, card_id, e) ||
                   field(b, "virtualCardId", true, td_ref_id_ok, virtual_card_id, e)
               ? -1
               : 0;
}

int classic_parse_update(json_t *b, const char **card_id, const char **virtual_card_id, td_dcard_ev *action,
                         const char **reason, td_error *e)
{
    static const char *const ALLOWED[] = {"issuerCardRefId", "virtualCardId", "action", "reason", NULL};
    const char *act;
    *card_id = *virtual_card_id = *reason = NULL;
    if (only(b, ALLOWED, e) || field(b, "issuerCardRefId", true, td_card_id_ok, card_id, e) ||
        field(b, "virtualCardId", false, td_ref_id_ok, virtual_card_id, e) || field(b, "action", true, NULL, &act, e) ||
        field(b, "reason", false, td_reason_ok, reason, e))
        return -1;
    if (!strcmp(act, "SUSPEND"))
        *action = TD_EV_SUSPEND;
    else if (!strcmp(act, "RESUME"))
        *action = TD_EV_RESUME;
    else if (!strcmp(act, "DELETE"))
        *action = TD_EV_DELETE;
    else
        return cfail(e, TD_E_INVALID_ARGUMENT, 112, "action must be SUSPEND, RESUME or DELETE"), -1;
    return 0;
}

/* The card by its issuerCardRefId: unknown → 116. */
static bool read_card(td_req *r, const char *card_id, td_card_rec *card, td_error *e)
{
    td_err rc = td_svc_get_card(r->svc, r->auth.member_id, card_id, card, e);
    if (rc == TD_E_NOT_FOUND) e->classic = 116;
    return rc == TD_OK;
}

/* Thales token states; NULL for a declined record, which is never listed. */
static const char *status_of(td_dcard_state s)
{
    switch (s) {
    case TD_DC_PENDING_IDV: return "INACTIVE";
    case TD_DC_ACTIVE: return "RESUMED";
    case TD_DC_SUSPENDED: return "SUSPENDED";
    case TD_DC_DELETED: return "DELETED";
    case TD_DC_EXPIRED: return "EXPIRED";
    default: return NULL;
    }
}

/* The card's virtual card by id: another card's, another issuer's, a declined
 * record or none → 119. */
static bool read_token(td_req *r, const char *card_id, const char *id, td_dcard_rec *dc, td_error *e)
{
    td_err rc = td_svc_get_dcard(r->svc, r->auth.member_id, id, dc, e);
    if (rc == TD_OK && (strcmp(dc->card_id, card_id) || !status_of(dc->d.state))) {
        td_dcard_rec_free(dc);
        rc = TD_E_NOT_FOUND;
    }
    if (rc == TD_E_NOT_FOUND) cfail(e, TD_E_NOT_FOUND, 119, "unknown virtual card");
    return rc == TD_OK;
}

/* ---- getCardInfo ---- */

static void append_card_info(const td_dcard_rec *dc, void *arg)
{
    const char *status = status_of(dc->d.state);
    if (!status) return;
    json_array_append_new((json_t *)arg,
                          json_pack("{s:s, s:s, s:s, s:o, s:s, s:b, s:s}", "virtualCardId", dc->id, "issuerCardRefId",
                                    dc->card_id, "walletProviderId", dc->wallet_provider_id, "deviceInformation",
                                    td_stored_json(dc->device_json, json_object()), "status", status, "isPrimary",
                                    (int)dc->is_primary, "tokenStorageId", dc->token_storage_id));
}

void classic_get_card_info(td_req *r)
{
    char corr[65];
    td_error e = {0};
    const char *card_id;
    td_card_rec card;
    json_t *b = begin(r, corr);
    if (!b) return;
    json_t *list = json_array();
    if (classic_parse_card_info(b, &card_id, &e) || !read_card(r, card_id, &card, &e) ||
        td_svc_list_dcards(r->svc, r->auth.member_id, card_id, append_card_info, list, &e) != TD_OK) {
        json_decref(list);
        json_decref(b);
        td_reply_error(r, &e, "");
        return;
    }
    json_decref(b);
    json_t *v = json_pack("{s:o}", "virtualCardList", list);
    td_reply_json(r, 200, v);
    json_decref(v);
}

/* ---- getTokenInfo ---- */

void classic_get_token_info(td_req *r)
{
    char corr[65];
    td_error e = {0};
    const char *card_id, *id;
    td_card_rec card;
    td_dcard_rec dc;
    json_t *b = begin(r, corr);
    if (!b) return;
    if (classic_parse_token_info(b, &card_id, &id, &e) || !read_card(r, card_id, &card, &e) ||
        !read_token(r, card_id, id, &dc, &e)) {
        json_decref(b);
        td_reply_error(r, &e, "");
        return;
    }
    json_decref(b);
    json_t *v = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:b, s:s, s:s, s:o}", "virtualCardId", dc.id,
                          "issuerCardRefId", dc.card_id, "walletProviderId", dc.wallet_provider_id, "tokenRequestorId",
                          dc.token_requestor_id, "deviceInformation", td_stored_json(dc.device_json, json_object()),
                          "status", status_of(dc.d.state), "isPrimary", (int)dc.is_primary, "tokenStorageId",
                          dc.token_storage_id, "last4", dc.last4, "suspendedBy", td_suspenders_json(dc.d.suspended_by));
    td_dcard_rec_free(&dc);
    td_reply_json(r, 200, v);
    json_decref(v);
}

/* ---- updateCardState ---- */

/* One operation run to its end on this thread. */
typedef struct {
    td_dcard_op op; /* first: the write */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} sync_op;

static void sync_done(td_write *w)
{
    sync_op *s = (sync_op *)w;
    pthread_mutex_lock(&s->mu);
    s->done = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void sync_render(td_write *w)
{
    w->status = 200;
    w->body = strdup("{}");
}

typedef struct {
    td_dcard_ev type;
    const char *reason;
    const char *corr;
} action;

/* Runs the issuer operation on one token. Returns the error (e set, with its
 * classic code), or TD_OK with the operation id and the status after. */
static td_err run_op(td_req *r, const action *a, const char *dc_id, char op_id[65], td_dcard_state *after,
                     td_dcard_why *why, td_error *e)
{
    sync_op *s = calloc(1, sizeof *s);
    if (!s) return cfail(e, TD_E_INTERNAL, 0, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    td_dcard_op *cmd = &s->op;
    cmd->w.render = sync_render;
    cmd->w.complete = sync_done;
    td_strlcpy(cmd->issuer_id, r->auth.member_id, sizeof cmd->issuer_id);
    td_strlcpy(cmd->digital_card_id, dc_id, sizeof cmd->digital_card_id);
    cmd->type = a->type;
    td_strlcpy(cmd->reason, a->reason, sizeof cmd->reason);
    td_strlcpy(cmd->reason_code, "ISSUER_DECISION", sizeof cmd->reason_code);
    td_strlcpy(cmd->correlation_id, a->corr, sizeof cmd->correlation_id);
    td_svc_dcard_op(r->svc, cmd);
    pthread_mutex_lock(&s->mu);
    while (!s->done)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);

    td_err rc = cmd->w.err.code;
    *why = cmd->why;
    if (rc == TD_OK) {
        td_strlcpy(op_id, cmd->operation_id, 65);
        *after = cmd->after.d.state;
    } else {
        *e = cmd->w.err;
        switch (rc) {
        case TD_E_NOT_FOUND: e->classic = 119; break;
        case TD_E_NOT_ALLOWED_IN_STATE: e->classic = cmd->why == TD_DCW_DELETED ? 160 : 432; break;
        case TD_E_TSP_FAILED:
        case TD_E_TSP_TIMEOUT: e->classic = 911; break;
        case TD_E_UNAVAILABLE:
        case TD_E_TIMEOUT: e->classic = 921; break;
        default: e->classic = 0; break; /* the registry's (INTERNAL: 500) */
        }
    }
    free(cmd->w.body);
    if (cmd->w.dispose) cmd->w.dispose(&cmd->w);
    td_dcard_rec_free(&cmd->after);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return rc;
}

static json_t *list_item(const char *id, const char *status, const char *op_id)
{
    return json_pack("{s:s, s:s, s:s}", "virtualCardId", id, "status", status, "operationId", op_id);
}

/* The tokens a whole-card action goes to: every live one, except that RESUME
 * never activates a pending token (that needs its own virtualCardId). */
typedef struct {
    td_dcard_ev type;
    char (*ids)[65];
    td_dcard_state *states;
    int n, cap;
    bool oom;
} targets;

static void collect_target(const td_dcard_rec *dc, void *arg)
{
    targets *t = arg;
    td_dcard_state s = dc->d.state;
    if (s == TD_DC_DELETED || s == TD_DC_DECLINED) return;
    if (t->type == TD_EV_RESUME && s == TD_DC_PENDING_IDV) return;
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 8;
        char(*ids)[65] = realloc(t->ids, (size_t)cap * sizeof *ids);
        if (ids) t->ids = ids;
        td_dcard_state *st = ids ? realloc(t->states, (size_t)cap * sizeof *st) : NULL;
        if (st) t->states = st;
        if (!ids || !st) {
            t->oom = true;
            return;
        }
        t->cap = cap;
    }
    td_strlcpy(t->ids[t->n], dc->id, sizeof t->ids[0]);
    t->states[t->n++] = s;
}

/* Every live token of the card. A token the action does not apply to (the
 * engine refuses it: a pending card cannot be suspended, another party's
 * suspension) is listed as it is, with an empty operationId. A TSP or store
 * failure on one token does not stop the others; the answer is then that
 * error (911/921), and a retry does the rest. */
static void whole_card(td_req *r, const action *a, const char *card_id)
{
    td_error e = {0}, first = {0};
    targets t = {.type = a->type};
    if (td_svc_list_dcards(r->svc, r->auth.member_id, card_id, collect_target, &t, &e) != TD_OK || t.oom) {
        if (t.oom)
            cfail(&e, TD_E_INTERNAL, 0, "out of memory");
        else if (e.code == TD_E_NOT_FOUND)
            e.classic = 116;
        free(t.ids);
        free(t.states);
        td_reply_error(r, &e, "");
        return;
    }
    json_t *list = json_array();
    for (int i = 0; i < t.n; i++) {
        char op_id[65] = "";
        td_dcard_state after = t.states[i];
        td_dcard_why why = TD_DCW_NONE;
        td_error oe = {0};
        td_err rc = run_op(r, a, t.ids[i], op_id, &after, &why, &oe);
        if (rc == TD_OK || rc == TD_E_NOT_ALLOWED_IN_STATE) {
            const char *status = status_of(after);
            if (status) json_array_append_new(list, list_item(t.ids[i], status, op_id));
        } else if (rc != TD_E_NOT_FOUND && !first.code) {
            first = oe;
        }
    }
    free(t.ids);
    free(t.states);
    if (first.code) {
        json_decref(list);
        td_reply_error(r, &first, "");
        return;
    }
    json_t *v = json_pack("{s:o}", "virtualCardList", list);
    td_reply_json(r, 200, v);
    json_decref(v);
}

void classic_update_card_state(td_req *r)
{
    char corr[65];
    td_error e = {0};
    const char *card_id, *id, *reason;
    td_card_rec card;
    action a = {.corr = corr};
    json_t *b = begin(r, corr);
    if (!b) return;
    if (classic_parse_update(b, &card_id, &id, &a.type, &reason, &e)) goto fail;
    a.reason = reason ? reason : "";
    if (!read_card(r, card_id, &card, &e)) goto fail;
    if (card.state == TD_CS_DELETED) {
        cfail(&e, TD_E_NOT_ALLOWED_IN_STATE, 160, "card is deleted");
        goto fail;
    }
    if (!id) {
        char cid[49];
        td_strlcpy(cid, card_id, sizeof cid);
        json_decref(b);
        whole_card(r, &a, cid);
        return;
    }
    td_dcard_rec dc;
    if (!read_token(r, card_id, id, &dc, &e)) goto fail;
    td_dcard_rec_free(&dc);
    char op_id[65] = "";
    td_dcard_state after = dc.d.state;
    td_dcard_why why;
    if (run_op(r, &a, id, op_id, &after, &why, &e) != TD_OK) goto fail;
    json_t *v =
        json_pack("{s:[o]}", "virtualCardList", list_item(id, status_of(after) ? status_of(after) : "DELETED", op_id));
    json_decref(b);
    td_reply_json(r, 200, v);
    json_decref(v);
    return;
fail:
    json_decref(b);
    td_reply_error(r, &e, "");
}
