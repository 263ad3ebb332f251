/* pg/members.c — members, their signing keys, issuers and
 * their card policy: its SQL, and the code that binds and reads it. */
#include <stdlib.h>
#include <string.h>

#include "store/pg/pgs.h"


/* Runs a write that must touch a row; `none` is the answer when it touched none. */
static td_st cmd_one(td_conn *c, pg_query *q, const pg_params *p, td_st none)
{
    int64_t changed = 0;
    td_st r = pg_cmd(c, q, p, &changed);
    if (r == TD_ST_OK && changed == 0) r = none;
    return r;
}

/* Members and issuers are never updated or deleted (only the
 * policy, replaced whole): their reads take no row lock even inside a job. */

static pg_query q_member_insert = {.sql = "INSERT INTO members(id, display_name, created_ms) VALUES ($1, $2, $3) "
                                          "ON CONFLICT DO NOTHING"};

static td_st v_member_insert(td_conn *c, const td_member_rec *m)
{
    pg_params p = {0};
    pg_p_text(&p, m->id);
    pg_p_text(&p, m->display_name);
    pg_p_int(&p, m->created_ms);
    return cmd_one(c, &q_member_insert, &p, TD_ST_CONFLICT);
}

static pg_query q_member_get = {.sql = "SELECT id, display_name, created_ms FROM members WHERE id = $1"};

static td_st v_member_get(td_conn *c, const char *id, td_member_rec *out)
{
    pg_params p = {0};
    pg_p_text(&p, id);
    PGresult *res;
    td_st r = pg_row(c, &q_member_get, &p, &res);
    if (r != TD_ST_OK) return r;
    pg_copy(res, 0, 0, out->id, sizeof out->id);
    pg_copy(res, 0, 1, out->display_name, sizeof out->display_name);
    out->created_ms = pg_i64(res, 0, 2);
    PQclear(res);
    return TD_ST_OK;
}

/* SQLite refuses a key of an unknown member with a foreign key error, which
 * reads as CONFLICT; here the EXISTS keeps that answer without a failed
 * statement (which would abort the writer's transaction). */
static pg_query q_key_insert = {.sql = "INSERT INTO member_keys(" PG_KEY_COLS ") "
                                       "SELECT $1::text, $2::text, $3::integer, $4::text, $5::bytea, $6::bytea, "
                                       "$7::bigint, $8::bigint WHERE EXISTS (SELECT 1 FROM members WHERE id = $1) "
                                       "ON CONFLICT DO NOTHING"};

static td_st v_key_insert(td_conn *c, const td_key_rec *k)
{
    pg_params p = {0};
    pg_p_text(&p, k->member_id);
    pg_p_text(&p, k->key_id);
    pg_p_int(&p, (int)k->level);
    pg_p_text(&p, k->algorithm);
    pg_p_blob(&p, k->public_key, sizeof k->public_key);
    pg_p_blob(&p, k->sealed_secret, k->sealed_len); /* 0: NULL, a submitted key */
    pg_p_int(&p, k->created_ms);
    pg_p_int(&p, k->expires_ms);
    return cmd_one(c, &q_key_insert, &p, TD_ST_CONFLICT);
}

/* The key in columns col0.. (PG_KEY_COLS); all zero when they are NULL (an
 * outer join that found none). */
void pg_read_key(const PGresult *res, int row, int col0, td_key_rec *k)
{
    memset(k, 0, sizeof *k);
    if (PQgetisnull(res, row, col0)) return;
    pg_copy(res, row, col0, k->member_id, sizeof k->member_id);
    pg_copy(res, row, col0 + 1, k->key_id, sizeof k->key_id);
    k->level = (td_level)pg_i64(res, row, col0 + 2);
    pg_copy(res, row, col0 + 3, k->algorithm, sizeof k->algorithm);
    /* like SQLite: a public key of any other length reads as zeros */
    if (pg_blob(res, row, col0 + 4, k->public_key, sizeof k->public_key) != sizeof k->public_key)
        memset(k->public_key, 0, sizeof k->public_key);
    k->sealed_len = pg_blob(res, row, col0 + 5, k->sealed_secret, sizeof k->sealed_secret);
    k->created_ms = pg_i64(res, row, col0 + 6);
    k->expires_ms = pg_i64(res, row, col0 + 7);
}

static td_st key_one(td_conn *c, pg_query *q, const pg_params *p, td_key_rec *out)
{
    PGresult *res;
    td_st r = pg_row(c, q, p, &res);
    if (r != TD_ST_OK) return r;
    pg_read_key(res, 0, 0, out);
    PQclear(res);
    return TD_ST_OK;
}

static pg_query q_key_get = {.sql = "SELECT " PG_KEY_COLS " FROM member_keys WHERE member_id = $1 AND key_id = $2"};

static td_st v_key_get(td_conn *c, const char *member_id, const char *key_id, td_key_rec *out)
{
    pg_params p = {0};
    pg_p_text(&p, member_id);
    pg_p_text(&p, key_id);
    return key_one(c, &q_key_get, &p, out);
}

