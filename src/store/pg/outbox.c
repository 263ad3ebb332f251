/* pg/outbox.c — the outbox: notifications and end-user messages owed, and
 * their delivery by several nodes at once: its SQL, and the code that binds and reads it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/pgs.h"
#include "util/util.h"

/* Without id (assigned on insert): the insert's columns; reads add id in front. */
#define OUTBOX_COLS                                                                                                    \
    "issuer_id, channel, digital_card_id, card_id, dcard_seq, operation_id, operation, status, error_code, source, "   \
    "correlation_id, wallet_provider_id, message, method_id, secret_sealed, event_ms, created_ms, due_ms, state, "     \
    "order_key, attempts, last_status, last_error, first_attempt_ms, lease_until_ms, done_ms, replayed_ms, "           \
    "token_storage_id, is_primary, last4, dcard_state"
#define OPEN_STATES "('PENDING', 'IN_FLIGHT')"

/* SQLite keeps a `head` column by triggers; here a claim finds the heads
 * itself. Row o (open) may go when no open row of its (issuer, order key)
 * comes before it. The nearest earlier open row is sought backwards in
 * outbox_open_order (max: one backward index-only scan of the open rows
 * alone), so a row waiting behind another finds it at once, whatever the key's
 * delivered history. NOT EXISTS became an anti-join that read the key from
 * its oldest row, delivered ones first: twice as slow with 6 per key. */
#define O_IS_HEAD                                                                                                      \
    "(SELECT max(e.id) FROM outbox AS e WHERE e.issuer_id = o.issuer_id AND e.order_key = o.order_key "                \
    "AND e.id < o.id AND e.state IN " OPEN_STATES ") IS NULL"
/* Claimable at $1: waiting, or held by a node whose lease ran out (it died
 * mid-delivery). The IN term lets outbox_open_due's predicate serve. */
#define O_CLAIMABLE "o.state IN " OPEN_STATES " AND (o.state = 'PENDING' OR o.lease_until_ms < $1)"
/* When a claim looks at a row: its due time, or later while it waits behind
 * a head that waits for its retry (wait_ms, migration 005); outbox_open_due's
 * expression, so that rows waiting behind retrying heads are not walked. */
#define O_DUE "GREATEST(o.due_ms, o.wait_ms)"

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

static pg_query q_outbox_insert = {
    .sql = "INSERT INTO outbox(" OUTBOX_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
           "$15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31) RETURNING id"};

static void outbox_insert_params(pg_params *p, const td_outbox_rec *o)
{
    pg_p_text(p, o->issuer_id);
    pg_p_text(p, o->channel);
    pg_p_text(p, o->digital_card_id);
    pg_p_text(p, o->card_id);
    pg_p_int(p, o->dcard_seq);
    pg_p_text(p, o->operation_id);
    pg_p_text(p, o->operation);
    pg_p_text(p, o->status);
    pg_p_text(p, o->error_code);
    pg_p_text(p, o->source);
    pg_p_text(p, o->correlation_id);
    pg_p_text(p, o->wallet_provider_id);
    pg_p_text(p, o->message);
    pg_p_text(p, o->method_id);
    pg_p_blob(p, o->secret_sealed, o->secret_len);
    pg_p_int(p, o->event_ms);
    pg_p_int(p, o->created_ms);
    pg_p_int(p, o->due_ms);
    pg_p_text(p, o->state);
    pg_p_text(p, o->order_key);
    pg_p_int(p, o->attempts);
    pg_p_int(p, o->last_status);
    pg_p_text(p, o->last_error);
    pg_p_int(p, o->first_attempt_ms);
    pg_p_int(p, o->lease_until_ms);
    pg_p_int(p, o->done_ms);
    pg_p_int(p, o->replayed_ms);
    pg_p_text(p, o->token_storage_id);
    pg_p_int(p, o->is_primary);
    pg_p_text(p, o->last4);
    pg_p_int(p, o->digital_card_id[0] ? o->dcard_state : -1);
}

static td_st v_outbox_insert(td_conn *c, td_outbox_rec *o)
{
    if (!o->state[0]) td_strlcpy(o->state, "PENDING", sizeof o->state); /* a new row is owed */
    outbox_default_key(o);
    pg_params p = {0};
    outbox_insert_params(&p, o);
    PGresult *res = NULL;
    td_st r = pg_row(c, &q_outbox_insert, &p, &res);
    if (r != TD_ST_OK) return r;
    o->id = pg_i64(res, 0, 0);
    PQclear(res);
    c->outbox_touched = true;
    return TD_ST_OK;
}

