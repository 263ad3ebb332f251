/* pg/dcards.c — digital cards (network tokens) and their lifecycle events: the
 * PostgreSQL twin of sqlite/dcards.c, its SQL beside the code that binds and
 * reads it. */
#include <stdlib.h>
#include <string.h>

#include "core/decision.h"
#include "store/pg/pgs.h"
#include "util/log.h"

#define DCARD_COLS                                                                                                     \
    "id, issuer_id, card_id, state, suspended_by, last_event_ms, seq, stepup_open, idv_failures, "                     \
    "revivable_until_ms, verdict, decision_reason, wallet_provider_id, token_requestor_id, token_storage_id, "         \
    "is_primary, correlation_id, digitize_op_id, last4, device_json, idv_json, answer_json, stepup_deadline_ms, "      \
    "created_ms, updated_ms"

/* No conflict target: a duplicate (issuer, id) (the primary key) and a duplicate
 * (issuer, correlation id) (digital_cards_correlation) both insert nothing,
 * reported as CONFLICT without aborting the job's transaction. */
static pg_query q_dcard_insert = {.sql = "INSERT INTO digital_cards(" DCARD_COLS
                                         ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
                                         "$15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25) "
                                         "ON CONFLICT DO NOTHING"};

#define SUSPENDERS_MAX 64

static td_st v_dcard_insert(td_conn *c, const td_dcard_rec *r)
{
    char susp[SUSPENDERS_MAX];
    if (td_suspenders_format(r->d.suspended_by, susp, sizeof susp) != 0) return TD_ST_INTERNAL;
    pg_params p = {0};
    pg_p_text(&p, r->id);
    pg_p_text(&p, r->issuer_id);
    pg_p_text(&p, r->card_id);
    pg_p_int(&p, (int)r->d.state);
    pg_p_text(&p, susp);
    pg_p_int(&p, r->d.last_event_ms);
    pg_p_int(&p, r->d.seq);
    pg_p_int(&p, r->d.stepup_open ? 1 : 0);
    pg_p_int(&p, r->d.idv_failures);
    pg_p_int(&p, r->d.revivable_until_ms);
    pg_p_int(&p, (int)r->verdict);
    pg_p_text(&p, r->decision_reason);
    pg_p_text(&p, r->wallet_provider_id);
    pg_p_text(&p, r->token_requestor_id);
    pg_p_text(&p, r->token_storage_id);
    pg_p_int(&p, r->is_primary ? 1 : 0);
    pg_p_text(&p, r->correlation_id);
    pg_p_text(&p, r->digitize_op_id);
    pg_p_text(&p, r->last4);
    pg_p_text(&p, r->device_json ? r->device_json : "{}");
    pg_p_text(&p, r->idv_json ? r->idv_json : "[]");
    pg_p_text(&p, r->answer_json ? r->answer_json : "");
    pg_p_int(&p, r->stepup_deadline_ms);
    pg_p_int(&p, r->created_ms);
    pg_p_int(&p, r->updated_ms);
    int64_t n = 0;
    td_st st = pg_cmd(c, &q_dcard_insert, &p, &n);
    if (st == TD_ST_OK && n == 0) st = TD_ST_CONFLICT;
    return st;
}

/* The suspenders set, parsed from the whole stored text (a copy into a fixed
 * buffer could cut a corrupt value into a valid one). */
static td_st read_suspenders(const PGresult *res, int row, td_dcard_rec *r)
{
    char *susp = pg_dup(res, row, 4);
    if (!susp) return TD_ST_ERROR; /* NOT NULL: a failed allocation */
    td_st st = TD_ST_OK;
    if (td_suspenders_parse(susp, &r->d.suspended_by) != 0) {
        td_log(TD_LOG_ERROR, "store_corrupt", "digital card %s: suspended_by '%s'", r->id, susp);
        st = TD_ST_ERROR;
    }
    free(susp);
    return st;
}

/* Fills r from row `row` of a DCARD_COLS result. On failure (an unreadable
 * suspenders set, out of memory) r is still safe to pass to td_dcard_rec_free. */