/* Keys of one level created in the same millisecond tie: SQLite's plan then
 * returns the last inserted, which member_keys cannot tell here (no insertion
 * order column); either one is a generated key of that level. */
static pg_query q_key_for_level = {.sql = "SELECT " PG_KEY_COLS " FROM member_keys WHERE member_id = $1 AND level = $2 "
                                          "AND sealed_secret IS NOT NULL ORDER BY created_ms DESC LIMIT 1"};

static td_st v_key_for_level(td_conn *c, const char *member_id, td_level level, td_key_rec *out)
{
    pg_params p = {0};
    pg_p_text(&p, member_id);
    pg_p_int(&p, (int)level);
    return key_one(c, &q_key_for_level, &p, out);
}

/* COLLATE "C": key ids compare bytewise, as SQLite's BINARY collation does,
 * whatever the database's locale. */
static pg_query q_key_list = {.sql = "SELECT " PG_KEY_COLS " FROM member_keys WHERE member_id = $1 "
                                     "ORDER BY created_ms, key_id COLLATE \"C\""};

/* fn runs once the whole result is here: it may use this connection. */
static td_st v_key_list(td_conn *c, const char *member_id, void (*fn)(const td_key_rec *, void *), void *arg)
{
    pg_params p = {0};
    pg_p_text(&p, member_id);
    PGresult *res;
    td_st r = pg_rows(c, &q_key_list, &p, &res);
    if (r != TD_ST_OK) return r;
    td_key_rec k;
    for (int i = 0, n = PQntuples(res); i < n; i++) {
        pg_read_key(res, i, 0, &k);
        fn(&k, arg);
    }
    PQclear(res);
    return TD_ST_OK;
}

static pg_query q_key_delete = {.sql = "DELETE FROM member_keys WHERE member_id = $1 AND key_id = $2"};

static td_st v_key_delete(td_conn *c, const char *member_id, const char *key_id)
{
    pg_params p = {0};
    pg_p_text(&p, member_id);
    pg_p_text(&p, key_id);
    return cmd_one(c, &q_key_delete, &p, TD_ST_NOT_FOUND);
}

static pg_query q_issuer_insert = {.sql = "INSERT INTO issuers(id, display_name, created_ms) VALUES ($1, $2, $3) "
                                          "ON CONFLICT DO NOTHING"};

static td_st v_issuer_insert(td_conn *c, const td_issuer_rec *i)
{
    pg_params p = {0};
    pg_p_text(&p, i->id);
    pg_p_text(&p, i->display_name);
    pg_p_int(&p, i->created_ms);
    return cmd_one(c, &q_issuer_insert, &p, TD_ST_CONFLICT);
}

static pg_query q_issuer_get = {.sql = "SELECT id, display_name, created_ms FROM issuers WHERE id = $1"};

static td_st v_issuer_get(td_conn *c, const char *id, td_issuer_rec *out)
{
    pg_params p = {0};
    pg_p_text(&p, id);
    PGresult *res;
    td_st r = pg_row(c, &q_issuer_get, &p, &res);
    if (r != TD_ST_OK) return r;
    pg_copy(res, 0, 0, out->id, sizeof out->id);
    pg_copy(res, 0, 1, out->display_name, sizeof out->display_name);
    out->created_ms = pg_i64(res, 0, 2);
    PQclear(res);
    return TD_ST_OK;
}

static pg_query q_policy_get = {.sql = "SELECT card_policy_json FROM issuers WHERE id = $1"};

static td_st v_issuer_policy_get(td_conn *c, const char *issuer_id, char **json_out)
{
    pg_params p = {0};
    pg_p_text(&p, issuer_id);
    PGresult *res;
    td_st r = pg_row(c, &q_policy_get, &p, &res);
    if (r != TD_ST_OK) return r;
    char *json = pg_dup(res, 0, 0);
    PQclear(res);
    if (!json) return TD_ST_ERROR;
    *json_out = json;
    return TD_ST_OK;
}

static pg_query q_policy_put = {.sql = "UPDATE issuers SET card_policy_json = $2 WHERE id = $1"};

static td_st v_issuer_policy_put(td_conn *c, const char *issuer_id, const char *json)
{
    pg_params p = {0};
    pg_p_text(&p, issuer_id);
    pg_p_text(&p, json ? json : "");
    return cmd_one(c, &q_policy_put, &p, TD_ST_NOT_FOUND);
}

void pg_members_verbs(td_store_ops *ops)
{
    ops->member_insert = v_member_insert;
    ops->member_get = v_member_get;
    ops->key_insert = v_key_insert;
    ops->key_get = v_key_get;
    ops->key_for_level = v_key_for_level;
    ops->key_list = v_key_list;
    ops->key_delete = v_key_delete;
    ops->issuer_insert = v_issuer_insert;
    ops->issuer_get = v_issuer_get;
    ops->issuer_policy_get = v_issuer_policy_get;
    ops->issuer_policy_put = v_issuer_policy_put;
}
