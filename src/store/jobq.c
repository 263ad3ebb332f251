/* jobq.c — the write-job queue shared by the store engines (jobq.h): submit,
 * batching with a short gathering wait, the reaper, synchronous runs, stats. */
#include <stdio.h>
#include <time.h>

#include "store/jobq.h"
#include "util/util.h"

static int batch_bucket(int n)
{
    int b = 0;
    while (n > 1 && b < 7) {
        n >>= 1;
        b++;
    }
    return b;
}

static int submit(td_store *pub, td_job *job)
{
    td_jobq *q = &((td_store_base *)pub)->q;
    job->next = NULL;
    job->queued_us = td_mono_us();
    pthread_mutex_lock(&q->mu);
    if (q->closing) {
        pthread_mutex_unlock(&q->mu);
        return -1;
    }
    if (q->tail)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    q->queued++;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

/* Group commit pays its fixed costs (COMMIT, WAL write, fsync) per
 * transaction. When requests are arriving concurrently (the previous batch
 * had several jobs) and few are queued, wait a moment for more: a bigger
 * batch costs less CPU per write, which under load is what limits
 * throughput. A lone client (batches of one) never waits. Called locked. */
#define GATHER_MIN 16
#define GATHER_US 250
static void gather(td_jobq *q)
{
    if (q->last_batch < 2 || q->queued >= GATHER_MIN || q->closing) return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += GATHER_US * 1000;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (q->queued < GATHER_MIN && !q->closing)
        if (pthread_cond_timedwait(&q->cv, &q->mu, &until) != 0) break;
}

td_job *td_jobq_take(td_jobq *q, int max, int *n_out)
{
    pthread_mutex_lock(&q->mu);
    for (;;) {
        /* An injected stall keeps the writers from taking jobs, as a writer stuck
         * in a long commit would: queued jobs wait and the reaper times them out. */
        while ((!q->head || q->fault == 2) && !q->closing)
            pthread_cond_wait(&q->cv, &q->mu);
        if (!q->head && q->closing) {
            pthread_mutex_unlock(&q->mu);
            return NULL;
        }
        gather(q);
        if (q->head) break; /* else the reaper took them while we gathered */
    }
    /* Everything that queued while the last batch committed, up to max. */
    td_job *batch = q->head, *last = q->head;
    int n = 1;
    while (last->next && n < max) {
        last = last->next;
        n++;
    }
    q->head = last->next;
    if (!q->head) q->tail = NULL;
    last->next = NULL;
    q->queued -= n;
    q->last_batch = n;
    pthread_mutex_unlock(&q->mu);
    *n_out = n;
    return batch;
}

void td_jobq_count(td_jobq *q, int n, bool lax)
{
    pthread_mutex_lock(&q->mu);
    q->stats.commits++;
    if (lax) q->stats.lax_commits++;
    q->stats.jobs += (uint64_t)n;
    q->stats.batch_hist[batch_bucket(n)]++;
    pthread_mutex_unlock(&q->mu);
}

/* Removes from the queue the jobs that waited longer than job_timeout_us and
 * fails them with TD_ST_BUSY (504: nothing changed). Jobs a writer already
 * took are inside a transaction and end with it. */
static void reap_expired(td_store_base *b)
{
    td_jobq *q = &b->q;
    td_job *expired = NULL, **tail = &expired;
    int64_t now = td_mono_us();
    pthread_mutex_lock(&q->mu);
    td_job **pp = &q->head, *prev = NULL;
    while (*pp) {
        td_job *j = *pp;
        if (now - j->queued_us > b->pub.job_timeout_us) {
            q->queued--;
            *pp = j->next;
            j->next = NULL;
            *tail = j;
            tail = &j->next;
        } else {
            prev = j;
            pp = &j->next;
        }
    }
    q->tail = prev;
    if (expired) q->last_reap_us = now;
    pthread_mutex_unlock(&q->mu);
    for (td_job *j = expired, *next; j; j = next) {
        next = j->next;
        j->done(j->arg, TD_ST_BUSY);
    }
}

/* How long after a job timed out the store still says it cannot take writes:
 * long enough for a readiness probe to see a stall that ends each write. */
#define REAP_MEMORY_US (5 * 1000 * 1000)

bool td_jobq_writable(td_store_base *b, char *why, size_t cap)
{
    td_jobq *q = &b->q;
    int64_t now = td_mono_us(), limit = b->pub.job_timeout_us;
    pthread_mutex_lock(&q->mu);
    int64_t waited = q->head ? now - q->head->queued_us : 0;
    bool reaped_lately = q->last_reap_us && now - q->last_reap_us < REAP_MEMORY_US;
    pthread_mutex_unlock(&q->mu);
    if (waited > limit / 2) {
        snprintf(why, cap, "the store's writers are not taking writes (the oldest has waited %lld ms)",
                 (long long)(waited / 1000));
        return false;
    }
    if (reaped_lately) {
        snprintf(why, cap, "writes timed out waiting for the store's writers in the last %d s",
                 REAP_MEMORY_US / 1000000);
        return false;
    }
    return true;
}

static void *reaper_main(void *arg)
{
    td_store_base *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->q.mu);
        bool closing = b->q.closing;
        pthread_mutex_unlock(&b->q.mu);
        if (closing) break;
        reap_expired(b);
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

typedef struct {
    td_job job;
    td_st (*run)(td_conn *, void *);
    void *arg;
    td_st result;
    bool finished;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} sync_job;

static td_st sync_run(td_conn *c, void *arg)
{
    sync_job *sj = arg;
    return sj->run(c, sj->arg);
}

static void sync_done(void *arg, td_st st)
{
    sync_job *sj = arg;
    pthread_mutex_lock(&sj->mu);
    sj->result = st;
    sj->finished = true;
    pthread_cond_signal(&sj->cv);
    pthread_mutex_unlock(&sj->mu);
}

static td_st run_sync(td_store *pub, td_st (*run)(td_conn *, void *), void *arg)
{
    sync_job sj = {.job = {.run = sync_run, .done = sync_done}, .run = run, .arg = arg};
    sj.job.arg = &sj;
    pthread_mutex_init(&sj.mu, NULL);
    pthread_cond_init(&sj.cv, NULL);
    if (submit(pub, &sj.job) != 0) return TD_ST_ERROR;
    pthread_mutex_lock(&sj.mu);
    while (!sj.finished)
        pthread_cond_wait(&sj.cv, &sj.mu);
    pthread_mutex_unlock(&sj.mu);
    pthread_mutex_destroy(&sj.mu);
    pthread_cond_destroy(&sj.cv);
    return sj.result;
}

static void stats(td_store *pub, td_store_stats *out)
{
    td_jobq *q = &((td_store_base *)pub)->q;
    pthread_mutex_lock(&q->mu);
    *out = q->stats;
    pthread_mutex_unlock(&q->mu);
}

static void inject_fault(td_store *pub, int fault)
{
    td_jobq *q = &((td_store_base *)pub)->q;
    pthread_mutex_lock(&q->mu);
    q->fault = fault;
    pthread_cond_broadcast(&q->cv); /* stalled writers resume */
    pthread_mutex_unlock(&q->mu);
}

static bool writable(td_store *pub, char *why, size_t cap)
{
    return td_jobq_writable((td_store_base *)pub, why, cap);
}

void td_jobq_setup(td_store_base *b)
{
    pthread_mutex_init(&b->q.mu, NULL);
    pthread_cond_init(&b->q.cv, NULL);
    b->pub.submit = submit;
    b->pub.run_sync = run_sync;
    b->pub.stats = stats;
    b->pub.inject_fault = inject_fault;
    b->pub.writable = writable;
    b->pub.job_timeout_us = 10 * 1000 * 1000;
}

int td_jobq_start_reaper(td_store_base *b, char *err, size_t cap)
{
    if (pthread_create(&b->q.reaper, NULL, reaper_main, b) != 0) {
        snprintf(err, cap, "cannot start the reaper thread");
        return -1;
    }
    pthread_setname_np(b->q.reaper, "td-reaper"); /* names it in top -H, perf and the benchmarks */
    b->q.reaper_started = true;
    return 0;
}

void td_jobq_close(td_jobq *q)
{
    pthread_mutex_lock(&q->mu);
    q->closing = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void td_jobq_destroy(td_store_base *b)
{
    td_jobq_close(&b->q);
    if (b->q.reaper_started) pthread_join(b->q.reaper, NULL);
    b->q.reaper_started = false;
    pthread_mutex_destroy(&b->q.mu);
    pthread_cond_destroy(&b->q.cv);
}
