/* pgs.h — the PostgreSQL store's insides, shared by its files and by nothing
 * else: connections with their prepared statements, the store object, the
 * helpers that pass parameters and read results, and each verb group's entry
 * point. The verbs keep the SQLite store's semantics exactly (store.h). */
#ifndef TD_STORE_PGS_H
#define TD_STORE_PGS_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/jobq.h"
#include "store/store.h"

/* One SQL statement ($1, $2, ... placeholders), written beside the verb that
 * binds and reads it. Each connection prepares it once, on first use, under
 * the name "q<slot>" (slots are numbered at run time). */
typedef struct {
    const char *sql;
    int slot; /* 1-based once assigned; 0 = not yet */
} pg_query;

#define PG_SLOTS 128
#define PG_DEFER_MAX 8

struct td_conn {
    PGconn *pg;
    struct pg_store *owner;
    bool prepared[PG_SLOTS];
    /* Inside a writer's transaction (a job runs): reads of rows the job may
     * change lock them (FOR UPDATE variants), so that jobs of other writers,
     * on this node or another, wait instead of deciding on a stale row. */
    bool in_job;
    bool broken;         /* the connection failed: reopened before its next use */
    bool in_tx;          /* a writer's transaction is open: never reopened meanwhile */
    bool outbox_touched; /* this transaction inserted or reopened outbox rows: the writer
                          * wakes the delivery worker after the commit (set by the verbs) */
    /* Transaction control (BEGIN, savepoints) waiting to go out with the next
     * statement, in one round trip (exec.c): static strings, one statement each. */
    const char *deferred[PG_DEFER_MAX];
    int n_deferred;
    int job_statements; /* statements run since the writer last reset it */
    struct td_conn *next;
};

/* ---- parameters: text, except blobs (binary) ---- */

#define PG_PARAMS_MAX 40

typedef struct {
    int n;
    const char *v[PG_PARAMS_MAX];
    int len[PG_PARAMS_MAX];
    int fmt[PG_PARAMS_MAX];      /* 0 text, 1 binary */
    char num[PG_PARAMS_MAX][24]; /* room for the integers formatted here */
} pg_params;

void pg_p_text(pg_params *p, const char *s);              /* NULL passes NULL */
void pg_p_int(pg_params *p, int64_t v);                   /* any integer, bool as 0/1 */
void pg_p_blob(pg_params *p, const void *v, size_t n);    /* bytea; n == 0 passes NULL */

/* ---- deferred statements ----
 * A writer's transaction control does not need its own round trip: pg_defer
 * queues it, and the next statement (pg_cmd, pg_rows, pg_simple...) sends
 * it first, in the same pipeline, its failure reported as that statement's.
 * pg_flush sends what waits alone; pg_drop_deferred forgets it (before a
 * ROLLBACK, which must not be skipped because a deferred statement failed). */
void pg_defer(td_conn *c, const char *sql);
td_st pg_flush(td_conn *c);
void pg_drop_deferred(td_conn *c);

/* ---- running a statement ----
 * Each returns TD_ST_OK, or: TD_ST_CONFLICT (a unique or exclusion violation:
 * but note a failed statement aborts a PostgreSQL transaction, so verbs that
 * report CONFLICT as an answer use INSERT ... ON CONFLICT DO NOTHING and count
 * the rows instead), TD_ST_BUSY (serialization failure, deadlock, lock not
 * available), TD_ST_ERROR (the connection or the server failed: the
 * connection is marked broken). Errors are logged without parameter values. */

/* INSERT / UPDATE / DELETE without RETURNING; *changed = rows affected (may be NULL). */
td_st pg_cmd(td_conn *c, pg_query *q, const pg_params *p, int64_t *changed);
/* A statement returning rows: *res is the result (0 or more rows), to PQclear. */
td_st pg_rows(td_conn *c, pg_query *q, const pg_params *p, PGresult **res);
/* The same for statements expected to return one row: TD_ST_NOT_FOUND if none
 * (*res is then NULL); otherwise *res holds row 0, to PQclear. */