static td_st read_dcard(const PGresult *res, int row, td_dcard_rec *r)
{
    memset(r, 0, sizeof *r);
    pg_copy(res, row, 0, r->id, sizeof r->id);
    pg_copy(res, row, 1, r->issuer_id, sizeof r->issuer_id);
    pg_copy(res, row, 2, r->card_id, sizeof r->card_id);
    r->d.state = (td_dcard_state)pg_i64(res, row, 3);
    if (read_suspenders(res, row, r) != TD_ST_OK) return TD_ST_ERROR;
    r->d.last_event_ms = pg_i64(res, row, 5);
    r->d.seq = pg_i64(res, row, 6);
    r->d.stepup_open = pg_i64(res, row, 7) != 0;
    r->d.idv_failures = (int)pg_i64(res, row, 8);
    r->d.revivable_until_ms = pg_i64(res, row, 9);
    r->verdict = (td_verdict)pg_i64(res, row, 10);
    pg_copy(res, row, 11, r->decision_reason, sizeof r->decision_reason);
    pg_copy(res, row, 12, r->wallet_provider_id, sizeof r->wallet_provider_id);
    pg_copy(res, row, 13, r->token_requestor_id, sizeof r->token_requestor_id);
    pg_copy(res, row, 14, r->token_storage_id, sizeof r->token_storage_id);
    r->is_primary = pg_i64(res, row, 15) != 0;
    pg_copy(res, row, 16, r->correlation_id, sizeof r->correlation_id);
    pg_copy(res, row, 17, r->digitize_op_id, sizeof r->digitize_op_id);
    pg_copy(res, row, 18, r->last4, sizeof r->last4);
    r->device_json = pg_dup(res, row, 19);
    r->idv_json = pg_dup(res, row, 20);
    r->answer_json = pg_dup(res, row, 21);
    r->stepup_deadline_ms = pg_i64(res, row, 22);
    r->created_ms = pg_i64(res, row, 23);
    r->updated_ms = pg_i64(res, row, 24);
    /* the columns are NOT NULL: a NULL here is a failed allocation */
    if (!r->device_json || !r->idv_json || !r->answer_json) {
        td_dcard_rec_free(r);
        return TD_ST_ERROR;
    }
    return TD_ST_OK;
}

/* Inside a job the read precedes dcard_update (which checks the seq): the
 * FOR UPDATE variant makes another node's job on the same digital card wait
 * for this one's commit instead of deciding on a stale row. */
static td_st dcard_get_by(td_conn *c, pg_query *q, pg_query *q_lock, const pg_params *p, td_dcard_rec *out)
{
    PGresult *res = NULL;
    td_st st = pg_row(c, c->in_job ? q_lock : q, p, &res);
    if (st == TD_ST_OK) {
        st = read_dcard(res, 0, out);
        if (st != TD_ST_OK) td_dcard_rec_free(out);
    }
    PQclear(res);
    return st;
}

static pg_query q_dcard_get = {.sql = "SELECT " DCARD_COLS " FROM digital_cards WHERE issuer_id = $1 AND id = $2"};
static pg_query q_dcard_get_lock = {.sql = "SELECT " DCARD_COLS
                                           " FROM digital_cards WHERE issuer_id = $1 AND id = $2 FOR UPDATE"};

static td_st v_dcard_get(td_conn *c, const char *issuer_id, const char *id, td_dcard_rec *out)
{
    pg_params p = {0};
    pg_p_text(&p, issuer_id);
    pg_p_text(&p, id);
    return dcard_get_by(c, &q_dcard_get, &q_dcard_get_lock, &p, out);
}

static pg_query q_dcard_by_correlation = {.sql = "SELECT " DCARD_COLS
                                                 " FROM digital_cards WHERE issuer_id = $1 AND correlation_id = $2"};
static pg_query q_dcard_by_correlation_lock = {
    .sql = "SELECT " DCARD_COLS " FROM digital_cards WHERE issuer_id = $1 AND correlation_id = $2 FOR UPDATE"};

static td_st v_dcard_by_correlation(td_conn *c, const char *issuer_id, const char *correlation_id, td_dcard_rec *out)
{
    pg_params p = {0};
    pg_p_text(&p, issuer_id);
    pg_p_text(&p, correlation_id);
    return dcard_get_by(c, &q_dcard_by_correlation, &q_dcard_by_correlation_lock, &p, out);
}

