/* worker.c — the notification worker's thread: its loop, start, stop and
 * counters. One thread, one libcurl multi handle, many transfers.
 *
 * The worker's loop, all on its thread:
 *  - write jobs, submitted without waiting (up to JOBS_MAX in flight): each
 *    records the outcomes collected since the last job (outbox_attempt each)
 *    and then claims due rows (outbox_claim) for the free transfer slots and
 *    asks when the next waiting retry comes due (outbox_next_due). Recording
 *    before claiming in the same transaction lets the next row of a digital
 *    card be claimed as soon as the one before it is delivered. While a job
 *    commits (without fsync: td_job.lax), the transfers go on; outcomes
 *    gather for the next job (claims.c).
 *  - claimed rows become "works": one request each (d1 card operations of an
 *    issuer batched up to its d1_batch_max), built by formats.c with the
 *    issuer's settings (cached a few seconds), the digital card read on this
 *    thread's read connection and, for an OTP row, the OTP opened only for the
 *    build and wiped after it (and the body, which carries it, wiped once
 *    sent) (transfer.c).
 *  - OAuth2 issuers first need a token: fetched as one more transfer in the
 *    multi handle while the works wait; a 401 drops it and refetches it once (auth.c).
 *  - curl_multi_poll waits for the network, a job's completion, a kick, the
 *    next retry coming due, or the next poll (cfg->delivery_poll_ms when idle:
 *    one claim per poll, which also finds rows whose lease ran out).
 * A work never outlives its lease: transfers get at most the lease left as
 * timeout, so a row is never claimed again while this worker holds it. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "notify/nw.h"
#include "util/log.h"
#include "util/util.h"

#define STATS_EVERY_MS 1000 /* outbox_stats refresh */
#define CLAIM_MAX 1024      /* rows per claim */
/* Works held (claimed, not finished) per transfer slot: claiming ahead keeps
 * the slots busy while the next write job runs and its completion comes back
 * to this thread, instead of leaving them idle between a transfer's end and
 * the claim of its successor. */
#define HOLD_PER_SLOT 4
#define DRAIN_MS 10000 /* td_notify_stop waits this long for transfers in flight */
/* A kick (a commit owed rows) claims at most this often: under a write load
 * every group commit kicks, and a claim per commit would be a writer job per
 * commit; rows then wait at most this long. */
#define KICK_MIN_MS 10
/* Write jobs in flight at once: while one commits and its completion reaches
 * this thread, the next already carries the outcomes that came in meanwhile
 * (a single job in flight left the transfers idle for the whole round trip). A
 * second job waits for at least PIPELINE_MIN outcomes, so that jobs stay big
 * enough to be cheap per row. */
#define JOBS_MAX 2
#define PIPELINE_MIN 32
#define DEFAULT_BACKOFF_BASE 1000
#define DEFAULT_BACKOFF_CAP 3600000

/* ================= the loop ================= */

static void start_ready(td_notify *d)
{
    while (d->ready && d->n_xfers < d->concurrency) {
        work *w = d->ready;
        d->ready = w->next;
        if (!d->ready) d->ready_tail = NULL;
        d->n_ready--;
        w->next = NULL;
        nw_prepare(d, w);
    }
}

static void read_done(td_notify *d)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(d->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        CURLcode rc = m->data.result;
        xfer *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (!x) continue;
        if (x->kind == X_TOKEN) {
            nw_token_done(d, x, rc);
        } else {
            work *w = (work *)((char *)x - offsetof(work, x));
            nw_notify_done(d, w, rc);
        }
    }
}

static void refresh_stats(td_notify *d, int64_t now)
{
    if (now - d->stats_ms < STATS_EVERY_MS) return;
    d->stats_ms = now;
    td_conn *c = d->svc->store->reader(d->svc->store);
    int64_t p = 0, f = 0, dd = 0, oldest = 0;
    if (c && OPS(d->svc)->outbox_stats(c, &p, &f, &dd, &oldest) == TD_ST_OK) {
        atomic_store(&d->st_pending, p);
        atomic_store(&d->st_in_flight, f);
        atomic_store(&d->st_dead, dd);
        atomic_store(&d->st_oldest_ms, oldest);
    }
}

/* Issuers owed notifications while they have no delivery settings: nothing
 * claims their rows, which wait (and go out once the settings exist). Counted
 * for /metrics, and each such issuer is warned about when it first shows. */
static int64_t unroutable_every_ms(const td_notify *d)
{
    int64_t every = 10 * d->poll_ms; /* 2 s at the default poll */
    return every < 1000 ? 1000 : every > 10000 ? 10000 : every;
}

static bool was_seen(const td_notify *d, const char *issuer_id)
{
    for (size_t i = 0; i < d->n_unroutable_seen; i++)
        if (!strcmp(d->unroutable_seen[i], issuer_id)) return true;
    return false;
}

