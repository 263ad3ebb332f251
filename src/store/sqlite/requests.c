/* sqlite/requests.c — token requests and their one-time consent codes: its
 * SQL, and the code that binds and reads it. */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/sq.h"

#define REQ_COLS                                                                                                       \
    "id, kind, from_id, to_id, state, created_ms, expires_ms, request_json, token_id, "                                \
    "signature_json, consent_hash, consent_expires_ms, consent_used"

static sq_query q_req_insert = {.sql =
                                    "INSERT INTO token_requests(" REQ_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                                    "?9, ?10, ?11, ?12, ?13)"};

static td_st v_request_insert(td_conn *c, const td_request_rec *r)
{
    sqlite3_stmt *st = sq_stmt(c, &q_req_insert);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, r->id);
    sqlite3_bind_int(st, 2, (int)r->kind);
    sq_bind_text(st, 3, r->from_id);
    sq_bind_text(st, 4, r->to_id);
    sqlite3_bind_int(st, 5, (int)r->state);
    sqlite3_bind_int64(st, 6, r->created_ms);
    sqlite3_bind_int64(st, 7, r->expires_ms);
    sq_bind_text(st, 8, r->request_json);
    sq_bind_text(st, 9, r->token_id);
    sq_bind_text(st, 10, r->signature_json);
    sq_bind_text(st, 11, r->consent_hash);
    sqlite3_bind_int64(st, 12, r->consent_expires_ms);
    sqlite3_bind_int(st, 13, r->consent_used);
    return sq_step_done(st);
}

static void read_request(sqlite3_stmt *st, td_request_rec *r)
{
    memset(r, 0, sizeof *r);
    sq_col_copy(st, 0, r->id, sizeof r->id);
    r->kind = (td_kind)sqlite3_column_int(st, 1);
    sq_col_copy(st, 2, r->from_id, sizeof r->from_id);
    sq_col_copy(st, 3, r->to_id, sizeof r->to_id);
    r->state = (td_request_state)sqlite3_column_int(st, 4);
    r->created_ms = sqlite3_column_int64(st, 5);
    r->expires_ms = sqlite3_column_int64(st, 6);
    r->request_json = sq_col_dup(st, 7);
    sq_col_copy(st, 8, r->token_id, sizeof r->token_id);
    r->signature_json = sq_col_dup(st, 9);
    sq_col_copy(st, 10, r->consent_hash, sizeof r->consent_hash);
    r->consent_expires_ms = sqlite3_column_int64(st, 11);
    r->consent_used = sqlite3_column_int(st, 12) != 0;
}

static sq_query q_req_get = {.sql = "SELECT " REQ_COLS " FROM token_requests WHERE id = ?1"};

static td_st v_request_get(td_conn *c, const char *id, td_request_rec *out)
{
    sqlite3_stmt *st = sq_stmt(c, &q_req_get);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, id);
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) read_request(st, out);
    sq_finish(st);
    return r;
}

static sq_query q_req_update = {.sql = "UPDATE token_requests SET state = ?2, token_id = ?3, signature_json = ?4, "
                                       "consent_hash = ?5, consent_expires_ms = ?6, consent_used = ?7 WHERE id = ?1"};

static td_st v_request_update(td_conn *c, const td_request_rec *r)
{
    sqlite3_stmt *st = sq_stmt(c, &q_req_update);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, r->id);
    sqlite3_bind_int(st, 2, (int)r->state);
    sq_bind_text(st, 3, r->token_id);
    sq_bind_text(st, 4, r->signature_json);
    sq_bind_text(st, 5, r->consent_hash);
    sqlite3_bind_int64(st, 6, r->consent_expires_ms);
    sqlite3_bind_int(st, 7, r->consent_used);
    td_st res = sq_step_done(st);
    if (res == TD_ST_OK && sqlite3_changes(c->db) == 0) res = TD_ST_NOT_FOUND;
    return res;
}

void sq_requests_verbs(td_store_ops *ops)
{
    ops->request_insert = v_request_insert;
    ops->request_get = v_request_get;
    ops->request_update = v_request_update;
}
