/* timers.c — what a due step-up timer does, as the runner (src/sched/) fires
 * it. A REMINDER owes a USER REMINDER row while the card still waits for ID&V; a
 * STEPUP_EXPIRE deletes the pending card through the TSP connector (on the
 * runner's thread, before the commit, as issuer operations do) and then applies
 * the engine's STEPUP_EXPIRE (DIGITIZE FAILED). Timers are rows, so they survive
 * a restart; each fires once because it is marked FIRED in the transaction of
 * its effect, and a timer another runner fired meanwhile is skipped. Also
 * td_svc_submit_wait, the synchronous write the runner (and tests) use. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "service/card_rows.h"
#include "util/log.h"
#include "util/util.h"

#define OPS(svc) ((svc)->store->ops)
#define TSP_RETRY_MS 60000 /* docs/network.md: a failed expiry is retried a minute later */

/* ================= synchronous writes ================= */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} waiter;

static void wake_waiter(td_write *w)
{
    waiter *wt = w->face;
    pthread_mutex_lock(&wt->mu);
    wt->done = true;
    pthread_cond_signal(&wt->cv);
    pthread_mutex_unlock(&wt->mu);
}

/* Internal writes answer nobody, but the generic write wants a body. */
static void render_empty(td_write *w)
{
    w->status = 200;
    w->body = strdup("{}");
}

td_err td_svc_submit_wait(td_svc *svc, td_write *w)
{
    waiter wt = {.done = false};
    pthread_mutex_init(&wt.mu, NULL);
    pthread_cond_init(&wt.cv, NULL);
    w->face = &wt;
    w->complete = wake_waiter;
    if (!w->render) w->render = render_empty;
    td_svc_submit(svc, w);
    pthread_mutex_lock(&wt.mu);
    while (!wt.done)
        pthread_cond_wait(&wt.cv, &wt.mu);
    pthread_mutex_unlock(&wt.mu);
    pthread_cond_destroy(&wt.cv);
    pthread_mutex_destroy(&wt.mu);
    w->face = NULL;
    return w->err.code;
}

/* ================= one timer ================= */

typedef struct {
    td_write w;
    td_timer_rec t;
    int64_t now;
    char op_id[65]; /* STEPUP_EXPIRE: the operation sent to the TSP */
    bool fired;     /* out: the timer was ours to fire */
} timer_job;

/* Runs one job on the writer and waits for its commit. */
static bool commit(td_svc *svc, timer_job *j, td_st (*run)(td_conn *, td_write *))
{
    j->w.run = run;
    td_err e = td_svc_submit_wait(svc, &j->w);
    free(j->w.body);
    j->w.body = NULL;
    if (e != TD_OK)
        td_log(TD_LOG_WARN, "timer_write_failed", "timer %lld (%s) for %s: %s", (long long)j->t.id, j->t.kind,
               j->t.digital_card_id, j->w.err.detail);
    return e == TD_OK && j->fired;
}

/* Marks the timer FIRED; *mine is false when it was no longer PENDING
 * (cancelled, or fired by someone else): then there is nothing to do. */
static td_st claim(td_conn *c, timer_job *j, bool *mine)
{
    td_st st = OPS(j->w.svc)->timer_finish(c, j->t.issuer_id, j->t.id, "FIRED");
    *mine = st == TD_ST_OK;
    return st == TD_ST_CONFLICT || st == TD_ST_NOT_FOUND ? TD_ST_OK : st;
}

/* The digital card (locked inside a job on PostgreSQL), then the timer: the
 * order of an event's job, which locks the card and then cancels its timers,
 * so that two writers never wait for each other (a deadlock). */
static td_st card_then_claim(td_conn *c, timer_job *j, td_dcard_rec *dc, bool *found)
{
    bool mine = false;
    td_st st = OPS(j->w.svc)->dcard_get(c, j->t.issuer_id, j->t.digital_card_id, dc);
    *found = st == TD_ST_OK;
    if (st == TD_ST_OK || st == TD_ST_NOT_FOUND) st = claim(c, j, &mine);
    j->fired = st == TD_ST_OK && mine;
    return st;
}

static td_st run_reminder(td_conn *c, td_write *w)
{
    timer_job *j = (timer_job *)w;
    td_dcard_rec dc = {0};
    bool found;
    td_st st = card_then_claim(c, j, &dc, &found);
    /* A card that left step-up gets no reminder; the timer is simply done. */
    if (j->fired && found && dc.d.state == TD_DC_PENDING_IDV)
        st = td_outbox_message(w->svc, c, &dc, "REMINDER", dc.digitize_op_id, &dc.d, j->now);
    td_dcard_rec_free(&dc);
    return st;
}

static td_st run_finish_only(td_conn *c, td_write *w)
{
    timer_job *j = (timer_job *)w;
    bool mine;
    td_st st = claim(c, j, &mine);
    j->fired = mine;
    return st;
}

/* The DELETE sent to the TSP, recorded under the id the TSP saw. */
static td_st record_tsp_delete(td_svc *svc, td_conn *c, const td_dcard_rec *dc, const char *op_id, int64_t now)
{
    td_card_notice n = {.op = TD_OP_DELETE, .status = TD_OPS_SUCCESSFUL, .source = TD_SRC_TSP};
    td_operation_rec o;
    td_op_fill(&o, dc, &n, op_id, "D1", "Step up expired", "", dc->correlation_id, now);
    return OPS(svc)->op_insert(c, &o);
}

/* The TSP deleted the token: the engine's STEPUP_EXPIRE, applied like any
 * event, completes the DIGITIZE operation (FAILED, STEP_UP_EXPIRED or
 * IDV_FAILED) and stops the session. A card that moved on meanwhile is
 * recorded as ignored. */
