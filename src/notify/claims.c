/* claims.c — the worker's bookkeeping: the write job that records outcomes
 * and then claims due rows, grouping claimed rows into works (d1 batches),
 * the outcomes of finished works (back-off, dead letters), and the set of
 * row ids the worker holds. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "notify/nw.h"
#include "util/log.h"
#include "util/util.h"

#define FAIL_PAUSE_MS 200 /* after a failed write job */

/* ---- id set (open addressing) ---- */

static size_t id_hash(int64_t id, size_t cap)
{
    uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ULL;
    return (size_t)(x >> 17) & (cap - 1);
}

static bool idset_has(const idset *s, int64_t id)
{
    if (!s->cap) return false;
    for (size_t i = id_hash(id, s->cap), k = 0; k < s->cap; k++, i = (i + 1) & (s->cap - 1)) {
        if (s->slot[i] == 0) return false;
        if (s->slot[i] == id) return true;
    }
    return false;
}

static int idset_add(idset *s, int64_t id);

/* Rehashes without the tombstones; doubles only when live ids fill a quarter. */
static int idset_grow(idset *s)
{
    size_t live = 0;
    for (size_t i = 0; i < s->cap; i++)
        live += s->slot[i] > 0;
    idset n = {.cap = s->cap < 1024 ? 1024 : live * 4 > s->cap ? s->cap * 2 : s->cap};
    n.slot = calloc(n.cap, sizeof *n.slot);
    if (!n.slot) return -1;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slot[i] > 0) idset_add(&n, s->slot[i]);
    free(s->slot);
    *s = n;
    return 0;
}

static int idset_add(idset *s, int64_t id)
{
    if ((s->used + 1) * 2 > s->cap && idset_grow(s)) return -1;
    size_t i = id_hash(id, s->cap);
    while (s->slot[i] > 0 && s->slot[i] != id)
        i = (i + 1) & (s->cap - 1);
    if (s->slot[i] != id) {
        s->slot[i] = id;
        s->used++;
    }
    return 0;
}

static void idset_del(idset *s, int64_t id)
{
    if (!s->cap) return;
    for (size_t i = id_hash(id, s->cap), k = 0; k < s->cap; k++, i = (i + 1) & (s->cap - 1)) {
        if (s->slot[i] == 0) return;
        if (s->slot[i] == id) {
            s->slot[i] = -1; /* a tombstone: probing goes on past it */
            return;
        }
    }
}

/* Tombstones accumulate: rebuilt when the set is empty of live ids. */
static void idset_compact(idset *s)
{
    bool live = false;
    for (size_t i = 0; i < s->cap && !live; i++)
        live = s->slot[i] > 0;
    if (!live && s->cap) {
        memset(s->slot, 0, s->cap * sizeof *s->slot);
        s->used = 0;
    }
}

/* ---- outcomes ---- */

static void add_outcome(td_notify *d, const td_outbox_rec *o, const char *state, int http_status, const char *error,
                        int64_t retry_at_ms)
{
    outcomes *os = &d->outs;
    if (os->n == os->cap) {
        size_t cap = os->cap ? os->cap * 2 : 256;
        outcome *v = realloc(os->v, cap * sizeof *v);
        if (!v) {
            /* The row stays IN_FLIGHT; its lease brings it back. */
            td_log(TD_LOG_ERROR, "delivery_oom", "notification %lld: outcome not recorded", (long long)o->id);
            idset_del(&d->held, o->id);
            return;
        }
        os->v = v;
        os->cap = cap;
    }
    outcome *r = &os->v[os->n++];
    memset(r, 0, sizeof *r);
    r->id = o->id;
    td_strlcpy(r->issuer_id, o->issuer_id, sizeof r->issuer_id);
    r->lease_until_ms = o->lease_until_ms;
    td_strlcpy(r->state, state, sizeof r->state);
    r->http_status = http_status;
    td_strlcpy(r->error, error ? error : "", sizeof r->error);
    r->retry_at_ms = retry_at_ms;
    if (!strcmp(state, "DEAD"))
        td_log(TD_LOG_WARN, "notification_dead", "notification %lld (issuer %s, %s %s) dead after %d attempts: %s",
               (long long)o->id, o->issuer_id, o->channel, o->channel[0] == 'U' ? o->message : o->operation,
               o->attempts + 1, r->error);
}

