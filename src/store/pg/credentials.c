/* pg/credentials.c — API keys (stored as keyed hashes), their revocation, and
 * the credential audit log (credential_events): SQL and bindings. */
#include <string.h>

#include "store/pg/pgs.h"

#define CRED_COLS "hash, key_id, kind, owner_id, level, role, created_ms, revoked_ms, cert_sha256"

static void read_cred(PGresult *res, int row, td_cred_rec *out)
{
    pg_copy(res, row, 0, out->hash, sizeof out->hash);
    pg_copy(res, row, 1, out->key_id, sizeof out->key_id);
    out->kind = (td_cred_kind)pg_i64(res, row, 2);
    pg_copy(res, row, 3, out->owner_id, sizeof out->owner_id);
    out->level = (td_level)pg_i64(res, row, 4);
    pg_copy(res, row, 5, out->role, sizeof out->role);
    out->created_ms = pg_i64(res, row, 6);
    out->revoked_ms = pg_i64(res, row, 7);
    pg_copy(res, row, 8, out->cert_sha256, sizeof out->cert_sha256);
}

static pg_query q_cred_insert = {.sql = "INSERT INTO credentials(" CRED_COLS
                                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8) ON CONFLICT DO NOTHING"};

static td_st v_cred_insert(td_conn *c, const td_cred_rec *k)
{
    pg_params p = {0};
    pg_p_text(&p, k->hash);
    pg_p_text(&p, k->key_id);
    pg_p_int(&p, (int)k->kind);
    pg_p_text(&p, k->owner_id);
    pg_p_int(&p, (int)k->level);
    pg_p_text(&p, k->role);
    pg_p_int(&p, k->created_ms);
    pg_p_text(&p, k->cert_sha256);
    int64_t changed = 0;
    td_st r = pg_cmd(c, &q_cred_insert, &p, &changed);
    return r == TD_ST_OK && changed == 0 ? TD_ST_CONFLICT : r;
}

static pg_query q_cred_get = {.sql = "SELECT " CRED_COLS " FROM credentials WHERE hash = $1"};

static td_st v_cred_get(td_conn *c, const char *hash, td_cred_rec *out)
{
    pg_params p = {0};
    pg_p_text(&p, hash);
    PGresult *res;
    td_st r = pg_row(c, &q_cred_get, &p, &res);
    if (r != TD_ST_OK) return r;
    read_cred(res, 0, out);
    PQclear(res);
    return TD_ST_OK;
}

static pg_query q_cred_bind = {
    .sql = "UPDATE credentials SET cert_sha256 = $4 WHERE hash = $1 AND kind = $2 AND owner_id = $3"};

static td_st v_cred_bind(td_conn *c, const char *hash, td_cred_kind kind, const char *owner_id,
                         const char *cert_sha256)
{
    pg_params p = {0};
    pg_p_text(&p, hash);
    pg_p_int(&p, (int)kind);
    pg_p_text(&p, owner_id);
    pg_p_text(&p, cert_sha256);
    int64_t changed = 0;
    td_st r = pg_cmd(c, &q_cred_bind, &p, &changed);
    return r == TD_ST_OK && changed == 0 ? TD_ST_NOT_FOUND : r;
}

/* One statement: the row as it is after the update, whether this call revoked
 * it or an earlier one did (then its first time stays). */
static pg_query q_cred_revoke = {
    .sql = "WITH u AS (UPDATE credentials SET revoked_ms = $4 WHERE owner_id = $2 AND kind = $1 AND key_id = $3 "
           "AND revoked_ms = 0 RETURNING " CRED_COLS ") "
           "SELECT " CRED_COLS " FROM u UNION ALL SELECT " CRED_COLS " FROM credentials "
           "WHERE owner_id = $2 AND kind = $1 AND key_id = $3 AND NOT EXISTS (SELECT 1 FROM u)"};

