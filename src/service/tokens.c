/* tokens.c — reading, listing and cancelling tokens. A cancel is prepared on
 * the request's thread (read, decide, sign, render) so that the single writer
 * only checks the token did not change meanwhile and writes. */
#include <stdlib.h>
#include <string.h>

#include "service/service.h"
#include "core/token_json.h"
#include "service/sign.h"
#include "util/log.h"
#include "util/util.h"

static bool can_see(const td_token_rec *t, const char *member)
{
    return !strcmp(t->from_id, member) || !strcmp(t->to_id, member) ||
           (t->issuer_id[0] && !strcmp(t->issuer_id, member));
}

td_err td_svc_get_token(td_svc *svc, const char *caller, const char *id, td_token_rec *out, td_error *e)
{
    td_conn *c = svc->store->reader(svc->store);
    if (!c) return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    td_st st = svc->store->ops->token_get(c, id, out);
    if (st == TD_ST_OK && !can_see(out, caller)) {
        td_token_rec_free(out);
        st = TD_ST_NOT_FOUND;
    }
    if (st == TD_ST_NOT_FOUND) return td_fail(e, TD_E_NOT_FOUND, "token %s not found", id);
    if (st != TD_ST_OK) return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    return TD_OK;
}

typedef struct {
    void (*fn)(const char *, void *);
    void *arg;
} list_ctx;

static void list_one(const td_token_rec *t, void *arg)
{
    list_ctx *l = arg;
    l->fn(t->json, l->arg);
}

td_err td_svc_list_tokens(td_svc *svc, const td_list_query *q, void (*fn)(const char *json, void *), void *arg,
                          td_error *e)
{
    td_conn *c = svc->store->reader(svc->store);
    if (!c) return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    td_token_filter f = {.member_id = q->caller,
                         .kind = q->kind,
                         .role = q->role,
                         .source_account = q->source_account,
                         .destination_account = q->destination_account,
                         .start_ms = q->start_ms,
                         .end_ms = q->end_ms,
                         .acting_as_ref_id = q->acting_as_ref_id,
                         .offset = q->offset,
                         .limit = q->limit};
    list_ctx l = {fn, arg};
    if (svc->store->ops->token_list(c, &f, list_one, &l) != TD_ST_OK)
        return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    return TD_OK;
}

/* Reads the token and decides; on APPLY signs and renders the new JSON.
 * Runs on a reader (prepare) or inside the writer's transaction (re-check). */
static td_st prepare_cancel(td_conn *c, td_svc *svc, td_cancel *cmd, td_token_rec *t)
{
    td_key_rec key; /* the caller's, read with the token: one statement */
    td_st st = svc->store->ops->token_get_signing(c, cmd->token_id, cmd->caller, cmd->level, t, &key);
    if (st == TD_ST_OK && !can_see(t, cmd->caller)) {
        td_token_rec_free(t);
        st = TD_ST_NOT_FOUND;
    }
    if (st == TD_ST_NOT_FOUND) {
        td_fail(&cmd->w.err, TD_E_NOT_FOUND, "token %s not found", cmd->token_id);
        return TD_ST_OK;
    }
    if (st != TD_ST_OK) return st;
    td_token_view v = {t->kind, t->state, t->expires_ms, t->from_id, t->to_id, t->canceled_by};
    cmd->prepared = td_decide_cancel(&svc->cfg->policy, &v, cmd->caller, cmd->level, td_now_ms(), &cmd->why);
    cmd->prepared_seq = t->seq;
    td_strlcpy(cmd->prepared_replaced_by, t->replaced_by, sizeof cmd->prepared_replaced_by);
    free(cmd->prepared_json);
    cmd->prepared_json = NULL;
    if (cmd->prepared != TD_CANCEL_APPLY) return TD_ST_OK;
    json_t *sig = NULL;
    st = td_sign_with(svc, cmd->caller, cmd->level, &key, t->payload_canonical, "cancelled", &sig);
    if (st == TD_ST_OK) {
        cmd->prepared_json = td_token_json_add_signature(t->json, "CANCELED", sig);
        json_decref(sig);
        if (!cmd->prepared_json) st = TD_ST_ERROR;
    }
    /* On failure t is freed here, so callers free it only on success. */
    if (st != TD_ST_OK) td_token_rec_free(t);
    return st;
}