static double rnd01(void)
{
    uint32_t r;
    td_random_bytes(&r, sizeof r);
    return (double)r / 4294967296.0;
}

/* A failed attempt: PENDING again at `at` (after the back-off), or DEAD past max age. */
static void retry_or_dead(td_notify *d, const work *w, const td_outbox_rec *o, int http_status, const char *why,
                          int64_t at)
{
    if (td_past_max_age(o, at, w->iss->configured ? w->iss->rec.max_age_ms : 24LL * 3600 * 1000)) {
        char e[160];
        snprintf(e, sizeof e, "max age reached: %s", why);
        add_outcome(d, o, "DEAD", http_status, e, 0);
    } else {
        add_outcome(d, o, "PENDING", http_status, why, at);
    }
}

static void work_free(work *w)
{
    if (!w) return;
    if (w->req.body) td_wipe(w->req.body, w->req.body_len);
    /* the headers may hold a bearer token: wiped (what was written of them) */
    for (int i = 0; i < w->req.n_headers && i < TD_NOTIFY_MAX_HEADERS; i++)
        td_wipe(w->req.headers[i], strnlen(w->req.headers[i], sizeof w->req.headers[i]));
    td_notify_req_free(&w->req);
    free(w->rows);
    free(w);
}

/* The work is over: its rows have outcomes. */
void nw_work_done(td_notify *d, work *w)
{
    d->n_hand--;
    work_free(w);
}

void nw_finish_all(td_notify *d, work *w, const char *state, int http_status, const char *error)
{
    for (int i = 0; i < w->n; i++)
        add_outcome(d, &w->rows[i], state, http_status, error, 0);
    nw_work_done(d, w);
}

/* One back-off for all the rows of a request: a failed d1 batch is due again
 * as a whole, so it goes again as the same batch (the receiver sees the same
 * call retried) rather than scattered into new batches, each of which could
 * fail again and push its rows' back-off further. */
void nw_retry_all(td_notify *d, work *w, int http_status, const char *why, int64_t retry_after_s)
{
    int attempts = 0;
    for (int i = 0; i < w->n; i++)
        if (w->rows[i].attempts > attempts) attempts = w->rows[i].attempts;
    int64_t at = td_now_ms() + td_backoff_ms(attempts + 1, atomic_load(&d->backoff_base), atomic_load(&d->backoff_cap),
                                             retry_after_s, rnd01());
    for (int i = 0; i < w->n; i++)
        retry_or_dead(d, w, &w->rows[i], http_status, why, at);
    nw_work_done(d, w);
}

/* ================= the write job: record, then claim ================= */

typedef struct loop_job {
    td_write w;
    td_notify *d;
    outcome *outs;
    size_t n_outs;
    int64_t now, lease_until;
    int limit;
    /* out */
    td_outbox_rec *claimed;
    size_t n_claimed, cap;
    bool oom;
    int slots;        /* a claim's: the slots it fills (limit counts rows: d1 batches) */
    int64_t next_due; /* a claim's: outbox_next_due after it */
    atomic_bool done; /* set by the writer thread when the job completed */
    struct loop_job *next;
} loop_job;

static void collect_claim(const td_outbox_rec *o, void *arg)
{
    loop_job *j = arg;
    if (j->n_claimed == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 64;
        td_outbox_rec *v = realloc(j->claimed, cap * sizeof *v);
        if (!v) {
            j->oom = true; /* the row stays IN_FLIGHT until its lease ends */
            return;
        }
        j->claimed = v;
        j->cap = cap;
    }
    j->claimed[j->n_claimed++] = *o;
}

