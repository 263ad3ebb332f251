/* sqlite/credentials.c — API keys (stored as keyed hashes), their revocation,
 * and the credential audit log (credential_events): SQL and bindings. */
#include <string.h>

#include "store/sqlite/sq.h"

#define CRED_COLS "hash, key_id, kind, owner_id, level, role, created_ms, revoked_ms, cert_sha256"

static void read_cred(sqlite3_stmt *st, td_cred_rec *out)
{
    sq_col_copy(st, 0, out->hash, sizeof out->hash);
    sq_col_copy(st, 1, out->key_id, sizeof out->key_id);
    out->kind = (td_cred_kind)sqlite3_column_int(st, 2);
    sq_col_copy(st, 3, out->owner_id, sizeof out->owner_id);
    out->level = (td_level)sqlite3_column_int(st, 4);
    sq_col_copy(st, 5, out->role, sizeof out->role);
    out->created_ms = sqlite3_column_int64(st, 6);
    out->revoked_ms = sqlite3_column_int64(st, 7);
    sq_col_copy(st, 8, out->cert_sha256, sizeof out->cert_sha256);
}

static sq_query q_cred_insert = {.sql = "INSERT INTO credentials(" CRED_COLS
                                        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8)"};

static td_st v_cred_insert(td_conn *c, const td_cred_rec *k)
{
    sqlite3_stmt *st = sq_stmt(c, &q_cred_insert);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, k->hash);
    sq_bind_text(st, 2, k->key_id);
    sqlite3_bind_int(st, 3, (int)k->kind);
    sq_bind_text(st, 4, k->owner_id);
    sqlite3_bind_int(st, 5, (int)k->level);
    sq_bind_text(st, 6, k->role);
    sqlite3_bind_int64(st, 7, k->created_ms);
    sq_bind_text(st, 8, k->cert_sha256);
    return sq_step_done(st);
}

static sq_query q_cred_get = {.sql = "SELECT " CRED_COLS " FROM credentials WHERE hash = ?1"};

static td_st v_cred_get(td_conn *c, const char *hash, td_cred_rec *out)
{
    sqlite3_stmt *st = sq_stmt(c, &q_cred_get);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, hash);
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) read_cred(st, out);
    sq_finish(st);
    return r;
}

static sq_query q_cred_bind = {
    .sql = "UPDATE credentials SET cert_sha256 = ?4 WHERE hash = ?1 AND kind = ?2 AND owner_id = ?3"};

static td_st v_cred_bind(td_conn *c, const char *hash, td_cred_kind kind, const char *owner_id,
                         const char *cert_sha256)
{
    sqlite3_stmt *st = sq_stmt(c, &q_cred_bind);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, hash);
    sqlite3_bind_int(st, 2, (int)kind);
    sq_bind_text(st, 3, owner_id);
    sq_bind_text(st, 4, cert_sha256);
    td_st r = sq_step_done(st);
    if (r == TD_ST_OK && sqlite3_changes(c->db) == 0) r = TD_ST_NOT_FOUND;
    return r;
}

static sq_query q_cred_revoke = {.sql = "UPDATE credentials SET revoked_ms = ?4 WHERE owner_id = ?2 AND kind = ?1 "
                                        "AND key_id = ?3 AND revoked_ms = 0"};
static sq_query q_cred_by_id = {.sql = "SELECT " CRED_COLS
                                       " FROM credentials WHERE owner_id = ?2 AND kind = ?1 AND key_id = ?3"};

static td_st v_cred_revoke(td_conn *c, td_cred_kind kind, const char *owner_id, const char *key_id, int64_t now_ms,
                           td_cred_rec *out)
{
    sqlite3_stmt *st = sq_stmt(c, &q_cred_revoke);
    if (!st) return TD_ST_ERROR;
    sqlite3_bind_int(st, 1, (int)kind);
    sq_bind_text(st, 2, owner_id);
    sq_bind_text(st, 3, key_id);
    sqlite3_bind_int64(st, 4, now_ms);
    td_st r = sq_step_done(st);
    if (r != TD_ST_OK) return r;
    st = sq_stmt(c, &q_cred_by_id);
    if (!st) return TD_ST_ERROR;
    sqlite3_bind_int(st, 1, (int)kind);
    sq_bind_text(st, 2, owner_id);
    sq_bind_text(st, 3, key_id);
    r = sq_step_row(st);
    if (r == TD_ST_OK) read_cred(st, out);
    sq_finish(st);
    return r;
}