/* $2 is a comma-separated list of message names: an exact match of one of
 * them, not a pattern; spaces are ignored. strpos is SQLite's instr on the
 * same strings (",A,B," for ",A,"), so the meaning is SQLite's to the byte,
 * even for a name with a comma in it. The rows that waited behind a
 * cancelled one wait no more (wait_ms). */
static pg_query q_outbox_cancel = {
    .sql = "WITH x AS (UPDATE outbox SET state = 'CANCELLED' WHERE digital_card_id = $1 AND issuer_id = $3 "
           "AND channel = 'USER' AND state = 'PENDING' AND message <> '' "
           "AND strpos(',' || replace($2, ' ', '') || ',', ',' || message || ',') > 0 RETURNING id, order_key), "
           "w AS (UPDATE outbox AS f SET wait_ms = 0 WHERE f.issuer_id = $3 AND f.order_key IN (SELECT order_key "
           "FROM x) AND f.state = 'PENDING' AND f.wait_ms <> 0 AND f.id NOT IN (SELECT id FROM x)) "
           "SELECT count(*) FROM x"};

static td_st v_outbox_cancel(td_conn *c, const char *issuer_id, const char *digital_card_id, const char *messages,
                             int *n_cancelled)
{
    if (n_cancelled) *n_cancelled = 0;
    pg_params p = {0};
    pg_p_text(&p, digital_card_id);
    pg_p_text(&p, messages ? messages : "");
    pg_p_text(&p, issuer_id);
    PGresult *res = NULL;
    td_st r = pg_row(c, &q_outbox_cancel, &p, &res);
    if (r != TD_ST_OK) return r;
    if (n_cancelled) *n_cancelled = (int)pg_i64(res, 0, 0);
    PQclear(res);
    return r;
}

static pg_query q_outbox_otp_times = {
    .sql = "SELECT created_ms FROM outbox WHERE digital_card_id = $1 AND issuer_id = $4 AND channel = 'USER' "
           "AND message = 'OTP' AND created_ms >= $2 ORDER BY id LIMIT $3"};

static td_st v_outbox_otp_times(td_conn *c, const char *issuer_id, const char *digital_card_id, int64_t since_ms,
                                int64_t *out, size_t cap, size_t *n)
{
    *n = 0;
    if (cap == 0) return TD_ST_OK;
    pg_params p = {0};
    pg_p_text(&p, digital_card_id);
    pg_p_int(&p, since_ms);
    pg_p_int(&p, cap > (size_t)INT64_MAX ? INT64_MAX : (int64_t)cap);
    pg_p_text(&p, issuer_id);
    PGresult *res = NULL;
    td_st r = pg_rows(c, &q_outbox_otp_times, &p, &res);
    if (r != TD_ST_OK) return r;
    for (int i = 0; i < PQntuples(res) && *n < cap; i++)
        out[(*n)++] = pg_i64(res, i, 0);
    PQclear(res);
    return TD_ST_OK;
}

