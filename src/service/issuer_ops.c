/* issuer_ops.c — the issuer's lifecycle operations: suspend, resume and
 * delete on one digital card, and on a card (whose delete cascades to its
 * digital cards). An operation on a digital card goes in three steps:
 *   1. on the calling thread, read the record and ask the engine: a refusal
 *      answers at once, and the TSP never hears of it;
 *   2. still on the calling thread, carry the command out at the TSP (a
 *      repeat that changes nothing skips this);
 *   3. commit in the writer: the record, its event, the operation and the
 *      notifications it owes (td_dcard_apply_write).
 * The TSP call is outside the transaction so the single writer never waits
 * on the network; the price is that the record may move between 1 and 3,
 * which the writer handles by deciding again (dc_commit says how). */
#include <stdlib.h>
#include <string.h>

#include "service/card_rows.h"
#include "util/log.h"
#include "util/util.h"

#define OPS(svc) ((svc)->store->ops)

/* ---- reason codes ---- */

static bool in_list(const char *code, const char *const *list)
{
    for (; code && *list; list++)
        if (!strcmp(code, *list)) return true;
    return false;
}

bool td_dcard_reason_code_ok(const char *code)
{
    static const char *const CODES[] = {
        "USER_DECISION",   "ISSUER_DECISION", "DEVICE_LOST",    "DEVICE_STOLEN", "DEVICE_FOUND",
        "SUSPECTED_FRAUD", "NOT_FRAUD",       "ACCOUNT_CLOSED", "OTHER",         NULL};
    return in_list(code, CODES);
}

bool td_card_reason_code_ok(const char *code)
{
    static const char *const CODES[] = {"CARD_LOST",     "CARD_FOUND",      "CARD_STOLEN",    "CARD_BROKEN", "FRAUD",
                                        "USER_DECISION", "ISSUER_DECISION", "CLOSED_ACCOUNT", "CLOSED_CARD", NULL};
    return in_list(code, CODES);
}

/* ================= one digital card ================= */

/* One issuer command on one digital card, from the read to the commit. The
 * issuer API's td_dcard_op and the card delete's cascade both run it; the
 * strings are borrowed from the command that owns them. */
typedef struct {
    td_svc *svc;
    const char *issuer_id;
    const char *dcard_id;
    td_dcard_ev type; /* SUSPEND, RESUME or DELETE */
    const char *reason, *reason_code;
    const char *correlation_id; /* x-correlation-id; "" = none */
    char *operation_id;         /* [65]: made before the TSP call; the TSP and the records see it */
    td_dcard_rec *rec;          /* the record the decision was made on; after the commit, as committed */
    td_dcard_outcome outcome;   /* the decision; after the commit, what was committed */
    td_dcard_why why;
    unsigned effects;   /* the decision's TD_FX_* bits */
    bool carried_out;   /* the decision applies (and the TSP, if owed, did it) */
    char answer_op[65]; /* the operation the answer names (DIGITIZE outcomes: the enrolment's) */
} dc_cmd;

static td_dcard_input command_input(td_dcard_ev type, int64_t now)
{
    td_dcard_input in = {.type = type,
                         .source = TD_SRC_ISSUER,
                         .origin = TD_ORIGIN_COMMAND,
                         .party = TD_PARTY_NONE,
                         .event_ms = now,
                         .now_ms = now};
    return in;
}

static td_card_op op_of(td_dcard_ev type)
{
    switch (type) {
    case TD_EV_SUSPEND: return TD_OP_SUSPEND;
    case TD_EV_RESUME: return TD_OP_RESUME;
    default: return TD_OP_DELETE;
    }
}

/* Names the state, as D1 does: "digital card dc_x is DELETED: ...". */
static td_err refuse(const dc_cmd *d, td_error *e)
{
    if (d->why == TD_DCW_NOT_A_COMMAND) /* a face passed something else: our bug, not the caller's */
        return td_fail(e, TD_E_INTERNAL, "%s is not an issuer operation", td_dcard_ev_name(d->type));
    return td_fail(e, TD_E_NOT_ALLOWED_IN_STATE, "digital card %.64s is %s: %s", d->dcard_id,
                   td_dcard_state_name(d->rec->d.state), td_dcard_why_text(d->why));
}

