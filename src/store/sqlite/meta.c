/* sqlite/meta.c — facts about the store itself (store_meta) and a sample of
 * its sealed data, for the master key check at start. */
#include <string.h>

#include "store/sqlite/sq.h"

static sq_query q_meta_get = {.sql = "SELECT value FROM store_meta WHERE name = ?1"};

/* Copies a blob column into out (cap bytes); ERROR if it does not fit. */
static td_st blob_out(sqlite3_stmt *st, int col, uint8_t *out, size_t cap, size_t *len)
{
    int n = sqlite3_column_bytes(st, col);
    if (n < 0 || (size_t)n > cap) return TD_ST_ERROR;
    if (n > 0) memcpy(out, sqlite3_column_blob(st, col), (size_t)n);
    *len = (size_t)n;
    return TD_ST_OK;
}

static td_st v_meta_get(td_conn *c, const char *name, uint8_t *value, size_t cap, size_t *len)
{
    sqlite3_stmt *st = sq_stmt(c, &q_meta_get);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, name);
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) r = blob_out(st, 0, value, cap, len);
    sq_finish(st);
    return r;
}

static sq_query q_meta_insert = {.sql = "INSERT INTO store_meta(name, value) VALUES (?1, ?2)"};

static td_st v_meta_insert(td_conn *c, const char *name, const uint8_t *value, size_t len)
{
    sqlite3_stmt *st = sq_stmt(c, &q_meta_insert);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, name);
    sqlite3_bind_blob(st, 2, value, (int)len, SQLITE_STATIC);
    return sq_step_done(st); /* CONFLICT if the name is there */
}

static sq_query q_meta_put = {.sql = "INSERT INTO store_meta(name, value) VALUES (?1, ?2) "
                                     "ON CONFLICT(name) DO UPDATE SET value = excluded.value"};

static td_st v_meta_put(td_conn *c, const char *name, const uint8_t *value, size_t len)
{
    sqlite3_stmt *st = sq_stmt(c, &q_meta_put);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, name);
    sqlite3_bind_blob(st, 2, value, (int)len, SQLITE_STATIC);
    return sq_step_done(st);
}

static sq_query q_meta_delete = {.sql = "DELETE FROM store_meta WHERE name = ?1"};

static td_st v_meta_delete(td_conn *c, const char *name)
{
    sqlite3_stmt *st = sq_stmt(c, &q_meta_delete);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, name);
    return sq_step_done(st);
}

/* The file lock (guard.c) is what keeps a tokend out of a store in use. */
static td_st v_serving_sessions(td_conn *c, int64_t *n)
{
    (void)c;
    *n = 0;
    return TD_ST_OK;
}

static sq_query q_sealed_sample = {
    .sql = "SELECT sealed_secret FROM member_keys WHERE length(sealed_secret) > 0 ORDER BY created_ms, key_id LIMIT 1"};

static td_st v_sealed_sample(td_conn *c, uint8_t *sealed, size_t cap, size_t *len)
{
    sqlite3_stmt *st = sq_stmt(c, &q_sealed_sample);
    if (!st) return TD_ST_ERROR;
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) r = blob_out(st, 0, sealed, cap, len);
    sq_finish(st);
    return r;
}

void sq_meta_verbs(td_store_ops *ops)
{
    ops->meta_get = v_meta_get;
    ops->meta_insert = v_meta_insert;
    ops->meta_put = v_meta_put;
    ops->meta_delete = v_meta_delete;
    ops->serving_sessions = v_serving_sessions;
    ops->sealed_sample = v_sealed_sample;
}