static pg_query q_dcard_update = {
    .sql = "UPDATE digital_cards SET state = $2, suspended_by = $3, last_event_ms = $4, seq = $5, "
           "stepup_open = $6, idv_failures = $7, revivable_until_ms = $8, stepup_deadline_ms = $9, "
           "updated_ms = $10 WHERE id = $1 AND seq = $11 AND issuer_id = $12"};

static td_st v_dcard_update(td_conn *c, const td_dcard_rec *r, int64_t expect_seq)
{
    char susp[SUSPENDERS_MAX];
    if (td_suspenders_format(r->d.suspended_by, susp, sizeof susp) != 0) return TD_ST_INTERNAL;
    pg_params p = {0};
    pg_p_text(&p, r->id);
    pg_p_int(&p, (int)r->d.state);
    pg_p_text(&p, susp);
    pg_p_int(&p, r->d.last_event_ms);
    pg_p_int(&p, r->d.seq);
    pg_p_int(&p, r->d.stepup_open ? 1 : 0);
    pg_p_int(&p, r->d.idv_failures);
    pg_p_int(&p, r->d.revivable_until_ms);
    pg_p_int(&p, r->stepup_deadline_ms);
    pg_p_int(&p, r->updated_ms);
    pg_p_int(&p, expect_seq);
    pg_p_text(&p, r->issuer_id);
    int64_t n = 0;
    td_st st = pg_cmd(c, &q_dcard_update, &p, &n);
    if (st == TD_ST_OK && n == 0) st = TD_ST_CONFLICT;
    return st;
}

/* Runs a DCARD_COLS list and reads every row before fn sees any: a row that
 * cannot be read fails the whole list, as in the SQLite store, and fn may
 * call any verb on the same connection. */
static td_st dcard_list(td_conn *c, pg_query *q, const pg_params *p, void (*fn)(const td_dcard_rec *, void *),
                        void *arg)
{
    PGresult *res = NULL;
    td_st st = pg_rows(c, q, p, &res);
    if (st != TD_ST_OK) return st;
    int n = PQntuples(res);
    td_dcard_rec *rows = n ? calloc((size_t)n, sizeof *rows) : NULL;
    if (n && !rows) {
        PQclear(res);
        return TD_ST_ERROR;
    }
    for (int i = 0; st == TD_ST_OK && i < n; i++)
        st = read_dcard(res, i, &rows[i]);
    PQclear(res);
    /* rows not read are zeroed: freeing them is harmless */
    for (int i = 0; i < n; i++) {
        if (st == TD_ST_OK) fn(&rows[i], arg);
        td_dcard_rec_free(&rows[i]);
    }
    free(rows);
    return st;
}

/* Oldest first; seq_no (insertion order, SQLite's rowid) breaks ties and ends
 * the digital_cards_card index, so no sort. */
static pg_query q_dcard_list_by_card = {.sql = "SELECT " DCARD_COLS
                                               " FROM digital_cards WHERE issuer_id = $1 AND card_id = $2 "
                                               "ORDER BY created_ms, seq_no"};

static td_st v_dcard_list_by_card(td_conn *c, const char *issuer_id, const char *card_id,
                                  void (*fn)(const td_dcard_rec *, void *), void *arg)
{
    pg_params p = {0};
    pg_p_text(&p, issuer_id);
    pg_p_text(&p, card_id);
    return dcard_list(c, &q_dcard_list_by_card, &p, fn, arg);
}

static pg_query q_dcard_list_by_issuer = {.sql = "SELECT " DCARD_COLS
                                                 " FROM digital_cards WHERE issuer_id = $1 AND created_ms >= $2 "
                                                 "AND created_ms < $3 ORDER BY created_ms, seq_no LIMIT $4 OFFSET $5"};

static td_st v_dcard_list_by_issuer(td_conn *c, const char *issuer_id, int64_t start_ms, int64_t end_ms, int64_t offset,
                                    int limit, void (*fn)(const td_dcard_rec *, void *), void *arg)
{
    pg_params p = {0};
    pg_p_text(&p, issuer_id);
    /* 0 = unbounded, as the whole range of the created_ms index */
    pg_p_int(&p, start_ms ? start_ms : INT64_MIN);
    pg_p_int(&p, end_ms ? end_ms : INT64_MAX);
    /* SQLite reads a negative LIMIT as none and a negative OFFSET as 0, where
     * PostgreSQL refuses both: LIMIT NULL is PostgreSQL's "no limit". */
    if (limit < 0)
        pg_p_text(&p, NULL);
    else
        pg_p_int(&p, limit);
    pg_p_int(&p, offset < 0 ? 0 : offset);
    return dcard_list(c, &q_dcard_list_by_issuer, &p, fn, arg);
}