/* Step 1: read (a reader connection) and decide. */
static td_err dc_prepare(dc_cmd *d, td_error *e)
{
    td_conn *c = d->svc->store->reader(d->svc->store);
    td_st st = c ? OPS(d->svc)->dcard_get(c, d->issuer_id, d->dcard_id, d->rec) : TD_ST_ERROR;
    if (st == TD_ST_NOT_FOUND) return td_fail(e, TD_E_NOT_FOUND, "digital card %.64s not found", d->dcard_id);
    if (st != TD_ST_OK) return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    td_dcard_input in = command_input(d->type, td_now_ms());
    td_dcard_result res = td_dcard_apply(&d->rec->d, &in);
    d->outcome = res.outcome;
    d->why = res.why;
    d->effects = res.effects;
    if (res.outcome == TD_DC_REFUSED) return refuse(d, e);
    d->carried_out = res.outcome == TD_DC_APPLIED;
    td_new_operation_id(d->operation_id);
    return TD_OK;
}

/* An operation record written directly: FAILED after the TSP said no, or
 * SUCCESSFUL for a command that leaves the record as it is. */
static td_st insert_plain_op(td_conn *c, const dc_cmd *d, const td_dcard_rec *dc, td_op_status status,
                             const char *error_code)
{
    td_card_notice n = {.op = op_of(d->type), .status = status, .source = TD_SRC_ISSUER};
    td_operation_rec o;
    td_op_fill(&o, dc, &n, d->operation_id, "ISSUER", d->reason, d->reason_code, d->correlation_id, td_now_ms());
    if (error_code) td_strlcpy(o.error_code, error_code, sizeof o.error_code);
    return OPS(d->svc)->op_insert(c, &o);
}

/* ---- step 2: the TSP ---- */

typedef struct {
    td_write w;
    const dc_cmd *d;
    const char *error_code;
} failed_job;

static td_st run_failed(td_conn *c, td_write *w)
{
    failed_job *j = (failed_job *)w;
    return insert_plain_op(c, j->d, j->d->rec, TD_OPS_FAILED, j->error_code);
}

/* The TSP did not carry the command out, so nothing changes but the record
 * of the attempt: an operation FAILED, readable under the id the TSP saw.
 * It is its own small write, committed before the answer, and not part of
 * the command's write: the generic write rolls back a job that sets w->err,
 * and letting that write succeed would render a 2xx (and store it under the
 * Idempotency-Key) for an operation that failed. The caller then answers
 * the error straight through w->complete, as tokens.c answers early; a retry
 * calls the TSP again, which is what a failed operation needs. */
static void record_failed(const dc_cmd *d, const char *error_code)
{
    failed_job j = {.d = d, .error_code = error_code};
    j.w.run = run_failed;
    if (td_svc_submit_wait(d->svc, &j.w) != TD_OK)
        td_log(TD_LOG_WARN, "operation_record_failed", "operation %s on %s: the FAILED record was not written: %s",
               d->operation_id, d->dcard_id, j.w.err.detail);
    free(j.w.body);
}

static td_tsp_op tsp_op_of(td_dcard_ev type)
{
    switch (type) {
    case TD_EV_SUSPEND: return TD_TSP_SUSPEND;
    case TD_EV_RESUME: return TD_TSP_RESUME;
    default: return TD_TSP_DELETE;
    }
}

/* The connector's request carries ids and the issuer's reason, nothing secret. */
static void tsp_request(const dc_cmd *d, td_tsp_request *req)
{
    memset(req, 0, sizeof *req);
    req->op = tsp_op_of(d->type);
    td_strlcpy(req->issuer_id, d->issuer_id, sizeof req->issuer_id);
    td_strlcpy(req->digital_card_id, d->rec->id, sizeof req->digital_card_id);
    td_strlcpy(req->card_id, d->rec->card_id, sizeof req->card_id);
    td_strlcpy(req->operation_id, d->operation_id, sizeof req->operation_id);
    td_strlcpy(req->reason, d->reason, sizeof req->reason);
    td_strlcpy(req->reason_code, d->reason_code, sizeof req->reason_code);
    td_strlcpy(req->requestor, "ISSUER", sizeof req->requestor);
}

/* Step 2: carry an applied command out at the TSP (the engine says so with
 * TSP_CALL; a repeat owes no call). On a failure the attempt is recorded
 * FAILED and e says why. */
