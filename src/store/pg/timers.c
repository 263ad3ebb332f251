/* pg/timers.c — stored timers: step-up reminders and expiries: the PostgreSQL
 * twin of sqlite/timers.c, its SQL beside the code that binds and reads it. */
#include <stdlib.h>
#include <string.h>

#include "store/pg/pgs.h"
#include "util/util.h"

#define TIMER_COLS "issuer_id, digital_card_id, kind, n, due_ms, state"

/* The id comes from the identity column, as SQLite's from its rowid. */
static pg_query q_timer_insert = {.sql = "INSERT INTO timers(" TIMER_COLS
                                         ") VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"};

static td_st v_timer_insert(td_conn *c, td_timer_rec *t)
{
    if (!t->state[0]) td_strlcpy(t->state, "PENDING", sizeof t->state); /* a new timer waits */
    pg_params p = {0};
    pg_p_text(&p, t->issuer_id);
    pg_p_text(&p, t->digital_card_id);
    pg_p_text(&p, t->kind);
    pg_p_int(&p, t->n);
    pg_p_int(&p, t->due_ms);
    pg_p_text(&p, t->state);
    PGresult *res = NULL;
    td_st st = pg_row(c, &q_timer_insert, &p, &res);
    if (st == TD_ST_OK) t->id = pg_i64(res, 0, 0);
    PQclear(res);
    /* RETURNING always gives the inserted row: none would be a broken server */
    return st == TD_ST_NOT_FOUND ? TD_ST_ERROR : st;
}

static void read_timer(const PGresult *res, int row, td_timer_rec *t)
{
    memset(t, 0, sizeof *t);
    t->id = pg_i64(res, row, 0);
    pg_copy(res, row, 1, t->issuer_id, sizeof t->issuer_id);
    pg_copy(res, row, 2, t->digital_card_id, sizeof t->digital_card_id);
    pg_copy(res, row, 3, t->kind, sizeof t->kind);
    t->n = (int)pg_i64(res, row, 4);
    t->due_ms = pg_i64(res, row, 5);
    pg_copy(res, row, 6, t->state, sizeof t->state);
}

/* A plain read even across nodes: each due timer is then fired in a job whose
 * timer_finish (PENDING → FIRED) lets one node through; another node's
 * finish waits for that commit, then changes nothing and gets CONFLICT. */
static pg_query q_timer_due = {.sql = "SELECT id, " TIMER_COLS " FROM timers WHERE state = 'PENDING' AND due_ms <= $1 "
                                      "ORDER BY due_ms, id LIMIT $2"};

static td_st v_timer_due(td_conn *c, int64_t now_ms, int limit, void (*fn)(const td_timer_rec *, void *), void *arg)
{
    pg_params p = {0};
    pg_p_int(&p, now_ms);
    /* SQLite reads a negative LIMIT as none, PostgreSQL refuses it: NULL is none */
    if (limit < 0)
        pg_p_text(&p, NULL);
    else
        pg_p_int(&p, limit);
    PGresult *res = NULL;
    td_st st = pg_rows(c, &q_timer_due, &p, &res);
    if (st != TD_ST_OK) return st;
    int n = PQntuples(res);
    td_timer_rec *rows = n ? calloc((size_t)n, sizeof *rows) : NULL;
    if (n && !rows) {
        PQclear(res);
        return TD_ST_ERROR;
    }
    for (int i = 0; i < n; i++)
        read_timer(res, i, &rows[i]);
    /* fn runs after the result is gone: it may call any verb on this connection */
    PQclear(res);
    for (int i = 0; i < n; i++)
        fn(&rows[i], arg);
    free(rows);
    return TD_ST_OK;
}

static pg_query q_timer_get = {.sql = "SELECT id, " TIMER_COLS " FROM timers WHERE issuer_id = $1 AND id = $2"};
/* Inside a job the read precedes timer_finish or timer_reschedule: another
 * node's job on the same timer waits for this one's commit. */
static pg_query q_timer_get_lock = {.sql = "SELECT id, " TIMER_COLS
                                           " FROM timers WHERE issuer_id = $1 AND id = $2 FOR UPDATE"};

static td_st v_timer_get(td_conn *c, const char *issuer_id, int64_t id, td_timer_rec *out)
{
    pg_params p = {0};
    pg_p_text(&p, issuer_id);
    pg_p_int(&p, id);
    PGresult *res = NULL;
    td_st st = pg_row(c, c->in_job ? &q_timer_get_lock : &q_timer_get, &p, &res);
    if (st == TD_ST_OK) read_timer(res, 0, out);
    PQclear(res);
    return st;
}

static pg_query q_timer_exists = {.sql = "SELECT 1 FROM timers WHERE issuer_id = $1 AND id = $2"};

/* After a conditional timer update changed nothing: CONFLICT if the timer
 * exists (it was no longer PENDING), NOT_FOUND if it does not (or is another
 * issuer's). */
