/* pg/exec.c — running statements on a connection: statements prepared on
 * first use, transaction control deferred so that it travels with the next
 * statement in one round trip (libpq's pipeline mode), SQLSTATEs mapped to
 * store statuses, parameters passed and results read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/pgs.h"
#include "util/log.h"
#include "util/util.h"

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

/* ---- deferred statements, sent in one pipeline with the next ---- */

void pg_defer(td_conn *c, const char *sql)
{
    /* Full only if a caller defers in a loop: send what waits first. */
    if (c->n_deferred == PG_DEFER_MAX) pg_flush(c);
    c->deferred[c->n_deferred++] = sql;
}

/* One statement to send after the deferred ones: prepared (name, with its
 * SQL in prepare when this connection has not prepared it yet) or as text. */
typedef struct {
    const char *name, *prepare, *text;
    const pg_params *p;
} pg_stmt;

static bool send_stmt(td_conn *c, const pg_stmt *s)
{
    int n = s->p ? s->p->n : 0;
    const char *const *v = s->p ? s->p->v : NULL;
    const int *len = s->p ? s->p->len : NULL, *fmt = s->p ? s->p->fmt : NULL;
    if (s->text) return PQsendQueryParams(c->pg, s->text, n, NULL, v, len, fmt, 0);
    if (s->prepare && !PQsendPrepare(c->pg, s->name, s->prepare, 0, NULL)) return false;
    return PQsendQueryPrepared(c->pg, s->name, n, v, len, fmt, 0);
}

static const char *stmt_sql(const pg_stmt *s)
{
    return s->text ? s->text : s->prepare ? s->prepare : s->name;
}

/* Sends the deferred statements, then the ns statements of s (only s[0]
 * may carry a PREPARE), and one Sync: a single round trip. out[i] gets s[i]'s
 * result (to PQclear). On failure every out[i] is NULL and the status is the
 * first failure's (the statements after it are skipped by the server,
 * PGRES_PIPELINE_ABORTED). *prepared tells whether s[0]'s PREPARE ran. */
static td_st pipeline(td_conn *c, const pg_stmt *s, size_t ns, PGresult **out, bool *prepared)
{
    size_t n = (size_t)c->n_deferred;
    c->n_deferred = 0;
    td_st st = TD_ST_OK;
    *prepared = false;
    size_t prep = ns && s[0].prepare && !s[0].text; /* its Parse is one more query */
    for (size_t i = 0; i < ns; i++)
        out[i] = NULL;
    bool sent = PQenterPipelineMode(c->pg);
    for (size_t i = 0; sent && i < n; i++)
        sent = PQsendQueryParams(c->pg, c->deferred[i], 0, NULL, NULL, NULL, NULL, 0);
    for (size_t i = 0; sent && i < ns; i++)
        sent = send_stmt(c, &s[i]);
    if (sent) sent = PQpipelineSync(c->pg);
    /* Results arrive in order, each query's followed by a NULL, then the
     * Sync's. Two NULLs in a row, or a dead connection, end the wait. */
    for (size_t q = 0, nulls = 0; sent && nulls < 2 && PQstatus(c->pg) == CONNECTION_OK;) {
        PGresult *r = PQgetResult(c->pg);
        if (!r) {
            q++;
            nulls++;
            continue;
        }
        nulls = 0;
        ExecStatusType t = PQresultStatus(r);
        if (t == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            break;
        }
        bool is_stmt = q >= n + prep && q < n + prep + ns;
        if (t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK) {
            if (prep && q == n) *prepared = true;
            if (is_stmt && !out[q - n - prep]) {
                out[q - n - prep] = r;
                continue;
            }
        } else if (t != PGRES_PIPELINE_ABORTED && st == TD_ST_OK) {
            st = failure_status(c, r, q < n ? c->deferred[q] : stmt_sql(&s[q < n + prep ? 0 : q - n - prep]));
        }
        PQclear(r);
    }
    /* Leaving pipeline mode fails while results are still owed: the
     * connection is then in an unknown state and is reopened before reuse. */
    if (!sent || !PQexitPipelineMode(c->pg)) {
        if (st == TD_ST_OK) st = failure_status(c, NULL, "a pipeline");
        c->broken = true;
    }
    for (size_t i = 0; i < ns && st == TD_ST_OK; i++)
        if (!out[i]) st = failure_status(c, NULL, stmt_sql(&s[i]));
    if (st != TD_ST_OK)
        for (size_t i = 0; i < ns; i++) {
            PQclear(out[i]);
            out[i] = NULL;
        }
    return st;
}