static td_err dc_carry_out(dc_cmd *d, td_error *e)
{
    td_tsp_request req;
    td_tsp_result res;
    if (d->outcome != TD_DC_APPLIED || !(d->effects & TD_FX_TSP_CALL)) return TD_OK;
    tsp_request(d, &req);
    memset(&res, 0, sizeof res);
    td_tsp_call(d->svc->tsp, &req, &res);
    if (res.status == TD_TSP_OK) return TD_OK;
    d->carried_out = false;
    if (res.status == TD_TSP_TIMEOUT) {
        record_failed(d, "TSP_TIMEOUT");
        return td_fail(e, TD_E_TSP_TIMEOUT, "the TSP did not answer in time; digital card %.64s did not change",
                       d->dcard_id);
    }
    record_failed(d, res.status == TD_TSP_REFUSED ? "TSP_REFUSED" : "TSP_FAILED");
    return td_fail(e, TD_E_TSP_FAILED, "the TSP %s the operation (HTTP %d); digital card %.64s did not change",
                   res.status == TD_TSP_REFUSED ? "refused" : "failed", res.http_status, d->dcard_id);
}

/* ---- step 3: the commit ---- */

/* The engine's outcome written the way every change is (apply.c). An
 * activation or a cancellation of a pending card completes the enrolment's
 * DIGITIZE operation, so the answer names that operation; the id sent to the
 * TSP then has no record of its own (one operation per change). The policy
 * matters only for end-user messages an issuer command does not owe today,
 * but is passed so that apply.c decides that, not this file. */
static td_st apply_outcome(td_conn *c, dc_cmd *d, td_dcard_rec *dc, const td_dcard_input *in,
                           const td_dcard_result *res)
{
    td_card_policy policy;
    td_st st = td_card_policy_load(d->svc, c, d->issuer_id, &policy);
    if (st != TD_ST_OK) return st;
    td_apply_ctx a = {.dc = dc,
                      .in = in,
                      .res = res,
                      .event_type = td_dcard_ev_name(d->type),
                      .event_id = "",
                      .operation_id = d->operation_id,
                      .requestor_type = "ISSUER",
                      .reason = d->reason,
                      .reason_code = d->reason_code,
                      .policy = &policy,
                      .correlation_id = d->correlation_id[0] ? d->correlation_id : NULL};
    return td_dcard_apply_write(d->svc, c, &a, d->answer_op);
}

/* In the writer: the record is read again and the engine decides again on
 * it. When the sequence did not move this is the decision of step 1 (the
 * engine is a pure function of the record and the command). When it moved:
 *  - the TSP already carried the command out, so the new decision says what
 *    it means now: APPLIED is written with the effects it owes (e.g. the
 *    issuer joins a suspension the wallet took meanwhile), NO_OP records the
 *    operation SUCCESSFUL, and REFUSED (say, the card was deleted meanwhile)
 *    also records the operation SUCCESSFUL and changes nothing: the TSP did
 *    what was asked, and nothing may move the record now;
 *  - a command that was a repeat (no TSP call) stays one, whatever moved:
 *    its answer was decided on the record as read, and nothing may change
 *    without the TSP. Its operation is recorded SUCCESSFUL. */
static td_st dc_commit(td_conn *c, dc_cmd *d, td_error *e)
{
    td_dcard_rec fresh;
    td_st st = OPS(d->svc)->dcard_get(c, d->issuer_id, d->dcard_id, &fresh);
    if (st == TD_ST_NOT_FOUND) {
        td_fail(e, TD_E_NOT_FOUND, "digital card %.64s not found", d->dcard_id);
        return TD_ST_OK;
    }
    if (st != TD_ST_OK) return st;
    td_dcard_input in = command_input(d->type, td_now_ms());
    td_dcard_result res = td_dcard_apply(&fresh.d, &in);
    if (!d->carried_out || res.outcome == TD_DC_REFUSED) {
        st = insert_plain_op(c, d, &fresh, TD_OPS_SUCCESSFUL, NULL);
        td_strlcpy(d->answer_op, d->operation_id, sizeof d->answer_op);
        res.outcome = TD_DC_NO_OP_ALREADY;
    } else {
        st = apply_outcome(c, d, &fresh, &in, &res);
    }
    if (st != TD_ST_OK) {
        td_dcard_rec_free(&fresh);
        return st;
    }
    td_dcard_rec_free(d->rec);
    *d->rec = fresh;
    d->outcome = res.outcome;
    return TD_ST_OK;
}

