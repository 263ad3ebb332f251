/* sqlite/conn.c — connections (one writer, one reader per thread), their
 * pragmas and statement caches, and the helpers that bind and read columns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/sq.h"
#include "util/log.h"
#include "util/util.h"

td_st sq_map_rc(int rc)
{
    switch (rc) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW: return TD_ST_OK;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return TD_ST_BUSY;
    case SQLITE_CONSTRAINT: return TD_ST_CONFLICT;
    default: return TD_ST_ERROR;
    }
}

/* Numbers a statement's slot the first time any connection uses it. */
static int slot_of(sq_query *q)
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

sqlite3_stmt *sq_prepared(td_conn *c, sq_query *q)
{
    int slot = slot_of(q);
    if (slot >= SQ_SLOTS) {
        td_log(TD_LOG_ERROR, "store_prepare", "more statements than SQ_SLOTS (%d): raise it", SQ_SLOTS);
        return NULL;
    }
    if (!c->stmt[slot]) {
        if (sqlite3_prepare_v3(c->db, q->sql, -1, SQLITE_PREPARE_PERSISTENT, &c->stmt[slot], NULL) != SQLITE_OK) {
            td_log(TD_LOG_ERROR, "store_prepare", "%s", sqlite3_errmsg(c->db));
            return NULL;
        }
    }
    return c->stmt[slot];
}

/* The statements of the verbs; an injected fault makes them all fail. */
sqlite3_stmt *sq_stmt(td_conn *c, sq_query *q)
{
    return c->owner->base.q.fault == 1 ? NULL : sq_prepared(c, q);
}

int sq_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        td_log(TD_LOG_ERROR, "store_exec", "%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
    }
    return rc;
}

td_conn *sq_conn_open(sq_store *s, char *err, size_t cap)
{
    td_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->owner = s;
    int rc = sqlite3_open_v2(s->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        if (err) snprintf(err, cap, "cannot open %s: %s", s->path, sqlite3_errstr(rc));
        sqlite3_close(c->db);
        free(c);
        return NULL;
    }
    sqlite3_busy_timeout(c->db, 5000);
    /* FULL: a commit is on disk before the writer reports it, so a 2xx means
     * durable. temp_store MEMORY: the statement journal each job's savepoint
     * keeps is scratch no crash recovery needs; as a temp file it took more
     * than half of the writer's writes (bench/HISTORY.md). */
    if (sq_exec(c->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; "
                       "PRAGMA temp_store=MEMORY;") != SQLITE_OK) {
        if (err) snprintf(err, cap, "cannot configure %s: %s", s->path, sqlite3_errmsg(c->db));
        sqlite3_close(c->db);
        free(c);
        return NULL;
    }
    return c;
}

void sq_conn_close(td_conn *c)
{
    if (!c) return;
    for (int i = 0; i < SQ_SLOTS; i++)
        sqlite3_finalize(c->stmt[i]);
    sqlite3_close(c->db);
    free(c);
}

td_conn *sq_reader(td_store *pub)
{
    sq_store *s = (sq_store *)pub;
    td_conn *c = pthread_getspecific(s->reader_key);
    if (c) return c;
    c = sq_conn_open(s, NULL, 0);
    if (!c) return NULL;
    pthread_setspecific(s->reader_key, c);
    pthread_mutex_lock(&s->readers_mu);
    c->next_reader = s->readers;
    s->readers = c;
    pthread_mutex_unlock(&s->readers_mu);
    return c;
}

void sq_bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

void sq_col_copy(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const unsigned char *v = sqlite3_column_text(st, i);
    td_strlcpy(dst, v ? (const char *)v : "", cap);
}

char *sq_col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *v = sqlite3_column_text(st, i);
    return v ? strdup((const char *)v) : NULL;
}

/* Runs a statement that returns no row. */
td_st sq_step_done(sqlite3_stmt *st)
{
    if (!st) return TD_ST_ERROR;
    int rc = sqlite3_step(st);
    td_st r = rc == SQLITE_DONE ? TD_ST_OK : sq_map_rc(rc);
    if (rc == SQLITE_ROW) r = TD_ST_OK;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

/* Steps to the first row; TD_ST_NOT_FOUND if none. The caller resets. */
td_st sq_step_row(sqlite3_stmt *st)
{
    if (!st) return TD_ST_ERROR;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) return TD_ST_OK;
    if (rc == SQLITE_DONE) return TD_ST_NOT_FOUND;
    return sq_map_rc(rc);
}

void sq_finish(sqlite3_stmt *st)
{
    if (!st) return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* A zeroed slot at the end of the buffer, or NULL when out of memory. */
void *sq_row_add(sq_rows *b)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        char *p = realloc(b->items, cap * b->size);
        if (!p) return NULL;
        b->items = p;
        b->cap = cap;
    }
    void *slot = b->items + b->n++ * b->size;
    memset(slot, 0, b->size);
    return slot;
}

void *sq_row_at(const sq_rows *b, size_t i)
{
    return b->items + i * b->size;
}

/* The result of a stepping loop that stopped with rc (or a read error). */
td_st sq_loop_result(int rc, td_st read_err)
{
    if (read_err != TD_ST_OK) return read_err;
    return rc == SQLITE_DONE ? TD_ST_OK : sq_map_rc(rc);
}

void sq_bind_blob(sqlite3_stmt *st, int i, const void *v, size_t n)
{
    if (n)
        sqlite3_bind_blob(st, i, v, (int)n, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* Copies a BLOB column into dst if it fits (like read_key); returns its length, 0 otherwise. */
size_t sq_col_blob(sqlite3_stmt *st, int i, void *dst, size_t cap)
{
    int n = sqlite3_column_bytes(st, i);
    if (n <= 0 || (size_t)n > cap) return 0;
    memcpy(dst, sqlite3_column_blob(st, i), (size_t)n);
    return (size_t)n;
}
