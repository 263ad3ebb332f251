/* sqlite/delivery.c — how each issuer's backend is reached (delivery
 * settings): its SQL, and the code that binds and reads it. */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite/sq.h"

#define DELIVERY_COLS                                                                                                  \
    "issuer_id, profile, base_url, auth, secret_sealed, oauth_token_url, oauth_client_id, oauth_scope, "               \
    "tls_cert_file, tls_key_file, tls_ca_file, tls_pinned_key, d1_batch_max, max_age_ms, timeout_ms, messaging_url, "  \
    "templates_json, updated_ms"

/* NOT_FOUND (no row written) when the issuer does not exist. */
static sq_query q_delivery_put = {.sql = "INSERT OR REPLACE INTO issuer_delivery(" DELIVERY_COLS
                                         ") SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                                         "?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18 "
                                         "WHERE EXISTS (SELECT 1 FROM issuers WHERE id = ?1)"};

static td_st v_delivery_put(td_conn *c, const td_delivery_rec *d)
{
    sqlite3_stmt *st = sq_stmt(c, &q_delivery_put);
    if (!st) return TD_ST_ERROR;
    if (d->secret_len > sizeof d->secret_sealed) return TD_ST_INTERNAL;
    sq_bind_text(st, 1, d->issuer_id);
    sq_bind_text(st, 2, d->profile);
    sq_bind_text(st, 3, d->base_url);
    sq_bind_text(st, 4, d->auth);
    sq_bind_blob(st, 5, d->secret_sealed, d->secret_len);
    sq_bind_text(st, 6, d->oauth_token_url);
    sq_bind_text(st, 7, d->oauth_client_id);
    sq_bind_text(st, 8, d->oauth_scope);
    sq_bind_text(st, 9, d->tls_cert_file);
    sq_bind_text(st, 10, d->tls_key_file);
    sq_bind_text(st, 11, d->tls_ca_file);
    sq_bind_text(st, 12, d->tls_pinned_key);
    sqlite3_bind_int(st, 13, d->d1_batch_max);
    sqlite3_bind_int64(st, 14, d->max_age_ms);
    sqlite3_bind_int(st, 15, d->timeout_ms);
    sq_bind_text(st, 16, d->messaging_url);
    sq_bind_text(st, 17, d->templates_json ? d->templates_json : "");
    sqlite3_bind_int64(st, 18, d->updated_ms);
    td_st r = sq_step_done(st);
    if (r == TD_ST_OK && sqlite3_changes(c->db) == 0) r = TD_ST_NOT_FOUND;
    return r;
}

static sq_query q_delivery_get = {.sql = "SELECT " DELIVERY_COLS " FROM issuer_delivery WHERE issuer_id = ?1"};

static td_st v_delivery_get(td_conn *c, const char *issuer_id, td_delivery_rec *out)
{
    sqlite3_stmt *st = sq_stmt(c, &q_delivery_get);
    if (!st) return TD_ST_ERROR;
    sq_bind_text(st, 1, issuer_id);
    td_st r = sq_step_row(st);
    if (r == TD_ST_OK) {
        memset(out, 0, sizeof *out);
        sq_col_copy(st, 0, out->issuer_id, sizeof out->issuer_id);
        sq_col_copy(st, 1, out->profile, sizeof out->profile);
        sq_col_copy(st, 2, out->base_url, sizeof out->base_url);
        sq_col_copy(st, 3, out->auth, sizeof out->auth);
        out->secret_len = sq_col_blob(st, 4, out->secret_sealed, sizeof out->secret_sealed);
        sq_col_copy(st, 5, out->oauth_token_url, sizeof out->oauth_token_url);
        sq_col_copy(st, 6, out->oauth_client_id, sizeof out->oauth_client_id);
        sq_col_copy(st, 7, out->oauth_scope, sizeof out->oauth_scope);
        sq_col_copy(st, 8, out->tls_cert_file, sizeof out->tls_cert_file);
        sq_col_copy(st, 9, out->tls_key_file, sizeof out->tls_key_file);
        sq_col_copy(st, 10, out->tls_ca_file, sizeof out->tls_ca_file);
        sq_col_copy(st, 11, out->tls_pinned_key, sizeof out->tls_pinned_key);
        out->d1_batch_max = sqlite3_column_int(st, 12);
        out->max_age_ms = sqlite3_column_int64(st, 13);
        out->timeout_ms = sqlite3_column_int(st, 14);
        sq_col_copy(st, 15, out->messaging_url, sizeof out->messaging_url);
        out->templates_json = sq_col_dup(st, 16); /* NOT NULL column: NULL here is a failed allocation */
        out->updated_ms = sqlite3_column_int64(st, 17);
        if (!out->templates_json) r = TD_ST_ERROR;
    }
    sq_finish(st);
    return r;
}

void sq_delivery_verbs(td_store_ops *ops)
{
    ops->delivery_put = v_delivery_put;
    ops->delivery_get = v_delivery_get;
}