td_st pg_flush(td_conn *c)
{
    if (!c->n_deferred) return TD_ST_OK;
    bool prepared;
    return pipeline(c, NULL, 0, NULL, &prepared);
}

void pg_drop_deferred(td_conn *c)
{
    c->n_deferred = 0;
}

/* sql is one statement when statements are deferred (pipeline mode takes
 * one per query); several otherwise (migrations, the session's settings). */
td_st pg_simple(td_conn *c, const char *sql)
{
    if (c->n_deferred) {
        bool prepared;
        PGresult *r;
        td_st st = pipeline(c, &(pg_stmt){.text = sql}, 1, &r, &prepared);
        PQclear(r);
        return st;
    }
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

/* Whether q may run on c now, and the name it is prepared under there;
 * TD_ST_OK or the status to fail with. */
static td_st ready_to_run(td_conn *c, pg_query *q, char name[16], int *slot_out)
{
    if (c->owner->base.q.fault == 1) return TD_ST_ERROR;
    /* Inside a transaction a reconnection would lose it: only between transactions. */
    if (!c->in_job && pg_conn_check(c) != 0) return TD_ST_ERROR;
    int slot = slot_of(q);
    if (slot >= PG_SLOTS) {
        td_log(TD_LOG_ERROR, "store_prepare", "more statements than PG_SLOTS (%d): raise it", PG_SLOTS);
        return TD_ST_INTERNAL;
    }
    snprintf(name, 16, "q%d", slot);
    *slot_out = slot;
    return TD_ST_OK;
}

/* Runs q (prepared on this connection at first use), after whatever was
 * deferred; the result, or NULL with *st set when it failed. */
static PGresult *run(td_conn *c, pg_query *q, const pg_params *p, td_st *st)
{
    char name[16];
    int slot;
    if ((*st = ready_to_run(c, q, name, &slot)) != TD_ST_OK) return NULL;
    c->job_statements++;
    if (c->n_deferred) {
        bool prepared;
        PGresult *r;
        *st = pipeline(c, &(pg_stmt){name, c->prepared[slot] ? NULL : q->sql, NULL, p}, 1, &r, &prepared);
        if (prepared) c->prepared[slot] = true;
        return r;
    }
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

td_st pg_rows_many(td_conn *c, pg_query *q, const pg_params *ps, size_t n, PGresult **res)
{
    for (size_t i = 0; i < n; i++)
        res[i] = NULL;
    if (n == 0) return TD_ST_OK;
    char name[16];
    int slot;
    td_st st = ready_to_run(c, q, name, &slot);
    if (st != TD_ST_OK) return st;
    pg_stmt *v = malloc(n * sizeof *v);
    if (!v) return TD_ST_ERROR;
    for (size_t i = 0; i < n; i++)
        v[i] = (pg_stmt){name, i == 0 && !c->prepared[slot] ? q->sql : NULL, NULL, &ps[i]};
    c->job_statements += (int)n;
    bool prepared;
    st = pipeline(c, v, n, res, &prepared);
    if (prepared) c->prepared[slot] = true;
    free(v);
    return st;
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
    c->job_statements++;
    td_st st;
    if (c->n_deferred) {
        bool prepared;
        return pipeline(c, &(pg_stmt){.text = sql, .p = p}, 1, res, &prepared);
    }
    PGresult *r = PQexecParams(c->pg, sql, p ? p->n : 0, NULL, p ? p->v : NULL, p ? p->len : NULL,
                               p ? p->fmt : NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK) {
        *res = r;
        return TD_ST_OK;
    }
    st = failure_status(c, r, sql);
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
