/* metrics.c — lock-free counters (relaxed atomics): observing a request is a
 * few increments on the hot path; rendering reads them all. */
#include "api/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "notify/notify.h"
#include "util/buf.h"

static const int STATUSES[] = {0,   200, 201, 303, 400, 401, 403, 404, 405, 409,
                               410, 413, 414, 415, 429, 431, 500, 501, 503, 504};
#define NSTATUS ((int)(sizeof STATUSES / sizeof STATUSES[0]))
static const double BOUNDS_MS[] = {0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 5000};
#define NBOUNDS ((int)(sizeof BOUNDS_MS / sizeof BOUNDS_MS[0]))

typedef struct {
    uint64_t by_status[NSTATUS + 1]; /* last: any other status */
    uint64_t hist[NBOUNDS + 1];      /* last: +Inf */
    uint64_t sum_us;
} route_stats;

struct td_metrics {
    int nroutes;
    route_stats *r;
};

td_metrics *td_metrics_new(int nroutes)
{
    td_metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->nroutes = nroutes;
    m->r = calloc((size_t)nroutes, sizeof *m->r);
    if (!m->r) {
        free(m);
        return NULL;
    }
    return m;
}

void td_metrics_free(td_metrics *m)
{
    if (!m) return;
    free(m->r);
    free(m);
}

void td_metrics_observe(td_metrics *m, int route, int status, int64_t dur_us)
{
    if (!m || route < 0 || route >= m->nroutes) return;
    route_stats *rs = &m->r[route];
    int si = NSTATUS;
    for (int i = 0; i < NSTATUS; i++)
        if (STATUSES[i] == status) si = i;
    __atomic_fetch_add(&rs->by_status[si], 1, __ATOMIC_RELAXED);
    int b = NBOUNDS;
    for (int i = 0; i < NBOUNDS; i++)
        if ((double)dur_us <= BOUNDS_MS[i] * 1000) {
            b = i;
            break;
        }
    __atomic_fetch_add(&rs->hist[b], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&rs->sum_us, (uint64_t)dur_us, __ATOMIC_RELAXED);
}

/* The text grows in a bounded buffer: with every route, status and bucket
 * it stays far below this. */
#define METRICS_TEXT_MAX (4u << 20)

static uint64_t load(const uint64_t *v)
{
    return __atomic_load_n(v, __ATOMIC_RELAXED);
}

/* The notification worker's counters (notify/notify.h); zeros when it is not running. */
static void put_delivery(td_buf *b, const td_notify *w)
{
    td_notify_counters c;
    td_notify_stats(w, &c);
    td_buf_printf(b,
        "# HELP tokend_notifications_delivered_total Outbox rows delivered (2xx, or nothing to send in the profile).\n"
        "# TYPE tokend_notifications_delivered_total counter\ntokend_notifications_delivered_total %llu\n",
        (unsigned long long)c.delivered);
    td_buf_printf(b,
        "# HELP tokend_notifications_retried_total Failed attempts rescheduled with back-off.\n"
        "# TYPE tokend_notifications_retried_total counter\ntokend_notifications_retried_total %llu\n",
        (unsigned long long)c.retried);
    td_buf_printf(b,
        "# HELP tokend_notifications_dead_total Outbox rows dead-lettered.\n"
        "# TYPE tokend_notifications_dead_total counter\ntokend_notifications_dead_total %llu\n",
        (unsigned long long)c.dead);
    td_buf_printf(b,
        "# HELP tokend_notification_requests_total HTTP requests sent to issuers' backends (a d1 batch is one).\n"
        "# TYPE tokend_notification_requests_total counter\ntokend_notification_requests_total %llu\n",
        (unsigned long long)c.requests);
    td_buf_printf(b,
        "# HELP tokend_notification_token_fetches_total OAuth2 access tokens requested from issuers.\n"
        "# TYPE tokend_notification_token_fetches_total counter\ntokend_notification_token_fetches_total %llu\n",
        (unsigned long long)c.token_fetches);
    td_buf_printf(b,
        "# HELP tokend_notification_reauth_total 401 answers that made the worker fetch a new OAuth2 token.\n"
        "# TYPE tokend_notification_reauth_total counter\ntokend_notification_reauth_total %llu\n",
        (unsigned long long)c.reauth);
    td_buf_printf(b,
        "# HELP tokend_notifications_in_flight HTTP transfers to issuers' backends in flight now.\n"
        "# TYPE tokend_notifications_in_flight gauge\ntokend_notifications_in_flight %lld\n",
        (long long)c.in_flight);
    td_buf_printf(b,
        "# HELP tokend_outbox_rows Outbox rows by state (refreshed about once a second).\n"
        "# TYPE tokend_outbox_rows gauge\n"
        "tokend_outbox_rows{state=\"PENDING\"} %lld\ntokend_outbox_rows{state=\"IN_FLIGHT\"} %lld\n"
        "tokend_outbox_rows{state=\"DEAD\"} %lld\n",
        (long long)c.store_pending, (long long)c.store_in_flight, (long long)c.store_dead);
    td_buf_printf(b,
        "# HELP tokend_outbox_oldest_pending_age_seconds Age of the oldest undelivered (PENDING or IN_FLIGHT) row.\n"
        "# TYPE tokend_outbox_oldest_pending_age_seconds gauge\ntokend_outbox_oldest_pending_age_seconds %.3f\n",
        (double)c.oldest_pending_age_ms / 1000.0);
    td_buf_printf(b,
        "# HELP tokend_outbox_unroutable_rows Undelivered rows of issuers without delivery settings: they wait "
        "until the issuer's settings exist (refreshed every 1 to 10 s).\n"
        "# TYPE tokend_outbox_unroutable_rows gauge\ntokend_outbox_unroutable_rows %lld\n"
        "# HELP tokend_outbox_unroutable_issuers Issuers owed notifications without delivery settings.\n"
        "# TYPE tokend_outbox_unroutable_issuers gauge\ntokend_outbox_unroutable_issuers %lld\n",
        (long long)c.unroutable_rows, (long long)c.unroutable_issuers);
}

