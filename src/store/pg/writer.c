/* pg/writer.c — the writers: each thread, with its own connection, takes
 * queued jobs in batches (src/store/jobq.c) and commits a batch as one
 * transaction, a savepoint per job, then reports each job's outcome. Several
 * writers, on this node and on others, run at once: jobs lock the rows they
 * change (pgs.h, in_job), so they wait for each other instead of deciding on
 * stale rows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/pgs.h"
#include "util/log.h"
#include "util/util.h"

#define MAX_BATCH 256

/* Savepoint bookkeeping travels with the transaction's own statements: one
 * round trip between two jobs, not two. */
#define SQL_NEXT_JOB "RELEASE SAVEPOINT job; SAVEPOINT job"
#define SQL_UNDO_JOB "ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job; SAVEPOINT job"

/* A group of lax jobs alone (td_job.lax: delivery bookkeeping) does not wait
 * for the WAL flush (nor for the standby): losing it to a crash of the
 * database only sends a notification again. */
static bool batch_is_lax(const td_job *batch)
{
    for (const td_job *j = batch; j; j = j->next)
        if (!j->lax) return false;
    return true;
}

static td_st run_job(pg_store *s, td_conn *c, td_job *j)
{
    if (td_mono_us() - j->queued_us > s->base.pub.job_timeout_us) return TD_ST_BUSY;
    c->in_job = true;
    td_st r = j->run(c, j->arg);
    c->in_job = false;
    return r;
}

/* Runs the batch's jobs in one transaction; the commit's status. */
static td_st run_batch(pg_store *s, td_conn *c, td_job *batch, td_st *results, bool lax)
{
    if (s->base.q.fault == 1 || pg_conn_fresh(c) != 0) return TD_ST_ERROR;
    const char *begin = lax ? "BEGIN; SET LOCAL synchronous_commit = off; SAVEPOINT job" : "BEGIN; SAVEPOINT job";
    if (pg_simple(c, begin) != TD_ST_OK) return TD_ST_ERROR;
    c->in_tx = true; /* until commit_batch: no reconnection in between */
    int i = 0;
    for (td_job *j = batch; j; j = j->next, i++) {
        results[i] = run_job(s, c, j);
        const char *between = results[i] == TD_ST_OK ? SQL_NEXT_JOB : SQL_UNDO_JOB;
        if (pg_simple(c, between) != TD_ST_OK) {
            pg_simple(c, "ROLLBACK");
            return TD_ST_ERROR;
        }
    }
    /* A COMMIT whose answer is lost (the connection broke, as in a failover)
     * may or may not have committed: the jobs fail as UNKNOWN, never report
     * success (nor that nothing changed). An answered failure rolled back. */
    if (pg_simple(c, "COMMIT") != TD_ST_OK) {
        if (c->broken || PQstatus(c->pg) != CONNECTION_OK) return TD_ST_UNKNOWN;
        pg_simple(c, "ROLLBACK");
        return TD_ST_ERROR;
    }
    return TD_ST_OK;
}

static void commit_batch(pg_store *s, td_conn *c, td_job *batch, int n)
{
    td_st results[MAX_BATCH];
    bool lax = batch_is_lax(batch);
    c->outbox_touched = false;
    td_st commit = run_batch(s, c, batch, results, lax);
    c->in_tx = false;
    /* (A job rolled back to its savepoint may have set it: one spurious wake-up.) */
    if (commit == TD_ST_OK && c->outbox_touched && s->base.pub.on_outbox) s->base.pub.on_outbox();
    if (commit == TD_ST_OK) td_jobq_count(&s->base.q, n, lax);
    int i = 0;
    for (td_job *j = batch, *next; j; j = next, i++) {
        next = j->next; /* done() may free the job */
        j->done(j->arg, commit == TD_ST_OK ? results[i] : commit);
    }
}

typedef struct {
    pg_store *s;
    td_conn *c;
} writer_arg;

static void *writer_main(void *arg)
{
    pg_store *s = ((writer_arg *)arg)->s;
    td_conn *c = ((writer_arg *)arg)->c;
    free(arg);
    td_job *batch;
    int n;
    while ((batch = td_jobq_take(&s->base.q, MAX_BATCH, &n)))
        commit_batch(s, c, batch, n);
    return NULL;
}

int pg_writer_start(pg_store *s, char *err, size_t cap)
{
    for (int i = 0; i < s->n_writers; i++) {
        if (!s->writers[i] && !(s->writers[i] = pg_conn_open(s, err, cap))) return -1;
        writer_arg *a = malloc(sizeof *a);
        if (!a) return -1;
        *a = (writer_arg){s, s->writers[i]};
        if (pthread_create(&s->writer_threads[i], NULL, writer_main, a) != 0) {
            free(a);
            snprintf(err, cap, "cannot start a writer thread");
            return -1;
        }
        pthread_setname_np(s->writer_threads[i], "td-writer"); /* names it in top -H, perf and the benchmarks */
        s->writers_started++;
    }
    return td_jobq_start_reaper(&s->base, err, cap);
}

void pg_writer_stop(pg_store *s)
{
    td_jobq_close(&s->base.q);
    for (int i = 0; i < s->writers_started; i++)
        pthread_join(s->writer_threads[i], NULL);
    s->writers_started = 0;
}
