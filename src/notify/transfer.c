/* transfer.c — sending works with libcurl: easy handles kept for reuse, the
 * options every transfer shares, building a work's request and starting it,
 * and what its answer means for the rows. */
#include <curl/curl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto/crypto.h"
#include "notify/nw.h"
#include "util/util.h"

#define MIN_ATTEMPT_MS 200 /* less lease left than this: the attempt is not started */

static size_t discard_body(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* A new easy handle, or a spare one (with its options reset). */
CURL *nw_handle_get(td_notify *d)
{
    return d->n_spare ? d->spare[--d->n_spare] : curl_easy_init();
}

static void handle_put(td_notify *d, CURL *h)
{
    int cap = (int)(sizeof d->spare / sizeof d->spare[0]);
    if (d->n_spare < cap && d->n_spare < d->concurrency) {
        curl_easy_reset(h); /* forgets every option: URL, headers, body, credentials */
        d->spare[d->n_spare++] = h;
    } else {
        curl_easy_cleanup(h);
    }
}

void nw_xfer_cleanup(td_notify *d, xfer *x)
{
    if (x->h) {
        curl_multi_remove_handle(d->multi, x->h);
        handle_put(d, x->h);
        x->h = NULL;
    }
    for (struct curl_slist *h = x->hdrs; h; h = h->next)
        td_wipe(h->data, strlen(h->data));
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
    if (x->post) {
        td_wipe(x->post, strlen(x->post));
        free(x->post);
        x->post = NULL;
    }
    if (x->resp.p) td_wipe(x->resp.p, x->resp.len); /* an access token */
    td_buf_reset(&x->resp);
}

bool nw_append_hdr(xfer *x, const char *h)
{
    struct curl_slist *n = curl_slist_append(x->hdrs, h);
    if (!n) return false;
    x->hdrs = n;
    return true;
}

/* The options every transfer shares: http(s) only, no redirects, the
 * issuer's TLS settings, a timeout within the lease. */
bool nw_common_opts(xfer *x, const td_delivery_rec *r, const char *url, long timeout_ms)
{
    CURL *h = x->h;
    bool ok = curl_easy_setopt(h, CURLOPT_URL, url) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->err) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_PRIVATE, x) == CURLE_OK;
    if (r->tls_cert_file[0]) ok = ok && curl_easy_setopt(h, CURLOPT_SSLCERT, r->tls_cert_file) == CURLE_OK;
    if (r->tls_key_file[0]) ok = ok && curl_easy_setopt(h, CURLOPT_SSLKEY, r->tls_key_file) == CURLE_OK;
    if (r->tls_ca_file[0]) ok = ok && curl_easy_setopt(h, CURLOPT_CAINFO, r->tls_ca_file) == CURLE_OK;
    if (r->tls_pinned_key[0]) ok = ok && curl_easy_setopt(h, CURLOPT_PINNEDPUBLICKEY, r->tls_pinned_key) == CURLE_OK;
    return ok;
}

/* What went wrong, for last_error: curl's message (no credentials: URLs
 * carry none, validation refuses control characters). */
void nw_curl_why(const xfer *x, CURLcode rc, long timeout_ms, char *out, size_t cap)
{
    if (rc == CURLE_OPERATION_TIMEDOUT)
        snprintf(out, cap, "timeout: no answer within %ld ms", timeout_ms);
    else
        snprintf(out, cap, "connection: %.120s", x->err[0] ? x->err : curl_easy_strerror(rc));
}

/* ---- notification transfers ---- */

static bool has_header(const td_notify_req *r, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < r->n_headers; i++)
        if (!strncasecmp(r->headers[i], name, n) && r->headers[i][n] == ':') return true;
    return false;
}

static void start_transfer(td_notify *d, work *w, int64_t now)
{
    long timeout = w->iss->rec.timeout_ms;
    if (w->deadline_ms - now < timeout) timeout = (long)(w->deadline_ms - now);
    xfer *x = &w->x;
    memset(x, 0, sizeof *x);
    x->kind = X_NOTIFY;
    x->h = nw_handle_get(d);
    bool ok = x->h != NULL;
    for (int i = 0; ok && i < w->req.n_headers; i++)
        ok = nw_append_hdr(x, w->req.headers[i]);
    if (ok && !has_header(&w->req, "Content-Type")) ok = nw_append_hdr(x, "Content-Type: application/json");
    ok = ok && nw_append_hdr(x, "Expect:");
    ok = ok && nw_common_opts(x, &w->iss->rec, w->req.url, timeout) &&
         curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs) == CURLE_OK &&
         curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, w->req.body ? w->req.body : "") == CURLE_OK &&
         curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE, (long)(w->req.body ? w->req.body_len : 0)) == CURLE_OK &&
         curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, discard_body) == CURLE_OK &&
         curl_multi_add_handle(d->multi, x->h) == CURLM_OK;
    if (!ok) {
        nw_xfer_cleanup(d, x);
        nw_retry_all(d, w, 0, "the request could not be set up", 0);
        return;
    }
    d->n_xfers++;
    w->aprev = NULL;
    w->anext = d->active;
    if (d->active) d->active->aprev = w;
    d->active = w;
    atomic_fetch_add(&d->in_flight, 1);
    atomic_fetch_add(&d->requests, 1);
}

