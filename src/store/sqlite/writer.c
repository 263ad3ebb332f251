/* sqlite/writer.c — the one writer: jobs queue here, and a thread commits
 * them in groups (one transaction, a savepoint per job), then reports each
 * job's outcome; a reaper fails the jobs that waited too long. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "store/sqlite/sq.h"
#include "util/log.h"
#include "util/util.h"

/* The writer's own statements, prepared once: they run for every job. */
static sq_query q_begin = {.sql = "BEGIN IMMEDIATE"};
static sq_query q_commit = {.sql = "COMMIT"};
static sq_query q_rollback = {.sql = "ROLLBACK"};
static sq_query q_savepoint = {.sql = "SAVEPOINT job"};
static sq_query q_release = {.sql = "RELEASE job"};
static sq_query q_rollback_to = {.sql = "ROLLBACK TO job"};
/* Per transaction, before BEGIN: FULL (the default) fsyncs the WAL at
 * COMMIT; NORMAL leaves it to the next FULL commit or checkpoint. The WAL
 * is written in order, so a durable commit makes every earlier one durable
 * too: a power failure can only take a suffix of NORMAL commits. */
static sq_query q_sync_full = {.sql = "PRAGMA synchronous=FULL"};
static sq_query q_sync_normal = {.sql = "PRAGMA synchronous=NORMAL"};

#define MAX_BATCH 256

static int batch_bucket(int n)
{
    int b = 0;
    while (n > 1 && b < 7) {
        n >>= 1;
        b++;
    }
    return b;
}

/* Runs a writer statement; the raw SQLite result code, for retry decisions. */
static int writer_exec(sq_store *s, sq_query *q)
{
    sqlite3_stmt *st = sq_prepared(s->writer, q);
    if (!st) return SQLITE_ERROR;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) return SQLITE_OK;
    if (rc != SQLITE_BUSY) td_log(TD_LOG_ERROR, "store_writer", "%s: %s", q->sql, sqlite3_errmsg(s->writer->db));
    return rc;
}

/* BEGIN and COMMIT can meet SQLITE_BUSY when another process (a backup, the
 * sqlite3 shell) holds the lock past busy_timeout: retry a few times. */
static int writer_exec_retry(sq_store *s, sq_query *q)
{
    int rc = SQLITE_BUSY;
    for (int attempt = 0; attempt < 3 && (rc == SQLITE_BUSY || rc == SQLITE_LOCKED); attempt++)
        rc = writer_exec(s, q);
    return rc;
}

/* Runs one job inside its own savepoint so that its failure undoes only its
 * own changes. */
static td_st run_job(sq_store *s, td_job *j)
{
    if (td_mono_us() - j->queued_us > s->pub.job_timeout_us) return TD_ST_BUSY;
    if (writer_exec(s, &q_savepoint) != SQLITE_OK) return TD_ST_ERROR;
    td_st r = j->run(s->writer, j->arg);
    if (r != TD_ST_OK) writer_exec(s, &q_rollback_to);
    writer_exec(s, &q_release);
    return r;
}

/* A group of lax jobs alone (td_job.lax: delivery bookkeeping) commits at
 * synchronous=NORMAL, any other at FULL. The pragma is switched only when the
 * kind of group changes. False when a group that needs FULL cannot have it:
 * the group is then not run (if NORMAL cannot be set, FULL simply stays). */
static bool set_durability(sq_store *s, const td_job *batch)
{
    bool lax = true;
    for (const td_job *j = batch; j && lax; j = j->next)
        lax = j->lax;
    if (lax == s->sync_normal) return true;
    if (lax) {
        if (writer_exec(s, &q_sync_normal) == SQLITE_OK) s->sync_normal = true;
        return true;
    }
    if (writer_exec(s, &q_sync_full) != SQLITE_OK) return false;
    s->sync_normal = false;
    return true;
}

static void commit_batch(sq_store *s, td_job *batch, int n)
{
    td_st results[MAX_BATCH];
    td_st commit = TD_ST_OK;
    if (s->fault == 1 || !set_durability(s, batch) || writer_exec_retry(s, &q_begin) != SQLITE_OK) {
        commit = TD_ST_ERROR;
    } else {
        int i = 0;
        for (td_job *j = batch; j; j = j->next)
            results[i++] = run_job(s, j);
        if (writer_exec_retry(s, &q_commit) != SQLITE_OK) {
            writer_exec(s, &q_rollback);
            commit = TD_ST_ERROR;
        }
    }
    /* (A job rolled back to its savepoint may have set it: one spurious wake-up.) */
    if (commit == TD_ST_OK && s->outbox_touched && s->pub.on_outbox) s->pub.on_outbox();
    s->outbox_touched = false;
    pthread_mutex_lock(&s->mu);
    s->stats.commits++;
    if (s->sync_normal) s->stats.lax_commits++;
    s->stats.jobs += (uint64_t)n;
    s->stats.batch_hist[batch_bucket(n)]++;
    pthread_mutex_unlock(&s->mu);
    int i = 0;
    for (td_job *j = batch, *next; j; j = next, i++) {
        next = j->next; /* done() may free the job */
        j->done(j->arg, commit == TD_ST_OK ? results[i] : commit);
    }
}

