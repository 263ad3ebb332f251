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

/* The transaction control around jobs is deferred (exec.c): it goes out
 * with the next job's first statement, or with the COMMIT, so a job costs
 * the round trips of its own statements only. A job that ran no statement
 * leaves the savepoint as it was; one that failed rolls back to it (which
 * keeps the savepoint for the next job). */
static void defer_between_jobs(td_conn *c, td_st result)
{
    if (!c->job_statements) return;
    c->job_statements = 0;
    if (result == TD_ST_OK) {
        pg_defer(c, "RELEASE SAVEPOINT job");
        pg_defer(c, "SAVEPOINT job");
    } else {
        pg_defer(c, "ROLLBACK TO SAVEPOINT job");
    }
}

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
    c->in_tx = true; /* until commit_batch: no reconnection in between */
    pg_defer(c, "BEGIN");
    if (lax) pg_defer(c, "SET LOCAL synchronous_commit = off");
    pg_defer(c, "SAVEPOINT job");
    c->job_statements = 0;
    int i = 0;
    for (td_job *j = batch; j; j = j->next, i++) {
        results[i] = run_job(s, c, j);
        defer_between_jobs(c, results[i]);
    }
    /* A COMMIT whose answer is lost (the connection broke, as in a failover)
     * may or may not have committed: the jobs fail as UNKNOWN, never report
     * success (nor that nothing changed). An answered failure (of the COMMIT
     * or of the savepoint bookkeeping sent with it) rolled back. */
    if (pg_simple(c, "COMMIT") != TD_ST_OK) {
        if (c->broken || PQstatus(c->pg) != CONNECTION_OK) return TD_ST_UNKNOWN;
        pg_drop_deferred(c);
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
