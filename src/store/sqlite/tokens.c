/* sqlite/tokens.c — tokens and their event history: its SQL, and the code that
 * binds and reads it. */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/sq.h"

#define TOKEN_COLS                                                                                                     \
    "id, kind, state, from_id, to_id, issuer_id, ref_id, acting_as_ref_id, token_request_id, "                         \
    "replaced_by, canceled_by, created_ms, expires_ms, seq, json, payload_canonical, accounts_src, "                   \
    "accounts_dst"

static sq_query q_token_insert = {.sql =
                                      "INSERT INTO tokens(" TOKEN_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                                      "?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"};

static td_st v_token_insert(td_conn *c, const td_token_rec *t)
{
    sqlite3_stmt *st = sq_stmt(c, &q_token_insert);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, t->id);
    sqlite3_bind_int(st, 2, (int)t->kind);
    sqlite3_bind_int(st, 3, (int)t->state);
    sq_bind_text(st, 4, t->from_id);
    sq_bind_text(st, 5, t->to_id);
    sq_bind_text(st, 6, t->issuer_id);
    sq_bind_text(st, 7, t->ref_id);
    sq_bind_text(st, 8, t->acting_as_ref_id);
    sq_bind_text(st, 9, t->token_request_id);
    sq_bind_text(st, 10, t->replaced_by);
    sq_bind_text(st, 11, t->canceled_by);
    sqlite3_bind_int64(st, 12, t->created_ms);
    sqlite3_bind_int64(st, 13, t->expires_ms);
    sqlite3_bind_int64(st, 14, t->seq);
    sq_bind_text(st, 15, t->json);
    sq_bind_text(st, 16, t->payload_canonical);
    sq_bind_text(st, 17, t->accounts_src);
    sq_bind_text(st, 18, t->accounts_dst);
    return sq_step_done(st);
}

static void read_token(sqlite3_stmt *st, td_token_rec *t)
{
    memset(t, 0, sizeof *t);
    sq_col_copy(st, 0, t->id, sizeof t->id);
    t->kind = (td_kind)sqlite3_column_int(st, 1);
    t->state = (td_token_state)sqlite3_column_int(st, 2);
    sq_col_copy(st, 3, t->from_id, sizeof t->from_id);
    sq_col_copy(st, 4, t->to_id, sizeof t->to_id);
    sq_col_copy(st, 5, t->issuer_id, sizeof t->issuer_id);
    sq_col_copy(st, 6, t->ref_id, sizeof t->ref_id);
    sq_col_copy(st, 7, t->acting_as_ref_id, sizeof t->acting_as_ref_id);
    sq_col_copy(st, 8, t->token_request_id, sizeof t->token_request_id);
    sq_col_copy(st, 9, t->replaced_by, sizeof t->replaced_by);
    sq_col_copy(st, 10, t->canceled_by, sizeof t->canceled_by);
    t->created_ms = sqlite3_column_int64(st, 11);
    t->expires_ms = sqlite3_column_int64(st, 12);
    t->seq = sqlite3_column_int64(st, 13);
    t->json = sq_col_dup(st, 14);
    t->payload_canonical = sq_col_dup(st, 15);
    t->accounts_src = sq_col_dup(st, 16);
    t->accounts_dst = sq_col_dup(st, 17);
}

static sq_query q_token_get = {.sql = "SELECT " TOKEN_COLS " FROM tokens WHERE id = ?1"};

static td_st v_token_get(td_conn *c, const char *id, td_token_rec *out)
{
    sqlite3_stmt *st = sq_stmt(c, &q_token_get);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, id);
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) read_token(st, out);
    sq_finish(st);
    return r;
}

/* In process, two reads cost no more than one. */
static td_st v_token_get_signing(td_conn *c, const char *id, const char *member_id, td_level level, td_token_rec *out,
                                 td_key_rec *key)
{
    td_st r = v_token_get(c, id, out);
    if (r != TD_ST_OK) return r;
    r = sq_key_for_level(c, member_id, level, key);
    if (r == TD_ST_NOT_FOUND) {
        memset(key, 0, sizeof *key);
        r = TD_ST_OK;
    }
    if (r != TD_ST_OK) td_token_rec_free(out);
    return r;
}

static sq_query q_token_update = {.sql = "UPDATE tokens SET state = ?2, replaced_by = ?3, canceled_by = ?4, seq = ?5, "
                                         "json = ?6 WHERE id = ?1 AND seq = ?7"};

static td_st v_event_append(td_conn *c, const td_event_rec *e);

