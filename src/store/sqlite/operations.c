/* sqlite/operations.c — issuer and network operations on digital cards: its
 * SQL, and the code that binds and reads it. */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/sq.h"

#define OP_COLS                                                                                                        \
    "id, issuer_id, digital_card_id, card_id, operation, status, requestor_type, reason, reason_code, error_code, "    \
    "correlation_id, start_ms, end_ms"

static sq_query q_op_insert = {.sql = "INSERT INTO operations(" OP_COLS
                                      ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
                                      "?12, ?13)"};

static td_st v_op_insert(td_conn *c, const td_operation_rec *o)
{
    sqlite3_stmt *st = sq_stmt(c, &q_op_insert);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, o->id);
    sq_bind_text(st, 2, o->issuer_id);
    sq_bind_text(st, 3, o->digital_card_id);
    sq_bind_text(st, 4, o->card_id);
    sq_bind_text(st, 5, o->operation);
    sq_bind_text(st, 6, o->status);
    sq_bind_text(st, 7, o->requestor_type);
    sq_bind_text(st, 8, o->reason);
    sq_bind_text(st, 9, o->reason_code);
    sq_bind_text(st, 10, o->error_code);
    sq_bind_text(st, 11, o->correlation_id);
    sqlite3_bind_int64(st, 12, o->start_ms);
    sqlite3_bind_int64(st, 13, o->end_ms);
    return sq_step_done(st);
}

static sq_query q_op_get = {.sql = "SELECT " OP_COLS " FROM operations WHERE issuer_id = ?1 AND id = ?2"};

static td_st v_op_get(td_conn *c, const char *issuer_id, const char *id, td_operation_rec *out)
{
    sqlite3_stmt *st = sq_stmt(c, &q_op_get);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, issuer_id);
    sq_bind_text(st, 2, id);
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) {
        memset(out, 0, sizeof *out);
        sq_col_copy(st, 0, out->id, sizeof out->id);
        sq_col_copy(st, 1, out->issuer_id, sizeof out->issuer_id);
        sq_col_copy(st, 2, out->digital_card_id, sizeof out->digital_card_id);
        sq_col_copy(st, 3, out->card_id, sizeof out->card_id);
        sq_col_copy(st, 4, out->operation, sizeof out->operation);
        sq_col_copy(st, 5, out->status, sizeof out->status);
        sq_col_copy(st, 6, out->requestor_type, sizeof out->requestor_type);
        sq_col_copy(st, 7, out->reason, sizeof out->reason);
        sq_col_copy(st, 8, out->reason_code, sizeof out->reason_code);
        sq_col_copy(st, 9, out->error_code, sizeof out->error_code);
        sq_col_copy(st, 10, out->correlation_id, sizeof out->correlation_id);
        out->start_ms = sqlite3_column_int64(st, 11);
        out->end_ms = sqlite3_column_int64(st, 12);
    }
    sq_finish(st);
    return r;
}

static sq_query q_op_update = {
    .sql = "UPDATE operations SET status = ?3, error_code = ?4, end_ms = ?5 WHERE issuer_id = ?1 AND id = ?2"};

static td_st v_op_update(td_conn *c, const td_operation_rec *o)
{
    sqlite3_stmt *st = sq_stmt(c, &q_op_update);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, o->issuer_id);
    sq_bind_text(st, 2, o->id);
    sq_bind_text(st, 3, o->status);
    sq_bind_text(st, 4, o->error_code);
    sqlite3_bind_int64(st, 5, o->end_ms);
    td_st r = sq_step_done(st);
    if (r == TD_ST_OK && sqlite3_changes(c->db) == 0) r = TD_ST_NOT_FOUND;
    return r;
}

void sq_operations_verbs(td_store_ops *ops)
{
    ops->op_insert = v_op_insert;
    ops->op_get = v_op_get;
    ops->op_update = v_op_update;
}
