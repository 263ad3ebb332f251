/* pg/tokens.c — tokens and their event history: its SQL, and the code that
 * binds and reads it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/pgs.h"

#define TOKEN_COLS                                                                                                     \
    "id, kind, state, from_id, to_id, issuer_id, ref_id, acting_as_ref_id, token_request_id, "                         \
    "replaced_by, canceled_by, created_ms, expires_ms, seq, json, payload_canonical, accounts_src, "                   \
    "accounts_dst"
#define TOKEN_NCOLS 18

static pg_query q_token_insert = {.sql = "INSERT INTO tokens(" TOKEN_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
                                         "$9, $10, $11, $12, $13, $14, $15, $16, $17, $18) ON CONFLICT DO NOTHING"};

static td_st v_token_insert(td_conn *c, const td_token_rec *t)
{
    /* SQLite refuses these as a NOT NULL constraint (CONFLICT); a failed
     * statement here would abort the writer's transaction. */
    if (!t->json || !t->payload_canonical) return TD_ST_CONFLICT;
    pg_params p = {0};
    pg_p_text(&p, t->id);
    pg_p_int(&p, (int)t->kind);
    pg_p_int(&p, (int)t->state);
    pg_p_text(&p, t->from_id);
    pg_p_text(&p, t->to_id);
    pg_p_text(&p, t->issuer_id);
    pg_p_text(&p, t->ref_id);
    pg_p_text(&p, t->acting_as_ref_id);
    pg_p_text(&p, t->token_request_id);
    pg_p_text(&p, t->replaced_by);
    pg_p_text(&p, t->canceled_by);
    pg_p_int(&p, t->created_ms);
    pg_p_int(&p, t->expires_ms);
    pg_p_int(&p, t->seq);
    pg_p_text(&p, t->json);
    pg_p_text(&p, t->payload_canonical);
    pg_p_text(&p, t->accounts_src);
    pg_p_text(&p, t->accounts_dst);
    int64_t changed = 0;
    td_st r = pg_cmd(c, &q_token_insert, &p, &changed);
    if (r == TD_ST_OK && changed == 0) r = TD_ST_CONFLICT;
    return r;
}

static void read_token(const PGresult *res, int row, td_token_rec *t)
{
    memset(t, 0, sizeof *t);
    pg_copy(res, row, 0, t->id, sizeof t->id);
    t->kind = (td_kind)pg_i64(res, row, 1);
    t->state = (td_token_state)pg_i64(res, row, 2);
    pg_copy(res, row, 3, t->from_id, sizeof t->from_id);
    pg_copy(res, row, 4, t->to_id, sizeof t->to_id);
    pg_copy(res, row, 5, t->issuer_id, sizeof t->issuer_id);
    pg_copy(res, row, 6, t->ref_id, sizeof t->ref_id);
    pg_copy(res, row, 7, t->acting_as_ref_id, sizeof t->acting_as_ref_id);
    pg_copy(res, row, 8, t->token_request_id, sizeof t->token_request_id);
    pg_copy(res, row, 9, t->replaced_by, sizeof t->replaced_by);
    pg_copy(res, row, 10, t->canceled_by, sizeof t->canceled_by);
    t->created_ms = pg_i64(res, row, 11);
    t->expires_ms = pg_i64(res, row, 12);
    t->seq = pg_i64(res, row, 13);
    t->json = pg_dup(res, row, 14);
    t->payload_canonical = pg_dup(res, row, 15);
    t->accounts_src = pg_dup(res, row, 16);
    t->accounts_dst = pg_dup(res, row, 17);
}

/* Inside a job the row is read FOR UPDATE: the job decides on it (cancel,
 * replace) and then updates it, and a job on another node must wait. */
static pg_query q_token_get = {.sql = "SELECT " TOKEN_COLS " FROM tokens WHERE id = $1"};
static pg_query q_token_get_locked = {.sql = "SELECT " TOKEN_COLS " FROM tokens WHERE id = $1 FOR UPDATE"};

static td_st v_token_get(td_conn *c, const char *id, td_token_rec *out)
{
    pg_params p = {0};
    pg_p_text(&p, id);
    PGresult *res;
    td_st r = pg_row(c, c->in_job ? &q_token_get_locked : &q_token_get, &p, &res);
    if (r != TD_ST_OK) return r;
    read_token(res, 0, out);
    PQclear(res);
    return TD_ST_OK;
}

