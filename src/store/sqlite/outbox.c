/* sqlite/outbox.c — the outbox: notifications and end-user messages owed, and
 * their delivery: its SQL, and the code that binds and reads it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/sq.h"
#include "util/util.h"

/* Without id (assigned on insert): the insert's columns; reads add id in front. */
#define OUTBOX_COLS                                                                                                    \
    "issuer_id, channel, digital_card_id, card_id, dcard_seq, operation_id, operation, status, error_code, source, "   \
    "correlation_id, wallet_provider_id, message, method_id, secret_sealed, event_ms, created_ms, due_ms, state, "     \
    "order_key, attempts, last_status, last_error, first_attempt_ms, lease_until_ms, done_ms, replayed_ms, "           \
    "token_storage_id, is_primary, last4, dcard_state"
#define OPEN_STATES "('PENDING', 'IN_FLIGHT')"

/* The notifications of one digital card go in order; so do the card-level
 * ones of one card. End-user messages keep their own order per digital card:
 * an OTP must not wait behind a notification the issuer backend is refusing. */
static void outbox_default_key(td_outbox_rec *o)
{
    if (o->order_key[0]) return;
    const char *prefix = strcmp(o->channel, "USER") == 0 ? "msg:" : "";
    if (o->digital_card_id[0])
        snprintf(o->order_key, sizeof o->order_key, "%s%s", prefix, o->digital_card_id);
    else
        snprintf(o->order_key, sizeof o->order_key, "%scard:%s", prefix, o->card_id);
}

static sq_query q_outbox_insert = {
    .sql = "INSERT INTO outbox(" OUTBOX_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
           "?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31)"};

static td_st v_outbox_insert(td_conn *c, td_outbox_rec *o)
{
    sqlite3_stmt *st = sq_stmt(c, &q_outbox_insert);
    if (!st) return TD_ST_ERROR;
    if (!o->state[0]) td_strlcpy(o->state, "PENDING", sizeof o->state); /* a new row is owed */
    outbox_default_key(o);
    if (c->owner) c->owner->outbox_touched = true;
    sq_bind_text(st, 1, o->issuer_id);
    sq_bind_text(st, 2, o->channel);
    sq_bind_text(st, 3, o->digital_card_id);
    sq_bind_text(st, 4, o->card_id);
    sqlite3_bind_int64(st, 5, o->dcard_seq);
    sq_bind_text(st, 6, o->operation_id);
    sq_bind_text(st, 7, o->operation);
    sq_bind_text(st, 8, o->status);
    sq_bind_text(st, 9, o->error_code);
    sq_bind_text(st, 10, o->source);
    sq_bind_text(st, 11, o->correlation_id);
    sq_bind_text(st, 12, o->wallet_provider_id);
    sq_bind_text(st, 13, o->message);
    sq_bind_text(st, 14, o->method_id);
    sq_bind_blob(st, 15, o->secret_sealed, o->secret_len);
    sqlite3_bind_int64(st, 16, o->event_ms);
    sqlite3_bind_int64(st, 17, o->created_ms);
    sqlite3_bind_int64(st, 18, o->due_ms);
    sq_bind_text(st, 19, o->state);
    sq_bind_text(st, 20, o->order_key);
    sqlite3_bind_int(st, 21, o->attempts);
    sqlite3_bind_int(st, 22, o->last_status);
    sq_bind_text(st, 23, o->last_error);
    sqlite3_bind_int64(st, 24, o->first_attempt_ms);
    sqlite3_bind_int64(st, 25, o->lease_until_ms);
    sqlite3_bind_int64(st, 26, o->done_ms);
    sqlite3_bind_int64(st, 27, o->replayed_ms);
    sq_bind_text(st, 28, o->token_storage_id);
    sqlite3_bind_int(st, 29, o->is_primary);
    sq_bind_text(st, 30, o->last4);
    sqlite3_bind_int(st, 31, o->digital_card_id[0] ? o->dcard_state : -1);
    td_st r = sq_step_done(st);
    if (r == TD_ST_OK) o->id = sqlite3_last_insert_rowid(c->db);
    return r;
}