static td_st timer_unchanged(td_conn *c, const char *issuer_id, int64_t id)
{
    pg_params p = {0};
    pg_p_text(&p, issuer_id);
    pg_p_int(&p, id);
    PGresult *res = NULL;
    td_st st = pg_row(c, &q_timer_exists, &p, &res);
    PQclear(res);
    return st == TD_ST_OK ? TD_ST_CONFLICT : st;
}

/* Against another node finishing the same timer, the UPDATE waits for that
 * transaction, then reads the committed row again (READ COMMITTED): no
 * longer PENDING, it changes nothing and the verb answers CONFLICT. */
static pg_query q_timer_finish = {
    .sql = "UPDATE timers SET state = $3 WHERE issuer_id = $1 AND id = $2 AND state = 'PENDING'"};

static td_st v_timer_finish(td_conn *c, const char *issuer_id, int64_t id, const char *state)
{
    if (!state || (strcmp(state, "FIRED") != 0 && strcmp(state, "CANCELLED") != 0)) return TD_ST_INTERNAL;
    pg_params p = {0};
    pg_p_text(&p, issuer_id);
    pg_p_int(&p, id);
    pg_p_text(&p, state);
    int64_t n = 0;
    td_st st = pg_cmd(c, &q_timer_finish, &p, &n);
    if (st == TD_ST_OK && n == 0) st = timer_unchanged(c, issuer_id, id);
    return st;
}

static pg_query q_timer_cancel_dcard = {
    .sql = "UPDATE timers SET state = 'CANCELLED' WHERE issuer_id = $1 AND digital_card_id = $2 AND state = 'PENDING'"};

static td_st v_timer_cancel_dcard(td_conn *c, const char *issuer_id, const char *digital_card_id, int *n_cancelled)
{
    if (n_cancelled) *n_cancelled = 0;
    pg_params p = {0};
    pg_p_text(&p, issuer_id);
    pg_p_text(&p, digital_card_id);
    int64_t n = 0;
    td_st st = pg_cmd(c, &q_timer_cancel_dcard, &p, &n);
    if (st == TD_ST_OK && n_cancelled) *n_cancelled = (int)n;
    return st;
}

static pg_query q_timer_reschedule = {
    .sql = "UPDATE timers SET due_ms = $3 WHERE issuer_id = $1 AND id = $2 AND state = 'PENDING'"};

static td_st v_timer_reschedule(td_conn *c, const char *issuer_id, int64_t id, int64_t due_ms)
{
    pg_params p = {0};
    pg_p_text(&p, issuer_id);
    pg_p_int(&p, id);
    pg_p_int(&p, due_ms);
    int64_t n = 0;
    td_st st = pg_cmd(c, &q_timer_reschedule, &p, &n);
    if (st == TD_ST_OK && n == 0) st = timer_unchanged(c, issuer_id, id);
    return st;
}

/* Against another node leasing the same timer, the UPDATE waits for that
 * transaction, then sees the new due time: nothing changes, CONFLICT. */
static pg_query q_timer_lease = {
    .sql = "UPDATE timers SET due_ms = $4 WHERE issuer_id = $1 AND id = $2 AND state = 'PENDING' AND due_ms = $3"};

static td_st v_timer_lease(td_conn *c, const char *issuer_id, int64_t id, int64_t expect_due_ms, int64_t until_ms)
{
    pg_params p = {0};
    pg_p_text(&p, issuer_id);
    pg_p_int(&p, id);
    pg_p_int(&p, expect_due_ms);
    pg_p_int(&p, until_ms);
    int64_t n = 0;
    td_st st = pg_cmd(c, &q_timer_lease, &p, &n);
    if (st == TD_ST_OK && n == 0) st = timer_unchanged(c, issuer_id, id);
    return st;
}

static pg_query q_timer_next_due = {.sql = "SELECT due_ms FROM timers WHERE state = 'PENDING' ORDER BY due_ms LIMIT 1"};

static td_st v_timer_next_due(td_conn *c, int64_t *due_ms)
{
    pg_params p = {0};
    PGresult *res = NULL;
    td_st st = pg_row(c, &q_timer_next_due, &p, &res);
    if (st == TD_ST_OK) *due_ms = pg_i64(res, 0, 0);
    PQclear(res);
    return st;
}

void pg_timers_verbs(td_store_ops *ops)
{
    ops->timer_insert = v_timer_insert;
    ops->timer_due = v_timer_due;
    ops->timer_get = v_timer_get;
    ops->timer_finish = v_timer_finish;
    ops->timer_cancel_dcard = v_timer_cancel_dcard;
    ops->timer_reschedule = v_timer_reschedule;
    ops->timer_lease = v_timer_lease;
    ops->timer_next_due = v_timer_next_due;
}
