/* timers.c — the step-up timers' runner: a thread that fires due timers.
 * A REMINDER owes a USER REMINDER row while the card still waits for ID&V; a
 * STEPUP_EXPIRE deletes the pending card through the TSP connector (on this
 * thread, before the commit, as issuer operations do) and then applies the
 * engine's STEPUP_EXPIRE (DIGITIZE FAILED). Timers are rows, so they survive
 * a restart; each fires once because it is marked FIRED in the transaction of
 * its effect, and a timer another runner fired meanwhile is skipped. Also
 * td_svc_submit_wait, the synchronous write this thread (and tests) use. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "service/card_rows.h"
#include "util/log.h"
#include "util/util.h"

#define OPS(svc) ((svc)->store->ops)
#define DUE_BATCH 100
#define TSP_RETRY_MS 60000       /* docs/network.md: a failed expiry is retried a minute later */
#define DEFAULT_INTERVAL_MS 1000 /* when the configuration leaves --timer-interval-ms unset */

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
    td_st st = OPS(j->w.svc)->timer_finish(c, j->t.id, "FIRED");
    *mine = st == TD_ST_OK;
    return st == TD_ST_CONFLICT || st == TD_ST_NOT_FOUND ? TD_ST_OK : st;
}

static td_st run_reminder(td_conn *c, td_write *w)
{
    timer_job *j = (timer_job *)w;
    td_dcard_rec dc = {0};
    bool mine;
    td_st st = claim(c, j, &mine);
    if (st != TD_ST_OK || !mine) return st;
    j->fired = true;
    st = OPS(w->svc)->dcard_get(c, j->t.digital_card_id, &dc);
    if (st == TD_ST_NOT_FOUND) return TD_ST_OK;
    if (st != TD_ST_OK) return st;
    /* A card that left step-up gets no reminder; the timer is simply done. */
    if (dc.d.state == TD_DC_PENDING_IDV)
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
    bool mine;
    td_st st = claim(c, j, &mine);
    if (st != TD_ST_OK || !mine) return st;
    j->fired = true;
    st = OPS(w->svc)->dcard_get(c, j->t.digital_card_id, &dc);
    if (st == TD_ST_NOT_FOUND) return TD_ST_OK;
    if (st == TD_ST_OK) st = expire(c, j, &dc);
    td_dcard_rec_free(&dc);
    return st;
}

static td_st run_reschedule(td_conn *c, td_write *w)
{
    timer_job *j = (timer_job *)w;
    td_st st = OPS(w->svc)->timer_reschedule(c, j->t.id, j->now + TSP_RETRY_MS);
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
    td_conn *rd = svc->store->reader(svc->store);
    td_dcard_rec dc = {0};
    td_st st = rd ? OPS(svc)->dcard_get(rd, j->t.digital_card_id, &dc) : TD_ST_ERROR;
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

static bool fire(td_svc *svc, const td_timer_rec *t, int64_t now)
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

/* ================= the runner ================= */

typedef struct {
    td_timer_rec t[DUE_BATCH];
    int n;
} due_list;

static void collect(const td_timer_rec *t, void *arg)
{
    due_list *l = arg;
    if (l->n < DUE_BATCH) l->t[l->n++] = *t;
}

int td_timers_run_at(td_svc *svc, int64_t now_ms)
{
    td_conn *rd = svc->store->reader(svc->store);
    due_list *l = calloc(1, sizeof *l);
    int fired = 0;
    /* Collected first, fired after: a TSP call must not run inside a read. */
    if (rd && l && OPS(svc)->timer_due(rd, now_ms, DUE_BATCH, collect, l) == TD_ST_OK)
        for (int i = 0; i < l->n; i++)
            fired += fire(svc, &l->t[i], now_ms);
    free(l);
    return fired;
}

int td_timers_run_once(td_svc *svc)
{
    return td_timers_run_at(svc, td_now_ms());
}

struct td_timers {
    td_svc *svc;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    int64_t interval_ms;
};

static void deadline_in(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static bool stopping(td_timers *t)
{
    pthread_mutex_lock(&t->mu);
    bool stop = t->stop;
    pthread_mutex_unlock(&t->mu);
    return stop;
}

static void *runner(void *arg)
{
    td_timers *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        pthread_mutex_unlock(&t->mu);
        /* A full batch may have left more due behind it: go on at once. */
        while (td_timers_run_once(t->svc) >= DUE_BATCH && !stopping(t)) {
        }
        pthread_mutex_lock(&t->mu);
        struct timespec ts;
        deadline_in(&ts, t->interval_ms);
        while (!t->stop && pthread_cond_timedwait(&t->cv, &t->mu, &ts) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

td_timers *td_timers_start(td_svc *svc)
{
    td_timers *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    t->svc = svc;
    t->interval_ms = svc->cfg && svc->cfg->timer_interval_ms > 0 ? svc->cfg->timer_interval_ms : DEFAULT_INTERVAL_MS;
    if (pthread_create(&t->thread, NULL, runner, t) != 0) {
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return NULL;
    }
    pthread_setname_np(t->thread, "td-timers"); /* names it in top -H, perf and the benchmarks */
    return t;
}

void td_timers_stop(td_timers *t)
{
    if (!t) return;
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