/* Row `row` of an "id, OUTBOX_COLS" result. */
static void read_outbox(const PGresult *r, int row, td_outbox_rec *o)
{
    memset(o, 0, sizeof *o);
    o->id = pg_i64(r, row, 0);
    pg_copy(r, row, 1, o->issuer_id, sizeof o->issuer_id);
    pg_copy(r, row, 2, o->channel, sizeof o->channel);
    pg_copy(r, row, 3, o->digital_card_id, sizeof o->digital_card_id);
    pg_copy(r, row, 4, o->card_id, sizeof o->card_id);
    o->dcard_seq = pg_i64(r, row, 5);
    pg_copy(r, row, 6, o->operation_id, sizeof o->operation_id);
    pg_copy(r, row, 7, o->operation, sizeof o->operation);
    pg_copy(r, row, 8, o->status, sizeof o->status);
    pg_copy(r, row, 9, o->error_code, sizeof o->error_code);
    pg_copy(r, row, 10, o->source, sizeof o->source);
    pg_copy(r, row, 11, o->correlation_id, sizeof o->correlation_id);
    pg_copy(r, row, 12, o->wallet_provider_id, sizeof o->wallet_provider_id);
    pg_copy(r, row, 13, o->message, sizeof o->message);
    pg_copy(r, row, 14, o->method_id, sizeof o->method_id);
    o->secret_len = pg_blob(r, row, 15, o->secret_sealed, sizeof o->secret_sealed);
    o->event_ms = pg_i64(r, row, 16);
    o->created_ms = pg_i64(r, row, 17);
    o->due_ms = pg_i64(r, row, 18);
    pg_copy(r, row, 19, o->state, sizeof o->state);
    pg_copy(r, row, 20, o->order_key, sizeof o->order_key);
    o->attempts = (int)pg_i64(r, row, 21);
    o->last_status = (int)pg_i64(r, row, 22);
    pg_copy(r, row, 23, o->last_error, sizeof o->last_error);
    o->first_attempt_ms = pg_i64(r, row, 24);
    o->lease_until_ms = pg_i64(r, row, 25);
    o->done_ms = pg_i64(r, row, 26);
    o->replayed_ms = pg_i64(r, row, 27);
    pg_copy(r, row, 28, o->token_storage_id, sizeof o->token_storage_id);
    o->is_primary = pg_i64(r, row, 29) != 0;
    pg_copy(r, row, 30, o->last4, sizeof o->last4);
    o->dcard_state = (int)pg_i64(r, row, 31);
}

/* Three statements for SQLite's one ("?3 IS NULL OR state = ?3"): a
 * prepared statement's generic plan matches no partial index to a parameter,
 * and would walk the issuer's whole history for its few dead letters (what an
 * operator lists); with 'DEAD' written out, outbox_dead serves them. */
#define OUTBOX_LIST "SELECT id, " OUTBOX_COLS " FROM outbox WHERE issuer_id = $1 AND id > $2 "
static pg_query q_outbox_list = {.sql = OUTBOX_LIST "ORDER BY id LIMIT $3"};
static pg_query q_outbox_list_dead = {.sql = OUTBOX_LIST "AND state = 'DEAD' ORDER BY id LIMIT $3"};
static pg_query q_outbox_list_state = {.sql = OUTBOX_LIST "AND state = $4 ORDER BY id LIMIT $3"};

static td_st v_outbox_list(td_conn *c, const char *issuer_id, const char *state, int64_t after_id, int limit,
                           void (*fn)(const td_outbox_rec *, void *), void *arg)
{
    pg_query *q = !state ? &q_outbox_list : !strcmp(state, "DEAD") ? &q_outbox_list_dead : &q_outbox_list_state;
    pg_params p = {0};
    pg_p_text(&p, issuer_id);
    pg_p_int(&p, after_id);
    if (limit < 0)
        pg_p_text(&p, NULL); /* SQLite's LIMIT -1: no limit (PostgreSQL refuses a negative one) */
    else
        pg_p_int(&p, limit);
    if (q == &q_outbox_list_state) pg_p_text(&p, state);
    PGresult *res = NULL;
    td_st r = pg_rows(c, q, &p, &res);
    if (r != TD_ST_OK) return r;
    /* The result is whole in memory: fn may use the connection. */
    td_outbox_rec o;
    for (int i = 0; i < PQntuples(res); i++) {
        read_outbox(res, i, &o);
        fn(&o, arg);
    }
    PQclear(res);
    return TD_ST_OK;
}

/* Claimed rows of every issuer, before they are handed out in id order. */
typedef struct {
    td_outbox_rec *v;
    size_t n;
} claimed;

/* Appends a claim's RETURNING rows. */
static td_st claimed_add(claimed *cl, const PGresult *res)
{
    size_t k = (size_t)PQntuples(res);
    if (k == 0) return TD_ST_OK;
    td_outbox_rec *v = realloc(cl->v, (cl->n + k) * sizeof *v);
    if (!v) return TD_ST_ERROR;
    cl->v = v;
    for (size_t i = 0; i < k; i++)
        read_outbox(res, (int)i, &cl->v[cl->n++]);
    return TD_ST_OK;
}

static int outbox_by_id(const void *a, const void *b)
{
    int64_t x = ((const td_outbox_rec *)a)->id, y = ((const td_outbox_rec *)b)->id;
    return x < y ? -1 : x > y;
}