static void refresh_unroutable(td_notify *d, int64_t now)
{
    if (d->unroutable_ms && now - d->unroutable_ms < unroutable_every_ms(d)) return;
    d->unroutable_ms = now;
    td_unroutable found[UNROUTABLE_MAX];
    size_t n = 0;
    td_conn *c = d->svc->store->reader(d->svc->store);
    if (!c || OPS(d->svc)->outbox_unroutable(c, found, UNROUTABLE_MAX, &n) != TD_ST_OK) return;
    int64_t rows = 0;
    for (size_t i = 0; i < n; i++) {
        rows += found[i].rows;
        if (!was_seen(d, found[i].issuer_id))
            td_log(TD_LOG_WARN, "delivery_unconfigured",
                   "issuer %s is owed %lld notifications but has no delivery settings: they wait, and go out once "
                   "PUT /admin/v1/issuers/%s/delivery sets them",
                   found[i].issuer_id, (long long)found[i].rows, found[i].issuer_id);
    }
    for (size_t i = 0; i < n; i++)
        memcpy(d->unroutable_seen[i], found[i].issuer_id, sizeof found[i].issuer_id);
    d->n_unroutable_seen = n;
    atomic_store(&d->st_unroutable_rows, rows);
    atomic_store(&d->st_unroutable_issuers, (int64_t)n);
}

/* Transfers abandoned at shutdown: their rows stay IN_FLIGHT and are claimed
 * again when the lease ends (after the restart). */
static void abandon_all(td_notify *d)
{
    while (d->active) {
        work *w = d->active;
        nw_xfer_cleanup(d, &w->x);
        nw_unlink_active(d, w);
        nw_work_done(d, w);
    }
    while (d->ready) {
        work *w = d->ready;
        d->ready = w->next;
        nw_work_done(d, w);
    }
    d->ready_tail = NULL;
    d->n_ready = 0;
    for (issuer_ent *e = d->issuers; e; e = e->next) {
        if (e->fetch) {
            nw_xfer_cleanup(d, e->fetch);
            free(e->fetch);
            e->fetch = NULL;
            e->fetching = false;
        }
        while (e->waiting) {
            work *w = e->waiting;
            e->waiting = w->next;
            nw_work_done(d, w);
        }
    }
}

static void *worker(void *arg)
{
    td_notify *d = arg;
    int64_t drain_until = 0;
    int final_tries = 0;
    for (;;) {
        int64_t now = td_now_ms();
        bool stop = atomic_load(&d->stop);
        if (stop && !drain_until) drain_until = now + DRAIN_MS;
        /* the job in flight */
        while (nw_job_ready(d))
            nw_job_finished(d);
        start_ready(d);
        /* the next job: outcomes to record and/or rows to claim */
        bool may_submit = d->n_jobs == 0 || (d->n_jobs < JOBS_MAX && d->outs.n >= PIPELINE_MIN);
        if (may_submit && now >= d->pause_until_ms) {
            int slots = HOLD_PER_SLOT * d->concurrency - d->n_hand - d->claim_pending;
            bool kicked = atomic_load(&d->kicked) && now - d->last_claim_ms >= KICK_MIN_MS;
            /* Claim when rows are likely due: the last claim was full, a commit
             * owed new rows (kick), or this job records outcomes — a delivered
             * or dead row makes the next row of its order key claimable —,
             * a retry came due, else at the next poll (a lease that ran out). */
            bool due = d->next_due_ms && now >= d->next_due_ms && now - d->last_claim_ms >= KICK_MIN_MS;
            bool claim = !stop && slots > 0 &&
                         (d->last_claim_full || kicked || due || d->outs.n > 0 || now - d->last_claim_ms >= d->poll_ms);
            int limit = 0;
            if (claim) {
                atomic_store(&d->kicked, false); /* this claim answers it */
                d->next_due_ms = 0;              /* and it will tell the next one */
                long l = (long)slots * nw_batch_hint(d);
                limit = l > CLAIM_MAX ? CLAIM_MAX : (int)l;
            }
            if (d->outs.n || limit > 0) nw_submit_job(d, now, limit, limit > 0 ? slots : 0);
        }
        refresh_stats(d, now);
        refresh_unroutable(d, now);
        if (stop && !d->n_jobs && !d->outs.n && d->n_hand == 0) break;
        if (stop && now >= drain_until && !d->n_jobs) {
            /* a few tries to record what finished; then the leases take over */
            if (d->outs.n && final_tries++ < 3) {
                nw_submit_job(d, now, 0, 0);
                continue;
            }
            break;
        }
        /* wait: network, the job, a kick, or the next poll */
        int running = 0;
        curl_multi_perform(d->multi, &running);
        read_done(d);
        if (nw_job_ready(d)) continue;
        long wait = 1000;
        if (!d->n_jobs && !stop && d->n_hand < HOLD_PER_SLOT * d->concurrency) {
            int64_t next = d->last_claim_ms + (atomic_load(&d->kicked) ? KICK_MIN_MS : d->poll_ms) - now;
            if (d->next_due_ms) {
                int64_t at =
                    d->next_due_ms > d->last_claim_ms + KICK_MIN_MS ? d->next_due_ms : d->last_claim_ms + KICK_MIN_MS;
                if (at - now < next) next = at - now;
            }
            wait = next < 1 ? 1 : (long)next;
        }
        if (d->pause_until_ms > now && d->pause_until_ms - now < wait) wait = (long)(d->pause_until_ms - now);
        /* outcomes to record go at once (after a failed job's pause) */
        if (d->outs.n && (!d->n_jobs || (d->n_jobs < JOBS_MAX && d->outs.n >= PIPELINE_MIN)))
            wait = d->pause_until_ms > now ? (long)(d->pause_until_ms - now) : 0;
        if (stop && wait > 50) wait = 50;
        if (d->n_xfers || d->n_jobs || wait > 0) {
            long ct = -1;
            curl_multi_timeout(d->multi, &ct);
            if (ct >= 0 && ct < wait) wait = ct;
            if (wait > 0) curl_multi_poll(d->multi, NULL, 0, (int)wait, NULL);
        }
        curl_multi_perform(d->multi, &running);
        read_done(d);
    }
    abandon_all(d);
    while (d->n_spare)
        curl_easy_cleanup(d->spare[--d->n_spare]);
    return NULL;
}