/* ?2 is a comma-separated list of message names: an exact match of one of
 * them (instr on ",A,B," for ",A,"), not a pattern; spaces are ignored. */
static sq_query q_outbox_cancel = {
    .sql = "UPDATE outbox SET state = 'CANCELLED' WHERE digital_card_id = ?1 AND issuer_id = ?3 AND channel = 'USER' "
           "AND state = 'PENDING' AND message <> '' "
           "AND instr(',' || replace(?2, ' ', '') || ',', ',' || message || ',') > 0"};

static td_st v_outbox_cancel(td_conn *c, const char *issuer_id, const char *digital_card_id, const char *messages,
                             int *n_cancelled)
{
    if (n_cancelled) *n_cancelled = 0;
    sqlite3_stmt *st = sq_stmt(c, &q_outbox_cancel);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, digital_card_id);
    sq_bind_text(st, 2, messages ? messages : "");
    sq_bind_text(st, 3, issuer_id);
    td_st r = sq_step_done(st);
    if (r == TD_ST_OK && n_cancelled) *n_cancelled = sqlite3_changes(c->db);
    return r;
}

static sq_query q_outbox_otp_times = {
    .sql = "SELECT created_ms FROM outbox WHERE digital_card_id = ?1 AND issuer_id = ?4 AND channel = 'USER' "
           "AND message = 'OTP' AND created_ms >= ?2 ORDER BY id LIMIT ?3"};

static td_st v_outbox_otp_times(td_conn *c, const char *issuer_id, const char *digital_card_id, int64_t since_ms,
                                int64_t *out, size_t cap, size_t *n)
{
    *n = 0;
    if (cap == 0) return TD_ST_OK;
    sqlite3_stmt *st = sq_stmt(c, &q_outbox_otp_times);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, digital_card_id);
    sqlite3_bind_int64(st, 2, since_ms);
    sqlite3_bind_int64(st, 3, cap > (size_t)INT64_MAX ? INT64_MAX : (int64_t)cap);
    sq_bind_text(st, 4, issuer_id);
    int rc = SQLITE_DONE;
    while (*n < cap && (rc = sqlite3_step(st)) == SQLITE_ROW)
        out[(*n)++] = sqlite3_column_int64(st, 0);
    sq_finish(st);
    if (*n == cap) return TD_ST_OK;
    return sq_loop_result(rc, TD_ST_OK);
}

static void read_outbox(sqlite3_stmt *st, td_outbox_rec *o)
{
    memset(o, 0, sizeof *o);
    o->id = sqlite3_column_int64(st, 0);
    sq_col_copy(st, 1, o->issuer_id, sizeof o->issuer_id);
    sq_col_copy(st, 2, o->channel, sizeof o->channel);
    sq_col_copy(st, 3, o->digital_card_id, sizeof o->digital_card_id);
    sq_col_copy(st, 4, o->card_id, sizeof o->card_id);
    o->dcard_seq = sqlite3_column_int64(st, 5);
    sq_col_copy(st, 6, o->operation_id, sizeof o->operation_id);
    sq_col_copy(st, 7, o->operation, sizeof o->operation);
    sq_col_copy(st, 8, o->status, sizeof o->status);
    sq_col_copy(st, 9, o->error_code, sizeof o->error_code);
    sq_col_copy(st, 10, o->source, sizeof o->source);
    sq_col_copy(st, 11, o->correlation_id, sizeof o->correlation_id);
    sq_col_copy(st, 12, o->wallet_provider_id, sizeof o->wallet_provider_id);
    sq_col_copy(st, 13, o->message, sizeof o->message);
    sq_col_copy(st, 14, o->method_id, sizeof o->method_id);
    o->secret_len = sq_col_blob(st, 15, o->secret_sealed, sizeof o->secret_sealed);
    o->event_ms = sqlite3_column_int64(st, 16);
    o->created_ms = sqlite3_column_int64(st, 17);
    o->due_ms = sqlite3_column_int64(st, 18);
    sq_col_copy(st, 19, o->state, sizeof o->state);
    sq_col_copy(st, 20, o->order_key, sizeof o->order_key);
    o->attempts = sqlite3_column_int(st, 21);
    o->last_status = sqlite3_column_int(st, 22);
    sq_col_copy(st, 23, o->last_error, sizeof o->last_error);
    o->first_attempt_ms = sqlite3_column_int64(st, 24);
    o->lease_until_ms = sqlite3_column_int64(st, 25);
    o->done_ms = sqlite3_column_int64(st, 26);
    o->replayed_ms = sqlite3_column_int64(st, 27);
    sq_col_copy(st, 28, o->token_storage_id, sizeof o->token_storage_id);
    o->is_primary = sqlite3_column_int(st, 29) != 0;
    sq_col_copy(st, 30, o->last4, sizeof o->last4);
    o->dcard_state = sqlite3_column_int(st, 31);
}