/* The token and the key as one row: the key from a lateral subquery (the
 * member's newest at the level, as key_for_level), NULL when there is none. */
#define TOKEN_SIGNING_SQL(lock)                                                                                        \
    "SELECT tok.*, k.* FROM (SELECT " TOKEN_COLS " FROM tokens WHERE id = $1" lock ") tok LEFT JOIN LATERAL "         \
    "(SELECT " PG_KEY_COLS " FROM member_keys WHERE member_id = $2 AND level = $3 AND sealed_secret IS NOT NULL "     \
    "ORDER BY created_ms DESC LIMIT 1) k ON true"
static pg_query q_token_signing = {.sql = TOKEN_SIGNING_SQL("")};
static pg_query q_token_signing_locked = {.sql = TOKEN_SIGNING_SQL(" FOR UPDATE")};

static td_st v_token_get_signing(td_conn *c, const char *id, const char *member_id, td_level level, td_token_rec *out,
                                 td_key_rec *key)
{
    pg_params p = {0};
    pg_p_text(&p, id);
    pg_p_text(&p, member_id);
    pg_p_int(&p, (int)level);
    PGresult *res;
    td_st r = pg_row(c, c->in_job ? &q_token_signing_locked : &q_token_signing, &p, &res);
    if (r != TD_ST_OK) return r;
    read_token(res, 0, out);
    pg_read_key(res, 0, TOKEN_NCOLS, key);
    PQclear(res);
    return TD_ST_OK;
}

static pg_query q_token_update = {.sql = "UPDATE tokens SET state = $2, replaced_by = $3, canceled_by = $4, seq = $5, "
                                         "json = $6 WHERE id = $1 AND seq = $7"};

#define EVENT_COLS "token_id, seq, time_ms, type, actor, customer_ip, customer_initiated, customer_device_id, detail_json"

/* The update and its event in one statement: the event is inserted only for
 * a row the update matched, so no row counts CONFLICT either way. */
static pg_query q_token_update_event = {
    .sql = "WITH u AS (UPDATE tokens SET state = $2, replaced_by = $3, canceled_by = $4, seq = $5, json = $6 "
           "WHERE id = $1 AND seq = $7 RETURNING id) "
           "INSERT INTO token_events(" EVENT_COLS ") SELECT $8, $9, $10, $11, $12, $13, $14, $15, $16 FROM u "
           "ON CONFLICT DO NOTHING"};

static void bind_event(pg_params *p, const td_event_rec *e)
{
    pg_p_text(p, e->token_id);
    pg_p_int(p, e->seq);
    pg_p_int(p, e->time_ms);
    pg_p_text(p, e->type);
    pg_p_text(p, e->actor);
    /* empty optional fields are stored as NULL */
    pg_p_text(p, e->customer_ip[0] ? e->customer_ip : NULL);
    pg_p_text(p, e->customer_initiated[0] ? e->customer_initiated : NULL);
    pg_p_text(p, e->customer_device_id[0] ? e->customer_device_id : NULL);
    pg_p_text(p, e->detail_json);
}

static td_st v_token_update(td_conn *c, const td_token_rec *t, int64_t expect_seq, const td_event_rec *ev)
{
    /* SQLite answers CONFLICT for a NULL json, matched or not (NOT NULL). */
    if (!t->json) return TD_ST_CONFLICT;
    pg_params p = {0};
    pg_p_text(&p, t->id);
    pg_p_int(&p, (int)t->state);
    pg_p_text(&p, t->replaced_by);
    pg_p_text(&p, t->canceled_by);
    pg_p_int(&p, t->seq);
    pg_p_text(&p, t->json);
    pg_p_int(&p, expect_seq);
    if (ev) bind_event(&p, ev);
    int64_t changed = 0;
    td_st r = pg_cmd(c, ev ? &q_token_update_event : &q_token_update, &p, &changed);
    if (r == TD_ST_OK && changed == 0) r = TD_ST_CONFLICT;
    return r;
}

/* The list query is built from the filter: only fixed SQL fragments and
 * parameter numbers are written into it; every value is a parameter. A query
 * that would not fit in sql (1024 bytes, as in SQLite) is an error. */
