/* auth.c — outbound auth: the issuers' settings with their secrets opened
 * (cached a few seconds), bearer and OAuth2 client-credentials tokens (fetched
 * as one more transfer, refetched once on a 401), Standard Webhooks signatures. */
#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "notify/nw.h"
#include "util/log.h"
#include "util/util.h"

#define CACHE_MS 3000        /* issuers' settings are re-read after this */
#define TOKEN_BODY_MAX 65536 /* an OAuth2 token answer larger than this is refused */
#define TOKEN_SKEW_MS 30000  /* a token is refreshed this long before it expires */

/* ---- Standard Webhooks ---- */

int td_webhook_sign(const char *secret, const char *msg_id, int64_t ts_s, const char *body, size_t len, char *out,
                    size_t cap)
{
    if (!secret || !secret[0] || !msg_id || (!body && len) || !out) return -1;
    uint8_t key[256];
    size_t key_len = 0;
    const uint8_t *k;
    if (strncmp(secret, "whsec_", 6) == 0) {
        const char *b64 = secret + 6;
        if (sodium_base642bin(key, sizeof key, b64, strlen(b64), NULL, &key_len, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0 &&
            sodium_base642bin(key, sizeof key, b64, strlen(b64), NULL, &key_len, NULL,
                              sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0)
            return -1;
        if (key_len == 0) return -1;
        k = key;
    } else {
        k = (const uint8_t *)secret;
        key_len = strlen(secret);
    }
    char ts[24];
    snprintf(ts, sizeof ts, "%" PRId64, ts_s);
    crypto_auth_hmacsha256_state st;
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init(&st, k, key_len);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)msg_id, strlen(msg_id));
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)ts, strlen(ts));
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
    if (len) crypto_auth_hmacsha256_update(&st, (const uint8_t *)body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    td_wipe(key, sizeof key);
    td_wipe(&st, sizeof st);
    size_t b64_len = sodium_base64_ENCODED_LEN(sizeof mac, sodium_base64_VARIANT_ORIGINAL);
    if (cap < 3 + b64_len) return -1;
    memcpy(out, "v1,", 3);
    sodium_bin2base64(out + 3, cap - 3, mac, sizeof mac, sodium_base64_VARIANT_ORIGINAL);
    return 0;
}

/* ---- issuers' settings and secrets ---- */

static void ent_drop_secrets(issuer_ent *e)
{
    if (e->secret) {
        td_wipe(e->secret, strlen(e->secret));
        free(e->secret);
        e->secret = NULL;
    }
    if (e->token) {
        td_wipe(e->token, strlen(e->token));
        free(e->token);
        e->token = NULL;
    }
    e->token_exp_ms = 0;
}

static void ent_load(td_notify *d, issuer_ent *e, int64_t now)
{
    td_svc *svc = d->svc;
    td_conn *c = svc->store->reader(svc->store);
    td_delivery_rec r;
    memset(&r, 0, sizeof r);
    td_st st = c ? OPS(svc)->delivery_get(c, e->issuer_id, &r) : TD_ST_ERROR;
    if (st == TD_ST_NOT_FOUND) {
        if (e->configured) ent_drop_secrets(e);
        td_delivery_rec_free(&e->rec);
        e->configured = false;
        e->loaded_ms = now;
        return;
    }
    if (st != TD_ST_OK) {
        td_delivery_rec_free(&r);
        return; /* keep what we had; try again next time */
    }
    bool same = e->configured && r.updated_ms == e->rec.updated_ms && r.secret_len == e->rec.secret_len &&
                !memcmp(r.secret_sealed, e->rec.secret_sealed, r.secret_len);
    if (!same) {
        ent_drop_secrets(e);
        if (r.secret_len) {
            uint8_t *plain = NULL;
            size_t n = 0;
            if (td_open(svc->cfg->master_key, r.secret_sealed, r.secret_len, &plain, &n) == 0) {
                e->secret = malloc(n + 1);
                if (e->secret) {
                    memcpy(e->secret, plain, n);
                    e->secret[n] = 0;
                }
                td_wipe(plain, n);
            } else {
                td_log(TD_LOG_ERROR, "delivery_secret", "issuer %s: the delivery secret does not open (master key?)",
                       e->issuer_id);
            }
            free(plain);
        }
    }
    td_delivery_rec_free(&e->rec);
    e->rec = r;
    e->configured = true;
    e->loaded_ms = now;
}