/* Steps a bound "id, OUTBOX_COLS" query to the end into rows (the caller frees rows->items). */
static td_st outbox_collect(sqlite3_stmt *st, sq_rows *rows)
{
    td_st err = TD_ST_OK;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        td_outbox_rec *o = sq_row_add(rows);
        if (!o) {
            err = TD_ST_ERROR;
            break;
        }
        read_outbox(st, o);
    }
    sq_finish(st);
    return sq_loop_result(rc, err);
}

static sq_query q_outbox_list = {.sql = "SELECT id, " OUTBOX_COLS " FROM outbox WHERE issuer_id = ?1 AND id > ?2 "
                                        "AND (?3 IS NULL OR state = ?3) ORDER BY id LIMIT ?4"};

static td_st v_outbox_list(td_conn *c, const char *issuer_id, const char *state, int64_t after_id, int limit,
                           void (*fn)(const td_outbox_rec *, void *), void *arg)
{
    sqlite3_stmt *st = sq_stmt(c, &q_outbox_list);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, issuer_id);
    sqlite3_bind_int64(st, 2, after_id);
    sq_bind_text(st, 3, state);
    sqlite3_bind_int(st, 4, limit);
    sq_rows rows = {.size = sizeof(td_outbox_rec)};
    td_st r = outbox_collect(st, &rows);
    for (size_t i = 0; r == TD_ST_OK && i < rows.n; i++)
        fn(sq_row_at(&rows, i), arg);
    free(rows.items);
    return r;
}

static int outbox_by_id(const void *a, const void *b)
{
    int64_t x = ((const td_outbox_rec *)a)->id, y = ((const td_outbox_rec *)b)->id;
    return x < y ? -1 : x > y;
}

/* One statement per configured issuer (v_outbox_claim): pick, mark
 * IN_FLIGHT, return the rows as marked. It reads the issuer's heads
 * (migration 005: the first open row of each order key, kept by triggers)
 * that are due, oldest due first, through a partial index holding the
 * filter columns: rows waiting behind a head, heads whose retry is not
 * due, and other issuers' heads (an issuer without delivery settings may
 * have a backlog) are never read, and the scan stops at the limit. */
static sq_query q_outbox_claim = {
    .sql = "UPDATE outbox SET state = 'IN_FLIGHT', lease_until_ms = ?3, "
           "first_attempt_ms = CASE WHEN first_attempt_ms = 0 THEN ?1 ELSE first_attempt_ms END "
           "WHERE id IN (SELECT o.id FROM outbox AS o INDEXED BY outbox_heads_due "
           "WHERE o.issuer_id = ?4 AND o.head = 1 AND o.due_ms <= ?1 "
           "AND (o.state = 'PENDING' OR (o.state = 'IN_FLIGHT' AND o.lease_until_ms < ?1)) "
           "ORDER BY o.due_ms, o.id LIMIT ?2) RETURNING id, " OUTBOX_COLS};