static td_st list_sql(const td_token_filter *f, char sql[static 1024], pg_params *p)
{
    const size_t cap = 1024;
    size_t n = (size_t)snprintf(sql, cap, "SELECT " TOKEN_COLS " FROM tokens WHERE ");
#define ADD(...)                                                                                                       \
    do {                                                                                                               \
        int l_ = snprintf(sql + n, cap - n, __VA_ARGS__);                                                              \
        if (l_ < 0 || (size_t)l_ >= cap - n) return TD_ST_ERROR;                                                       \
        n += (size_t)l_;                                                                                               \
    } while (0)
    pg_p_text(p, f->member_id);
    switch (f->role) {
    case 1: ADD("from_id = $1"); break;
    case 2: ADD("to_id = $1"); break;
    case 3: ADD("issuer_id = $1"); break;
    default: ADD("(from_id = $1 OR to_id = $1 OR issuer_id = $1)"); break;
    }
    if (f->kind >= 0) {
        pg_p_int(p, f->kind);
        ADD(" AND kind = $%d", p->n);
    }
    /* strpos, not LIKE, as SQLite's instr: an exact, case-sensitive account id,
     * where % and _ are not wildcards; a NULL account list matches nothing. */
    if (f->source_account) {
        pg_p_text(p, f->source_account);
        ADD(" AND strpos(' ' || accounts_src || ' ', ' ' || $%d::text || ' ') > 0", p->n);
    }
    if (f->destination_account) {
        pg_p_text(p, f->destination_account);
        ADD(" AND strpos(' ' || accounts_dst || ' ', ' ' || $%d::text || ' ') > 0", p->n);
    }
    if (f->start_ms) {
        pg_p_int(p, f->start_ms);
        ADD(" AND created_ms >= $%d", p->n);
    }
    if (f->end_ms) {
        pg_p_int(p, f->end_ms);
        ADD(" AND created_ms < $%d", p->n);
    }
    if (f->acting_as_ref_id) {
        pg_p_text(p, f->acting_as_ref_id);
        ADD(" AND acting_as_ref_id = $%d", p->n);
    }
    /* SQLite's paging, where PostgreSQL would refuse negative values: a
     * negative limit is no limit (NULL), a negative offset counts as 0. COLLATE
     * "C": ids compare bytewise, as SQLite's BINARY collation does. */
    if (f->limit < 0)
        pg_p_text(p, NULL);
    else
        pg_p_int(p, f->limit);
    pg_p_int(p, f->offset < 0 ? 0 : f->offset);
    ADD(" ORDER BY created_ms DESC, id COLLATE \"C\" LIMIT $%d::bigint OFFSET $%d::bigint", p->n - 1, p->n);
#undef ADD
    return TD_ST_OK;
}

static td_st v_token_list(td_conn *c, const td_token_filter *f, void (*fn)(const td_token_rec *, void *), void *arg)
{
    char sql[1024];
    pg_params p = {0};
    td_st r = list_sql(f, sql, &p);
    if (r != TD_ST_OK) return r;
    PGresult *res;
    r = pg_rows_text(c, sql, &p, &res);
    if (r != TD_ST_OK) return r;
    /* fn runs once the whole result is here: it may use this connection. */
    td_token_rec t;
    for (int i = 0, rows = PQntuples(res); i < rows; i++) {
        read_token(res, i, &t);
        fn(&t, arg);
        td_token_rec_free(&t);
    }
    PQclear(res);
    return TD_ST_OK;
}

static pg_query q_event_append = {
    .sql = "INSERT INTO token_events(" EVENT_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING"};

static td_st v_event_append(td_conn *c, const td_event_rec *e)
{
    pg_params p = {0};
    bind_event(&p, e);
    int64_t changed = 0;
    td_st r = pg_cmd(c, &q_event_append, &p, &changed);
    if (r == TD_ST_OK && changed == 0) r = TD_ST_CONFLICT;
    return r;
}

static pg_query q_event_count = {.sql = "SELECT count(*) FROM token_events WHERE token_id = $1"};

static td_st v_event_count(td_conn *c, const char *token_id, int64_t *out)
{
    pg_params p = {0};
    pg_p_text(&p, token_id);
    PGresult *res;
    td_st r = pg_row(c, &q_event_count, &p, &res);
    if (r != TD_ST_OK) return r;
    *out = pg_i64(res, 0, 0);
    PQclear(res);
    return TD_ST_OK;
}

void pg_tokens_verbs(td_store_ops *ops)
{
    ops->token_insert = v_token_insert;
    ops->token_get = v_token_get;
    ops->token_get_signing = v_token_get_signing;
    ops->token_update = v_token_update;
    ops->token_list = v_token_list;
    ops->event_append = v_event_append;
    ops->event_count = v_event_count;
}