static void take_result(td_cancel *cmd, td_token_rec *t)
{
    cmd->outcome = cmd->prepared;
    free(cmd->token_json);
    cmd->token_json = NULL;
    if (cmd->outcome == TD_CANCEL_APPLY) {
        cmd->token_json = cmd->prepared_json;
        cmd->prepared_json = NULL;
    } else if (t) {
        cmd->token_json = t->json;
        t->json = NULL;
    }
}

/* Writes the prepared cancel: the row, only if its sequence number is still
 * the one the decision was made on, with its event. */
static td_st apply_cancel(td_conn *c, td_svc *svc, td_cancel *cmd)
{
    td_token_rec t = {0};
    td_strlcpy(t.id, cmd->token_id, sizeof t.id);
    t.state = TD_TS_CANCELED;
    t.seq = cmd->prepared_seq + 1;
    td_strlcpy(t.replaced_by, cmd->prepared_replaced_by, sizeof t.replaced_by);
    td_strlcpy(t.canceled_by, cmd->caller, sizeof t.canceled_by);
    t.json = cmd->prepared_json;
    td_event_rec ev = {.seq = t.seq, .time_ms = td_now_ms()};
    td_strlcpy(ev.token_id, t.id, sizeof ev.token_id);
    td_strlcpy(ev.type, "CANCELED", sizeof ev.type);
    td_strlcpy(ev.actor, cmd->caller, sizeof ev.actor);
    td_strlcpy(ev.customer_ip, cmd->customer_ip, sizeof ev.customer_ip);
    td_strlcpy(ev.customer_initiated, cmd->customer_initiated, sizeof ev.customer_initiated);
    td_strlcpy(ev.customer_device_id, cmd->customer_device_id, sizeof ev.customer_device_id);
    return svc->store->ops->token_update(c, &t, cmd->prepared_seq, &ev);
}

/* In the writer. The decision prepared on the request's thread stands if the
 * token's sequence number did not move; otherwise (a concurrent change) it is
 * made again here, inside the transaction. */
static td_st run_cancel(td_conn *c, td_write *w)
{
    td_cancel *cmd = (td_cancel *)w;
    td_st st = TD_ST_CONFLICT;
    if (cmd->prepared == TD_CANCEL_APPLY) st = apply_cancel(c, w->svc, cmd);
    if (st == TD_ST_OK) {
        take_result(cmd, NULL);
        return TD_ST_OK;
    }
    if (st != TD_ST_CONFLICT) return st;
    td_token_rec t;
    st = prepare_cancel(c, w->svc, cmd, &t);
    if (st != TD_ST_OK || w->err.code) return st;
    if (cmd->prepared == TD_CANCEL_APPLY) st = apply_cancel(c, w->svc, cmd);
    if (st == TD_ST_OK) take_result(cmd, &t);
    td_token_rec_free(&t);
    return st;
}

void td_svc_cancel(td_svc *svc, td_cancel *cmd)
{
    cmd->w.svc = svc;
    cmd->w.run = run_cancel;
    td_conn *c = svc->store->reader(svc->store);
    td_token_rec t;
    td_st st = c ? prepare_cancel(c, svc, cmd, &t) : TD_ST_ERROR;
    if (st != TD_ST_OK) {
        if (st == TD_ST_INTERNAL)
            td_fail(&cmd->w.err, TD_E_INTERNAL, "the token could not be signed");
        else
            td_fail(&cmd->w.err, TD_E_UNAVAILABLE, "the store is unavailable");
        cmd->w.complete(&cmd->w);
        return;
    }
    if (cmd->w.err.code) {
        cmd->w.complete(&cmd->w);
        return;
    }
    /* Nothing to change and no answer to remember: answer without the writer. */
    if (cmd->prepared != TD_CANCEL_APPLY && !cmd->w.idem) {
        take_result(cmd, &t);
        td_token_rec_free(&t);
        cmd->w.render(&cmd->w);
        if (!cmd->w.body) td_fail(&cmd->w.err, TD_E_INTERNAL, "out of memory");
        cmd->w.complete(&cmd->w);
        return;
    }
    td_token_rec_free(&t);
    td_svc_submit(svc, &cmd->w);
}

void td_cancel_free(td_cancel *cmd)
{
    free(cmd->prepared_json);
    free(cmd->token_json);
    cmd->prepared_json = cmd->token_json = NULL;
}