static sq_query q_delivery_issuers = {.sql = "SELECT issuer_id FROM issuer_delivery ORDER BY issuer_id"};

static td_st v_outbox_claim(td_conn *c, int64_t now_ms, int64_t lease_ms, int limit,
                            void (*fn)(const td_outbox_rec *, void *), void *arg)
{
    if (limit <= 0) return TD_ST_OK;
    /* The issuers with delivery settings (few), each claimed in turn with what
     * is left of the limit; the first one changes from claim to claim, so an
     * issuer with a large backlog cannot keep the others waiting. */
    sqlite3_stmt *q = sq_stmt(c, &q_delivery_issuers);
    if (!q) return TD_ST_ERROR;
    sq_rows issuers = {.size = sizeof(((td_outbox_rec *)0)->issuer_id)};
    td_st err = TD_ST_OK;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        char *slot = sq_row_add(&issuers);
        if (!slot) {
            err = TD_ST_ERROR;
            break;
        }
        sq_col_copy(q, 0, slot, issuers.size);
    }
    sq_finish(q);
    if (sq_loop_result(rc, err) != TD_ST_OK) {
        free(issuers.items);
        return sq_loop_result(rc, err);
    }
    sq_rows rows = {.size = sizeof(td_outbox_rec)};
    td_st r = TD_ST_OK;
    unsigned first = c->owner ? c->owner->claim_turn++ : 0;
    for (size_t k = 0; r == TD_ST_OK && k < issuers.n && rows.n < (size_t)limit; k++) {
        sqlite3_stmt *st = sq_stmt(c, &q_outbox_claim);
        if (!st) {
            r = TD_ST_ERROR;
            break;
        }
        sqlite3_bind_int64(st, 1, now_ms);
        sqlite3_bind_int(st, 2, limit - (int)rows.n);
        sqlite3_bind_int64(st, 3, lease_ms);
        sq_bind_text(st, 4, sq_row_at(&issuers, (first + k) % issuers.n));
        r = outbox_collect(st, &rows);
    }
    free(issuers.items);
    if (r == TD_ST_OK && rows.n > 1) qsort(rows.items, rows.n, rows.size, outbox_by_id); /* RETURNING has no order */
    for (size_t i = 0; r == TD_ST_OK && i < rows.n; i++)
        fn(sq_row_at(&rows, i), arg);
    free(rows.items);
    return r;
}

/* One seek per configured issuer in outbox_heads_due. */
static sq_query q_outbox_next_due = {.sql = "SELECT min((SELECT o.due_ms FROM outbox AS o INDEXED BY outbox_heads_due "
                                            "WHERE o.issuer_id = d.issuer_id AND o.head = 1 AND o.due_ms > ?1 "
                                            "ORDER BY o.due_ms LIMIT 1)) FROM issuer_delivery AS d"};

static td_st v_outbox_next_due(td_conn *c, int64_t now_ms, int64_t *next_due_ms)
{
    *next_due_ms = 0;
    sqlite3_stmt *st = sq_stmt(c, &q_outbox_next_due);
    if (!st) return TD_ST_ERROR;
    sqlite3_bind_int64(st, 1, now_ms);
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) *next_due_ms = sqlite3_column_int64(st, 0); /* NULL (none) reads as 0 */
    sq_finish(st);
    return r;
}

/* last_error as stored: what td_outbox_rec holds, so a read never cuts it again. */
#define OUTBOX_ERROR_MAX (sizeof(((td_outbox_rec *)0)->last_error) - 1)

/* The length of s cut to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max) return n;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) /* s[n] continues a sequence: cut before its lead */
        n--;
    return n;
}

