/* pg/conn.c — connections to PostgreSQL (one per writer, one reader per
 * thread) and their reconnection after a failure or a failover. Running
 * statements on them is exec.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/pgs.h"
#include "util/log.h"
#include "util/util.h"

/* ---- connections ---- */

/* Settings every connection starts with. A commit waits for the synchronous
 * standby when the cluster has one (pg_auto_failover sets it up): a 2xx
 * then means the change survives the loss of the primary. Notices (such as
 * "already exists, skipping") would reach stderr outside the JSON log. JIT
 * off: the planner costs the outbox's bounded index scans at the whole
 * index and compiled them, adding 100-400 ms to a claim of a few rows. */
static const char *const SESSION_SQL = "SET synchronous_commit = on; SET application_name = '%s'; "
                                       "SET bytea_output = 'hex'; SET client_min_messages = warning; SET jit = off";

/* The server's warnings, as log lines rather than raw stderr. */
static void log_notice(void *arg, const char *message)
{
    (void)arg;
    char line[256];
    td_strlcpy(line, message, sizeof line);
    line[strcspn(line, "\n")] = 0;
    td_log(TD_LOG_WARN, "store_notice", "%s", line);
}

static bool session_ready(td_conn *c)
{
    PQsetNoticeProcessor(c->pg, log_notice, NULL);
    char sql[320];
    snprintf(sql, sizeof sql, SESSION_SQL, td_store_client_name()); /* a name of ours, never a caller's */
    PGresult *r = PQexec(c->pg, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok;
}

/* A connection that answers, and is not a standby: after a failover the old
 * primary may come back as a standby; libpq's target_session_attrs=read-write
 * picks the primary among several hosts, this catches a single-host URL. */
static bool connect_usable(td_conn *c, char *err, size_t cap)
{
    if (PQstatus(c->pg) != CONNECTION_OK) {
        if (err) snprintf(err, cap, "cannot connect to %s: %s", c->owner->safe_url, PQerrorMessage(c->pg));
        return false;
    }
    if (!session_ready(c)) {
        if (err) snprintf(err, cap, "cannot set up a session on %s: %s", c->owner->safe_url, PQerrorMessage(c->pg));
        return false;
    }
    return true;
}

td_conn *pg_conn_open(pg_store *s, char *err, size_t cap)
{
    td_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->owner = s;
    /* Defaults the URL may override (it is expanded after them): a server
     * that does not answer (its machine died, a partition) fails a connect
     * within 5 s and a request within 10 s, instead of after the kernel's TCP
     * timeouts (minutes), so requests get their 503 and a failover is seen. */
    static const char *const keys[] = {"connect_timeout", "tcp_user_timeout", "keepalives_idle",
                                       "keepalives_interval", "keepalives_count", "dbname", NULL};
    const char *const values[] = {"5", "10000", "5", "2", "3", s->conninfo, NULL};
    c->pg = PQconnectdbParams(keys, values, 1);
    if (!c->pg || !connect_usable(c, err, cap)) {
        /* libpq's message may end with a newline: messages are one line. */
        if (err) err[strcspn(err, "\n")] = 0;
        PQfinish(c->pg);
        free(c);
        return NULL;
    }
    return c;
}

void pg_conn_close(td_conn *c)
{
    if (!c) return;
    PQfinish(c->pg);
    free(c);
}

int pg_conn_check(td_conn *c)
{
    /* Never inside a writer's transaction: a statement sent on a new session
     * would run outside it (a COMMIT there answers "no transaction in
     * progress", with success). The transaction fails instead. */
    if (c->in_tx) return !c->broken && PQstatus(c->pg) == CONNECTION_OK ? 0 : -1;
    if (!c->broken && PQstatus(c->pg) == CONNECTION_OK) return 0;
    /* A new session: its prepared statements are gone. PQreset tries every
     * host of the URL again, so after a failover it finds the new primary. */
    PQreset(c->pg);
    memset(c->prepared, 0, sizeof c->prepared);
    c->n_deferred = 0;
    if (!connect_usable(c, NULL, 0)) {
        c->broken = true;
        return -1;
    }
    c->broken = false;
    td_log(TD_LOG_INFO, "store_reconnected", "reconnected to %s", c->owner->safe_url);
    return 0;
}

/* A connection left idle while its server went away (a failover, a restart:
 * the backend sent FATAL and closed the socket) shows it only when read.
 * Reading what is waiting, without blocking, marks such a connection bad, so
 * that it is reopened before a statement is sent on it, instead of failing
 * the next request (or a writer's whole batch) with a 503 once the database
 * is back. An error that arrives while idle goes to the notice processor. */
int pg_conn_fresh(td_conn *c)
{
    for (int i = 0; i < 2 && !c->broken && !c->in_tx && PQstatus(c->pg) == CONNECTION_OK; i++)
        if (!PQconsumeInput(c->pg) || PQisBusy(c->pg)) break;
    return pg_conn_check(c);
}

td_conn *pg_reader(td_store *pub)
{
    pg_store *s = (pg_store *)pub;
    td_conn *c = pthread_getspecific(s->reader_key);
    if (c) return pg_conn_fresh(c) == 0 ? c : NULL;
    char err[512];
    c = pg_conn_open(s, err, sizeof err);
    if (!c) {
        td_log(TD_LOG_ERROR, "store_connect", "%s", err);
        return NULL;
    }
    pthread_setspecific(s->reader_key, c);
    pthread_mutex_lock(&s->conns_mu);
    c->next = s->readers;
    s->readers = c;
    pthread_mutex_unlock(&s->conns_mu);
    return c;
}
