/* pg/requests.c — token requests and their one-time consent codes: its SQL,
 * and the code that binds and reads it. */
#include <stdlib.h>
#include <string.h>

#include "store/pg/pgs.h"

#define REQ_COLS                                                                                                       \
    "id, kind, from_id, to_id, state, created_ms, expires_ms, request_json, token_id, "                                \
    "signature_json, consent_hash, consent_expires_ms, consent_used"

static pg_query q_req_insert = {.sql = "INSERT INTO token_requests(" REQ_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, "
                                       "$8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING"};

static td_st v_request_insert(td_conn *c, const td_request_rec *r)
{
    /* SQLite refuses it as a NOT NULL constraint (CONFLICT); a failed statement
     * here would abort the writer's transaction. */
    if (!r->request_json) return TD_ST_CONFLICT;
    pg_params p = {0};
    pg_p_text(&p, r->id);
    pg_p_int(&p, (int)r->kind);
    pg_p_text(&p, r->from_id);
    pg_p_text(&p, r->to_id);
    pg_p_int(&p, (int)r->state);
    pg_p_int(&p, r->created_ms);
    pg_p_int(&p, r->expires_ms);
    pg_p_text(&p, r->request_json);
    pg_p_text(&p, r->token_id);
    pg_p_text(&p, r->signature_json);
    pg_p_text(&p, r->consent_hash);
    pg_p_int(&p, r->consent_expires_ms);
    pg_p_int(&p, r->consent_used);
    int64_t changed = 0;
    td_st st = pg_cmd(c, &q_req_insert, &p, &changed);
    if (st == TD_ST_OK && changed == 0) st = TD_ST_CONFLICT;
    return st;
}

static void read_request(const PGresult *res, td_request_rec *r)
{
    memset(r, 0, sizeof *r);
    pg_copy(res, 0, 0, r->id, sizeof r->id);
    r->kind = (td_kind)pg_i64(res, 0, 1);
    pg_copy(res, 0, 2, r->from_id, sizeof r->from_id);
    pg_copy(res, 0, 3, r->to_id, sizeof r->to_id);
    r->state = (td_request_state)pg_i64(res, 0, 4);
    r->created_ms = pg_i64(res, 0, 5);
    r->expires_ms = pg_i64(res, 0, 6);
    r->request_json = pg_dup(res, 0, 7);
    pg_copy(res, 0, 8, r->token_id, sizeof r->token_id);
    r->signature_json = pg_dup(res, 0, 9);
    pg_copy(res, 0, 10, r->consent_hash, sizeof r->consent_hash);
    r->consent_expires_ms = pg_i64(res, 0, 11);
    r->consent_used = pg_i64(res, 0, 12) != 0;
}

static pg_query q_req_get = {.sql = "SELECT " REQ_COLS " FROM token_requests WHERE id = $1"};
static pg_query q_req_get_locked = {.sql = "SELECT " REQ_COLS " FROM token_requests WHERE id = $1 FOR UPDATE"};

/* Inside a job the row is read FOR UPDATE (`locked`): the job decides on it
 * and then updates it, and a job on another node must wait for that. So a
 * consent code works once across nodes: a second job waits for the first's
 * commit, then reads the row as it left it (used, or a newer code's hash). */
static td_st v_request_get(td_conn *c, const char *id, td_request_rec *out)
{
    pg_params p = {0};
    pg_p_text(&p, id);
    PGresult *res;
    td_st r = pg_row(c, c->in_job ? &q_req_get_locked : &q_req_get, &p, &res);
    if (r != TD_ST_OK) return r;
    read_request(res, out);
    PQclear(res);
    return TD_ST_OK;
}

static pg_query q_req_update = {.sql = "UPDATE token_requests SET state = $2, token_id = $3, signature_json = $4, "
                                       "consent_hash = $5, consent_expires_ms = $6, consent_used = $7 WHERE id = $1"};

static td_st v_request_update(td_conn *c, const td_request_rec *r)
{
    pg_params p = {0};
    pg_p_text(&p, r->id);
    pg_p_int(&p, (int)r->state);
    pg_p_text(&p, r->token_id);
    pg_p_text(&p, r->signature_json);
    pg_p_text(&p, r->consent_hash);
    pg_p_int(&p, r->consent_expires_ms);
    pg_p_int(&p, r->consent_used);
    int64_t changed = 0;
    td_st st = pg_cmd(c, &q_req_update, &p, &changed);
    if (st == TD_ST_OK && changed == 0) st = TD_ST_NOT_FOUND;
    return st;
}

void pg_requests_verbs(td_store_ops *ops)
{
    ops->request_insert = v_request_insert;
    ops->request_get = v_request_get;
    ops->request_update = v_request_update;
}