/* Group commit pays its fixed costs (COMMIT, WAL write, fsync, checkpoint)
 * per transaction. When requests are arriving concurrently (the previous
 * batch had several jobs) and few are queued, wait a moment for more: a
 * bigger batch costs less CPU per write, which under load is what limits
 * throughput. A lone client (batches of one) never waits. Called locked. */
#define GATHER_MIN 16
#define GATHER_US 250
static void gather(sq_store *s)
{
    if (s->last_batch < 2 || s->queued >= GATHER_MIN || s->closing) return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += GATHER_US * 1000;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (s->queued < GATHER_MIN && !s->closing)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &until) != 0) break;
}

static void *writer_main(void *arg)
{
    sq_store *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        /* An injected stall keeps the writer from taking jobs, as a writer stuck
         * in a long commit would: queued jobs wait and the reaper times them out. */
        while ((!s->head || s->fault == 2) && !s->closing)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->head && s->closing) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        gather(s);
        if (!s->head) { /* the reaper took them while we gathered */
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        /* Take up to MAX_BATCH jobs: everything that queued while we committed. */
        td_job *batch = s->head, *last = s->head;
        int n = 1;
        while (last->next && n < MAX_BATCH) {
            last = last->next;
            n++;
        }
        s->head = last->next;
        if (!s->head) s->tail = NULL;
        last->next = NULL;
        s->queued -= n;
        s->last_batch = n;
        pthread_mutex_unlock(&s->mu);
        commit_batch(s, batch, n);
    }
    return NULL;
}

/* Removes from the queue the jobs that waited longer than job_timeout_us and
 * fails them with TD_ST_BUSY (504: nothing changed). Jobs the writer already
 * took are inside a transaction and end with it. */
static void reap_expired(sq_store *s)
{
    td_job *expired = NULL, **tail = &expired;
    int64_t now = td_mono_us();
    pthread_mutex_lock(&s->mu);
    td_job **pp = &s->head, *prev = NULL;
    while (*pp) {
        td_job *j = *pp;
        if (now - j->queued_us > s->pub.job_timeout_us) {
            s->queued--;
            *pp = j->next;
            j->next = NULL;
            *tail = j;
            tail = &j->next;
        } else {
            prev = j;
            pp = &j->next;
        }
    }
    s->tail = prev;
    pthread_mutex_unlock(&s->mu);
    for (td_job *j = expired, *next; j; j = next) {
        next = j->next;
        j->done(j->arg, TD_ST_BUSY);
    }
}

static void *reaper_main(void *arg)
{
    sq_store *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool closing = s->closing;
        pthread_mutex_unlock(&s->mu);
        if (closing) break;
        reap_expired(s);
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static int submit(td_store *pub, td_job *job)
{
    sq_store *s = (sq_store *)pub;
    job->next = NULL;
    job->queued_us = td_mono_us();
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    if (s->tail)
        s->tail->next = job;
    else
        s->head = job;
    s->tail = job;
    s->queued++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
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
    sq_store *s = (sq_store *)pub;
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}

static void inject_fault(td_store *pub, int fault)
{
    sq_store *s = (sq_store *)pub;
    pthread_mutex_lock(&s->mu);
    s->fault = fault;
    pthread_cond_broadcast(&s->cv); /* a stalled writer resumes */
    pthread_mutex_unlock(&s->mu);
}

void sq_writer_init(sq_store *s)
{
    s->pub.submit = submit;
    s->pub.run_sync = run_sync;
    s->pub.stats = stats;
    s->pub.inject_fault = inject_fault;
}

int sq_writer_start(sq_store *s, char *err, size_t cap)
{
    if (pthread_create(&s->writer_thread, NULL, writer_main, s) != 0) {
        snprintf(err, cap, "cannot start the writer thread");
        return -1;
    }
    pthread_setname_np(s->writer_thread, "td-writer"); /* names it in top -H, perf and the benchmarks */
    s->thread_started = true;
    if (pthread_create(&s->reaper_thread, NULL, reaper_main, s) != 0) {
        snprintf(err, cap, "cannot start the reaper thread");
        return -1;
    }
    pthread_setname_np(s->reaper_thread, "td-reaper");
    s->reaper_started = true;
    return 0;
}

void sq_writer_stop(sq_store *s)
{
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->thread_started) pthread_join(s->writer_thread, NULL);
    if (s->reaper_started) pthread_join(s->reaper_thread, NULL);
    s->thread_started = s->reaper_started = false;
}