/* ---- the issuer API's command ---- */

static void dc_from_op(dc_cmd *d, td_svc *svc, td_dcard_op *cmd)
{
    memset(d, 0, sizeof *d);
    d->svc = svc;
    d->issuer_id = cmd->issuer_id;
    d->dcard_id = cmd->digital_card_id;
    d->type = cmd->type;
    d->reason = cmd->reason;
    d->reason_code = cmd->reason_code;
    d->correlation_id = cmd->correlation_id;
    d->operation_id = cmd->operation_id;
    d->rec = &cmd->after;
    d->outcome = cmd->outcome;
    d->why = cmd->why;
    /* Reaching the writer means the TSP did what an applied decision owed. */
    d->carried_out = cmd->outcome == TD_DC_APPLIED;
}

static td_st run_dcard_op(td_conn *c, td_write *w)
{
    td_dcard_op *cmd = (td_dcard_op *)w;
    dc_cmd d;
    dc_from_op(&d, w->svc, cmd);
    td_st st = dc_commit(c, &d, &w->err);
    if (st == TD_ST_OK && !w->err.code) {
        cmd->outcome = d.outcome;
        td_strlcpy(cmd->operation_id, d.answer_op, sizeof cmd->operation_id);
    }
    return st;
}

/* A request whose Idempotency-Key already has a committed answer: the write
 * will replay it (or refuse a different request under the same key), so the
 * TSP must not be called again. Without this check a replayed suspend that
 * arrives after a later resume would suspend the token at the TSP while the
 * record stays ACTIVE. Answers are never deleted, so what the reader sees the
 * writer will see too. */
static bool answered_before(td_svc *svc, const td_write *w)
{
    td_idem_rec rec = {0};
    td_conn *c = w->idem ? svc->store->reader(svc->store) : NULL;
    if (!c || OPS(svc)->idem_get(c, w->idem_scope, w->idem_key, &rec) != TD_ST_OK) return false;
    td_idem_rec_free(&rec);
    return true;
}

void td_svc_dcard_op(td_svc *svc, td_dcard_op *cmd)
{
    dc_cmd d;
    cmd->w.svc = svc;
    cmd->w.run = run_dcard_op;
    memset(&cmd->after, 0, sizeof cmd->after);
    cmd->operation_id[0] = '\0';
    if (answered_before(svc, &cmd->w)) {
        /* The write replays; should it ever run, it changes nothing. */
        cmd->outcome = TD_DC_NO_OP_ALREADY;
        td_new_operation_id(cmd->operation_id);
        td_svc_submit(svc, &cmd->w);
        return;
    }
    dc_from_op(&d, svc, cmd);
    td_err err = dc_prepare(&d, &cmd->w.err);
    cmd->outcome = d.outcome;
    cmd->why = d.why;
    if (err == TD_OK) err = dc_carry_out(&d, &cmd->w.err);
    if (err != TD_OK) {
        cmd->w.complete(&cmd->w);
        return;
    }
    td_svc_submit(svc, &cmd->w);
}

/* ================= a card ================= */

/* ---- the delete's cascade ---- */

typedef struct {
    char (*ids)[65];
    int n, cap;
    bool oom;
} id_list;

static void collect_live(const td_dcard_rec *dc, void *arg)
{
    id_list *l = arg;
    td_dcard_input in;
    if (!td_card_cascade(TD_CARD_DELETE, dc->d.state, 0, &in)) return;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        char(*ids)[65] = realloc(l->ids, (size_t)cap * sizeof *ids);
        if (!ids) {
            l->oom = true;
            return;
        }
        l->ids = ids;
        l->cap = cap;
    }
    td_strlcpy(l->ids[l->n++], dc->id, sizeof l->ids[0]);
}

typedef struct {
    td_write w;
    dc_cmd *d;
} dc_job;

static td_st run_dc_job(td_conn *c, td_write *w)
{
    return dc_commit(c, ((dc_job *)w)->d, &w->err);
}

/* One digital card through the same three steps as td_svc_dcard_op, with
 * its own operation; the commit is waited for before the next one starts.
 * Returns whether it is now deleted (by this cascade or meanwhile). */