/* ?2 PENDING: due again at ?6; DELIVERED or DEAD: done at ?5, and no
 * longer a head (set here rather than by outbox_head_close: one rewrite). */
static sq_query q_outbox_attempt = {
    .sql =
        "UPDATE outbox SET state = ?2, attempts = attempts + 1, last_status = ?3, last_error = ?4, "
        "due_ms = CASE WHEN ?2 = 'PENDING' THEN ?6 ELSE due_ms END, "
        "head = CASE WHEN ?2 = 'PENDING' THEN head ELSE 0 END, "
        "done_ms = CASE WHEN ?2 = 'PENDING' THEN 0 ELSE ?5 END, lease_until_ms = 0 "
        "WHERE id = ?1 AND issuer_id = ?7 AND lease_until_ms = ?8"};

static td_st v_outbox_attempt(td_conn *c, const char *issuer_id, int64_t id, int64_t lease_until_ms,
                              const char *state, int http_status, const char *error, int64_t now_ms,
                              int64_t retry_at_ms)
{
    if (!state || (strcmp(state, "PENDING") != 0 && strcmp(state, "DELIVERED") != 0 && strcmp(state, "DEAD") != 0))
        return TD_ST_INTERNAL;
    sqlite3_stmt *st = sq_stmt(c, &q_outbox_attempt);
    if (!st) return TD_ST_ERROR;
    const char *e = error ? error : "";
    sqlite3_bind_int64(st, 1, id);
    sq_bind_text(st, 2, state);
    sqlite3_bind_int(st, 3, http_status);
    sqlite3_bind_text(st, 4, e, (int)utf8_cut(e, OUTBOX_ERROR_MAX), SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now_ms);
    sqlite3_bind_int64(st, 6, retry_at_ms);
    sq_bind_text(st, 7, issuer_id);
    sqlite3_bind_int64(st, 8, lease_until_ms);
    td_st r = sq_step_done(st);
    if (r == TD_ST_OK && sqlite3_changes(c->db) == 0) r = TD_ST_NOT_FOUND;
    return r;
}

/* In process: one statement each costs no round trip. */
static td_st v_outbox_attempts(td_conn *c, const td_outbox_outcome *v, size_t n, int64_t now_ms, td_st *st)
{
    for (size_t i = 0; i < n; i++) {
        st[i] = v_outbox_attempt(c, v[i].issuer_id, v[i].id, v[i].lease_until_ms, v[i].state, v[i].http_status,
                                 v[i].error, now_ms, v[i].retry_at_ms);
        if (st[i] != TD_ST_OK && st[i] != TD_ST_NOT_FOUND) return st[i];
    }
    return TD_ST_OK;
}

static sq_query q_outbox_replay_one = {
    .sql = "UPDATE outbox SET state = 'PENDING', due_ms = ?3, lease_until_ms = 0, done_ms = 0, "
           "replayed_ms = ?3 WHERE id = ?2 AND issuer_id = ?1 AND state = 'DEAD'"};
static sq_query q_outbox_replay_all = {
    .sql = "UPDATE outbox SET state = 'PENDING', due_ms = ?2, lease_until_ms = 0, done_ms = 0, "
           "replayed_ms = ?2 WHERE issuer_id = ?1 AND state = 'DEAD'"};

static td_st v_outbox_replay(td_conn *c, const char *issuer_id, int64_t id, int64_t now_ms, int *n)
{
    if (n) *n = 0;
    if (id < 0) return TD_ST_NOT_FOUND; /* no such row; only 0 means all */
    sqlite3_stmt *st = sq_stmt(c, id > 0 ? &q_outbox_replay_one : &q_outbox_replay_all);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, issuer_id);
    if (id > 0) {
        sqlite3_bind_int64(st, 2, id);
        sqlite3_bind_int64(st, 3, now_ms);
    } else {
        sqlite3_bind_int64(st, 2, now_ms);
    }
    td_st r = sq_step_done(st);
    if (r != TD_ST_OK) return r;
    int changed = sqlite3_changes(c->db);
    if (n) *n = changed;
    if (changed > 0 && c->owner) c->owner->outbox_touched = true;
    return id > 0 && changed == 0 ? TD_ST_NOT_FOUND : TD_ST_OK;
}