/* One statement per configured issuer (v_outbox_claim): pick, lock, mark
 * IN_FLIGHT, return the rows as marked. It walks the issuer's open rows
 * oldest due first in outbox_open_due (rows not due, and other issuers',
 * are not read), keeps the claimable heads (O_IS_HEAD: a backward seek in
 * outbox_open_order each) and stops at the limit. Rows waiting behind a head
 * that waits for its retry are not read before that retry (wait_ms, in the
 * index's order); those behind a head in flight are read on the way, a seek
 * each (SQLite's head index skips them all).
 *
 * Why the order per order key holds with several nodes claiming at once
 * (READ COMMITTED: each statement reads a fresh snapshot):
 * - An earlier row of the key IN_FLIGHT on another node is open: the later
 *   row is no head until that node records the outcome (or its lease runs
 *   out, and then the earlier row is claimed again, not the later one).
 * - An earlier row being claimed by another node at this instant is locked,
 *   not invisible: that claim is not committed, so this snapshot still sees
 *   the row PENDING, open; the later row is no head, and the earlier one is
 *   skipped, locked. SKIP LOCKED applies to o alone (FOR UPDATE OF o): the
 *   head test reads its rows without locking or skipping any.
 * - A row another node claimed or closed after this snapshot was taken is
 *   locked at its newest version and checked again there (EvalPlanQual:
 *   state, lease, due time), so it is dropped, not claimed twice.
 * - The ids of one key grow in commit order: every job that writes a key's
 *   rows has locked its digital card (or card) row first, so a row with a
 *   smaller id cannot appear later, behind one already claimed.
 * What can still put a key out of order is what SQLite allows too: a dead
 * letter replayed ahead of a row already in flight (receivers use sequence).
 * Under REPEATABLE READ, locking a row changed since the transaction began
 * would fail (serialization failure, TD_ST_BUSY): the writer's transactions
 * are READ COMMITTED.
 *
 * "id = ANY (ARRAY(...))", not "id IN (...)": the picked ids are computed
 * once and found through the primary key (issuer_id, id), hence the issuer
 * in the outer WHERE too. With IN, the prepared statement's generic plan
 * (LIMIT $2 unknown) joined them to a sequential scan of the whole outbox,
 * delivered rows included. */
static pg_query q_outbox_claim = {
    .sql = "UPDATE outbox SET state = 'IN_FLIGHT', lease_until_ms = $3, wait_ms = 0, "
           "first_attempt_ms = CASE WHEN first_attempt_ms = 0 THEN $1 ELSE first_attempt_ms END "
           "WHERE issuer_id = $4 AND id = ANY (ARRAY(SELECT o.id FROM outbox AS o WHERE o.issuer_id = $4 AND " O_DUE
           " <= $1 AND " O_CLAIMABLE " AND " O_IS_HEAD " ORDER BY " O_DUE ", o.id LIMIT $2 "
           "FOR UPDATE OF o SKIP LOCKED)) RETURNING id, " OUTBOX_COLS};
static pg_query q_delivery_issuers = {.sql = "SELECT issuer_id FROM issuer_delivery ORDER BY issuer_id"};

/* Claims for one issuer what is left of the limit into cl. */
static td_st claim_issuer(td_conn *c, const char *issuer_id, int64_t now_ms, int64_t lease_ms, int left, claimed *cl)
{
    pg_params p = {0};
    pg_p_int(&p, now_ms);
    pg_p_int(&p, left);
    pg_p_int(&p, lease_ms);
    pg_p_text(&p, issuer_id);
    PGresult *res = NULL;
    td_st r = pg_rows(c, &q_outbox_claim, &p, &res);
    if (r != TD_ST_OK) return r;
    r = claimed_add(cl, res);
    PQclear(res);
    return r;
}