static bool cascade_one(td_svc *svc, const td_card_op_cmd *cmd, const char *dcard_id, int *n_deleted)
{
    char op_id[65] = "";
    td_dcard_rec rec = {0};
    td_error e = {0};
    dc_cmd d = {.svc = svc,
                .issuer_id = cmd->issuer_id,
                .dcard_id = dcard_id,
                .type = TD_EV_DELETE,
                .reason = cmd->reason,
                .reason_code = cmd->reason_code,
                .correlation_id = cmd->correlation_id,
                .operation_id = op_id,
                .rec = &rec};
    bool ok = dc_prepare(&d, &e) == TD_OK;
    /* Deleted meanwhile by someone else: nothing left to do for it here. */
    bool owed = ok && d.outcome == TD_DC_APPLIED;
    if (owed) ok = dc_carry_out(&d, &e) == TD_OK;
    if (owed && ok) {
        dc_job j = {.d = &d};
        j.w.run = run_dc_job;
        ok = td_svc_submit_wait(svc, &j.w) == TD_OK;
        free(j.w.body);
        if (!ok) e = j.w.err;
    }
    if (owed && ok) (*n_deleted)++;
    if (!ok)
        td_log(TD_LOG_WARN, "card_delete_cascade_failed", "card %s, digital card %s: %s", cmd->card_id, dcard_id,
               e.detail);
    td_dcard_rec_free(&rec);
    return ok;
}

/* Deletes every live digital card of the card, each through the TSP. One
 * that fails is left as it was; the card is then not deleted, and a retry
 * takes the rest (the ones already deleted are no longer live). */
static td_err cascade_delete(td_svc *svc, td_card_op_cmd *cmd)
{
    id_list l = {0};
    td_conn *c = svc->store->reader(svc->store);
    td_st st = c ? OPS(svc)->dcard_list_by_card(c, cmd->issuer_id, cmd->card_id, collect_live, &l) : TD_ST_ERROR;
    if (st != TD_ST_OK || l.oom) {
        free(l.ids);
        return td_fail(&cmd->w.err, TD_E_UNAVAILABLE, "the store is unavailable");
    }
    for (int i = 0; i < l.n; i++)
        if (!cascade_one(svc, cmd, l.ids[i], &cmd->n_deleted)) cmd->n_failed++;
    free(l.ids);
    if (cmd->n_failed)
        return td_fail(&cmd->w.err, TD_E_TSP_FAILED, "%d of %d digital cards could not be deleted at the TSP; retry",
                       cmd->n_failed, l.n);
    return TD_OK;
}

/* ---- the card's own write ---- */

static void card_op_fill(td_operation_rec *o, const td_card_op_cmd *cmd, int64_t now)
{
    memset(o, 0, sizeof *o);
    td_strlcpy(o->id, cmd->operation_id, sizeof o->id);
    td_strlcpy(o->issuer_id, cmd->issuer_id, sizeof o->issuer_id);
    td_strlcpy(o->card_id, cmd->card_id, sizeof o->card_id);
    td_strlcpy(o->operation, td_card_cmd_name(cmd->cmd), sizeof o->operation);
    td_strlcpy(o->status, "SUCCESSFUL", sizeof o->status);
    td_strlcpy(o->requestor_type, "ISSUER", sizeof o->requestor_type);
    td_strlcpy(o->reason, cmd->reason, sizeof o->reason);
    td_strlcpy(o->reason_code, cmd->reason_code, sizeof o->reason_code);
    td_strlcpy(o->correlation_id, cmd->correlation_id, sizeof o->correlation_id);
    o->start_ms = o->end_ms = now;
}

/* The card-level notice: no digital card; its sequence is the card's. */
static td_st card_notice(td_conn *c, td_svc *svc, const td_card_op_cmd *cmd, const td_card_result *r, int64_t seq,
                         int64_t now)
{
    td_outbox_rec o;
    memset(&o, 0, sizeof o);
    td_strlcpy(o.issuer_id, cmd->issuer_id, sizeof o.issuer_id);
    td_strlcpy(o.channel, "ISSUER", sizeof o.channel);
    td_strlcpy(o.card_id, cmd->card_id, sizeof o.card_id);
    o.dcard_seq = seq;
    td_strlcpy(o.operation_id, cmd->operation_id, sizeof o.operation_id);
    td_strlcpy(o.operation, td_card_op_name(r->notice.op), sizeof o.operation);
    td_strlcpy(o.status, td_op_status_name(r->notice.status), sizeof o.status);
    td_strlcpy(o.source, td_source_name(r->notice.source), sizeof o.source);
    td_strlcpy(o.correlation_id, cmd->correlation_id, sizeof o.correlation_id);
    o.event_ms = o.created_ms = o.due_ms = now;
    td_strlcpy(o.state, "PENDING", sizeof o.state);
    return OPS(svc)->outbox_insert(c, &o);
}