/* Counts read the partial indexes of migration 006 alone (the IN term
 * repeats outbox_open's condition so that the index serves the count).
 * The oldest open row is the first open row of its key (rows are created
 * in id order), a head: the minimum over the heads is the minimum over
 * all open rows. */
static sq_query q_outbox_stats = {
    .sql = "SELECT (SELECT count(*) FROM outbox INDEXED BY outbox_open "
           "WHERE state IN " OPEN_STATES " AND state = 'PENDING'), "
           "(SELECT count(*) FROM outbox INDEXED BY outbox_open "
           "WHERE state IN " OPEN_STATES " AND state = 'IN_FLIGHT'), "
           "(SELECT count(*) FROM outbox INDEXED BY outbox_dead WHERE state = 'DEAD'), "
           "(SELECT min(created_ms) FROM outbox INDEXED BY outbox_heads_age WHERE head = 1)"};

static td_st v_outbox_stats(td_conn *c, int64_t *pending, int64_t *in_flight, int64_t *dead, int64_t *oldest_ms)
{
    sqlite3_stmt *st = sq_stmt(c, &q_outbox_stats);
    if (!st) return TD_ST_ERROR;
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) {
        if (pending) *pending = sqlite3_column_int64(st, 0);
        if (in_flight) *in_flight = sqlite3_column_int64(st, 1);
        if (dead) *dead = sqlite3_column_int64(st, 2);
        if (oldest_ms) *oldest_ms = sqlite3_column_int64(st, 3); /* NULL (none) reads as 0 */
    }
    sq_finish(st);
    return r;
}

/* Per issuer without settings, its open rows counted on the (issuer_id, ...)
 * open-row indexes: the cost is that of those issuers' rows alone. */
static sq_query q_outbox_unroutable = {.sql = "SELECT id, n FROM (SELECT i.id AS id, (SELECT count(*) FROM outbox o WHERE o.issuer_id = i.id AND o.state IN " \
    OPEN_STATES ") AS n FROM issuers i WHERE NOT EXISTS (SELECT 1 FROM issuer_delivery d WHERE d.issuer_id = i.id)) " \
    "AS owed WHERE n > 0 ORDER BY id LIMIT ?1"};

static td_st v_outbox_unroutable(td_conn *c, td_unroutable *out, size_t max, size_t *n)
{
    *n = 0;
    sqlite3_stmt *st = sq_stmt(c, &q_outbox_unroutable);
    if (!st) return TD_ST_ERROR;
    sqlite3_bind_int64(st, 1, (int64_t)max);
    int rc;
    while (*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        sq_col_copy(st, 0, out[*n].issuer_id, sizeof out[*n].issuer_id);
        out[(*n)++].rows = sqlite3_column_int64(st, 1);
    }
    td_st r = *n == max ? TD_ST_OK : sq_loop_result(rc, TD_ST_OK);
    sq_finish(st);
    return r;
}

void sq_outbox_verbs(td_store_ops *ops)
{
    ops->outbox_unroutable = v_outbox_unroutable;
    ops->outbox_insert = v_outbox_insert;
    ops->outbox_cancel = v_outbox_cancel;
    ops->outbox_otp_times = v_outbox_otp_times;
    ops->outbox_list = v_outbox_list;
    ops->outbox_claim = v_outbox_claim;
    ops->outbox_next_due = v_outbox_next_due;
    ops->outbox_attempt = v_outbox_attempt;
    ops->outbox_attempts = v_outbox_attempts;
    ops->outbox_replay = v_outbox_replay;
    ops->outbox_stats = v_outbox_stats;
}