static sq_query q_cred_list = {.sql = "SELECT " CRED_COLS " FROM credentials WHERE owner_id = ?2 AND kind = ?1 "
                                      "ORDER BY created_ms, key_id"};

static td_st v_cred_list(td_conn *c, td_cred_kind kind, const char *owner_id, void (*fn)(const td_cred_rec *, void *),
                         void *arg)
{
    sqlite3_stmt *st = sq_stmt(c, &q_cred_list);
    if (!st) return TD_ST_ERROR;
    sqlite3_bind_int(st, 1, (int)kind);
    sq_bind_text(st, 2, owner_id);
    int rc;
    td_cred_rec k;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_cred(st, &k);
        fn(&k, arg);
    }
    sq_finish(st);
    return rc == SQLITE_DONE ? TD_ST_OK : sq_map_rc(rc);
}

static sq_query q_event_append = {.sql = "INSERT INTO credential_events(time_ms, type, owner_kind, owner_id, key_id, "
                                         "detail_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"};

static td_st v_credevent_append(td_conn *c, td_credevent_rec *e)
{
    sqlite3_stmt *st = sq_stmt(c, &q_event_append);
    if (!st) return TD_ST_ERROR;
    sqlite3_bind_int64(st, 1, e->time_ms);
    sq_bind_text(st, 2, e->type);
    sq_bind_text(st, 3, e->owner_kind);
    sq_bind_text(st, 4, e->owner_id);
    sq_bind_text(st, 5, e->key_id);
    sq_bind_text(st, 6, e->detail_json[0] ? e->detail_json : "{}");
    td_st r = sq_step_done(st);
    if (r == TD_ST_OK) e->id = sqlite3_last_insert_rowid(c->db);
    return r;
}

static sq_query q_event_list = {.sql = "SELECT id, time_ms, type, owner_kind, owner_id, key_id, detail_json "
                                       "FROM credential_events WHERE id > ?1 ORDER BY id LIMIT ?2"};

static td_st v_credevent_list(td_conn *c, int64_t after_id, int limit, void (*fn)(const td_credevent_rec *, void *),
                              void *arg)
{
    sqlite3_stmt *st = sq_stmt(c, &q_event_list);
    if (!st) return TD_ST_ERROR;
    sqlite3_bind_int64(st, 1, after_id);
    sqlite3_bind_int(st, 2, limit);
    int rc;
    td_credevent_rec e;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&e, 0, sizeof e);
        e.id = sqlite3_column_int64(st, 0);
        e.time_ms = sqlite3_column_int64(st, 1);
        sq_col_copy(st, 2, e.type, sizeof e.type);
        sq_col_copy(st, 3, e.owner_kind, sizeof e.owner_kind);
        sq_col_copy(st, 4, e.owner_id, sizeof e.owner_id);
        sq_col_copy(st, 5, e.key_id, sizeof e.key_id);
        sq_col_copy(st, 6, e.detail_json, sizeof e.detail_json);
        fn(&e, arg);
    }
    sq_finish(st);
    return rc == SQLITE_DONE ? TD_ST_OK : sq_map_rc(rc);
}

void sq_credentials_verbs(td_store_ops *ops)
{
    ops->cred_insert = v_cred_insert;
    ops->cred_get = v_cred_get;
    ops->cred_bind = v_cred_bind;
    ops->cred_revoke = v_cred_revoke;
    ops->cred_list = v_cred_list;
    ops->credevent_append = v_credevent_append;
    ops->credevent_list = v_credevent_list;
}