td_st pg_row(td_conn *c, pg_query *q, const pg_params *p, PGresult **res);

/* q once for each of n parameter sets, all in one pipeline: one round trip
 * (after what was deferred). res[i] gets each result, to PQclear; all NULL
 * when any failed (the first failure's status). */
td_st pg_rows_many(td_conn *c, pg_query *q, const pg_params *ps, size_t n, PGresult **res);
/* SQL built at run time (a list's filters): not prepared, same results as pg_rows. */
td_st pg_rows_text(td_conn *c, const char *sql, const pg_params *p, PGresult **res);

/* ---- reading results (text format) ---- */

void pg_copy(const PGresult *r, int row, int col, char *dst, size_t cap); /* NULL reads "" */
char *pg_dup(const PGresult *r, int row, int col);                        /* malloc'd; NULL for NULL */
int64_t pg_i64(const PGresult *r, int row, int col);                      /* NULL reads 0 */
/* A bytea column copied into dst if it fits: its length, 0 otherwise (or NULL). */
size_t pg_blob(const PGresult *r, int row, int col, void *dst, size_t cap);

/* ---- the store ---- */

#define PG_WRITERS_MAX 16

typedef struct pg_store {
    td_store_base base; /* first: the public face and the job queue */
    td_store_ops ops;
    char conninfo[2048]; /* the libpq URL as given, password included: never logged */
    char safe_url[512];  /* the same without its password, for messages */
    int n_writers;       /* writer threads, each with its connection */
    td_conn *writers[PG_WRITERS_MAX];
    pthread_t writer_threads[PG_WRITERS_MAX];
    int writers_started;
    pthread_mutex_t conns_mu;
    td_conn *readers; /* every reader opened, closed at the end */
    pthread_key_t reader_key;
    /* the outbox: a claim serves the configured issuers in turn (any thread) */
    unsigned claim_turn;
} pg_store;

/* ---- connections (conn.c), statements (exec.c), migrations (migrate.c), the writer (writer.c) ---- */

td_conn *pg_conn_open(pg_store *s, char *err, size_t cap);
void pg_conn_close(td_conn *c);
/* Reconnects a broken connection (statements are prepared again lazily),
 * except inside a writer's transaction; 0 if usable. */
int pg_conn_check(td_conn *c);
/* The same, first reading what waits on an idle connection (a server that
 * went away meanwhile); only between transactions. */
int pg_conn_fresh(td_conn *c);
td_conn *pg_reader(td_store *pub);
/* Runs SQL text without parameters (transaction control, DDL); TD_ST_* as pg_cmd. */
td_st pg_simple(td_conn *c, const char *sql);

int pg_migrate(td_conn *c, char *err, size_t cap);
int pg_writer_start(pg_store *s, char *err, size_t cap);
void pg_writer_stop(pg_store *s);

/* ---- the verb groups: each sets its verbs in ops ---- */

/* members.c's key columns and reader, which tokens.c's token_get_signing uses too */
#define PG_KEY_COLS "member_id, key_id, level, algorithm, public_key, sealed_secret, created_ms, expires_ms"
void pg_read_key(const PGresult *res, int row, int col0, td_key_rec *k);

void pg_members_verbs(td_store_ops *ops);
void pg_credentials_verbs(td_store_ops *ops);
void pg_requests_verbs(td_store_ops *ops);
void pg_tokens_verbs(td_store_ops *ops);
void pg_idempotency_verbs(td_store_ops *ops);
void pg_cards_verbs(td_store_ops *ops);
void pg_dcards_verbs(td_store_ops *ops);
void pg_operations_verbs(td_store_ops *ops);
void pg_outbox_verbs(td_store_ops *ops);
void pg_delivery_verbs(td_store_ops *ops);
void pg_timers_verbs(td_store_ops *ops);
void pg_meta_verbs(td_store_ops *ops);
void pg_sealed_verbs(td_store_ops *ops);

#endif