static td_st run_loop_job(td_conn *c, td_write *w)
{
    loop_job *j = (loop_job *)w;
    const td_store_ops *ops = OPS(w->svc);
    td_st *sts = j->n_outs ? malloc(j->n_outs * sizeof *sts) : NULL;
    if (j->n_outs && !sts) return TD_ST_ERROR;
    td_st r = ops->outbox_attempts(c, j->outs, j->n_outs, j->now, sts);
    for (size_t i = 0; r == TD_ST_OK && i < j->n_outs; i++) {
        const outcome *o = &j->outs[i];
        /* Our lease ran out and the row was claimed again (by another node,
         * or by this worker after a stall), or closed: its current claim
         * decides, not this late outcome (at least once: it may be sent twice). */
        if (sts[i] == TD_ST_NOT_FOUND)
            td_log(TD_LOG_WARN, "notification_lease_lost",
                   "notification %lld (issuer %s): outcome %s not recorded, its lease ran out", (long long)o->id,
                   o->issuer_id, o->state);
    }
    free(sts);
    if (r != TD_ST_OK) return r;
    j->n_claimed = 0;
    if (j->limit <= 0) return TD_ST_OK;
    td_st st = ops->outbox_claim(c, j->now, j->lease_until, j->limit, collect_claim, j);
    /* Not knowing it only leaves the next retry to the poll. */
    if (st == TD_ST_OK && ops->outbox_next_due(c, j->now, &j->next_due) != TD_ST_OK) j->next_due = 0;
    return st;
}

static void render_empty(td_write *w)
{
    w->status = 200;
    w->body = strdup("{}");
}

static void loop_job_complete(td_write *w)
{
    loop_job *j = (loop_job *)w;
    td_notify *d = j->d;
    atomic_store(&j->done, true);
    curl_multi_wakeup(d->multi);
}

void nw_submit_job(td_notify *d, int64_t now, int limit, int slots)
{
    loop_job *j = calloc(1, sizeof *j);
    if (!j) return;
    j->d = d;
    j->now = now;
    j->lease_until = now + d->lease_ms;
    j->limit = limit;
    j->slots = slots;
    j->outs = d->outs.v;
    j->n_outs = d->outs.n;
    d->outs = (outcomes){0};
    j->w.run = run_loop_job;
    j->w.render = render_empty;
    j->w.complete = loop_job_complete;
    /* Outcomes and claims are bookkeeping that a power failure may only undo:
     * the rows go again under the same ids (at least once; receivers dedupe). */
    j->w.job.lax = true;
    atomic_store(&j->done, false);
    if (d->jobs_tail)
        d->jobs_tail->next = j;
    else
        d->jobs = j;
    d->jobs_tail = j;
    d->n_jobs++;
    d->claim_pending += slots;
    if (limit > 0) d->last_claim_ms = now;
    td_svc_submit(d->svc, &j->w);
}

/* Whether two batchable rows may go in one request. The rows of a failed
 * batch got one back-off (retry_all), so they come due together: a retried
 * row joins only rows due at the same instant that were tried before too (the
 * batch it failed in), a fresh row only fresh rows. So a failed batch goes
 * again as the same call, instead of being cut and mixed with other rows
 * under a new first operation. */
static bool same_batch_group(const td_outbox_rec *a, const td_outbox_rec *b)
{
    if (a->attempts == 0 || b->attempts == 0) return a->attempts == 0 && b->attempts == 0;
    return a->due_ms == b->due_ms;
}

/* Groups claimed rows into works: a d1 issuer's batchable rows share one. */
static void make_works(td_notify *d, loop_job *j, int64_t claimed_at)
{
    int64_t margin = d->lease_ms / 4 < 5000 ? d->lease_ms / 4 : 5000;
    bool *used = calloc(j->n_claimed ? j->n_claimed : 1, sizeof *used);
    if (!used) return; /* the rows come back when their lease ends */
    for (size_t i = 0; i < j->n_claimed; i++) {
        if (used[i]) continue;
        used[i] = true;
        td_outbox_rec *o = &j->claimed[i];
        /* Already ours (its lease ran out while a transfer held it): that
         * transfer's outcome carries the old lease and will not count
         * (outbox_attempt is fenced by the lease), so the row goes again once
         * this claim's lease ends: at least once, never lost. */
        if (idset_has(&d->held, o->id)) continue;
        issuer_ent *e = nw_issuer_get(d, o->issuer_id, claimed_at);
        if (!e) continue;
        int max = e->configured && !strcmp(e->rec.profile, "d1") ? e->rec.d1_batch_max : 1;
        if (max > TD_NOTIFY_BATCH_MAX) max = TD_NOTIFY_BATCH_MAX;
        work *w = calloc(1, sizeof *w);
        td_outbox_rec *rows = calloc((size_t)max, sizeof *rows);
        if (!w || !rows) {
            free(w);
            free(rows);
            continue;
        }
        w->iss = e;
        w->rows = rows;
        w->deadline_ms = claimed_at + d->lease_ms - margin;
        w->rows[w->n++] = *o;
        for (size_t k = i + 1; k < j->n_claimed && w->n < max && e->configured; k++) {
            td_outbox_rec *b = &j->claimed[k];
            if (used[k] || strcmp(b->issuer_id, o->issuer_id) != 0 || idset_has(&d->held, b->id)) continue;
            if (!td_notify_batchable(&e->rec, o, b) || !same_batch_group(o, b)) continue;
            used[k] = true;
            w->rows[w->n++] = *b;
        }
        for (int k = 0; k < w->n; k++)
            idset_add(&d->held, w->rows[k].id);
        d->n_hand++;
        if (d->ready_tail)
            d->ready_tail->next = w;
        else
            d->ready = w;
        d->ready_tail = w;
        d->n_ready++;
    }
    free(used);
}

