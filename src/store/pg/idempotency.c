/* pg/idempotency.c — stored answers to Idempotency-Key requests: its SQL, and
 * the code that binds and reads it. */
#include <stdlib.h>
#include <string.h>

#include "store/pg/pgs.h"
#include "util/util.h"

/* Two nodes handling the same key at once must not both run the use case: a
 * job first takes this (scope, key) lock, held until its transaction ends, so
 * the second waits for the first's commit and then finds the stored answer (a
 * replay). The lock is its own statement because the SELECT that follows must
 * take its snapshot after the wait (READ COMMITTED: one per statement). chr(31)
 * keeps ("ab", "c") and ("a", "bc") apart; a hash collision only serializes. */
static pg_query q_idem_lock = {.sql = "SELECT pg_advisory_xact_lock(hashtextextended($1::text || chr(31) || "
                                      "$2::text, 0))"};

static td_st idem_lock(td_conn *c, const char *scope, const char *key)
{
    pg_params p = {0};
    pg_p_text(&p, scope);
    pg_p_text(&p, key);
    PGresult *res;
    td_st r = pg_rows(c, &q_idem_lock, &p, &res);
    if (r == TD_ST_OK) PQclear(res);
    return r;
}

static pg_query q_idem_get = {.sql = "SELECT req_hash, status, body FROM idempotency WHERE scope = $1 AND key = $2"};

static td_st v_idem_get(td_conn *c, const char *scope, const char *key, td_idem_rec *out)
{
    if (c->in_job) {
        td_st r = idem_lock(c, scope, key);
        if (r != TD_ST_OK) return r;
    }
    pg_params p = {0};
    pg_p_text(&p, scope);
    pg_p_text(&p, key);
    PGresult *res;
    td_st r = pg_row(c, &q_idem_get, &p, &res);
    if (r != TD_ST_OK) return r;
    pg_copy(res, 0, 0, out->req_hash, sizeof out->req_hash);
    out->status = (int)pg_i64(res, 0, 1);
    out->body = pg_dup(res, 0, 2);
    PQclear(res);
    return TD_ST_OK;
}

static pg_query q_idem_put = {.sql = "INSERT INTO idempotency(scope, key, req_hash, status, body, created_ms) "
                                     "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"};

static td_st v_idem_put(td_conn *c, const char *scope, const char *key, const td_idem_rec *r)
{
    pg_params p = {0};
    pg_p_text(&p, scope);
    pg_p_text(&p, key);
    pg_p_text(&p, r->req_hash);
    pg_p_int(&p, r->status);
    pg_p_text(&p, r->body ? r->body : "");
    pg_p_int(&p, td_now_ms());
    int64_t changed = 0;
    td_st st = pg_cmd(c, &q_idem_put, &p, &changed);
    if (st == TD_ST_OK && changed == 0) st = TD_ST_CONFLICT;
    return st;
}

void pg_idempotency_verbs(td_store_ops *ops)
{
    ops->idem_get = v_idem_get;
    ops->idem_put = v_idem_put;
}
