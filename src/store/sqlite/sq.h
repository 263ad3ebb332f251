/* sq.h — the SQLite store's insides, shared by its files and by nothing else:
 * connections with their statement caches, the store object, the helpers
 * that bind and read columns, and each verb group's entry point. */
#ifndef TD_STORE_SQ_H
#define TD_STORE_SQ_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

#include "store/jobq.h"
#include "store/store.h"

/* One SQL statement, written beside the verb that binds and reads it. Each
 * connection prepares it once, on first use, in the slot the first user gave
 * it (slots are numbered at run time: no central list of statements). */
typedef struct {
    const char *sql;
    int slot; /* 1-based once assigned; 0 = not yet */
} sq_query;

#define SQ_SLOTS 96 /* more than the statements there are: sq_prepared says if not */

struct td_conn {
    sqlite3 *db;
    sqlite3_stmt *stmt[SQ_SLOTS];
    struct sq_store *owner;
    struct td_conn *next_reader;
};

typedef struct sq_store {
    td_store_base base; /* first: the public face and the job queue */
    td_store_ops ops;
    char path[1024];
    td_conn *writer;
    pthread_t writer_thread;
    bool thread_started;
    bool outbox_touched; /* this transaction inserted or reopened outbox rows (writer thread only) */
    bool sync_normal;    /* the writer connection is at synchronous=NORMAL (writer thread only) */
    unsigned claim_turn; /* which configured issuer the next claim serves first (writer thread only) */
    pthread_mutex_t readers_mu;
    td_conn *readers; /* every reader ever opened, closed at the end */
    pthread_key_t reader_key;
    int db_fd, wal_fd; /* the files the guard watches (guard.c); -1 = not watched */
    bool lost;         /* the guard found them deleted or replaced: writes are refused */
} sq_store;

/* ---- the store file's guard (guard.c) ---- */

/* Opens (creating it if need be) and locks the database file: -1 with a
 * message if another tokend holds it. */
int sq_guard_lock(sq_store *s, char *err, size_t cap);
/* Once the writer connection is in WAL mode: makes the files private and
 * starts watching the WAL too. */
int sq_guard_watch(sq_store *s, char *err, size_t cap);
void sq_guard_release(sq_store *s);
/* False (and logged once, and for good) when the path no longer names the
 * database or WAL being written. */
bool sq_guard_intact(sq_store *s);
/* Bytes free to tokend on the store's file system; -1 if unknown. */
int64_t sq_guard_free_bytes(sq_store *s);

/* ---- connections (conn.c) ---- */

td_conn *sq_conn_open(sq_store *s, char *err, size_t cap);
void sq_conn_close(td_conn *c);
td_conn *sq_reader(td_store *pub);
int sq_exec(sqlite3 *db, const char *sql);
td_st sq_map_rc(int rc);
/* The connection's prepared statement for q (prepared on first use). */
sqlite3_stmt *sq_prepared(td_conn *c, sq_query *q);
/* The same for the verbs: NULL while a fault is injected, so every verb fails. */
sqlite3_stmt *sq_stmt(td_conn *c, sq_query *q);

/* ---- binding and reading (conn.c) ---- */

void sq_bind_text(sqlite3_stmt *st, int i, const char *v);           /* NULL binds NULL */
void sq_bind_blob(sqlite3_stmt *st, int i, const void *v, size_t n); /* empty binds NULL */
void sq_col_copy(sqlite3_stmt *st, int i, char *dst, size_t cap);
char *sq_col_dup(sqlite3_stmt *st, int i); /* malloc'd; NULL for NULL */
/* Copies a BLOB column into dst if it fits; its length, 0 otherwise. */
size_t sq_col_blob(sqlite3_stmt *st, int i, void *dst, size_t cap);
/* Runs a statement that returns no row, then resets it. */
td_st sq_step_done(sqlite3_stmt *st);
/* Steps to the first row; TD_ST_NOT_FOUND if none. The caller calls sq_finish. */
td_st sq_step_row(sqlite3_stmt *st);
void sq_finish(sqlite3_stmt *st);
/* The result of a stepping loop that stopped with rc (or a read error). */
td_st sq_loop_result(int rc, td_st read_err);

/* The list verbs read every row first, finish their statement, and only then
 * call fn: fn may call any verb on the same connection (even the same list,
 * or a write to the rows being listed, inside a job) without disturbing a
 * cached statement that is still stepping. */
typedef struct {
    char *items;
    size_t n, cap, size;
} sq_rows;
void *sq_row_add(sq_rows *b); /* a zeroed slot at the end, NULL when out of memory */
void *sq_row_at(const sq_rows *b, size_t i);

/* ---- migrations (migrate.c), the writer (writer.c) ---- */

int sq_migrate(td_conn *c, char *err, size_t cap);
int sq_writer_start(sq_store *s, char *err, size_t cap);
void sq_writer_stop(sq_store *s); /* commits what is queued, joins the writer */

/* ---- the verb groups: each sets its verbs in ops ---- */

/* members.c's key_for_level, which tokens.c's token_get_signing reads too */
td_st sq_key_for_level(td_conn *c, const char *member_id, td_level level, td_key_rec *out);

void sq_members_verbs(td_store_ops *ops);
void sq_credentials_verbs(td_store_ops *ops);
void sq_requests_verbs(td_store_ops *ops);
void sq_tokens_verbs(td_store_ops *ops);
void sq_idempotency_verbs(td_store_ops *ops);
void sq_cards_verbs(td_store_ops *ops);
void sq_dcards_verbs(td_store_ops *ops);
void sq_operations_verbs(td_store_ops *ops);
void sq_outbox_verbs(td_store_ops *ops);
void sq_delivery_verbs(td_store_ops *ops);
void sq_timers_verbs(td_store_ops *ops);
void sq_meta_verbs(td_store_ops *ops);
void sq_sealed_verbs(td_store_ops *ops);

#endif