/* The oldest job in flight has completed. */
bool nw_job_ready(td_notify *d)
{
    return d->jobs && atomic_load(&d->jobs->done);
}

/* Takes the oldest job in flight, completed (nw_job_ready). */
void nw_job_finished(td_notify *d)
{
    loop_job *j = d->jobs;
    d->jobs = j->next;
    if (!d->jobs) d->jobs_tail = NULL;
    d->n_jobs--;
    d->claim_pending -= j->slots;
    int64_t now = td_now_ms();
    bool ok = j->w.err.code == TD_OK;
    free(j->w.body);
    if (ok) {
        /* A retry is claimed when it comes due, not at the next poll: a claim
         * tells when the next waiting row is due (the retries it recorded
         * included), a job without a claim may record retries due sooner. */
        if (j->limit > 0) d->next_due_ms = j->next_due;
        for (size_t i = 0; i < j->n_outs; i++) {
            const outcome *o = &j->outs[i];
            idset_del(&d->held, o->id);
            if (!strcmp(o->state, "DELIVERED")) {
                atomic_fetch_add(&d->delivered, 1);
            } else if (!strcmp(o->state, "DEAD")) {
                atomic_fetch_add(&d->dead, 1);
            } else {
                atomic_fetch_add(&d->retried, 1);
                if (!d->next_due_ms || o->retry_at_ms < d->next_due_ms) d->next_due_ms = o->retry_at_ms;
            }
        }
        free(j->outs);
        /* A full claim means more rows are due: claim again as soon as slots
         * free up, without waiting for the poll. A job that only recorded
         * outcomes says nothing about that (it must not reset it, or every
         * burst would stall until the next poll). */
        if (j->limit > 0) d->last_claim_full = j->n_claimed >= (size_t)j->limit;
        make_works(d, j, j->now);
        idset_compact(&d->held);
    } else {
        /* Nothing was written: the outcomes go with the next job. */
        td_log(TD_LOG_WARN, "delivery_write_failed", "recording %zu outcomes%s: %s; trying again", j->n_outs,
               j->limit > 0 ? " and claiming" : "", j->w.err.detail);
        size_t need = d->outs.n + j->n_outs;
        outcome *v = realloc(j->outs, (need ? need : 1) * sizeof *v);
        if (v) {
            if (d->outs.n) memcpy(v + j->n_outs, d->outs.v, d->outs.n * sizeof *v);
            free(d->outs.v);
            d->outs = (outcomes){.v = v, .n = need, .cap = need};
        } else {
            /* out of memory: these rows come back when their lease ends */
            for (size_t i = 0; i < j->n_outs; i++)
                idset_del(&d->held, j->outs[i].id);
            free(j->outs);
        }
        d->pause_until_ms = now + FAIL_PAUSE_MS;
    }
    free(j->claimed);
    free(j);
}

/* The largest d1 batch among known issuers: how many rows a free slot may take. */
int nw_batch_hint(td_notify *d)
{
    int h = 1;
    for (issuer_ent *e = d->issuers; e; e = e->next)
        if (e->configured && !strcmp(e->rec.profile, "d1") && e->rec.d1_batch_max > h) h = e->rec.d1_batch_max;
    return h;
}
