/* sqlite/timers.c — stored timers: step-up reminders and expiries: its SQL,
 * and the code that binds and reads it. */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/sq.h"
#include "util/util.h"

#define TIMER_COLS "issuer_id, digital_card_id, kind, n, due_ms, state"

static sq_query q_timer_insert = {.sql = "INSERT INTO timers(" TIMER_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)"};

static td_st v_timer_insert(td_conn *c, td_timer_rec *t)
{
    sqlite3_stmt *st = sq_stmt(c, &q_timer_insert);
    if (!st) return TD_ST_ERROR;
    if (!t->state[0]) td_strlcpy(t->state, "PENDING", sizeof t->state); /* a new timer waits */
    sq_bind_text(st, 1, t->issuer_id);
    sq_bind_text(st, 2, t->digital_card_id);
    sq_bind_text(st, 3, t->kind);
    sqlite3_bind_int(st, 4, t->n);
    sqlite3_bind_int64(st, 5, t->due_ms);
    sq_bind_text(st, 6, t->state);
    td_st r = sq_step_done(st);
    if (r == TD_ST_OK) t->id = sqlite3_last_insert_rowid(c->db);
    return r;
}

static void read_timer(sqlite3_stmt *st, td_timer_rec *t)
{
    memset(t, 0, sizeof *t);
    t->id = sqlite3_column_int64(st, 0);
    sq_col_copy(st, 1, t->issuer_id, sizeof t->issuer_id);
    sq_col_copy(st, 2, t->digital_card_id, sizeof t->digital_card_id);
    sq_col_copy(st, 3, t->kind, sizeof t->kind);
    t->n = sqlite3_column_int(st, 4);
    t->due_ms = sqlite3_column_int64(st, 5);
    sq_col_copy(st, 6, t->state, sizeof t->state);
}

static sq_query q_timer_due = {.sql = "SELECT id, " TIMER_COLS " FROM timers WHERE state = 'PENDING' AND due_ms <= ?1 "
                                      "ORDER BY due_ms, id LIMIT ?2"};

static td_st v_timer_due(td_conn *c, int64_t now_ms, int limit, void (*fn)(const td_timer_rec *, void *), void *arg)
{
    sqlite3_stmt *st = sq_stmt(c, &q_timer_due);
    if (!st) return TD_ST_ERROR;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int(st, 2, limit);
    sq_rows rows = {.size = sizeof(td_timer_rec)};
    td_st err = TD_ST_OK;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        td_timer_rec *t = sq_row_add(&rows);
        if (!t) {
            err = TD_ST_ERROR;
            break;
        }
        read_timer(st, t);
    }
    sq_finish(st);
    td_st r = sq_loop_result(rc, err);
    for (size_t i = 0; r == TD_ST_OK && i < rows.n; i++)
        fn(sq_row_at(&rows, i), arg);
    free(rows.items);
    return r;
}

static sq_query q_timer_get = {.sql = "SELECT id, " TIMER_COLS " FROM timers WHERE issuer_id = ?1 AND id = ?2"};

static td_st v_timer_get(td_conn *c, const char *issuer_id, int64_t id, td_timer_rec *out)
{
    sqlite3_stmt *st = sq_stmt(c, &q_timer_get);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, issuer_id);
    sqlite3_bind_int64(st, 2, id);
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) read_timer(st, out);
    sq_finish(st);
    return r;
}

static sq_query q_timer_exists = {.sql = "SELECT 1 FROM timers WHERE issuer_id = ?1 AND id = ?2"};

/* After a conditional timer update changed nothing: CONFLICT if the timer
 * exists (it was no longer PENDING), NOT_FOUND if it does not (or is another
 * issuer's). */
