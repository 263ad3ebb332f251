/* pg/conn.c — connections to PostgreSQL (one per writer, one reader per
 * thread), reconnection after a failure or a failover, prepared statements,
 * the mapping of SQLSTATEs to store statuses, and the helpers that pass
 * parameters and read results. */
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
static const char *const SESSION_SQL = "SET synchronous_commit = on; SET application_name = 'tokend'; "
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
    PGresult *r = PQexec(c->pg, SESSION_SQL);
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

/* ---- statuses ---- */

/* The store status of a failed result. Connection failures, a server shutting
 * down, and a session that turned read-only (it now talks to a standby) mark
 * the connection broken: it reconnects before its next use. */
static td_st failure_status(td_conn *c, const PGresult *r, const char *what)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!state) state = "";
    if (!strcmp(state, "23505") || !strcmp(state, "23P01")) return TD_ST_CONFLICT;
    if (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strcmp(state, "55P03")) return TD_ST_BUSY;
    bool lost = PQstatus(c->pg) != CONNECTION_OK || !*state || !strncmp(state, "08", 2) ||
                !strncmp(state, "57P", 3) || !strcmp(state, "25006");
    if (lost) c->broken = true;
    /* The primary message names no parameter values; DETAIL (which may) is not logged. */
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!msg) msg = PQerrorMessage(c->pg);
    char line[256];
    td_strlcpy(line, msg ? msg : "", sizeof line);
    line[strcspn(line, "\n")] = 0;
    td_log(TD_LOG_ERROR, lost ? "store_unreachable" : "store_error", "%s [%s] %.60s", line, state, what);
    return TD_ST_ERROR;
}

td_st pg_simple(td_conn *c, const char *sql)
{
    if (pg_conn_check(c) != 0) return TD_ST_ERROR;
    PGresult *r = PQexec(c->pg, sql);
    ExecStatusType t = PQresultStatus(r);
    td_st st = t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK ? TD_ST_OK : failure_status(c, r, sql);
    PQclear(r);
    return st;
}

/* ---- prepared statements ---- */

/* Numbers a statement's slot the first time any connection uses it. */
static int slot_of(pg_query *q)
{
    static int next_slot;
    int slot = __atomic_load_n(&q->slot, __ATOMIC_ACQUIRE);
    if (slot) return slot;
    int want = __atomic_add_fetch(&next_slot, 1, __ATOMIC_ACQ_REL);
    int none = 0;
    /* Two threads may race for a new statement: one slot number is wasted. */
    if (!__atomic_compare_exchange_n(&q->slot, &none, want, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return none;
    return want;
}

/* Runs q (prepared on this connection at first use); the result, or NULL
 * with *st set when it failed. */
static PGresult *run(td_conn *c, pg_query *q, const pg_params *p, td_st *st)
{
    if (c->owner->base.q.fault == 1) {
        *st = TD_ST_ERROR;
        return NULL;
    }
    /* Inside a transaction a reconnection would lose it: only between transactions. */
    if (!c->in_job && pg_conn_check(c) != 0) {
        *st = TD_ST_ERROR;
        return NULL;
    }
    int slot = slot_of(q);
    if (slot >= PG_SLOTS) {
        td_log(TD_LOG_ERROR, "store_prepare", "more statements than PG_SLOTS (%d): raise it", PG_SLOTS);
        *st = TD_ST_INTERNAL;
        return NULL;
    }
    char name[16];
    snprintf(name, sizeof name, "q%d", slot);
    if (!c->prepared[slot]) {
        PGresult *r = PQprepare(c->pg, name, q->sql, 0, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            *st = failure_status(c, r, q->sql);
            PQclear(r);
            return NULL;
        }
        PQclear(r);
        c->prepared[slot] = true;
    }
    PGresult *r = p ? PQexecPrepared(c->pg, name, p->n, p->v, p->len, p->fmt, 0)
                    : PQexecPrepared(c->pg, name, 0, NULL, NULL, NULL, 0);
    ExecStatusType t = PQresultStatus(r);
    if (t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK) {
        *st = TD_ST_OK;
        return r;
    }
    *st = failure_status(c, r, q->sql);
    PQclear(r);
    return NULL;
}

td_st pg_cmd(td_conn *c, pg_query *q, const pg_params *p, int64_t *changed)
{
    td_st st;
    PGresult *r = run(c, q, p, &st);
    if (!r) return st;
    if (changed) *changed = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return TD_ST_OK;
}

td_st pg_rows(td_conn *c, pg_query *q, const pg_params *p, PGresult **res)
{
    td_st st;
    *res = run(c, q, p, &st);
    return st;
}

td_st pg_row(td_conn *c, pg_query *q, const pg_params *p, PGresult **res)
{
    td_st st;
    *res = run(c, q, p, &st);
    if (st != TD_ST_OK) return st;
    if (PQntuples(*res) == 0) {
        PQclear(*res);
        *res = NULL;
        return TD_ST_NOT_FOUND;
    }
    return TD_ST_OK;
}

td_st pg_rows_text(td_conn *c, const char *sql, const pg_params *p, PGresult **res)
{
    *res = NULL;
    if (c->owner->base.q.fault == 1) return TD_ST_ERROR;
    if (!c->in_job && pg_conn_check(c) != 0) return TD_ST_ERROR;
    PGresult *r = PQexecParams(c->pg, sql, p ? p->n : 0, NULL, p ? p->v : NULL, p ? p->len : NULL,
                               p ? p->fmt : NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK) {
        *res = r;
        return TD_ST_OK;
    }
    td_st st = failure_status(c, r, sql);
    PQclear(r);
    return st;
}

/* ---- parameters ---- */

static int add(pg_params *p)
{
    if (p->n >= PG_PARAMS_MAX) {
        /* A verb with more parameters than PG_PARAMS_MAX is a bug: fail loudly. */
        td_log(TD_LOG_ERROR, "store_params", "more than %d parameters", PG_PARAMS_MAX);
        abort();
    }
    return p->n++;
}

void pg_p_text(pg_params *p, const char *s)
{
    int i = add(p);
    p->v[i] = s;
    p->len[i] = 0;
    p->fmt[i] = 0;
}

void pg_p_int(pg_params *p, int64_t v)
{
    int i = add(p);
    snprintf(p->num[i], sizeof p->num[i], "%lld", (long long)v);
    p->v[i] = p->num[i];
    p->len[i] = 0;
    p->fmt[i] = 0;
}

void pg_p_blob(pg_params *p, const void *v, size_t n)
{
    int i = add(p);
    p->v[i] = n ? v : NULL;
    p->len[i] = (int)n;
    p->fmt[i] = 1;
}

/* ---- results ---- */

void pg_copy(const PGresult *r, int row, int col, char *dst, size_t cap)
{
    td_strlcpy(dst, PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col), cap);
}

char *pg_dup(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

int64_t pg_i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static int hex_nibble(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* bytea in text results is "\x" and hex (bytea_output = hex, the default). */
size_t pg_blob(const PGresult *r, int row, int col, void *dst, size_t cap)
{
    if (PQgetisnull(r, row, col)) return 0;
    const char *v = PQgetvalue(r, row, col);
    size_t len = (size_t)PQgetlength(r, row, col);
    if (len < 2 || v[0] != '\\' || v[1] != 'x' || len % 2) return 0;
    size_t n = (len - 2) / 2;
    if (n == 0 || n > cap) return 0;
    uint8_t *out = dst;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_nibble(v[2 + 2 * i]), lo = hex_nibble(v[3 + 2 * i]);
        if (hi < 0 || lo < 0) return 0;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return n;
}
