/* sched.c — the timer runner: a thread that wakes every timer interval,
 * picks the due timers from the store and fires each through the service
 * (td_svc_fire_timer), which decides what a timer does. */
#include "sched/sched.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "service/cards.h"
#include "util/util.h"

#define OPS(svc) ((svc)->store->ops)
#define DUE_BATCH 100
#define DEFAULT_INTERVAL_MS 1000 /* when the configuration leaves --timer-interval-ms unset */

typedef struct {
    td_timer_rec t[DUE_BATCH];
    int n;
} due_list;

static void collect(const td_timer_rec *t, void *arg)
{
    due_list *l = arg;
    if (l->n < DUE_BATCH) l->t[l->n++] = *t;
}

int td_sched_run_at(td_svc *svc, int64_t now_ms)
{
    td_conn *rd = svc->store->reader(svc->store);
    due_list *l = calloc(1, sizeof *l);
    int fired = 0;
    /* Collected first, fired after: a TSP call must not run inside a read. */
    if (rd && l && OPS(svc)->timer_due(rd, now_ms, DUE_BATCH, collect, l) == TD_ST_OK)
        for (int i = 0; i < l->n; i++)
            fired += td_svc_fire_timer(svc, &l->t[i], now_ms);
    free(l);
    return fired;
}

int td_sched_run_once(td_svc *svc)
{
    return td_sched_run_at(svc, td_now_ms());
}

struct td_sched {
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

static bool stopping(td_sched *t)
{
    pthread_mutex_lock(&t->mu);
    bool stop = t->stop;
    pthread_mutex_unlock(&t->mu);
    return stop;
}

static void *runner(void *arg)
{
    td_sched *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        pthread_mutex_unlock(&t->mu);
        /* A full batch may have left more due behind it: go on at once. */
        while (td_sched_run_once(t->svc) >= DUE_BATCH && !stopping(t)) {
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

td_sched *td_sched_start(td_svc *svc)
{
    td_sched *t = calloc(1, sizeof *t);
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

void td_sched_stop(td_sched *t)
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