static td_st timer_unchanged(td_conn *c, const char *issuer_id, int64_t id)
{
    sqlite3_stmt *st = sq_stmt(c, &q_timer_exists);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, issuer_id);
    sqlite3_bind_int64(st, 2, id);
    td_st r = sq_step_row(st);
    sq_finish(st);
    return r == TD_ST_OK ? TD_ST_CONFLICT : r;
}

static sq_query q_timer_finish = {
    .sql = "UPDATE timers SET state = ?3 WHERE issuer_id = ?1 AND id = ?2 AND state = 'PENDING'"};

static td_st v_timer_finish(td_conn *c, const char *issuer_id, int64_t id, const char *state)
{
    if (!state || (strcmp(state, "FIRED") != 0 && strcmp(state, "CANCELLED") != 0)) return TD_ST_INTERNAL;
    sqlite3_stmt *st = sq_stmt(c, &q_timer_finish);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, issuer_id);
    sqlite3_bind_int64(st, 2, id);
    sq_bind_text(st, 3, state);
    td_st r = sq_step_done(st);
    if (r == TD_ST_OK && sqlite3_changes(c->db) == 0) r = timer_unchanged(c, issuer_id, id);
    return r;
}

static sq_query q_timer_cancel_dcard = {
    .sql = "UPDATE timers SET state = 'CANCELLED' WHERE issuer_id = ?1 AND digital_card_id = ?2 AND state = 'PENDING'"};

static td_st v_timer_cancel_dcard(td_conn *c, const char *issuer_id, const char *digital_card_id, int *n_cancelled)
{
    if (n_cancelled) *n_cancelled = 0;
    sqlite3_stmt *st = sq_stmt(c, &q_timer_cancel_dcard);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, issuer_id);
    sq_bind_text(st, 2, digital_card_id);
    td_st r = sq_step_done(st);
    if (r == TD_ST_OK && n_cancelled) *n_cancelled = sqlite3_changes(c->db);
    return r;
}

static sq_query q_timer_reschedule = {
    .sql = "UPDATE timers SET due_ms = ?3 WHERE issuer_id = ?1 AND id = ?2 AND state = 'PENDING'"};

static td_st v_timer_reschedule(td_conn *c, const char *issuer_id, int64_t id, int64_t due_ms)
{
    sqlite3_stmt *st = sq_stmt(c, &q_timer_reschedule);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, issuer_id);
    sqlite3_bind_int64(st, 2, id);
    sqlite3_bind_int64(st, 3, due_ms);
    td_st r = sq_step_done(st);
    if (r == TD_ST_OK && sqlite3_changes(c->db) == 0) r = timer_unchanged(c, issuer_id, id);
    return r;
}

static sq_query q_timer_lease = {
    .sql = "UPDATE timers SET due_ms = ?4 WHERE issuer_id = ?1 AND id = ?2 AND state = 'PENDING' AND due_ms = ?3"};

static td_st v_timer_lease(td_conn *c, const char *issuer_id, int64_t id, int64_t expect_due_ms, int64_t until_ms)
{
    sqlite3_stmt *st = sq_stmt(c, &q_timer_lease);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, issuer_id);
    sqlite3_bind_int64(st, 2, id);
    sqlite3_bind_int64(st, 3, expect_due_ms);
    sqlite3_bind_int64(st, 4, until_ms);
    td_st r = sq_step_done(st);
    if (r == TD_ST_OK && sqlite3_changes(c->db) == 0) r = timer_unchanged(c, issuer_id, id);
    return r;
}

static sq_query q_timer_next_due = {.sql = "SELECT due_ms FROM timers WHERE state = 'PENDING' ORDER BY due_ms LIMIT 1"};

static td_st v_timer_next_due(td_conn *c, int64_t *due_ms)
{
    sqlite3_stmt *st = sq_stmt(c, &q_timer_next_due);
    if (!st) return TD_ST_ERROR;
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) *due_ms = sqlite3_column_int64(st, 0);
    sq_finish(st);
    return r;
}

void sq_timers_verbs(td_store_ops *ops)
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