/* ================= start, stop, stats ================= */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

td_notify *td_notify_start(td_svc *svc)
{
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) return NULL;
    td_notify *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->svc = svc;
    const td_config *cfg = svc->cfg;
    d->concurrency = cfg && cfg->delivery_concurrency > 0 ? cfg->delivery_concurrency : 64;
    d->poll_ms = cfg && cfg->delivery_poll_ms > 0 ? cfg->delivery_poll_ms : 200;
    d->lease_ms = cfg && cfg->delivery_lease_ms >= 1000 ? cfg->delivery_lease_ms : 60000;
    atomic_store(&d->backoff_base, DEFAULT_BACKOFF_BASE);
    atomic_store(&d->backoff_cap, DEFAULT_BACKOFF_CAP);
    d->last_claim_ms = INT64_MIN / 2;
    d->multi = curl_multi_init();
    if (!d->multi) {
        free(d);
        return NULL;
    }
    curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, (long)d->concurrency);
    if (pthread_create(&d->thread, NULL, worker, d) != 0) {
        curl_multi_cleanup(d->multi);
        free(d);
        return NULL;
    }
    pthread_setname_np(d->thread, "td-delivery"); /* names it in top -H, perf and the benchmarks */
    return d;
}

void td_notify_stop(td_notify *d)
{
    if (!d) return;
    atomic_store(&d->stop, true);
    curl_multi_wakeup(d->multi);
    pthread_join(d->thread, NULL);
    nw_issuers_free(d);
    free(d->outs.v);
    free(d->held.slot);
    curl_multi_cleanup(d->multi);
    free(d);
}

void td_notify_kick(td_notify *d)
{
    if (!d) return;
    atomic_store(&d->kicked, true);
    curl_multi_wakeup(d->multi);
}

void td_notify_set_backoff(td_notify *d, int64_t base_ms, int64_t cap_ms)
{
    if (!d || base_ms < 1 || cap_ms < base_ms) return;
    atomic_store(&d->backoff_base, base_ms);
    atomic_store(&d->backoff_cap, cap_ms);
}

void td_notify_stats(const td_notify *d, td_notify_counters *out)
{
    memset(out, 0, sizeof *out);
    if (!d) return;
    out->delivered = atomic_load(&d->delivered);
    out->retried = atomic_load(&d->retried);
    out->dead = atomic_load(&d->dead);
    out->requests = atomic_load(&d->requests);
    out->reauth = atomic_load(&d->reauth);
    out->token_fetches = atomic_load(&d->token_fetches);
    out->in_flight = atomic_load(&d->in_flight);
    out->store_pending = atomic_load(&d->st_pending);
    out->store_in_flight = atomic_load(&d->st_in_flight);
    out->store_dead = atomic_load(&d->st_dead);
    out->unroutable_rows = atomic_load(&d->st_unroutable_rows);
    out->unroutable_issuers = atomic_load(&d->st_unroutable_issuers);
    int64_t oldest = atomic_load(&d->st_oldest_ms);
    int64_t age = oldest > 0 ? td_now_ms() - oldest : 0;
    out->oldest_pending_age_ms = age > 0 ? age : 0;
}
