/* pg/sealed.c — every value sealed with the master key, row by row in key
 * order, and writing it back resealed: what `tokenctl store rekey` walks
 * (docs/operations.md). One statement pair per kind of row. */
#include <string.h>

#include "store/pg/pgs.h"

/* Which fields a statement takes, in order ($1, $2, ...): o owner, i id,
 * n num, b blob, c blob2, f fp, t text. PostgreSQL refuses a parameter the
 * SQL does not use, so each statement names its own. */
typedef struct {
    pg_query q;
    const char *params;
} sealed_sql;

/* Columns read: owner, id, num, blob, blob2, fp, text. */
static sealed_sql q_next[TD_SEALED_KINDS] = {
    [TD_SEALED_MEMBER_KEY] = {{.sql = "SELECT member_id, key_id, 0, sealed_secret, NULL, '', NULL FROM member_keys "
                                      "WHERE length(sealed_secret) > 0 AND (member_id, key_id) > ($1, $2) "
                                      "ORDER BY member_id, key_id LIMIT 1"},
                              "oi"},
    [TD_SEALED_CARD] = {{.sql = "SELECT issuer_id, card_id, 0, pan_sealed, contact_sealed, pan_fp, NULL FROM cards "
                                "WHERE (issuer_id, card_id) > ($1, $2) ORDER BY issuer_id, card_id LIMIT 1"},
                        "oi"},
    [TD_SEALED_DELIVERY] = {{.sql = "SELECT issuer_id, '', 0, secret_sealed, NULL, '', NULL FROM issuer_delivery "
                                    "WHERE length(secret_sealed) > 0 AND issuer_id > $1 ORDER BY issuer_id LIMIT 1"},
                            "o"},
    [TD_SEALED_OUTBOX] = {{.sql = "SELECT issuer_id, '', id, secret_sealed, NULL, '', NULL FROM outbox "
                                  "WHERE length(secret_sealed) > 0 AND (issuer_id, id) > ($1, $2) "
                                  "ORDER BY issuer_id, id LIMIT 1"},
                          "on"},
    [TD_SEALED_IDEM] = {{.sql = "SELECT scope, key, 0, NULL, NULL, req_hash, body FROM idempotency "
                                "WHERE req_hash <> 'retired' AND (scope, key) > ($1, $2) ORDER BY scope, key LIMIT 1"},
                        "oi"},
};

static sealed_sql q_put[TD_SEALED_KINDS] = {
    [TD_SEALED_MEMBER_KEY] = {{.sql = "UPDATE member_keys SET sealed_secret = $3 WHERE member_id = $1 AND key_id = $2"},
                              "oib"},
    [TD_SEALED_CARD] = {{.sql = "UPDATE cards SET pan_sealed = $3, contact_sealed = coalesce($4, ''::bytea), "
                                "pan_fp = $5 WHERE issuer_id = $1 AND card_id = $2"},
                        "oibcf"},
    [TD_SEALED_DELIVERY] = {{.sql = "UPDATE issuer_delivery SET secret_sealed = $2 WHERE issuer_id = $1"}, "ob"},
    [TD_SEALED_OUTBOX] = {{.sql = "UPDATE outbox SET secret_sealed = $3 WHERE issuer_id = $1 AND id = $2"}, "onb"},
    [TD_SEALED_IDEM] = {{.sql = "UPDATE idempotency SET body = $3 WHERE scope = $1 AND key = $2"}, "oit"},
};

static void bind(pg_params *p, const char *which, const td_sealed_rec *r)
{
    for (const char *w = which; *w; w++) {
        switch (*w) {
        case 'o': pg_p_text(p, r->owner); break;
        case 'i': pg_p_text(p, r->id); break;
        case 'n': pg_p_int(p, r->num); break;
        case 'b': pg_p_blob(p, r->blob, r->blob_len); break;
        case 'c': pg_p_blob(p, r->blob2, r->blob2_len); break;
        case 'f': pg_p_text(p, r->fp); break;
        case 't': pg_p_text(p, r->text ? r->text : ""); break;
        }
    }
}

static td_st v_sealed_next(td_conn *c, td_sealed_kind kind, const td_sealed_rec *after, td_sealed_rec *out)
{
    if (kind < 0 || kind >= TD_SEALED_KINDS) return TD_ST_INTERNAL;
    pg_params p = {0};
    bind(&p, q_next[kind].params, after);
    PGresult *res;
    td_st r = pg_row(c, &q_next[kind].q, &p, &res);
    if (r != TD_ST_OK) return r;
    memset(out, 0, sizeof *out);
    out->kind = kind;
    pg_copy(res, 0, 0, out->owner, sizeof out->owner);
    pg_copy(res, 0, 1, out->id, sizeof out->id);
    out->num = pg_i64(res, 0, 2);
    out->blob_len = pg_blob(res, 0, 3, out->blob, sizeof out->blob);
    out->blob2_len = pg_blob(res, 0, 4, out->blob2, sizeof out->blob2);
    pg_copy(res, 0, 5, out->fp, sizeof out->fp);
    if (!PQgetisnull(res, 0, 6)) {
        out->text = pg_dup(res, 0, 6);
        if (!out->text) r = TD_ST_ERROR;
    }
    PQclear(res);
    return r;
}

static td_st v_sealed_put(td_conn *c, const td_sealed_rec *r)
{
    if (r->kind < 0 || r->kind >= TD_SEALED_KINDS) return TD_ST_INTERNAL;
    pg_params p = {0};
    bind(&p, q_put[r->kind].params, r);
    int64_t changed = 0;
    td_st res = pg_cmd(c, &q_put[r->kind].q, &p, &changed);
    return res == TD_ST_OK && changed != 1 ? TD_ST_NOT_FOUND : res;
}

void pg_sealed_verbs(td_store_ops *ops)
{
    ops->sealed_next = v_sealed_next;
    ops->sealed_put = v_sealed_put;
}