static td_st expire(td_conn *c, timer_job *j, td_dcard_rec *dc)
{
    td_svc *svc = j->w.svc;
    td_card_policy p;
    td_dcard_input in = {.type = TD_EV_STEPUP_EXPIRE,
                         .source = TD_SRC_TSP,
                         .origin = TD_ORIGIN_EVENT,
                         .event_ms = j->now,
                         .now_ms = j->now};
    td_dcard_result res = td_dcard_apply(&dc->d, &in);
    td_apply_ctx a = {.dc = dc,
                      .in = &in,
                      .res = &res,
                      .event_type = td_dcard_ev_name(TD_EV_STEPUP_EXPIRE),
                      .event_id = "",
                      .operation_id = j->op_id,
                      .requestor_type = "D1",
                      .reason = "Step up expired",
                      .reason_code = "",
                      .policy = &p};
    td_st st = td_card_policy_load(svc, c, dc->issuer_id, &p);
    if (st == TD_ST_OK) st = record_tsp_delete(svc, c, dc, j->op_id, j->now);
    if (st == TD_ST_OK) st = td_dcard_apply_write(svc, c, &a, NULL);
    return st;
}

static td_st run_expire(td_conn *c, td_write *w)
{
    timer_job *j = (timer_job *)w;
    td_dcard_rec dc = {0};
    bool found;
    td_st st = card_then_claim(c, j, &dc, &found);
    if (j->fired && found) st = expire(c, j, &dc);
    td_dcard_rec_free(&dc);
    return st;
}

/* The expiry's TSP call is made outside any transaction: the timer is leased
 * first, so that one runner (one node) makes it. */
static td_st run_lease(td_conn *c, td_write *w)
{
    timer_job *j = (timer_job *)w;
    td_st st = OPS(w->svc)->timer_lease(c, j->t.issuer_id, j->t.id, j->t.due_ms, j->now + TSP_RETRY_MS);
    j->fired = st == TD_ST_OK; /* ours to go on with */
    return st == TD_ST_NOT_FOUND || st == TD_ST_CONFLICT ? TD_ST_OK : st;
}

static td_st run_reschedule(td_conn *c, td_write *w)
{
    timer_job *j = (timer_job *)w;
    td_st st = OPS(w->svc)->timer_reschedule(c, j->t.issuer_id, j->t.id, j->now + TSP_RETRY_MS);
    return st == TD_ST_NOT_FOUND || st == TD_ST_CONFLICT ? TD_ST_OK : st;
}

/* Asks the TSP to delete the pending token. The request carries ids only. */
static td_tsp_status tsp_delete(td_svc *svc, const td_dcard_rec *dc, const char *op_id, td_tsp_result *res)
{
    td_tsp_request req;
    memset(&req, 0, sizeof req);
    memset(res, 0, sizeof *res);
    req.op = TD_TSP_DELETE;
    td_strlcpy(req.issuer_id, dc->issuer_id, sizeof req.issuer_id);
    td_strlcpy(req.digital_card_id, dc->id, sizeof req.digital_card_id);
    td_strlcpy(req.card_id, dc->card_id, sizeof req.card_id);
    td_strlcpy(req.operation_id, op_id, sizeof req.operation_id);
    td_strlcpy(req.reason, "Step up expired", sizeof req.reason);
    td_strlcpy(req.reason_code, "OTHER", sizeof req.reason_code);
    td_strlcpy(req.requestor, "D1", sizeof req.requestor);
    td_tsp_call(svc->tsp, &req, res);
    return res->status;
}

/* A session that ran out: delete at the TSP first, then commit; a card no
 * longer pending only needs its timer closed. */
static bool fire_expiry(td_svc *svc, timer_job *j)
{
    if (!commit(svc, j, run_lease)) return false; /* another runner has it, or the store is unwell */
    j->fired = false;
    td_conn *rd = svc->store->reader(svc->store);
    td_dcard_rec dc = {0};
    td_st st = rd ? OPS(svc)->dcard_get(rd, j->t.issuer_id, j->t.digital_card_id, &dc) : TD_ST_ERROR;
    if (st == TD_ST_NOT_FOUND || (st == TD_ST_OK && dc.d.state != TD_DC_PENDING_IDV)) {
        td_dcard_rec_free(&dc);
        return commit(svc, j, run_finish_only);
    }
    if (st != TD_ST_OK) return false; /* the store is unwell: the timer stays due */
    td_tsp_result res;
    td_new_operation_id(j->op_id);
    td_tsp_status ts = tsp_delete(svc, &dc, j->op_id, &res);
    td_dcard_rec_free(&dc);
    if (ts == TD_TSP_OK) return commit(svc, j, run_expire);
    td_log(TD_LOG_WARN, "stepup_expiry_tsp_failed",
           "digital card %s, operation %s: the TSP answered %s (HTTP %d); retrying in %d s", j->t.digital_card_id,
           j->op_id, td_tsp_status_name(ts), res.http_status, TSP_RETRY_MS / 1000);
    commit(svc, j, run_reschedule);
    return false;
}

bool td_svc_fire_timer(td_svc *svc, const td_timer_rec *t, int64_t now)
{
    timer_job j;
    memset(&j, 0, sizeof j);
    j.t = *t;
    j.now = now;
    if (strcmp(t->kind, "REMINDER") == 0) return commit(svc, &j, run_reminder);
    if (strcmp(t->kind, "STEPUP_EXPIRE") == 0) return fire_expiry(svc, &j);
    /* Not ours to interpret: closed so that it does not come due forever. */
    td_log(TD_LOG_WARN, "timer_unknown_kind", "timer %lld has kind %s", (long long)t->id, t->kind);
    commit(svc, &j, run_finish_only);
    return false;
}
