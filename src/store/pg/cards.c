/* pg/cards.c — cards: the issuer's funding cards, PAN sealed: the PostgreSQL
 * twin of sqlite/cards.c, its SQL beside the code that binds and reads it. */
#include <stdlib.h>
#include <string.h>

#include "store/pg/pgs.h"

/* phone and email are read (rows from before their seal) but never written. */
#define CARD_COLS                                                                                                      \
    "issuer_id, card_id, consumer_id, pan_fp, pan_sealed, last4, expiry, contact_sealed, state, seq, created_ms, "     \
    "updated_ms, phone, email"

/* No conflict target: a duplicate card id (the primary key) and a duplicate
 * PAN fingerprint (cards_pan) both insert nothing, reported as CONFLICT
 * without aborting the job's transaction. pan_sealed is NOT NULL, and an
 * empty seal is passed as NULL: it is stored as an empty bytea, as SQLite
 * stores an empty BLOB. */
static pg_query q_card_insert = {.sql = "INSERT INTO cards(issuer_id, card_id, consumer_id, pan_fp, pan_sealed, "
                                        "last4, expiry, contact_sealed, state, seq, created_ms, updated_ms) "
                                        "VALUES ($1, $2, $3, $4, coalesce($5::bytea, ''::bytea), $6, $7, "
                                        "coalesce($8::bytea, ''::bytea), $9, $10, $11, $12) ON CONFLICT DO NOTHING"};

static td_st v_card_insert(td_conn *c, const td_card_rec *r)
{
    pg_params p = {0};
    pg_p_text(&p, r->issuer_id);
    pg_p_text(&p, r->card_id);
    pg_p_text(&p, r->consumer_id);
    pg_p_text(&p, r->pan_fp);
    pg_p_blob(&p, r->pan_sealed, r->pan_sealed_len);
    pg_p_text(&p, r->last4);
    pg_p_text(&p, r->expiry);
    pg_p_blob(&p, r->contact_sealed, r->contact_sealed_len);
    pg_p_int(&p, (int)r->state);
    pg_p_int(&p, r->seq);
    pg_p_int(&p, r->created_ms);
    pg_p_int(&p, r->updated_ms);
    int64_t n = 0;
    td_st st = pg_cmd(c, &q_card_insert, &p, &n);
    if (st == TD_ST_OK && n == 0) st = TD_ST_CONFLICT;
    return st;
}

static void read_card(const PGresult *res, int row, td_card_rec *r)
{
    memset(r, 0, sizeof *r);
    pg_copy(res, row, 0, r->issuer_id, sizeof r->issuer_id);
    pg_copy(res, row, 1, r->card_id, sizeof r->card_id);
    pg_copy(res, row, 2, r->consumer_id, sizeof r->consumer_id);
    pg_copy(res, row, 3, r->pan_fp, sizeof r->pan_fp);
    r->pan_sealed_len = pg_blob(res, row, 4, r->pan_sealed, sizeof r->pan_sealed);
    pg_copy(res, row, 5, r->last4, sizeof r->last4);
    pg_copy(res, row, 6, r->expiry, sizeof r->expiry);
    r->contact_sealed_len = pg_blob(res, row, 7, r->contact_sealed, sizeof r->contact_sealed);
    r->state = (td_card_state)pg_i64(res, row, 8);
    r->seq = pg_i64(res, row, 9);
    r->created_ms = pg_i64(res, row, 10);
    r->updated_ms = pg_i64(res, row, 11);
    pg_copy(res, row, 12, r->phone, sizeof r->phone);
    pg_copy(res, row, 13, r->email, sizeof r->email);
}

/* Inside a job the read precedes an update of the card (card_update checks
 * its seq): the FOR UPDATE variant makes another node's job wait for this
 * one's commit instead of deciding on a stale row. */
