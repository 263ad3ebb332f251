/* sqlite/dcards.c — digital cards (network tokens) and their lifecycle events:
 * its SQL, and the code that binds and reads it. */
#include <stdlib.h>
#include <string.h>

#include "core/decision.h"
#include "store/sqlite/sq.h"
#include "util/log.h"

#define DCARD_COLS                                                                                                     \
    "id, issuer_id, card_id, state, suspended_by, last_event_ms, seq, stepup_open, idv_failures, "                     \
    "revivable_until_ms, verdict, decision_reason, wallet_provider_id, token_requestor_id, token_storage_id, "         \
    "is_primary, correlation_id, digitize_op_id, last4, device_json, idv_json, answer_json, stepup_deadline_ms, "      \
    "created_ms, updated_ms"

static sq_query q_dcard_insert = {.sql = "INSERT INTO digital_cards(" DCARD_COLS
                                         ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
                                         "?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)"};

#define SUSPENDERS_MAX 64

static td_st v_dcard_insert(td_conn *c, const td_dcard_rec *r)
{
    char susp[SUSPENDERS_MAX];
    if (td_suspenders_format(r->d.suspended_by, susp, sizeof susp) != 0) return TD_ST_INTERNAL;
    sqlite3_stmt *st = sq_stmt(c, &q_dcard_insert);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, r->id);
    sq_bind_text(st, 2, r->issuer_id);
    sq_bind_text(st, 3, r->card_id);
    sqlite3_bind_int(st, 4, (int)r->d.state);
    sq_bind_text(st, 5, susp);
    sqlite3_bind_int64(st, 6, r->d.last_event_ms);
    sqlite3_bind_int64(st, 7, r->d.seq);
    sqlite3_bind_int(st, 8, r->d.stepup_open ? 1 : 0);
    sqlite3_bind_int(st, 9, r->d.idv_failures);
    sqlite3_bind_int64(st, 10, r->d.revivable_until_ms);
    sqlite3_bind_int(st, 11, (int)r->verdict);
    sq_bind_text(st, 12, r->decision_reason);
    sq_bind_text(st, 13, r->wallet_provider_id);
    sq_bind_text(st, 14, r->token_requestor_id);
    sq_bind_text(st, 15, r->token_storage_id);
    sqlite3_bind_int(st, 16, r->is_primary ? 1 : 0);
    sq_bind_text(st, 17, r->correlation_id);
    sq_bind_text(st, 18, r->digitize_op_id);
    sq_bind_text(st, 19, r->last4);
    sq_bind_text(st, 20, r->device_json ? r->device_json : "{}");
    sq_bind_text(st, 21, r->idv_json ? r->idv_json : "[]");
    sq_bind_text(st, 22, r->answer_json ? r->answer_json : "");
    sqlite3_bind_int64(st, 23, r->stepup_deadline_ms);
    sqlite3_bind_int64(st, 24, r->created_ms);
    sqlite3_bind_int64(st, 25, r->updated_ms);
    return sq_step_done(st);
}

/* Fills r from a DCARD_COLS row. On failure (an unreadable suspenders set, out
 * of memory) r is still safe to pass to td_dcard_rec_free. */
static td_st read_dcard(sqlite3_stmt *st, td_dcard_rec *r)
{
    memset(r, 0, sizeof *r);
    sq_col_copy(st, 0, r->id, sizeof r->id);
    sq_col_copy(st, 1, r->issuer_id, sizeof r->issuer_id);
    sq_col_copy(st, 2, r->card_id, sizeof r->card_id);
    r->d.state = (td_dcard_state)sqlite3_column_int(st, 3);
    const unsigned char *susp = sqlite3_column_text(st, 4);
    if (td_suspenders_parse(susp ? (const char *)susp : "", &r->d.suspended_by) != 0) {
        td_log(TD_LOG_ERROR, "store_corrupt", "digital card %s: suspended_by '%s'", r->id,
               susp ? (const char *)susp : "");
        return TD_ST_ERROR;
    }
    r->d.last_event_ms = sqlite3_column_int64(st, 5);
    r->d.seq = sqlite3_column_int64(st, 6);
    r->d.stepup_open = sqlite3_column_int(st, 7) != 0;
    r->d.idv_failures = sqlite3_column_int(st, 8);
    r->d.revivable_until_ms = sqlite3_column_int64(st, 9);
    r->verdict = (td_verdict)sqlite3_column_int(st, 10);
    sq_col_copy(st, 11, r->decision_reason, sizeof r->decision_reason);
    sq_col_copy(st, 12, r->wallet_provider_id, sizeof r->wallet_provider_id);
    sq_col_copy(st, 13, r->token_requestor_id, sizeof r->token_requestor_id);
    sq_col_copy(st, 14, r->token_storage_id, sizeof r->token_storage_id);
    r->is_primary = sqlite3_column_int(st, 15) != 0;
    sq_col_copy(st, 16, r->correlation_id, sizeof r->correlation_id);
    sq_col_copy(st, 17, r->digitize_op_id, sizeof r->digitize_op_id);
    sq_col_copy(st, 18, r->last4, sizeof r->last4);
    r->device_json = sq_col_dup(st, 19);
    r->idv_json = sq_col_dup(st, 20);
    r->answer_json = sq_col_dup(st, 21);
    r->stepup_deadline_ms = sqlite3_column_int64(st, 22);
    r->created_ms = sqlite3_column_int64(st, 23);
    r->updated_ms = sqlite3_column_int64(st, 24);
    /* the columns are NOT NULL: a NULL here is a failed allocation */
    if (!r->device_json || !r->idv_json || !r->answer_json) {
        td_dcard_rec_free(r);
        return TD_ST_ERROR;
    }
    return TD_ST_OK;
}