static void count_live(const td_dcard_rec *dc, void *arg)
{
    td_dcard_input in;
    if (td_card_cascade(TD_CARD_DELETE, dc->d.state, 0, &in)) (*(int *)arg)++;
}

/* The new state, conditioned on the sequence just read, and its notice. */
static td_st write_card(td_conn *c, td_svc *svc, const td_card_op_cmd *cmd, td_card_rec *card, const td_card_result *r,
                        int64_t now)
{
    int64_t expect = card->seq;
    card->state = r->state;
    card->seq = expect + 1;
    card->updated_ms = now;
    td_st st = OPS(svc)->card_update(c, card, expect);
    if (st == TD_ST_OK) st = card_notice(c, svc, cmd, r, card->seq, now);
    return st;
}

/* In the writer: the card is read and decided again (it may have moved since
 * the cascade). A delete also checks that no live digital card appeared
 * meanwhile (a tokenization racing the cascade): the card is deleted only
 * with nothing live under it. */
static td_st run_card_op(td_conn *c, td_write *w)
{
    td_card_op_cmd *cmd = (td_card_op_cmd *)w;
    td_card_rec card;
    int64_t now = td_now_ms();
    td_st st = OPS(w->svc)->card_get(c, cmd->issuer_id, cmd->card_id, &card);
    if (st == TD_ST_NOT_FOUND) td_fail(&w->err, TD_E_NOT_FOUND, "card %.48s not found", cmd->card_id);
    if (st != TD_ST_OK) return st == TD_ST_NOT_FOUND ? TD_ST_OK : st;
    td_card_result r = td_card_apply(card.state, cmd->cmd);
    if (r.outcome == TD_DC_REFUSED) {
        td_fail(&w->err, TD_E_NOT_ALLOWED_IN_STATE, "card %.48s is %s: nothing moves a deleted card", cmd->card_id,
                td_card_state_name(card.state));
        return TD_ST_OK;
    }
    int live = 0;
    if (r.outcome == TD_DC_APPLIED && cmd->cmd == TD_CARD_DELETE) {
        st = OPS(w->svc)->dcard_list_by_card(c, cmd->issuer_id, cmd->card_id, count_live, &live);
        if (st != TD_ST_OK) return st;
    }
    if (live) {
        td_fail(&w->err, TD_E_CONFLICT, "card %.48s got a new digital card while it was being deleted; retry",
                cmd->card_id);
        return TD_ST_OK;
    }
    if (r.outcome == TD_DC_APPLIED) st = write_card(c, w->svc, cmd, &card, &r, now);
    td_operation_rec o;
    card_op_fill(&o, cmd, now);
    if (st == TD_ST_OK) st = OPS(w->svc)->op_insert(c, &o);
    if (st == TD_ST_OK) cmd->outcome = r.outcome;
    return st;
}

void td_svc_card_op(td_svc *svc, td_card_op_cmd *cmd)
{
    td_card_rec card;
    cmd->w.svc = svc;
    cmd->n_deleted = cmd->n_failed = 0;
    cmd->operation_id[0] = '\0';
    td_err err = td_svc_get_card(svc, cmd->issuer_id, cmd->card_id, &card, &cmd->w.err);
    td_card_result r = {0};
    if (err == TD_OK) {
        r = td_card_apply(card.state, cmd->cmd);
        cmd->outcome = r.outcome;
        if (r.outcome == TD_DC_REFUSED)
            err = td_fail(&cmd->w.err, TD_E_NOT_ALLOWED_IN_STATE, "card %.48s is %s: nothing moves a deleted card",
                          cmd->card_id, td_card_state_name(card.state));
    }
    if (err == TD_OK) td_new_operation_id(cmd->operation_id);
    if (err == TD_OK && r.outcome == TD_DC_APPLIED && cmd->cmd == TD_CARD_DELETE) err = cascade_delete(svc, cmd);
    if (err != TD_OK) {
        cmd->w.complete(&cmd->w);
        return;
    }
    cmd->w.run = run_card_op;
    td_svc_submit(svc, &cmd->w);
}