static td_st v_cred_revoke(td_conn *c, td_cred_kind kind, const char *owner_id, const char *key_id, int64_t now_ms,
                           td_cred_rec *out)
{
    pg_params p = {0};
    pg_p_int(&p, (int)kind);
    pg_p_text(&p, owner_id);
    pg_p_text(&p, key_id);
    pg_p_int(&p, now_ms);
    PGresult *res;
    td_st r = pg_row(c, &q_cred_revoke, &p, &res);
    if (r != TD_ST_OK) return r;
    read_cred(res, 0, out);
    PQclear(res);
    return TD_ST_OK;
}

static pg_query q_cred_list = {.sql = "SELECT " CRED_COLS " FROM credentials WHERE owner_id = $2 AND kind = $1 "
                                      "ORDER BY created_ms, key_id"};

static td_st v_cred_list(td_conn *c, td_cred_kind kind, const char *owner_id, void (*fn)(const td_cred_rec *, void *),
                         void *arg)
{
    pg_params p = {0};
    pg_p_int(&p, (int)kind);
    pg_p_text(&p, owner_id);
    PGresult *res;
    td_st r = pg_rows(c, &q_cred_list, &p, &res);
    if (r != TD_ST_OK) return r;
    td_cred_rec k;
    for (int i = 0; i < PQntuples(res); i++) {
        read_cred(res, i, &k);
        fn(&k, arg);
    }
    PQclear(res);
    return TD_ST_OK;
}

static pg_query q_event_append = {.sql = "INSERT INTO credential_events(time_ms, type, owner_kind, owner_id, key_id, "
                                         "detail_json) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"};

static td_st v_credevent_append(td_conn *c, td_credevent_rec *e)
{
    pg_params p = {0};
    pg_p_int(&p, e->time_ms);
    pg_p_text(&p, e->type);
    pg_p_text(&p, e->owner_kind);
    pg_p_text(&p, e->owner_id);
    pg_p_text(&p, e->key_id);
    pg_p_text(&p, e->detail_json[0] ? e->detail_json : "{}");
    PGresult *res;
    td_st r = pg_row(c, &q_event_append, &p, &res);
    if (r != TD_ST_OK) return r == TD_ST_NOT_FOUND ? TD_ST_ERROR : r;
    e->id = pg_i64(res, 0, 0);
    PQclear(res);
    return TD_ST_OK;
}

static pg_query q_event_list = {.sql = "SELECT id, time_ms, type, owner_kind, owner_id, key_id, detail_json "
                                       "FROM credential_events WHERE id > $1 ORDER BY id LIMIT $2"};

static td_st v_credevent_list(td_conn *c, int64_t after_id, int limit, void (*fn)(const td_credevent_rec *, void *),
                              void *arg)
{
    pg_params p = {0};
    pg_p_int(&p, after_id);
    pg_p_int(&p, limit);
    PGresult *res;
    td_st r = pg_rows(c, &q_event_list, &p, &res);
    if (r != TD_ST_OK) return r;
    td_credevent_rec e;
    for (int i = 0; i < PQntuples(res); i++) {
        memset(&e, 0, sizeof e);
        e.id = pg_i64(res, i, 0);
        e.time_ms = pg_i64(res, i, 1);
        pg_copy(res, i, 2, e.type, sizeof e.type);
        pg_copy(res, i, 3, e.owner_kind, sizeof e.owner_kind);
        pg_copy(res, i, 4, e.owner_id, sizeof e.owner_id);
        pg_copy(res, i, 5, e.key_id, sizeof e.key_id);
        pg_copy(res, i, 6, e.detail_json, sizeof e.detail_json);
        fn(&e, arg);
    }
    PQclear(res);
    return TD_ST_OK;
}

void pg_credentials_verbs(td_store_ops *ops)
{
    ops->cred_insert = v_cred_insert;
    ops->cred_get = v_cred_get;
    ops->cred_bind = v_cred_bind;
    ops->cred_revoke = v_cred_revoke;
    ops->cred_list = v_cred_list;
    ops->credevent_append = v_credevent_append;
    ops->credevent_list = v_credevent_list;
}