static td_st v_outbox_claim(td_conn *c, int64_t now_ms, int64_t lease_ms, int limit,
                            void (*fn)(const td_outbox_rec *, void *), void *arg)
{
    if (limit <= 0) return TD_ST_OK;
    /* The issuers with delivery settings (few), each claimed in turn with what
     * is left of the limit; the first one changes from claim to claim, so an
     * issuer with a large backlog cannot keep the others waiting. The turn is
     * the store's, shared by its writer threads: taken atomically. */
    pg_params none = {0};
    PGresult *iss = NULL;
    td_st r = pg_rows(c, &q_delivery_issuers, &none, &iss);
    if (r != TD_ST_OK) return r;
    unsigned n_iss = (unsigned)PQntuples(iss);
    unsigned first = c->owner ? __atomic_fetch_add(&c->owner->claim_turn, 1u, __ATOMIC_RELAXED) : 0;
    claimed cl = {0};
    for (unsigned k = 0; r == TD_ST_OK && k < n_iss && cl.n < (size_t)limit; k++)
        r = claim_issuer(c, PQgetvalue(iss, (int)((first + k) % n_iss), 0), now_ms, lease_ms, limit - (int)cl.n, &cl);
    PQclear(iss);
    if (r == TD_ST_OK && cl.n > 1) qsort(cl.v, cl.n, sizeof *cl.v, outbox_by_id); /* RETURNING has no order */
    for (size_t i = 0; r == TD_ST_OK && i < cl.n; i++)
        fn(&cl.v[i], arg);
    free(cl.v);
    return r;
}

/* One walk per configured issuer in outbox_open_due, from now on, to its
 * first claimable head. */
static pg_query q_outbox_next_due = {.sql = "SELECT min((SELECT " O_DUE " FROM outbox AS o "
                                            "WHERE o.issuer_id = d.issuer_id AND " O_DUE " > $1 AND " O_CLAIMABLE
                                            " AND " O_IS_HEAD " ORDER BY " O_DUE ", o.id LIMIT 1)) "
                                            "FROM issuer_delivery AS d"};

static td_st v_outbox_next_due(td_conn *c, int64_t now_ms, int64_t *next_due_ms)
{
    *next_due_ms = 0;
    pg_params p = {0};
    pg_p_int(&p, now_ms);
    PGresult *res = NULL;
    td_st r = pg_row(c, &q_outbox_next_due, &p, &res);
    if (r != TD_ST_OK) return r;
    *next_due_ms = pg_i64(res, 0, 0); /* NULL (none) reads as 0 */
    PQclear(res);
    return TD_ST_OK;
}

/* last_error as stored: what td_outbox_rec holds, so a read never cuts it again. */
#define OUTBOX_ERROR_MAX (sizeof(((td_outbox_rec *)0)->last_error) - 1)

/* The length of the well-formed UTF-8 sequence at s (1-4), 0 if it is not
 * one (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF). */