issuer_ent *nw_issuer_get(td_notify *d, const char *issuer_id, int64_t now)
{
    issuer_ent *e = d->issuers;
    while (e && strcmp(e->issuer_id, issuer_id) != 0)
        e = e->next;
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e) return NULL;
        td_strlcpy(e->issuer_id, issuer_id, sizeof e->issuer_id);
        e->next = d->issuers;
        d->issuers = e;
    }
    if (!e->loaded_ms || now - e->loaded_ms >= CACHE_MS) ent_load(d, e, now);
    return e;
}

void nw_issuers_free(td_notify *d)
{
    for (issuer_ent *e = d->issuers; e;) {
        issuer_ent *next = e->next;
        ent_drop_secrets(e);
        td_delivery_rec_free(&e->rec);
        free(e);
        e = next;
    }
    d->issuers = NULL;
}

/* ---- OAuth2 client credentials ---- */

static void release_waiting(td_notify *d, issuer_ent *e, bool ok, const char *why);

static size_t keep_body(char *p, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    return td_buf_add(&x->resp, p, len) ? len : 0; /* 0 aborts the transfer */
}

static void token_fetch(td_notify *d, issuer_ent *e)
{
    if (e->fetching) return;
    const td_delivery_rec *r = &e->rec;
    xfer *x = calloc(1, sizeof *x);
    if (!x) {
        release_waiting(d, e, false, "token endpoint: out of memory");
        return;
    }
    x->kind = X_TOKEN;
    x->iss = e;
    x->resp = td_buf_bounded(TOKEN_BODY_MAX);
    x->h = nw_handle_get(d);
    /* Authorization: Basic base64(client_id:secret) */
    const char *secret = e->secret ? e->secret : "";
    size_t cl = strlen(r->oauth_client_id) + 1 + strlen(secret);
    char *cred = malloc(cl + 1);
    size_t b64n = sodium_base64_ENCODED_LEN(cl, sodium_base64_VARIANT_ORIGINAL);
    char *auth = malloc(b64n + 32);
    bool ok = x->h && cred && auth;
    if (ok) {
        snprintf(cred, cl + 1, "%s:%s", r->oauth_client_id, secret);
        memcpy(auth, "Authorization: Basic ", 21);
        sodium_bin2base64(auth + 21, b64n, (const unsigned char *)cred, cl, sodium_base64_VARIANT_ORIGINAL);
        ok = nw_append_hdr(x, auth) && nw_append_hdr(x, "Accept: application/json") &&
             nw_append_hdr(x, "Content-Type: application/x-www-form-urlencoded") && nw_append_hdr(x, "Expect:");
    }
    if (cred) {
        td_wipe(cred, cl);
        free(cred);
    }
    if (auth) {
        td_wipe(auth, strlen(auth));
        free(auth);
    }
    if (ok) {
        char *scope = r->oauth_scope[0] ? curl_easy_escape(x->h, r->oauth_scope, 0) : NULL;
        size_t pn = 64 + (scope ? strlen(scope) : 0);
        x->post = malloc(pn);
        if (x->post)
            snprintf(x->post, pn, "grant_type=client_credentials%s%s", scope ? "&scope=" : "", scope ? scope : "");
        curl_free(scope);
        ok = x->post != NULL;
    }
    ok = ok && nw_common_opts(x, r, r->oauth_token_url, r->timeout_ms) &&
         curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs) == CURLE_OK &&
         curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, x->post) == CURLE_OK &&
         curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, keep_body) == CURLE_OK &&
         curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x) == CURLE_OK && curl_multi_add_handle(d->multi, x->h) == CURLM_OK;
    if (!ok) {
        nw_xfer_cleanup(d, x);
        free(x);
        release_waiting(d, e, false, "token endpoint: the request could not be set up");
        return;
    }
    e->fetching = true;
    e->fetch = x;
    atomic_fetch_add(&d->token_fetches, 1);
}

