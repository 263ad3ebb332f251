/* pg/operations.c — issuer and network operations on digital cards: the
 * PostgreSQL twin of sqlite/operations.c, its SQL beside the code that binds
 * and reads it. */
#include <stdlib.h>
#include <string.h>

#include "store/pg/pgs.h"

#define OP_COLS                                                                                                        \
    "id, issuer_id, digital_card_id, card_id, operation, status, requestor_type, reason, reason_code, error_code, "    \
    "correlation_id, start_ms, end_ms"

/* A duplicate id is CONFLICT, as SQLite's constraint error is; ON CONFLICT
 * DO NOTHING reports it without aborting the job's transaction (a DIGITIZE
 * completion inserts after op_update found nothing, and may race another
 * node's insert). */
static pg_query q_op_insert = {.sql = "INSERT INTO operations(" OP_COLS
                                      ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
                                      "ON CONFLICT DO NOTHING"};

static td_st v_op_insert(td_conn *c, const td_operation_rec *o)
{
    pg_params p = {0};
    pg_p_text(&p, o->id);
    pg_p_text(&p, o->issuer_id);
    pg_p_text(&p, o->digital_card_id);
    pg_p_text(&p, o->card_id);
    pg_p_text(&p, o->operation);
    pg_p_text(&p, o->status);
    pg_p_text(&p, o->requestor_type);
    pg_p_text(&p, o->reason);
    pg_p_text(&p, o->reason_code);
    pg_p_text(&p, o->error_code);
    pg_p_text(&p, o->correlation_id);
    pg_p_int(&p, o->start_ms);
    pg_p_int(&p, o->end_ms);
    int64_t n = 0;
    td_st st = pg_cmd(c, &q_op_insert, &p, &n);
    if (st == TD_ST_OK && n == 0) st = TD_ST_CONFLICT;
    return st;
}

static void read_op(const PGresult *res, td_operation_rec *out)
{
    memset(out, 0, sizeof *out);
    pg_copy(res, 0, 0, out->id, sizeof out->id);
    pg_copy(res, 0, 1, out->issuer_id, sizeof out->issuer_id);
    pg_copy(res, 0, 2, out->digital_card_id, sizeof out->digital_card_id);
    pg_copy(res, 0, 3, out->card_id, sizeof out->card_id);
    pg_copy(res, 0, 4, out->operation, sizeof out->operation);
    pg_copy(res, 0, 5, out->status, sizeof out->status);
    pg_copy(res, 0, 6, out->requestor_type, sizeof out->requestor_type);
    pg_copy(res, 0, 7, out->reason, sizeof out->reason);
    pg_copy(res, 0, 8, out->reason_code, sizeof out->reason_code);
    pg_copy(res, 0, 9, out->error_code, sizeof out->error_code);
    pg_copy(res, 0, 10, out->correlation_id, sizeof out->correlation_id);
    out->start_ms = pg_i64(res, 0, 11);
    out->end_ms = pg_i64(res, 0, 12);
}

static pg_query q_op_get = {.sql = "SELECT " OP_COLS " FROM operations WHERE issuer_id = $1 AND id = $2"};
/* Inside a job the read may precede op_update: another node's job on the
 * same operation waits for this one's commit. */
static pg_query q_op_get_lock = {.sql =
                                     "SELECT " OP_COLS " FROM operations WHERE issuer_id = $1 AND id = $2 FOR UPDATE"};

static td_st v_op_get(td_conn *c, const char *issuer_id, const char *id, td_operation_rec *out)
{
    pg_params p = {0};
    pg_p_text(&p, issuer_id);
    pg_p_text(&p, id);
    PGresult *res = NULL;
    td_st st = pg_row(c, c->in_job ? &q_op_get_lock : &q_op_get, &p, &res);
    if (st == TD_ST_OK) read_op(res, out);
    PQclear(res);
    return st;
}

static pg_query q_op_update = {
    .sql = "UPDATE operations SET status = $3, error_code = $4, end_ms = $5 WHERE issuer_id = $1 AND id = $2"};

static td_st v_op_update(td_conn *c, const td_operation_rec *o)
{
    pg_params p = {0};
    pg_p_text(&p, o->issuer_id);
    pg_p_text(&p, o->id);
    pg_p_text(&p, o->status);
    pg_p_text(&p, o->error_code);
    pg_p_int(&p, o->end_ms);
    int64_t n = 0;
    td_st st = pg_cmd(c, &q_op_update, &p, &n);
    if (st == TD_ST_OK && n == 0) st = TD_ST_NOT_FOUND;
    return st;
}

void pg_operations_verbs(td_store_ops *ops)
{
    ops->op_insert = v_op_insert;
    ops->op_get = v_op_get;
    ops->op_update = v_op_update;
}