static td_st dcard_get_by(sqlite3_stmt *st, td_dcard_rec *out)
{
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) {
        r = read_dcard(st, out);
        if (r != TD_ST_OK) td_dcard_rec_free(out);
    }
    sq_finish(st);
    return r;
}

static sq_query q_dcard_get = {.sql = "SELECT " DCARD_COLS " FROM digital_cards WHERE issuer_id = ?1 AND id = ?2"};

static td_st v_dcard_get(td_conn *c, const char *issuer_id, const char *id, td_dcard_rec *out)
{
    sqlite3_stmt *st = sq_stmt(c, &q_dcard_get);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, issuer_id);
    sq_bind_text(st, 2, id);
    return dcard_get_by(st, out);
}

static sq_query q_dcard_by_correlation = {.sql = "SELECT " DCARD_COLS
                                                 " FROM digital_cards WHERE issuer_id = ?1 AND correlation_id = ?2"};

static td_st v_dcard_by_correlation(td_conn *c, const char *issuer_id, const char *correlation_id, td_dcard_rec *out)
{
    sqlite3_stmt *st = sq_stmt(c, &q_dcard_by_correlation);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, issuer_id);
    sq_bind_text(st, 2, correlation_id);
    return dcard_get_by(st, out);
}

static sq_query q_dcard_update = {
    .sql = "UPDATE digital_cards SET state = ?2, suspended_by = ?3, last_event_ms = ?4, seq = ?5, "
           "stepup_open = ?6, idv_failures = ?7, revivable_until_ms = ?8, stepup_deadline_ms = ?9, "
           "updated_ms = ?10 WHERE id = ?1 AND seq = ?11 AND issuer_id = ?12"};

static td_st v_dcard_update(td_conn *c, const td_dcard_rec *r, int64_t expect_seq)
{
    char susp[SUSPENDERS_MAX];
    if (td_suspenders_format(r->d.suspended_by, susp, sizeof susp) != 0) return TD_ST_INTERNAL;
    sqlite3_stmt *st = sq_stmt(c, &q_dcard_update);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, r->id);
    sqlite3_bind_int(st, 2, (int)r->d.state);
    sq_bind_text(st, 3, susp);
    sqlite3_bind_int64(st, 4, r->d.last_event_ms);
    sqlite3_bind_int64(st, 5, r->d.seq);
    sqlite3_bind_int(st, 6, r->d.stepup_open ? 1 : 0);
    sqlite3_bind_int(st, 7, r->d.idv_failures);
    sqlite3_bind_int64(st, 8, r->d.revivable_until_ms);
    sqlite3_bind_int64(st, 9, r->stepup_deadline_ms);
    sqlite3_bind_int64(st, 10, r->updated_ms);
    sqlite3_bind_int64(st, 11, expect_seq);
    sq_bind_text(st, 12, r->issuer_id);
    td_st res = sq_step_done(st);
    if (res == TD_ST_OK && sqlite3_changes(c->db) == 0) res = TD_ST_CONFLICT;
    return res;
}

/* Steps a bound DCARD_COLS query to the end, then calls fn for each row. */
static td_st dcard_list(sqlite3_stmt *st, void (*fn)(const td_dcard_rec *, void *), void *arg)
{
    sq_rows rows = {.size = sizeof(td_dcard_rec)};
    td_st err = TD_ST_OK;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        td_dcard_rec *d = sq_row_add(&rows);
        if (!d) {
            err = TD_ST_ERROR;
            break;
        }
        if ((err = read_dcard(st, d)) != TD_ST_OK) break;
    }
    sq_finish(st);
    td_st r = sq_loop_result(rc, err);
    for (size_t i = 0; i < rows.n; i++) {
        td_dcard_rec *d = sq_row_at(&rows, i);
        if (r == TD_ST_OK) fn(d, arg);
        td_dcard_rec_free(d);
    }
    free(rows.items);
    return r;
}

/* Oldest first; rowid (insertion order) breaks ties and is in every index, so no sort. */
static sq_query q_dcard_list_by_card = {.sql = "SELECT " DCARD_COLS
                                               " FROM digital_cards WHERE issuer_id = ?1 AND card_id = ?2 "
                                               "ORDER BY created_ms, rowid"};