void nw_unlink_active(td_notify *d, work *w)
{
    if (w->aprev)
        w->aprev->anext = w->anext;
    else
        d->active = w->anext;
    if (w->anext) w->anext->aprev = w->aprev;
    w->aprev = w->anext = NULL;
    d->n_xfers--;
    atomic_fetch_sub(&d->in_flight, 1);
}

void nw_notify_done(td_notify *d, work *w, CURLcode rc)
{
    xfer *x = &w->x;
    long code = 0;
    curl_off_t ra = 0;
    long timeout = 0;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(x->h, CURLINFO_RETRY_AFTER, &ra);
    timeout = w->iss->rec.timeout_ms;
    char why[160];
    if (rc != CURLE_OK) nw_curl_why(x, rc, timeout, why, sizeof why);
    nw_xfer_cleanup(d, x);
    nw_unlink_active(d, w);
    /* The body is sent: an OTP in it is wiped now. */
    if (w->req.body) td_wipe(w->req.body, w->req.body_len);
    int hs = rc == CURLE_OK && code > 0 && code < 1000 ? (int)code : 0;
    td_attempt_class cls = rc != CURLE_OK ? TD_ATTEMPT_RETRY : td_attempt_classify(hs);
    if (rc == CURLE_OK) snprintf(why, sizeof why, "HTTP %d", hs);
    switch (cls) {
    case TD_ATTEMPT_DELIVERED: nw_finish_all(d, w, "DELIVERED", hs, ""); return;
    case TD_ATTEMPT_PERMANENT: {
        char e[160];
        snprintf(e, sizeof e, "HTTP %d: refused (permanent)", hs);
        nw_finish_all(d, w, "DEAD", hs, e);
        return;
    }
    case TD_ATTEMPT_REAUTH:
        if (nw_reauth(d, w)) return;
        /* Not OAuth2, or refreshed already: a retry, with the settings read
         * again (an operator may be fixing the credentials). */
        w->iss->loaded_ms = 0;
        snprintf(why, sizeof why, "HTTP %d: credentials refused", hs);
        nw_retry_all(d, w, hs, why, 0);
        return;
    case TD_ATTEMPT_RETRY: nw_retry_all(d, w, hs, why, hs == 429 || hs == 503 ? (int64_t)ra : 0); return;
    }
}

/* Builds the request for a work and starts it; or parks it for a token; or
 * gives its rows their outcome when there is nothing to send. */
void nw_prepare(td_notify *d, work *w)
{
    td_svc *svc = d->svc;
    issuer_ent *e = w->iss;
    int64_t now = td_now_ms();
    if (!e->configured) {
        nw_retry_all(d, w, 0, "the issuer has no delivery settings", 0);
        return;
    }
    if (w->deadline_ms - now < MIN_ATTEMPT_MS) {
        nw_retry_all(d, w, 0, "the claim ran out before the attempt", 0);
        return;
    }
    const char *bearer = NULL, *sign = NULL;
    if (!nw_auth_pick(d, w, now, &bearer, &sign)) return;
    char otp[64] = "";
    bool otp_bad = false;
    if (w->n == 1 && w->rows[0].secret_len > 0) {
        uint8_t *plain = NULL;
        size_t n = 0;
        if (td_open(svc->cfg->master_key, w->rows[0].secret_sealed, w->rows[0].secret_len, &plain, &n) == 0 &&
            n < sizeof otp) {
            memcpy(otp, plain, n);
            otp[n] = 0;
        } else {
            otp_bad = true;
        }
        if (plain) {
            td_wipe(plain, n);
            free(plain);
        }
    }
    char err[160] = "";
    int rc = -2;
    if (!otp_bad) {
        rc = td_notify_build(&e->rec, w->rows, w->n, sign, bearer, otp[0] ? otp : NULL, now / 1000, &w->req, err,
                             sizeof err);
    }
    td_wipe(otp, sizeof otp);
    if (otp_bad) {
        nw_finish_all(d, w, "DEAD", 0, "the OTP cannot be opened");
        return;
    }
    if (rc == 1) {
        nw_finish_all(d, w, "DELIVERED", 0, "not sent in this profile");
        return;
    }
    if (rc != 0) {
        if (!err[0]) td_strlcpy(err, "the request could not be built", sizeof err);
        nw_finish_all(d, w, "DEAD", 0, err);
        return;
    }
    start_transfer(d, w, now);
}
