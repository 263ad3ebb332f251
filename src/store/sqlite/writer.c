/* sqlite/writer.c — the one writer: a thread takes the queued jobs in
 * batches (src/store/jobq.c) and commits each batch as one transaction, a
 * savepoint per job, then reports each job's outcome. */
#include <stdio.h>
#include <stdlib.h>

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
    if (td_mono_us() - j->queued_us > s->base.pub.job_timeout_us) return TD_ST_BUSY;
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
    if (s->base.q.fault == 1 || !sq_guard_intact(s) || !set_durability(s, batch) ||
        writer_exec_retry(s, &q_begin) != SQLITE_OK) {
        commit = TD_ST_ERROR;
    } else {
        int i = 0;
        for (td_job *j = batch; j; j = j->next)
            results[i++] = run_job(s, j);
        if (writer_exec_retry(s, &q_commit) != SQLITE_OK) {
            writer_exec(s, &q_rollback);
            commit = TD_ST_ERROR;
        } else if (!sq_guard_intact(s)) {
            /* Committed into files no longer at the path: the next start
             * would not see it, so it is not acknowledged. */
            commit = TD_ST_ERROR;
        }
    }
    /* (A job rolled back to its savepoint may have set it: one spurious wake-up.) */
    if (commit == TD_ST_OK && s->outbox_touched && s->base.pub.on_outbox) s->base.pub.on_outbox();
    s->outbox_touched = false;
    td_jobq_count(&s->base.q, n, s->sync_normal);
    int i = 0;
    for (td_job *j = batch, *next; j; j = next, i++) {
        next = j->next; /* done() may free the job */
        j->done(j->arg, commit == TD_ST_OK ? results[i] : commit);
    }
}

static void *writer_main(void *arg)
{
    sq_store *s = arg;
    td_job *batch;
    int n;
    while ((batch = td_jobq_take(&s->base.q, MAX_BATCH, &n)))
        commit_batch(s, batch, n);
    return NULL;
}

int sq_writer_start(sq_store *s, char *err, size_t cap)
{
    if (pthread_create(&s->writer_thread, NULL, writer_main, s) != 0) {
        snprintf(err, cap, "cannot start the writer thread");
        return -1;
    }
    pthread_setname_np(s->writer_thread, "td-writer"); /* names it in top -H, perf and the benchmarks */
    s->thread_started = true;
    return td_jobq_start_reaper(&s->base, err, cap);
}

void sq_writer_stop(sq_store *s)
{
    td_jobq_close(&s->base.q);
    if (s->thread_started) pthread_join(s->writer_thread, NULL);
    s->thread_started = false;
}