void nw_token_done(td_notify *d, xfer *x, CURLcode rc)
{
    issuer_ent *e = x->iss;
    e->fetching = false;
    e->fetch = NULL;
    char why[160] = "";
    long code = 0;
    if (rc != CURLE_OK) {
        char c[140];
        if (x->resp.too_large)
            snprintf(c, sizeof c, "answer larger than %d bytes", TOKEN_BODY_MAX);
        else
            nw_curl_why(x, rc, e->rec.timeout_ms, c, sizeof c);
        snprintf(why, sizeof why, "token endpoint: %s", c);
    } else {
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
        if (code < 200 || code >= 300) snprintf(why, sizeof why, "token endpoint: HTTP %ld", code);
    }
    if (!why[0]) {
        json_error_t je;
        json_t *v = x->resp.p ? json_loadb(x->resp.p, x->resp.len, 0, &je) : NULL;
        json_t *tok = json_object_get(v, "access_token");
        json_t *exp = json_object_get(v, "expires_in");
        const char *t = json_string_value(tok);
        if (!t || !t[0] || td_has_ctl(t)) {
            snprintf(why, sizeof why, "token endpoint: no access_token in the answer");
        } else {
            int64_t life_s = json_is_integer(exp) ? (int64_t)json_integer_value(exp) : 3600;
            if (json_is_string(exp)) td_parse_i64(json_string_value(exp), &life_s);
            if (e->token) {
                td_wipe(e->token, strlen(e->token));
                free(e->token);
            }
            e->token = strdup(t);
            int64_t keep = life_s * 1000 - TOKEN_SKEW_MS;
            e->token_exp_ms = td_now_ms() + (keep > 0 ? keep : 0);
            e->token_gen++;
            if (!e->token) snprintf(why, sizeof why, "token endpoint: out of memory");
        }
        if (v) {
            /* jansson keeps its own copy of the token: wipe it before freeing */
            if (json_is_string(tok)) td_wipe((char *)json_string_value(tok), json_string_length(tok));
            json_decref(v);
        }
    }
    if (why[0]) td_log(TD_LOG_WARN, "delivery_token", "issuer %s: %s", e->issuer_id, why);
    nw_xfer_cleanup(d, x);
    free(x);
    release_waiting(d, e, why[0] == 0, why);
}

/* The works that waited for a token: sent now, or retried later. */
static void release_waiting(td_notify *d, issuer_ent *e, bool ok, const char *why)
{
    work *w = e->waiting;
    e->waiting = NULL;
    while (w) {
        work *next = w->next;
        w->next = NULL;
        if (ok)
            nw_prepare(d, w);
        else
            nw_retry_all(d, w, 0, why, 0);
        w = next;
    }
}

static bool token_valid(const issuer_ent *e, int64_t now)
{
    return e->token && (now < e->token_exp_ms || e->token_exp_ms == 0);
}

/* ---- the credentials a request carries ---- */

bool nw_auth_pick(td_notify *d, work *w, int64_t now, const char **bearer, const char **sign)
{
    issuer_ent *e = w->iss;
    if (strcmp(e->rec.auth, "none") != 0 && !e->secret) {
        nw_retry_all(d, w, 0, "the delivery secret cannot be opened", 0);
        return false;
    }
    if (!strcmp(e->rec.auth, "oauth2")) {
        if (!token_valid(e, now)) {
            w->next = e->waiting;
            e->waiting = w;
            token_fetch(d, e);
            return false;
        }
        *bearer = e->token;
        w->token_gen = e->token_gen;
    } else if (!strcmp(e->rec.auth, "bearer")) {
        *bearer = e->secret;
    } else if (!strcmp(e->rec.auth, "webhook")) {
        *sign = e->secret;
    }
    return true;
}

/* A 401: an OAuth2 issuer's token is dropped and fetched again, once per
 * work; the work waits for it and is then built (signed) and sent afresh. */
bool nw_reauth(td_notify *d, work *w)
{
    issuer_ent *e = w->iss;
    if (w->reauthed || !e->configured || strcmp(e->rec.auth, "oauth2") != 0) return false;
    w->reauthed = true;
    atomic_fetch_add(&d->reauth, 1);
    if (e->token && e->token_gen == w->token_gen) {
        td_wipe(e->token, strlen(e->token));
        free(e->token);
        e->token = NULL;
    }
    td_wipe(w->req.headers, sizeof w->req.headers);
    if (w->req.body) td_wipe(w->req.body, w->req.body_len);
    td_notify_req_free(&w->req);
    memset(&w->req, 0, sizeof w->req);
    nw_prepare(d, w);
    return true;
}
