/* sqlite/sealed.c — every value sealed with the master key, row by row in key
 * order, and writing it back resealed: what `tokenctl store rekey` walks
 * (docs/operations.md). One statement pair per kind of row. */
#include <string.h>

#include "store/sqlite/sq.h"

/* Per kind: the next row after (?1 owner, ?2 id or ?3 num) holding a sealed
 * value, and its update. Columns read: owner, id, num, blob, blob2, fp, text. */
static sq_query q_next[TD_SEALED_KINDS] = {
    [TD_SEALED_MEMBER_KEY] = {.sql = "SELECT member_id, key_id, 0, sealed_secret, NULL, '', NULL FROM member_keys "
                                     "WHERE length(sealed_secret) > 0 AND (member_id, key_id) > (?1, ?2) "
                                     "ORDER BY member_id, key_id LIMIT 1"},
    [TD_SEALED_CARD] = {.sql = "SELECT issuer_id, card_id, 0, pan_sealed, contact_sealed, pan_fp, NULL FROM cards "
                               "WHERE (issuer_id, card_id) > (?1, ?2) ORDER BY issuer_id, card_id LIMIT 1"},
    [TD_SEALED_DELIVERY] = {.sql = "SELECT issuer_id, '', 0, secret_sealed, NULL, '', NULL FROM issuer_delivery "
                                   "WHERE length(secret_sealed) > 0 AND issuer_id > ?1 ORDER BY issuer_id LIMIT 1"},
    [TD_SEALED_OUTBOX] = {.sql = "SELECT issuer_id, '', id, secret_sealed, NULL, '', NULL FROM outbox "
                                 "WHERE length(secret_sealed) > 0 AND (issuer_id, id) > (?1, ?3) "
                                 "ORDER BY issuer_id, id LIMIT 1"},
    [TD_SEALED_IDEM] = {.sql = "SELECT scope, key, 0, NULL, NULL, req_hash, body FROM idempotency "
                               "WHERE req_hash <> 'retired' AND (scope, key) > (?1, ?2) ORDER BY scope, key LIMIT 1"},
};

static sq_query q_put[TD_SEALED_KINDS] = {
    [TD_SEALED_MEMBER_KEY] = {.sql = "UPDATE member_keys SET sealed_secret = ?4 WHERE member_id = ?1 AND key_id = ?2"},
    [TD_SEALED_CARD] = {.sql = "UPDATE cards SET pan_sealed = ?4, contact_sealed = coalesce(?5, x''), pan_fp = ?6 "
                               "WHERE issuer_id = ?1 AND card_id = ?2"},
    [TD_SEALED_DELIVERY] = {.sql = "UPDATE issuer_delivery SET secret_sealed = ?4 WHERE issuer_id = ?1"},
    [TD_SEALED_OUTBOX] = {.sql = "UPDATE outbox SET secret_sealed = ?4 WHERE issuer_id = ?1 AND id = ?3"},
    [TD_SEALED_IDEM] = {.sql = "UPDATE idempotency SET body = ?7 WHERE scope = ?1 AND key = ?2"},
};

static td_st v_sealed_next(td_conn *c, td_sealed_kind kind, const td_sealed_rec *after, td_sealed_rec *out)
{
    if (kind < 0 || kind >= TD_SEALED_KINDS) return TD_ST_INTERNAL;
    sqlite3_stmt *st = sq_stmt(c, &q_next[kind]);
    if (!st) return TD_ST_ERROR;
    /* A statement's parameter count is its highest number: bind up to it
     * (a number below it that the SQL does not use is bound and ignored). */
    int np = sqlite3_bind_parameter_count(st);
    sqlite3_bind_text(st, 1, after->owner, -1, SQLITE_STATIC);
    if (np >= 2) sqlite3_bind_text(st, 2, after->id, -1, SQLITE_STATIC);
    if (np >= 3) sqlite3_bind_int64(st, 3, after->num);
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) {
        memset(out, 0, sizeof *out);
        out->kind = kind;
        sq_col_copy(st, 0, out->owner, sizeof out->owner);
        sq_col_copy(st, 1, out->id, sizeof out->id);
        out->num = sqlite3_column_int64(st, 2);
        out->blob_len = sq_col_blob(st, 3, out->blob, sizeof out->blob);
        out->blob2_len = sq_col_blob(st, 4, out->blob2, sizeof out->blob2);
        sq_col_copy(st, 5, out->fp, sizeof out->fp);
        out->text = sq_col_dup(st, 6);
        if ((size_t)sqlite3_column_bytes(st, 3) > sizeof out->blob ||
            (size_t)sqlite3_column_bytes(st, 4) > sizeof out->blob2 ||
            (sqlite3_column_type(st, 6) != SQLITE_NULL && !out->text))
            r = TD_ST_ERROR;
    }
    sq_finish(st);
    return r;
}

static td_st v_sealed_put(td_conn *c, const td_sealed_rec *r)
{
    if (r->kind < 0 || r->kind >= TD_SEALED_KINDS) return TD_ST_INTERNAL;
    sqlite3_stmt *st = sq_stmt(c, &q_put[r->kind]);
    if (!st) return TD_ST_ERROR;
    int np = sqlite3_bind_parameter_count(st);
    sqlite3_bind_text(st, 1, r->owner, -1, SQLITE_STATIC);
    if (np >= 2) sqlite3_bind_text(st, 2, r->id, -1, SQLITE_STATIC);
    if (np >= 3) sqlite3_bind_int64(st, 3, r->num);
    if (np >= 4) sqlite3_bind_blob(st, 4, r->blob, (int)r->blob_len, SQLITE_STATIC);
    if (np >= 5) sqlite3_bind_blob(st, 5, r->blob2, (int)r->blob2_len, SQLITE_STATIC);
    if (np >= 6) sqlite3_bind_text(st, 6, r->fp, -1, SQLITE_STATIC);
    if (np >= 7) sqlite3_bind_text(st, 7, r->text ? r->text : "", -1, SQLITE_STATIC);
    td_st res = sq_step_done(st);
    if (res == TD_ST_OK && sqlite3_changes(c->db) != 1) res = TD_ST_NOT_FOUND;
    return res;
}

void sq_sealed_verbs(td_store_ops *ops)
{
    ops->sealed_next = v_sealed_next;
    ops->sealed_put = v_sealed_put;
}
