/* pg/delivery.c — how each issuer's backend is reached (delivery
 * settings): its SQL, and the code that binds and reads it. */
#include <stdlib.h>
#include <string.h>

#include "store/pg/pgs.h"

#define DELIVERY_COLS                                                                                                  \
    "issuer_id, profile, base_url, auth, secret_sealed, oauth_token_url, oauth_client_id, oauth_scope, "               \
    "tls_cert_file, tls_key_file, tls_ca_file, tls_pinned_key, d1_batch_max, max_age_ms, timeout_ms, messaging_url, "  \
    "templates_json, updated_ms"

/* SQLite's INSERT OR REPLACE: every column but the key replaced; NOT_FOUND
 * (no row written) when the issuer does not exist. The casts type what a
 * SELECT list would otherwise read as text. */
static pg_query q_delivery_put = {
    .sql = "INSERT INTO issuer_delivery(" DELIVERY_COLS ") SELECT $1, $2, $3, $4, $5::bytea, $6, $7, $8, $9, $10, "
           "$11, $12, $13::integer, $14::bigint, $15::integer, $16, $17, $18::bigint "
           "WHERE EXISTS (SELECT 1 FROM issuers WHERE id = $1) ON CONFLICT (issuer_id) DO UPDATE SET "
           "profile = EXCLUDED.profile, base_url = EXCLUDED.base_url, auth = EXCLUDED.auth, "
           "secret_sealed = EXCLUDED.secret_sealed, oauth_token_url = EXCLUDED.oauth_token_url, "
           "oauth_client_id = EXCLUDED.oauth_client_id, oauth_scope = EXCLUDED.oauth_scope, "
           "tls_cert_file = EXCLUDED.tls_cert_file, tls_key_file = EXCLUDED.tls_key_file, "
           "tls_ca_file = EXCLUDED.tls_ca_file, tls_pinned_key = EXCLUDED.tls_pinned_key, "
           "d1_batch_max = EXCLUDED.d1_batch_max, max_age_ms = EXCLUDED.max_age_ms, "
           "timeout_ms = EXCLUDED.timeout_ms, messaging_url = EXCLUDED.messaging_url, "
           "templates_json = EXCLUDED.templates_json, updated_ms = EXCLUDED.updated_ms"};

static td_st v_delivery_put(td_conn *c, const td_delivery_rec *d)
{
    if (d->secret_len > sizeof d->secret_sealed) return TD_ST_INTERNAL;
    pg_params p = {0};
    pg_p_text(&p, d->issuer_id);
    pg_p_text(&p, d->profile);
    pg_p_text(&p, d->base_url);
    pg_p_text(&p, d->auth);
    pg_p_blob(&p, d->secret_sealed, d->secret_len);
    pg_p_text(&p, d->oauth_token_url);
    pg_p_text(&p, d->oauth_client_id);
    pg_p_text(&p, d->oauth_scope);
    pg_p_text(&p, d->tls_cert_file);
    pg_p_text(&p, d->tls_key_file);
    pg_p_text(&p, d->tls_ca_file);
    pg_p_text(&p, d->tls_pinned_key);
    pg_p_int(&p, d->d1_batch_max);
    pg_p_int(&p, d->max_age_ms);
    pg_p_int(&p, d->timeout_ms);
    pg_p_text(&p, d->messaging_url);
    pg_p_text(&p, d->templates_json ? d->templates_json : "");
    pg_p_int(&p, d->updated_ms);
    int64_t changed = 0;
    td_st r = pg_cmd(c, &q_delivery_put, &p, &changed);
    if (r == TD_ST_OK && changed == 0) r = TD_ST_NOT_FOUND;
    return r;
}

static pg_query q_delivery_get = {.sql = "SELECT " DELIVERY_COLS " FROM issuer_delivery WHERE issuer_id = $1"};
/* Inside a job the settings are read to be written back (put keeps the
 * stored secret): another node's put waits for this job's commit. */
static pg_query q_delivery_get_lock = {.sql = "SELECT " DELIVERY_COLS
                                              " FROM issuer_delivery WHERE issuer_id = $1 FOR UPDATE"};

static void read_delivery(const PGresult *r, td_delivery_rec *out)
{
    memset(out, 0, sizeof *out);
    pg_copy(r, 0, 0, out->issuer_id, sizeof out->issuer_id);
    pg_copy(r, 0, 1, out->profile, sizeof out->profile);
    pg_copy(r, 0, 2, out->base_url, sizeof out->base_url);
    pg_copy(r, 0, 3, out->auth, sizeof out->auth);
    out->secret_len = pg_blob(r, 0, 4, out->secret_sealed, sizeof out->secret_sealed);
    pg_copy(r, 0, 5, out->oauth_token_url, sizeof out->oauth_token_url);
    pg_copy(r, 0, 6, out->oauth_client_id, sizeof out->oauth_client_id);
    pg_copy(r, 0, 7, out->oauth_scope, sizeof out->oauth_scope);
    pg_copy(r, 0, 8, out->tls_cert_file, sizeof out->tls_cert_file);
    pg_copy(r, 0, 9, out->tls_key_file, sizeof out->tls_key_file);
    pg_copy(r, 0, 10, out->tls_ca_file, sizeof out->tls_ca_file);
    pg_copy(r, 0, 11, out->tls_pinned_key, sizeof out->tls_pinned_key);
    out->d1_batch_max = (int)pg_i64(r, 0, 12);
    out->max_age_ms = pg_i64(r, 0, 13);
    out->timeout_ms = (int)pg_i64(r, 0, 14);
    pg_copy(r, 0, 15, out->messaging_url, sizeof out->messaging_url);
    out->updated_ms = pg_i64(r, 0, 17);
}

static td_st v_delivery_get(td_conn *c, const char *issuer_id, td_delivery_rec *out)
{
    pg_params p = {0};
    pg_p_text(&p, issuer_id);
    PGresult *res = NULL;
    td_st r = pg_row(c, c->in_job ? &q_delivery_get_lock : &q_delivery_get, &p, &res);
    if (r != TD_ST_OK) return r;
    char *templates = pg_dup(res, 0, 16); /* NOT NULL column: NULL here is a failed allocation */
    if (templates) {
        read_delivery(res, out);
        out->templates_json = templates;
    }
    PQclear(res);
    return templates ? TD_ST_OK : TD_ST_ERROR;
}

void pg_delivery_verbs(td_store_ops *ops)
{
    ops->delivery_put = v_delivery_put;
    ops->delivery_get = v_delivery_get;
}