char *td_metrics_text(td_metrics *m, const td_store_stats *st, int inflight, const td_notify *w)
{
    td_buf b = td_buf_bounded(METRICS_TEXT_MAX);
    td_buf_printf(&b, "# HELP tokend_requests_total HTTP requests by route and status.\n# TYPE tokend_requests_total counter\n");
    for (int r = 0; r < m->nroutes; r++) {
        const char *name = r < td_route_count ? td_routes[r].name : "unmatched";
        const char *meth =
            r < td_route_count ? (const char *[]){"GET", "POST", "PUT", "DELETE", "OTHER"}[td_routes[r].method] : "";
        for (int s = 0; s <= NSTATUS; s++) {
            uint64_t v = load(&m->r[r].by_status[s]);
            if (!v) continue;
            if (s < NSTATUS)
                td_buf_printf(&b, "tokend_requests_total{method=\"%s\",route=\"%s\",status=\"%d\"} %llu\n", meth, name,
                    STATUSES[s], (unsigned long long)v);
            else
                td_buf_printf(&b, "tokend_requests_total{method=\"%s\",route=\"%s\",status=\"other\"} %llu\n", meth, name,
                    (unsigned long long)v);
        }
    }
    td_buf_printf(&b, "# HELP tokend_request_duration_seconds Request latency by route.\n# TYPE tokend_request_duration_seconds "
            "histogram\n");
    for (int r = 0; r < m->nroutes; r++) {
        uint64_t cum = 0, total = 0;
        for (int i = 0; i <= NBOUNDS; i++)
            total += load(&m->r[r].hist[i]);
        if (!total) continue;
        const char *name = r < td_route_count ? td_routes[r].name : "unmatched";
        const char *meth =
            r < td_route_count ? (const char *[]){"GET", "POST", "PUT", "DELETE", "OTHER"}[td_routes[r].method] : "";
        for (int i = 0; i < NBOUNDS; i++) {
            cum += load(&m->r[r].hist[i]);
            td_buf_printf(&b, "tokend_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"%g\"} %llu\n", meth, name,
                BOUNDS_MS[i] / 1000, (unsigned long long)cum);
        }
        td_buf_printf(&b, "tokend_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"+Inf\"} %llu\n", meth, name,
            (unsigned long long)total);
        td_buf_printf(&b, "tokend_request_duration_seconds_sum{method=\"%s\",route=\"%s\"} %.6f\n", meth, name,
            (double)load(&m->r[r].sum_us) / 1e6);
        td_buf_printf(&b, "tokend_request_duration_seconds_count{method=\"%s\",route=\"%s\"} %llu\n", meth, name,
            (unsigned long long)total);
    }
    static const int BATCH_LE[] = {1, 3, 7, 15, 31, 63, 127};
    td_buf_printf(&b, "# HELP tokend_store_commit_batch_size Write jobs committed per transaction (group commit).\n# TYPE "
            "tokend_store_commit_batch_size histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < 7; i++) {
        cum += st->batch_hist[i];
        td_buf_printf(&b, "tokend_store_commit_batch_size_bucket{le=\"%d\"} %llu\n", BATCH_LE[i], (unsigned long long)cum);
    }
    cum += st->batch_hist[7];
    td_buf_printf(&b, "tokend_store_commit_batch_size_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    td_buf_printf(&b, "tokend_store_commit_batch_size_sum %llu\ntokend_store_commit_batch_size_count %llu\n",
        (unsigned long long)st->jobs, (unsigned long long)st->commits);
    td_buf_printf(&b,
        "# HELP tokend_store_commits_without_fsync_total Commits of delivery bookkeeping alone, made without "
        "waiting for fsync (a power failure may only make notifications go again).\n# TYPE "
        "tokend_store_commits_without_fsync_total counter\ntokend_store_commits_without_fsync_total %llu\n",
        (unsigned long long)st->lax_commits);
    td_buf_printf(&b,
        "# HELP tokend_requests_in_flight Requests being processed.\n# TYPE tokend_requests_in_flight "
        "gauge\ntokend_requests_in_flight %d\n",
        inflight);
    put_delivery(&b, w);
    if (!td_buf_ok(&b)) {
        td_buf_reset(&b);
        return NULL;
    }
    return td_buf_steal(&b);
}