static td_st v_dcard_list_by_card(td_conn *c, const char *issuer_id, const char *card_id,
                                  void (*fn)(const td_dcard_rec *, void *), void *arg)
{
    sqlite3_stmt *st = sq_stmt(c, &q_dcard_list_by_card);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, issuer_id);
    sq_bind_text(st, 2, card_id);
    return dcard_list(st, fn, arg);
}

static sq_query q_dcard_list_by_issuer = {.sql = "SELECT " DCARD_COLS
                                                 " FROM digital_cards WHERE issuer_id = ?1 AND created_ms >= ?2 "
                                                 "AND created_ms < ?3 ORDER BY created_ms, rowid LIMIT ?4 OFFSET ?5"};

static td_st v_dcard_list_by_issuer(td_conn *c, const char *issuer_id, int64_t start_ms, int64_t end_ms, int64_t offset,
                                    int limit, void (*fn)(const td_dcard_rec *, void *), void *arg)
{
    sqlite3_stmt *st = sq_stmt(c, &q_dcard_list_by_issuer);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, issuer_id);
    /* 0 = unbounded, as the whole range of the created_ms index */
    sqlite3_bind_int64(st, 2, start_ms ? start_ms : INT64_MIN);
    sqlite3_bind_int64(st, 3, end_ms ? end_ms : INT64_MAX);
    sqlite3_bind_int(st, 4, limit);
    sqlite3_bind_int64(st, 5, offset);
    return dcard_list(st, fn, arg);
}

/* Per state: the engine (td_decision_counts_token) says which states count. */
static sq_query q_dcard_counts = {.sql = "SELECT state, count(*), sum(created_ms >= ?3) FROM digital_cards "
                                         "WHERE issuer_id = ?1 AND card_id = ?2 GROUP BY state"};

static td_st v_dcard_counts(td_conn *c, const char *issuer_id, const char *card_id, int64_t since_ms, int *live,
                            int *attempts)
{
    sqlite3_stmt *st = sq_stmt(c, &q_dcard_counts);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, issuer_id);
    sq_bind_text(st, 2, card_id);
    sqlite3_bind_int64(st, 3, since_ms);
    int n_live = 0, n_attempts = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int n = sqlite3_column_int(st, 1);
        if (td_decision_counts_token((td_dcard_state)sqlite3_column_int(st, 0))) n_live += n;
        n_attempts += sqlite3_column_int(st, 2);
    }
    sq_finish(st);
    td_st r = sq_loop_result(rc, TD_ST_OK);
    if (r == TD_ST_OK) {
        if (live) *live = n_live;
        if (attempts) *attempts = n_attempts;
    }
    return r;
}

static sq_query q_dcard_event_append = {
    .sql = "INSERT INTO dcard_events(digital_card_id, seq, issuer_id, event_id, source, type, "
           "outcome, why, event_ms, time_ms, detail_json, answer_json) "
           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"};

/* ---- digital cards' events ---- */

static td_st v_dcard_event_append(td_conn *c, const td_dcard_event_rec *e)
{
    sqlite3_stmt *st = sq_stmt(c, &q_dcard_event_append);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, e->digital_card_id);
    sqlite3_bind_int64(st, 2, e->seq);
    sq_bind_text(st, 3, e->issuer_id);
    sq_bind_text(st, 4, e->event_id);
    sq_bind_text(st, 5, e->source);
    sq_bind_text(st, 6, e->type);
    sq_bind_text(st, 7, e->outcome);
    sq_bind_text(st, 8, e->why);
    sqlite3_bind_int64(st, 9, e->event_ms);
    sqlite3_bind_int64(st, 10, e->time_ms);
    sq_bind_text(st, 11, e->detail_json ? e->detail_json : "{}");
    sq_bind_text(st, 12, e->answer_json ? e->answer_json : "");
    return sq_step_done(st);
}

/* event_id <> '' lets the partial unique index dcard_events_dedupe serve it. */
static sq_query q_dcard_event_answer = {.sql =
                                            "SELECT answer_json FROM dcard_events WHERE issuer_id = ?1 AND source = ?2 "
                                            "AND event_id = ?3 AND event_id <> ''"};

static td_st v_dcard_event_answer(td_conn *c, const char *issuer_id, const char *source, const char *event_id,
                                  char **answer_out)
{
    sqlite3_stmt *st = sq_stmt(c, &q_dcard_event_answer);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, issuer_id);
    sq_bind_text(st, 2, source);
    sq_bind_text(st, 3, event_id);
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) {
        *answer_out = sq_col_dup(st, 0);
        if (!*answer_out) r = TD_ST_ERROR;
    }
    sq_finish(st);
    return r;
}

void sq_dcards_verbs(td_store_ops *ops)
{
    ops->dcard_insert = v_dcard_insert;
    ops->dcard_get = v_dcard_get;
    ops->dcard_by_correlation = v_dcard_by_correlation;
    ops->dcard_update = v_dcard_update;
    ops->dcard_list_by_card = v_dcard_list_by_card;
    ops->dcard_list_by_issuer = v_dcard_list_by_issuer;
    ops->dcard_counts = v_dcard_counts;
    ops->dcard_event_append = v_dcard_event_append;
    ops->dcard_event_answer = v_dcard_event_answer;
}