static td_st card_get_by(td_conn *c, pg_query *q, pg_query *q_lock, const char *issuer_id, const char *key,
                         td_card_rec *out)
{
    pg_params p = {0};
    pg_p_text(&p, issuer_id);
    pg_p_text(&p, key);
    PGresult *res = NULL;
    td_st st = pg_row(c, c->in_job ? q_lock : q, &p, &res);
    if (st == TD_ST_OK) read_card(res, 0, out);
    PQclear(res);
    return st;
}

static pg_query q_card_get = {.sql = "SELECT " CARD_COLS " FROM cards WHERE issuer_id = $1 AND card_id = $2"};
static pg_query q_card_get_lock = {.sql = "SELECT " CARD_COLS
                                          " FROM cards WHERE issuer_id = $1 AND card_id = $2 FOR UPDATE"};

static td_st v_card_get(td_conn *c, const char *issuer_id, const char *card_id, td_card_rec *out)
{
    return card_get_by(c, &q_card_get, &q_card_get_lock, issuer_id, card_id, out);
}

static pg_query q_card_by_fp = {.sql = "SELECT " CARD_COLS " FROM cards WHERE issuer_id = $1 AND pan_fp = $2"};
static pg_query q_card_by_fp_lock = {.sql = "SELECT " CARD_COLS
                                            " FROM cards WHERE issuer_id = $1 AND pan_fp = $2 FOR UPDATE"};

static td_st v_card_by_fp(td_conn *c, const char *issuer_id, const char *pan_fp, td_card_rec *out)
{
    return card_get_by(c, &q_card_by_fp, &q_card_by_fp_lock, issuer_id, pan_fp, out);
}

static pg_query q_card_update = {.sql = "UPDATE cards SET state = $3, seq = $4, updated_ms = $5 "
                                        "WHERE issuer_id = $1 AND card_id = $2 AND seq = $6"};

static td_st v_card_update(td_conn *c, const td_card_rec *r, int64_t expect_seq)
{
    pg_params p = {0};
    pg_p_text(&p, r->issuer_id);
    pg_p_text(&p, r->card_id);
    pg_p_int(&p, (int)r->state);
    pg_p_int(&p, r->seq);
    pg_p_int(&p, r->updated_ms);
    pg_p_int(&p, expect_seq);
    int64_t n = 0;
    td_st st = pg_cmd(c, &q_card_update, &p, &n);
    if (st == TD_ST_OK && n == 0) st = TD_ST_CONFLICT;
    return st;
}

/* The WHERE is the partial index's predicate, word for word, so it is used. */
static pg_query q_contacts_in_clear = {.sql = "SELECT " CARD_COLS " FROM cards WHERE phone <> '' OR email <> '' "
                                              "LIMIT $1"};

static td_st v_card_contacts_in_clear(td_conn *c, td_card_rec *out, size_t max, size_t *n)
{
    *n = 0;
    pg_params p = {0};
    pg_p_int(&p, (int64_t)max);
    PGresult *res = NULL;
    td_st st = pg_rows(c, &q_contacts_in_clear, &p, &res);
    if (st == TD_ST_OK)
        for (int row = 0; row < PQntuples(res) && *n < max; row++)
            read_card(res, row, &out[(*n)++]);
    PQclear(res);
    return st;
}

static pg_query q_contact_seal = {.sql = "UPDATE cards SET contact_sealed = $3, phone = '', email = '' "
                                         "WHERE issuer_id = $1 AND card_id = $2"};

static td_st v_card_contact_seal(td_conn *c, const td_card_rec *r)
{
    pg_params p = {0};
    pg_p_text(&p, r->issuer_id);
    pg_p_text(&p, r->card_id);
    pg_p_blob(&p, r->contact_sealed, r->contact_sealed_len);
    int64_t n = 0;
    return pg_cmd(c, &q_contact_seal, &p, &n);
}

void pg_cards_verbs(td_store_ops *ops)
{
    ops->card_contacts_in_clear = v_card_contacts_in_clear;
    ops->card_contact_seal = v_card_contact_seal;
    ops->card_insert = v_card_insert;
    ops->card_get = v_card_get;
    ops->card_by_fp = v_card_by_fp;
    ops->card_update = v_card_update;
}