static size_t utf8_seq(const unsigned char *s)
{
    if (s[0] < 0x80) return 1;
    size_t len = s[0] >= 0xC2 && s[0] <= 0xDF   ? 2
                 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3
                 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4
                                                : 0;
    /* the second byte's range where the lead narrows it */
    unsigned lo = s[0] == 0xE0 ? 0xA0 : s[0] == 0xF0 ? 0x90 : 0x80;
    unsigned hi = s[0] == 0xED ? 0x9F : s[0] == 0xF4 ? 0x8F : 0xBF;
    if (len == 0 || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return len;
}

/* The error as stored: at most OUTBOX_ERROR_MAX bytes, cut between
 * characters, and valid UTF-8 with any other byte as '?'. SQLite stores any
 * bytes; PostgreSQL refuses the statement, which would lose the outcomes of
 * the whole job with it, at every retry (an error cut mid-character by an
 * snprintf, a certificate subject in Latin-1). Valid text is kept as SQLite
 * keeps it. */
static void error_text(const char *e, char *out)
{
    size_t n = 0;
    const unsigned char *s = (const unsigned char *)e;
    while (*s) {
        size_t len = utf8_seq(s);
        if (n + (len ? len : 1) > OUTBOX_ERROR_MAX) break;
        if (len)
            memcpy(out + n, s, len);
        else
            out[n] = '?';
        n += len ? len : 1;
        s += len ? len : 1;
    }
    out[n] = 0;
}

/* $2 PENDING: due again at $6; DELIVERED or DEAD: done at $5. The rows
 * waiting behind it (its key's later PENDING rows) wait until $6 too, or no
 * more (wait_ms, migration 005): only those whose wait has not passed are
 * written, so a head delivered at its retry leaves them as they are. The
 * count is of the row itself: 0 when its lease is no longer ours (and then
 * nothing changes). */
#define O_WAIT "CASE WHEN $2::text = 'PENDING' THEN $6::bigint ELSE 0 END"
static pg_query q_outbox_attempt = {
    .sql = "WITH a AS (UPDATE outbox SET state = $2::text, attempts = attempts + 1, last_status = $3, "
           "last_error = $4, due_ms = CASE WHEN $2::text = 'PENDING' THEN $6::bigint ELSE due_ms END, "
           "done_ms = CASE WHEN $2::text = 'PENDING' THEN 0 ELSE $5::bigint END, lease_until_ms = 0 "
           "WHERE issuer_id = $7 AND id = $1 AND lease_until_ms = $8 RETURNING order_key), "
           "w AS (UPDATE outbox AS f SET wait_ms = " O_WAIT " WHERE f.issuer_id = $7 AND "
           "f.order_key = (SELECT order_key FROM a) AND f.id > $1 AND f.state = 'PENDING' AND CASE WHEN $2::text = "
           "'PENDING' THEN f.wait_ms <> $6::bigint ELSE f.wait_ms > $5::bigint END) "
           "SELECT count(*) FROM a"};

static bool outcome_state_ok(const char *state)
{
    return state && (!strcmp(state, "PENDING") || !strcmp(state, "DELIVERED") || !strcmp(state, "DEAD"));
}

/* q_outbox_attempt's parameters; e holds the error as stored. */
static void attempt_params(pg_params *p, const char *issuer_id, int64_t id, int64_t lease_until_ms, const char *state,
                           int http_status, const char *e, int64_t now_ms, int64_t retry_at_ms)
{
    pg_p_int(p, id);
    pg_p_text(p, state);
    pg_p_int(p, http_status);
    pg_p_text(p, e);
    pg_p_int(p, now_ms);
    pg_p_int(p, retry_at_ms);
    pg_p_text(p, issuer_id);
    pg_p_int(p, lease_until_ms);
}

static td_st v_outbox_attempt(td_conn *c, const char *issuer_id, int64_t id, int64_t lease_until_ms,
                              const char *state, int http_status, const char *error, int64_t now_ms,
                              int64_t retry_at_ms)
{
    if (!outcome_state_ok(state)) return TD_ST_INTERNAL;
    char e[OUTBOX_ERROR_MAX + 1];
    error_text(error ? error : "", e);
    pg_params p = {0};
    attempt_params(&p, issuer_id, id, lease_until_ms, state, http_status, e, now_ms, retry_at_ms);
    PGresult *res = NULL;
    td_st r = pg_row(c, &q_outbox_attempt, &p, &res);
    if (r != TD_ST_OK) return r;
    if (pg_i64(res, 0, 0) == 0) r = TD_ST_NOT_FOUND;
    PQclear(res);
    return r;
}

/* The same statements, all in one pipeline: a job of n outcomes waits for
 * one round trip instead of n. */
static td_st v_outbox_attempts(td_conn *c, const td_outbox_outcome *v, size_t n, int64_t now_ms, td_st *st)
{
    for (size_t i = 0; i < n; i++)
        if (!outcome_state_ok(v[i].state)) return TD_ST_INTERNAL;
    if (n == 0) return TD_ST_OK;
    pg_params *ps = calloc(n, sizeof *ps);
    char(*errs)[OUTBOX_ERROR_MAX + 1] = malloc(n * sizeof *errs);
    PGresult **res = malloc(n * sizeof *res);
    td_st r = ps && errs && res ? TD_ST_OK : TD_ST_ERROR;
    for (size_t i = 0; r == TD_ST_OK && i < n; i++) {
        error_text(v[i].error, errs[i]);
        attempt_params(&ps[i], v[i].issuer_id, v[i].id, v[i].lease_until_ms, v[i].state, v[i].http_status, errs[i],
                       now_ms, v[i].retry_at_ms);
    }
    if (r == TD_ST_OK) r = pg_rows_many(c, &q_outbox_attempt, ps, n, res);
    for (size_t i = 0; r == TD_ST_OK && i < n; i++) {
        st[i] = PQntuples(res[i]) == 1 && pg_i64(res[i], 0, 0) > 0 ? TD_ST_OK : TD_ST_NOT_FOUND;
        PQclear(res[i]);
    }
    free(res);
    free(errs);
    free(ps);
    return r;
}

static pg_query q_outbox_replay_one = {
    .sql = "UPDATE outbox SET state = 'PENDING', due_ms = $3, lease_until_ms = 0, done_ms = 0, wait_ms = 0, "
           "replayed_ms = $3 WHERE id = $2 AND issuer_id = $1 AND state = 'DEAD'"};
static pg_query q_outbox_replay_all = {
    .sql = "UPDATE outbox SET state = 'PENDING', due_ms = $2, lease_until_ms = 0, done_ms = 0, wait_ms = 0, "
           "replayed_ms = $2 WHERE issuer_id = $1 AND state = 'DEAD'"};

static td_st v_outbox_replay(td_conn *c, const char *issuer_id, int64_t id, int64_t now_ms, int *n)
{
    if (n) *n = 0;
    if (id < 0) return TD_ST_NOT_FOUND; /* no such row; only 0 means all */
    pg_params p = {0};
    pg_p_text(&p, issuer_id);
    if (id > 0) pg_p_int(&p, id);
    pg_p_int(&p, now_ms);
    int64_t changed = 0;
    td_st r = pg_cmd(c, id > 0 ? &q_outbox_replay_one : &q_outbox_replay_all, &p, &changed);
    if (r != TD_ST_OK) return r;
    if (n) *n = (int)changed;
    if (changed > 0) c->outbox_touched = true;
    return id > 0 && changed == 0 ? TD_ST_NOT_FOUND : TD_ST_OK;
}

/* Counts read the partial indexes alone (outbox_open, outbox_dead; the IN
 * term repeats outbox_open's condition so that the index serves the count);
 * the oldest open row is the first entry of outbox_open_age. */
static pg_query q_outbox_stats = {
    .sql = "SELECT (SELECT count(*) FROM outbox WHERE state IN " OPEN_STATES " AND state = 'PENDING'), "
           "(SELECT count(*) FROM outbox WHERE state IN " OPEN_STATES " AND state = 'IN_FLIGHT'), "
           "(SELECT count(*) FROM outbox WHERE state = 'DEAD'), "
           "(SELECT min(created_ms) FROM outbox WHERE state IN " OPEN_STATES ")"};

static td_st v_outbox_stats(td_conn *c, int64_t *pending, int64_t *in_flight, int64_t *dead, int64_t *oldest_ms)
{
    pg_params none = {0};
    PGresult *res = NULL;
    td_st r = pg_row(c, &q_outbox_stats, &none, &res);
    if (r != TD_ST_OK) return r;
    if (pending) *pending = pg_i64(res, 0, 0);
    if (in_flight) *in_flight = pg_i64(res, 0, 1);
    if (dead) *dead = pg_i64(res, 0, 2);
    if (oldest_ms) *oldest_ms = pg_i64(res, 0, 3); /* NULL (none) reads as 0 */
    PQclear(res);
    return TD_ST_OK;
}

/* Per issuer without settings, its open rows counted on the (issuer_id, ...)
 * open-row indexes: the cost is that of those issuers' rows alone. */
static pg_query q_outbox_unroutable = {.sql = "SELECT id, n FROM (SELECT i.id AS id, (SELECT count(*) FROM outbox o WHERE o.issuer_id = i.id AND o.state IN " \
    OPEN_STATES ") AS n FROM issuers i WHERE NOT EXISTS (SELECT 1 FROM issuer_delivery d WHERE d.issuer_id = i.id)) " \
    "AS owed WHERE n > 0 ORDER BY id LIMIT $1"};

static td_st v_outbox_unroutable(td_conn *c, td_unroutable *out, size_t max, size_t *n)
{
    *n = 0;
    pg_params p = {0};
    pg_p_int(&p, (int64_t)max);
    PGresult *res = NULL;
    td_st st = pg_rows(c, &q_outbox_unroutable, &p, &res);
    if (st == TD_ST_OK)
        for (int row = 0; row < PQntuples(res) && *n < max; row++) {
            pg_copy(res, row, 0, out[*n].issuer_id, sizeof out[*n].issuer_id);
            out[(*n)++].rows = pg_i64(res, row, 1);
        }
    PQclear(res);
    return st;
}

void pg_outbox_verbs(td_store_ops *ops)
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
