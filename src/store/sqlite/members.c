/* sqlite/members.c — members, their signing keys, issuers and
 * their card policy: its SQL, and the code that binds and reads it. */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/sq.h"

#define KEY_COLS "member_id, key_id, level, algorithm, public_key, sealed_secret, created_ms, expires_ms"

static sq_query q_member_insert = {.sql = "INSERT INTO members(id, display_name, created_ms) VALUES (?1, ?2, ?3)"};

static td_st v_member_insert(td_conn *c, const td_member_rec *m)
{
    sqlite3_stmt *st = sq_stmt(c, &q_member_insert);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, m->id);
    sq_bind_text(st, 2, m->display_name);
    sqlite3_bind_int64(st, 3, m->created_ms);
    return sq_step_done(st);
}

static sq_query q_member_get = {.sql = "SELECT id, display_name, created_ms FROM members WHERE id = ?1"};

static td_st v_member_get(td_conn *c, const char *id, td_member_rec *out)
{
    sqlite3_stmt *st = sq_stmt(c, &q_member_get);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, id);
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) {
        sq_col_copy(st, 0, out->id, sizeof out->id);
        sq_col_copy(st, 1, out->display_name, sizeof out->display_name);
        out->created_ms = sqlite3_column_int64(st, 2);
    }
    sq_finish(st);
    return r;
}

static sq_query q_key_insert = {.sql = "INSERT INTO member_keys(" KEY_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"};

static td_st v_key_insert(td_conn *c, const td_key_rec *k)
{
    sqlite3_stmt *st = sq_stmt(c, &q_key_insert);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, k->member_id);
    sq_bind_text(st, 2, k->key_id);
    sqlite3_bind_int(st, 3, (int)k->level);
    sq_bind_text(st, 4, k->algorithm);
    sqlite3_bind_blob(st, 5, k->public_key, sizeof k->public_key, SQLITE_STATIC);
    if (k->sealed_len)
        sqlite3_bind_blob(st, 6, k->sealed_secret, (int)k->sealed_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 6);
    sqlite3_bind_int64(st, 7, k->created_ms);
    sqlite3_bind_int64(st, 8, k->expires_ms);
    return sq_step_done(st);
}

static void read_key(sqlite3_stmt *st, td_key_rec *k)
{
    memset(k, 0, sizeof *k);
    sq_col_copy(st, 0, k->member_id, sizeof k->member_id);
    sq_col_copy(st, 1, k->key_id, sizeof k->key_id);
    k->level = (td_level)sqlite3_column_int(st, 2);
    sq_col_copy(st, 3, k->algorithm, sizeof k->algorithm);
    int n = sqlite3_column_bytes(st, 4);
    if (n == (int)sizeof k->public_key) memcpy(k->public_key, sqlite3_column_blob(st, 4), (size_t)n);
    n = sqlite3_column_bytes(st, 5);
    if (n > 0 && n <= (int)sizeof k->sealed_secret) {
        memcpy(k->sealed_secret, sqlite3_column_blob(st, 5), (size_t)n);
        k->sealed_len = (size_t)n;
    }
    k->created_ms = sqlite3_column_int64(st, 6);
    k->expires_ms = sqlite3_column_int64(st, 7);
}

static sq_query q_key_get = {.sql = "SELECT " KEY_COLS " FROM member_keys WHERE member_id = ?1 AND key_id = ?2"};

static td_st v_key_get(td_conn *c, const char *member_id, const char *key_id, td_key_rec *out)
{
    sqlite3_stmt *st = sq_stmt(c, &q_key_get);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, member_id);
    sq_bind_text(st, 2, key_id);
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) read_key(st, out);
    sq_finish(st);
    return r;
}

static sq_query q_key_for_level = {.sql = "SELECT " KEY_COLS " FROM member_keys WHERE member_id = ?1 AND level = ?2 "
                                          "AND sealed_secret IS NOT NULL ORDER BY created_ms DESC LIMIT 1"};

