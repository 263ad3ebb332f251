/* sqlite/idempotency.c — stored answers to Idempotency-Key requests: its SQL,
 * and the code that binds and reads it. */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/sq.h"
#include "util/util.h"

static sq_query q_idem_get = {.sql = "SELECT req_hash, status, body FROM idempotency WHERE scope = ?1 AND key = ?2"};

static td_st v_idem_get(td_conn *c, const char *scope, const char *key, td_idem_rec *out)
{
    sqlite3_stmt *st = sq_stmt(c, &q_idem_get);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, scope);
    sq_bind_text(st, 2, key);
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) {
        sq_col_copy(st, 0, out->req_hash, sizeof out->req_hash);
        out->status = sqlite3_column_int(st, 1);
        out->body = sq_col_dup(st, 2);
    }
    sq_finish(st);
    return r;
}

static sq_query q_idem_put = {.sql = "INSERT INTO idempotency(scope, key, req_hash, status, body, created_ms) "
                                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"};

static td_st v_idem_put(td_conn *c, const char *scope, const char *key, const td_idem_rec *r)
{
    sqlite3_stmt *st = sq_stmt(c, &q_idem_put);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, scope);
    sq_bind_text(st, 2, key);
    sq_bind_text(st, 3, r->req_hash);
    sqlite3_bind_int(st, 4, r->status);
    sq_bind_text(st, 5, r->body ? r->body : "");
    sqlite3_bind_int64(st, 6, td_now_ms());
    return sq_step_done(st);
}

void sq_idempotency_verbs(td_store_ops *ops)
{
    ops->idem_get = v_idem_get;
    ops->idem_put = v_idem_put;
}