/* Per state: the engine (td_decision_counts_token) says which states count.
 * count(*) FILTER gives what SQLite's sum(created_ms >= ?3) gives. */
static pg_query q_dcard_counts = {.sql = "SELECT state, count(*), count(*) FILTER (WHERE created_ms >= $3) "
                                         "FROM digital_cards WHERE issuer_id = $1 AND card_id = $2 GROUP BY state"};

static td_st v_dcard_counts(td_conn *c, const char *issuer_id, const char *card_id, int64_t since_ms, int *live,
                            int *attempts)
{
    pg_params p = {0};
    pg_p_text(&p, issuer_id);
    pg_p_text(&p, card_id);
    pg_p_int(&p, since_ms);
    PGresult *res = NULL;
    td_st st = pg_rows(c, &q_dcard_counts, &p, &res);
    if (st != TD_ST_OK) return st;
    int n_live = 0, n_attempts = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        if (td_decision_counts_token((td_dcard_state)pg_i64(res, i, 0))) n_live += (int)pg_i64(res, i, 1);
        n_attempts += (int)pg_i64(res, i, 2);
    }
    PQclear(res);
    if (live) *live = n_live;
    if (attempts) *attempts = n_attempts;
    return TD_ST_OK;
}

/* ---- digital cards' events ---- */

/* No conflict target: an event id already recorded (the partial unique index
 * dcard_events_dedupe) and a duplicate (digital card, seq) (the primary key)
 * both insert nothing: CONFLICT, and the job's transaction goes on. Against
 * another transaction inserting the same event id, the insert waits for its
 * commit, so the caller's dcard_event_answer then reads the stored answer. */
static pg_query q_dcard_event_append = {
    .sql = "INSERT INTO dcard_events(digital_card_id, seq, issuer_id, event_id, source, type, "
           "outcome, why, event_ms, time_ms, detail_json, answer_json) "
           "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING"};

static td_st v_dcard_event_append(td_conn *c, const td_dcard_event_rec *e)
{
    pg_params p = {0};
    pg_p_text(&p, e->digital_card_id);
    pg_p_int(&p, e->seq);
    pg_p_text(&p, e->issuer_id);
    pg_p_text(&p, e->event_id);
    pg_p_text(&p, e->source);
    pg_p_text(&p, e->type);
    pg_p_text(&p, e->outcome);
    pg_p_text(&p, e->why);
    pg_p_int(&p, e->event_ms);
    pg_p_int(&p, e->time_ms);
    pg_p_text(&p, e->detail_json ? e->detail_json : "{}");
    pg_p_text(&p, e->answer_json ? e->answer_json : "");
    int64_t n = 0;
    td_st st = pg_cmd(c, &q_dcard_event_append, &p, &n);
    if (st == TD_ST_OK && n == 0) st = TD_ST_CONFLICT;
    return st;
}

/* event_id <> '' lets the partial unique index dcard_events_dedupe serve it. */
static pg_query q_dcard_event_answer = {.sql =
                                            "SELECT answer_json FROM dcard_events WHERE issuer_id = $1 AND source = $2 "
                                            "AND event_id = $3 AND event_id <> ''"};

static td_st v_dcard_event_answer(td_conn *c, const char *issuer_id, const char *source, const char *event_id,
                                  char **answer_out)
{
    pg_params p = {0};
    pg_p_text(&p, issuer_id);
    pg_p_text(&p, source);
    pg_p_text(&p, event_id);
    PGresult *res = NULL;
    td_st st = pg_row(c, &q_dcard_event_answer, &p, &res);
    if (st == TD_ST_OK) {
        *answer_out = pg_dup(res, 0, 0);
        if (!*answer_out) st = TD_ST_ERROR;
    }
    PQclear(res);
    return st;
}

void pg_dcards_verbs(td_store_ops *ops)
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