td_st sq_key_for_level(td_conn *c, const char *member_id, td_level level, td_key_rec *out)
{
    sqlite3_stmt *st = sq_stmt(c, &q_key_for_level);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, member_id);
    sqlite3_bind_int(st, 2, (int)level);
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) read_key(st, out);
    sq_finish(st);
    return r;
}

static sq_query q_key_list = {.sql = "SELECT " KEY_COLS
                                     " FROM member_keys WHERE member_id = ?1 ORDER BY created_ms, key_id"};

static td_st v_key_list(td_conn *c, const char *member_id, void (*fn)(const td_key_rec *, void *), void *arg)
{
    sqlite3_stmt *st = sq_stmt(c, &q_key_list);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, member_id);
    int rc;
    td_key_rec k;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_key(st, &k);
        fn(&k, arg);
    }
    sq_finish(st);
    return rc == SQLITE_DONE ? TD_ST_OK : sq_map_rc(rc);
}

static sq_query q_key_delete = {.sql = "DELETE FROM member_keys WHERE member_id = ?1 AND key_id = ?2"};

static td_st v_key_delete(td_conn *c, const char *member_id, const char *key_id)
{
    sqlite3_stmt *st = sq_stmt(c, &q_key_delete);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, member_id);
    sq_bind_text(st, 2, key_id);
    td_st r = sq_step_done(st);
    if (r == TD_ST_OK && sqlite3_changes(c->db) == 0) r = TD_ST_NOT_FOUND;
    return r;
}

static sq_query q_issuer_insert = {.sql = "INSERT INTO issuers(id, display_name, created_ms) VALUES (?1, ?2, ?3)"};

static td_st v_issuer_insert(td_conn *c, const td_issuer_rec *i)
{
    sqlite3_stmt *st = sq_stmt(c, &q_issuer_insert);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, i->id);
    sq_bind_text(st, 2, i->display_name);
    sqlite3_bind_int64(st, 3, i->created_ms);
    return sq_step_done(st);
}

static sq_query q_issuer_get = {.sql = "SELECT id, display_name, created_ms FROM issuers WHERE id = ?1"};

static td_st v_issuer_get(td_conn *c, const char *id, td_issuer_rec *out)
{
    sqlite3_stmt *st = sq_stmt(c, &q_issuer_get);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, id);
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) {
        sq_col_copy(st, 0, out->id, sizeof out->id);
        sq_col_copy(st, 1, out->display_name, sizeof out->display_name);
        out->created_ms = sqlite3_column_int64(st, 2);
    }
    sq_finish(st);
    return r;
}

static sq_query q_policy_get = {.sql = "SELECT card_policy_json FROM issuers WHERE id = ?1"};

static td_st v_issuer_policy_get(td_conn *c, const char *issuer_id, char **json_out)
{
    sqlite3_stmt *st = sq_stmt(c, &q_policy_get);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, issuer_id);
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) {
        *json_out = sq_col_dup(st, 0);
        if (!*json_out) r = TD_ST_ERROR;
    }
    sq_finish(st);
    return r;
}

static sq_query q_policy_put = {.sql = "UPDATE issuers SET card_policy_json = ?2 WHERE id = ?1"};

static td_st v_issuer_policy_put(td_conn *c, const char *issuer_id, const char *json)
{
    sqlite3_stmt *st = sq_stmt(c, &q_policy_put);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, issuer_id);
    sq_bind_text(st, 2, json ? json : "");
    td_st r = sq_step_done(st);
    if (r == TD_ST_OK && sqlite3_changes(c->db) == 0) r = TD_ST_NOT_FOUND;
    return r;
}

void sq_members_verbs(td_store_ops *ops)
{
    ops->member_insert = v_member_insert;
    ops->member_get = v_member_get;
    ops->key_insert = v_key_insert;
    ops->key_get = v_key_get;
    ops->key_for_level = sq_key_for_level;
    ops->key_list = v_key_list;
    ops->key_delete = v_key_delete;
    ops->issuer_insert = v_issuer_insert;
    ops->issuer_get = v_issuer_get;
    ops->issuer_policy_get = v_issuer_policy_get;
    ops->issuer_policy_put = v_issuer_policy_put;
}