static td_st v_token_update(td_conn *c, const td_token_rec *t, int64_t expect_seq, const td_event_rec *ev)
{
    sqlite3_stmt *st = sq_stmt(c, &q_token_update);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, t->id);
    sqlite3_bind_int(st, 2, (int)t->state);
    sq_bind_text(st, 3, t->replaced_by);
    sq_bind_text(st, 4, t->canceled_by);
    sqlite3_bind_int64(st, 5, t->seq);
    sq_bind_text(st, 6, t->json);
    sqlite3_bind_int64(st, 7, expect_seq);
    td_st r = sq_step_done(st);
    if (r == TD_ST_OK && sqlite3_changes(c->db) == 0) r = TD_ST_CONFLICT;
    if (r == TD_ST_OK && ev) r = v_event_append(c, ev); /* in process: no round trip to save */
    return r;
}

/* The list query is built from the filter: only fixed SQL fragments are
 * concatenated; every value is bound. */
static td_st v_token_list(td_conn *c, const td_token_filter *f, void (*fn)(const td_token_rec *, void *), void *arg)
{
    if (c->owner->base.q.fault == 1) return TD_ST_ERROR;
    char sql[1024] = "SELECT " TOKEN_COLS " FROM tokens WHERE ";
    size_t n = strlen(sql);
#define ADD(s)                                                                                                         \
    do {                                                                                                               \
        size_t l_ = strlen(s);                                                                                         \
        if (n + l_ >= sizeof sql) return TD_ST_ERROR;                                                                  \
        memcpy(sql + n, s, l_ + 1);                                                                                    \
        n += l_;                                                                                                       \
    } while (0)
    switch (f->role) {
    case 1: ADD("from_id = ?1"); break;
    case 2: ADD("to_id = ?1"); break;
    case 3: ADD("issuer_id = ?1"); break;
    default: ADD("(from_id = ?1 OR to_id = ?1 OR issuer_id = ?1)"); break;
    }
    if (f->kind >= 0) ADD(" AND kind = ?2");
    /* instr, not LIKE: an exact, case-sensitive account id, where % and _ are not wildcards. */
    if (f->source_account) ADD(" AND instr(' ' || accounts_src || ' ', ' ' || ?3 || ' ') > 0");
    if (f->destination_account) ADD(" AND instr(' ' || accounts_dst || ' ', ' ' || ?4 || ' ') > 0");
    if (f->start_ms) ADD(" AND created_ms >= ?5");
    if (f->end_ms) ADD(" AND created_ms < ?6");
    if (f->acting_as_ref_id) ADD(" AND acting_as_ref_id = ?7");
    ADD(" ORDER BY created_ms DESC, id LIMIT ?8 OFFSET ?9");
#undef ADD
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) return TD_ST_ERROR;
    sq_bind_text(st, 1, f->member_id);
    if (f->kind >= 0) sqlite3_bind_int(st, 2, f->kind);
    sq_bind_text(st, 3, f->source_account);
    sq_bind_text(st, 4, f->destination_account);
    sqlite3_bind_int64(st, 5, f->start_ms);
    sqlite3_bind_int64(st, 6, f->end_ms);
    sq_bind_text(st, 7, f->acting_as_ref_id);
    sqlite3_bind_int(st, 8, f->limit);
    sqlite3_bind_int64(st, 9, f->offset);
    int rc;
    td_token_rec t;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_token(st, &t);
        fn(&t, arg);
        td_token_rec_free(&t);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? TD_ST_OK : sq_map_rc(rc);
}

static sq_query q_event_append = {.sql = "INSERT INTO token_events(token_id, seq, time_ms, type, actor, customer_ip, "
                                         "customer_initiated, customer_device_id, detail_json) "
                                         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"};

static td_st v_event_append(td_conn *c, const td_event_rec *e)
{
    sqlite3_stmt *st = sq_stmt(c, &q_event_append);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, e->token_id);
    sqlite3_bind_int64(st, 2, e->seq);
    sqlite3_bind_int64(st, 3, e->time_ms);
    sq_bind_text(st, 4, e->type);
    sq_bind_text(st, 5, e->actor);
    sq_bind_text(st, 6, e->customer_ip[0] ? e->customer_ip : NULL);
    sq_bind_text(st, 7, e->customer_initiated[0] ? e->customer_initiated : NULL);
    sq_bind_text(st, 8, e->customer_device_id[0] ? e->customer_device_id : NULL);
    sq_bind_text(st, 9, e->detail_json);
    return sq_step_done(st);
}

static sq_query q_event_count = {.sql = "SELECT count(*) FROM token_events WHERE token_id = ?1"};

static td_st v_event_count(td_conn *c, const char *token_id, int64_t *out)
{
    sqlite3_stmt *st = sq_stmt(c, &q_event_count);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, token_id);
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) *out = sqlite3_column_int64(st, 0);
    sq_finish(st);
    return r;
}

void sq_tokens_verbs(td_store_ops *ops)
{
    ops->token_insert = v_token_insert;
    ops->token_get = v_token_get;
    ops->token_get_signing = v_token_get_signing;
    ops->token_update = v_token_update;
    ops->token_list = v_token_list;
    ops->event_append = v_event_append;
    ops->event_count = v_event_count;
}
