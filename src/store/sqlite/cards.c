/* sqlite/cards.c — cards: the issuer's funding cards, PAN sealed: its SQL, and
 * the code that binds and reads it. */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/sq.h"

/* phone and email are read (rows from before their seal) but never written. */
#define CARD_COLS                                                                                                      \
    "issuer_id, card_id, consumer_id, pan_fp, pan_sealed, last4, expiry, contact_sealed, state, seq, created_ms, "     \
    "updated_ms, phone, email"

static sq_query q_card_insert = {.sql = "INSERT INTO cards(issuer_id, card_id, consumer_id, pan_fp, pan_sealed, last4, "
                                        "expiry, contact_sealed, state, seq, created_ms, updated_ms) "
                                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"};

static td_st v_card_insert(td_conn *c, const td_card_rec *r)
{
    sqlite3_stmt *st = sq_stmt(c, &q_card_insert);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, r->issuer_id);
    sq_bind_text(st, 2, r->card_id);
    sq_bind_text(st, 3, r->consumer_id);
    sq_bind_text(st, 4, r->pan_fp);
    /* NOT NULL: an empty seal is an empty BLOB (a non-NULL pointer, length 0) */
    sqlite3_bind_blob(st, 5, r->pan_sealed, (int)r->pan_sealed_len, SQLITE_STATIC);
    sq_bind_text(st, 6, r->last4);
    sq_bind_text(st, 7, r->expiry);
    sqlite3_bind_blob(st, 8, r->contact_sealed, (int)r->contact_sealed_len, SQLITE_STATIC);
    sqlite3_bind_int(st, 9, (int)r->state);
    sqlite3_bind_int64(st, 10, r->seq);
    sqlite3_bind_int64(st, 11, r->created_ms);
    sqlite3_bind_int64(st, 12, r->updated_ms);
    return sq_step_done(st);
}

static void read_card(sqlite3_stmt *st, td_card_rec *r)
{
    memset(r, 0, sizeof *r);
    sq_col_copy(st, 0, r->issuer_id, sizeof r->issuer_id);
    sq_col_copy(st, 1, r->card_id, sizeof r->card_id);
    sq_col_copy(st, 2, r->consumer_id, sizeof r->consumer_id);
    sq_col_copy(st, 3, r->pan_fp, sizeof r->pan_fp);
    r->pan_sealed_len = sq_col_blob(st, 4, r->pan_sealed, sizeof r->pan_sealed);
    sq_col_copy(st, 5, r->last4, sizeof r->last4);
    sq_col_copy(st, 6, r->expiry, sizeof r->expiry);
    r->contact_sealed_len = sq_col_blob(st, 7, r->contact_sealed, sizeof r->contact_sealed);
    r->state = (td_card_state)sqlite3_column_int(st, 8);
    r->seq = sqlite3_column_int64(st, 9);
    r->created_ms = sqlite3_column_int64(st, 10);
    r->updated_ms = sqlite3_column_int64(st, 11);
    sq_col_copy(st, 12, r->phone, sizeof r->phone);
    sq_col_copy(st, 13, r->email, sizeof r->email);
}

static td_st card_get_by(td_conn *c, sq_query *q, const char *issuer_id, const char *key, td_card_rec *out)
{
    sqlite3_stmt *st = sq_stmt(c, q);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, issuer_id);
    sq_bind_text(st, 2, key);
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) read_card(st, out);
    sq_finish(st);
    return r;
}

static sq_query q_card_get = {.sql = "SELECT " CARD_COLS " FROM cards WHERE issuer_id = ?1 AND card_id = ?2"};

static td_st v_card_get(td_conn *c, const char *issuer_id, const char *card_id, td_card_rec *out)
{
    return card_get_by(c, &q_card_get, issuer_id, card_id, out);
}

static sq_query q_card_by_fp = {.sql = "SELECT " CARD_COLS " FROM cards WHERE issuer_id = ?1 AND pan_fp = ?2"};

static td_st v_card_by_fp(td_conn *c, const char *issuer_id, const char *pan_fp, td_card_rec *out)
{
    return card_get_by(c, &q_card_by_fp, issuer_id, pan_fp, out);
}

static sq_query q_card_update = {.sql = "UPDATE cards SET state = ?3, seq = ?4, updated_ms = ?5 "
                                        "WHERE issuer_id = ?1 AND card_id = ?2 AND seq = ?6"};

static td_st v_card_update(td_conn *c, const td_card_rec *r, int64_t expect_seq)
{
    sqlite3_stmt *st = sq_stmt(c, &q_card_update);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, r->issuer_id);
    sq_bind_text(st, 2, r->card_id);
    sqlite3_bind_int(st, 3, (int)r->state);
    sqlite3_bind_int64(st, 4, r->seq);
    sqlite3_bind_int64(st, 5, r->updated_ms);
    sqlite3_bind_int64(st, 6, expect_seq);
    td_st res = sq_step_done(st);
    if (res == TD_ST_OK && sqlite3_changes(c->db) == 0) res = TD_ST_CONFLICT;
    return res;
}

/* The WHERE is the partial index's predicate, word for word, so it is used. */
static sq_query q_contacts_in_clear = {.sql = "SELECT " CARD_COLS " FROM cards WHERE phone <> '' OR email <> '' "
                                              "LIMIT ?1"};

static td_st v_card_contacts_in_clear(td_conn *c, td_card_rec *out, size_t max, size_t *n)
{
    *n = 0;
    sqlite3_stmt *st = sq_stmt(c, &q_contacts_in_clear);
    if (!st) return TD_ST_ERROR;
    sqlite3_bind_int64(st, 1, (int64_t)max);
    int rc;
    while (*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW)
        read_card(st, &out[(*n)++]);
    td_st r = *n == max ? TD_ST_OK : sq_loop_result(rc, TD_ST_OK);
    sq_finish(st);
    return r;
}

static sq_query q_contact_seal = {.sql = "UPDATE cards SET contact_sealed = ?3, phone = '', email = '' "
                                         "WHERE issuer_id = ?1 AND card_id = ?2"};

static td_st v_card_contact_seal(td_conn *c, const td_card_rec *r)
{
    sqlite3_stmt *st = sq_stmt(c, &q_contact_seal);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, r->issuer_id);
    sq_bind_text(st, 2, r->card_id);
    sqlite3_bind_blob(st, 3, r->contact_sealed, (int)r->contact_sealed_len, SQLITE_STATIC);
    return sq_step_done(st);
}

void sq_cards_verbs(td_store_ops *ops)
{
    ops->card_contacts_in_clear = v_card_contacts_in_clear;
    ops->card_contact_seal = v_card_contact_seal;
    ops->card_insert = v_card_insert;
    ops->card_get = v_card_get;
    ops->card_by_fp = v_card_by_fp;
    ops->card_update = v_card_update;
}
