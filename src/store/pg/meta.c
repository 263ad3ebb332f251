/* pg/meta.c — facts about the store itself (store_meta) and a sample of its
 * sealed data, for the master key check at start. */
#include <string.h>

#include "store/pg/pgs.h"

static pg_query q_meta_get = {.sql = "SELECT value FROM store_meta WHERE name = $1"};

/* A bytea cell into out (cap bytes); ERROR if it does not fit or is empty. */
static td_st blob_out(PGresult *res, uint8_t *out, size_t cap, size_t *len)
{
    *len = pg_blob(res, 0, 0, out, cap);
    PQclear(res);
    return *len ? TD_ST_OK : TD_ST_ERROR;
}

static td_st v_meta_get(td_conn *c, const char *name, uint8_t *value, size_t cap, size_t *len)
{
    pg_params p = {0};
    pg_p_text(&p, name);
    PGresult *res;
    td_st r = pg_row(c, &q_meta_get, &p, &res);
    return r == TD_ST_OK ? blob_out(res, value, cap, len) : r;
}

/* Two nodes starting at once both find no check and insert one: the second
 * gets CONFLICT and reads the first's (service/master_key.c). */
static pg_query q_meta_insert = {.sql = "INSERT INTO store_meta(name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING"};

static td_st v_meta_insert(td_conn *c, const char *name, const uint8_t *value, size_t len)
{
    pg_params p = {0};
    pg_p_text(&p, name);
    pg_p_blob(&p, value, len);
    int64_t changed = 0;
    td_st r = pg_cmd(c, &q_meta_insert, &p, &changed);
    return r == TD_ST_OK && changed == 0 ? TD_ST_CONFLICT : r;
}

static pg_query q_meta_put = {.sql = "INSERT INTO store_meta(name, value) VALUES ($1, $2) "
                                     "ON CONFLICT (name) DO UPDATE SET value = excluded.value"};

static td_st v_meta_put(td_conn *c, const char *name, const uint8_t *value, size_t len)
{
    pg_params p = {0};
    pg_p_text(&p, name);
    pg_p_blob(&p, value, len);
    return pg_cmd(c, &q_meta_put, &p, NULL);
}

static pg_query q_meta_delete = {.sql = "DELETE FROM store_meta WHERE name = $1"};

static td_st v_meta_delete(td_conn *c, const char *name)
{
    pg_params p = {0};
    pg_p_text(&p, name);
    return pg_cmd(c, &q_meta_delete, &p, NULL);
}

/* Sessions of serving nodes: every tokend session sets application_name
 * 'tokend' (conn.c); a tool that calls this names its own otherwise. Seeing
 * another role's sessions' names needs no privilege. */
static pg_query q_serving = {.sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                    "AND application_name = 'tokend' AND pid <> pg_backend_pid()"};

static td_st v_serving_sessions(td_conn *c, int64_t *n)
{
    pg_params p = {0};
    PGresult *res;
    td_st r = pg_row(c, &q_serving, &p, &res);
    if (r != TD_ST_OK) return r;
    *n = pg_i64(res, 0, 0);
    PQclear(res);
    return TD_ST_OK;
}

static pg_query q_sealed_sample = {.sql = "SELECT sealed_secret FROM member_keys WHERE length(sealed_secret) > 0 "
                                          "ORDER BY created_ms, key_id LIMIT 1"};

static td_st v_sealed_sample(td_conn *c, uint8_t *sealed, size_t cap, size_t *len)
{
    pg_params p = {0};
    PGresult *res;
    td_st r = pg_row(c, &q_sealed_sample, &p, &res);
    return r == TD_ST_OK ? blob_out(res, sealed, cap, len) : r;
}

void pg_meta_verbs(td_store_ops *ops)
{
    ops->meta_get = v_meta_get;
    ops->meta_insert = v_meta_insert;
    ops->meta_put = v_meta_put;
    ops->meta_delete = v_meta_delete;
    ops->serving_sessions = v_serving_sessions;
    ops->sealed_sample = v_sealed_sample;
}
