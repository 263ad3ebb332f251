/* delivery.c — the delivery use cases of the admin API: an issuer's delivery
 * settings (defaults, validation, stored with the secret sealed, read back
 * without it) and the replay of dead letters. The worker that delivers the
 * outbox is src/notify/ (notify.h). */
#include "service/delivery.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto/crypto.h"
#include "util/util.h"

#define OPS(svc) ((svc)->store->ops)
#define BATCH_MAX 64 /* the most rows one request carries (TD_NOTIFY_BATCH_MAX in notify/notify.h) */

void td_delivery_defaults(td_delivery_rec *d)
{
    memset(d, 0, sizeof *d);
    td_strlcpy(d->profile, "webhook", sizeof d->profile);
    td_strlcpy(d->auth, "none", sizeof d->auth);
    d->d1_batch_max = 1;
    d->max_age_ms = 24LL * 3600 * 1000;
    d->timeout_ms = 5000;
}

static bool one_of(const char *v, const char *const *set)
{
    for (; *set; set++)
        if (!strcmp(v, *set)) return true;
    return false;
}

/* http(s)://host... without spaces or control characters; "" if allow_empty. */
static bool url_ok(const char *u, bool allow_empty)
{
    if (!u[0]) return allow_empty;
    if (strncasecmp(u, "http://", 7) != 0 && strncasecmp(u, "https://", 8) != 0) return false;
    const char *host = u + (u[4] == ':' ? 7 : 8);
    if (!*host || *host == '/') return false;
    return !td_has_ctl(u) && !strchr(u, ' ');
}

static const char *const MESSAGES[] = {"ACTIVATION", "REMINDER", "DELETION", "CANCELLATION", "OTP", NULL};

static td_err templates_ok(const char *js, td_error *e)
{
    if (!js || !js[0]) return TD_OK;
    json_error_t je;
    json_t *v = json_loads(js, JSON_REJECT_DUPLICATES, &je);
    if (!v || !json_is_object(v)) {
        json_decref(v);
        return td_fail(e, TD_E_INVALID_ARGUMENT, "templates must be a JSON object of strings");
    }
    const char *k;
    json_t *t;
    json_object_foreach(v, k, t)
    {
        if (!one_of(k, MESSAGES) || !json_is_string(t) || json_string_length(t) > 1000) {
            td_fail(e, TD_E_INVALID_ARGUMENT,
                    "templates.%.24s: expected one of ACTIVATION, REMINDER, DELETION, CANCELLATION, OTP with a "
                    "string of at most 1000 characters",
                    k);
            json_decref(v);
            return e ? e->code : TD_E_INVALID_ARGUMENT;
        }
    }
    json_decref(v);
    return TD_OK;
}

td_err td_delivery_validate(const td_delivery_rec *d, bool has_secret, td_error *e)
{
    static const char *const PROFILES[] = {"d1", "classic", "webhook", NULL};
    static const char *const AUTHS[] = {"none", "bearer", "oauth2", "webhook", NULL};
    if (!one_of(d->profile, PROFILES))
        return td_fail(e, TD_E_INVALID_ARGUMENT, "profile must be one of d1, classic, webhook");
    if (!one_of(d->auth, AUTHS))
        return td_fail(e, TD_E_INVALID_ARGUMENT, "auth must be one of none, bearer, oauth2, webhook");
    if (!strcmp(d->auth, "webhook") && strcmp(d->profile, "webhook") != 0)
        return td_fail(e, TD_E_INVALID_ARGUMENT, "auth webhook (a Standard Webhooks secret) needs profile webhook");
    if (!url_ok(d->base_url, false))
        return td_fail(e, TD_E_INVALID_ARGUMENT, "baseUrl must be an http:// or https:// URL");
    if (!url_ok(d->messaging_url, true))
        return td_fail(e, TD_E_INVALID_ARGUMENT, "messagingUrl must be empty or an http:// or https:// URL");
    if (!strcmp(d->auth, "oauth2")) {
        if (!url_ok(d->oauth_token_url, false))
            return td_fail(e, TD_E_INVALID_ARGUMENT, "oauthTokenUrl must be an http:// or https:// URL");
        if (!d->oauth_client_id[0] || strchr(d->oauth_client_id, ':') || td_has_ctl(d->oauth_client_id))
            return td_fail(e, TD_E_INVALID_ARGUMENT, "oauthClientId is required and must not contain ':'");
        if (td_has_ctl(d->oauth_scope)) return td_fail(e, TD_E_INVALID_ARGUMENT, "oauthScope is invalid");
    }
    if (strcmp(d->auth, "none") != 0 && !has_secret)
        return td_fail(e, TD_E_INVALID_ARGUMENT, "auth %s needs a secret", d->auth);
    if (td_has_ctl(d->tls_cert_file) || td_has_ctl(d->tls_key_file) || td_has_ctl(d->tls_ca_file))
        return td_fail(e, TD_E_INVALID_ARGUMENT, "TLS file names must not contain control characters");
    if (d->tls_key_file[0] && !d->tls_cert_file[0])
        return td_fail(e, TD_E_INVALID_ARGUMENT, "tlsKeyFile needs tlsCertFile");
    if (d->tls_pinned_key[0] && (strncmp(d->tls_pinned_key, "sha256//", 8) != 0 || td_has_ctl(d->tls_pinned_key)))
        return td_fail(e, TD_E_INVALID_ARGUMENT, "tlsPinnedKey must be sha256//<base64> (curl's pinned public key)");
    if (d->d1_batch_max < 1 || d->d1_batch_max > BATCH_MAX)
        return td_fail(e, TD_E_INVALID_ARGUMENT, "d1BatchMax must be in [1, %d]", BATCH_MAX);
    if (d->timeout_ms < 100 || d->timeout_ms > 120000)
        return td_fail(e, TD_E_INVALID_ARGUMENT, "timeoutMs must be in [100, 120000]");
    if (d->max_age_ms < 1000 || d->max_age_ms > 30LL * 86400 * 1000)
        return td_fail(e, TD_E_INVALID_ARGUMENT, "maxAgeMs must be in [1000, 2592000000]");
    return templates_ok(d->templates_json, e);
}

static td_st issuer_known(td_svc *svc, td_conn *c, const char *issuer_id, td_error *e, bool *known)
{
    td_issuer_rec i;
    td_st st = OPS(svc)->issuer_get(c, issuer_id, &i);
    *known = st == TD_ST_OK;
    if (st == TD_ST_NOT_FOUND) {
        td_fail(e, TD_E_NOT_FOUND, "issuer %s not found", issuer_id);
        return TD_ST_OK;
    }
    return st;
}

static td_st put_delivery(td_conn *c, td_put_delivery *cmd)
{
    td_svc *svc = cmd->w.svc;
    td_delivery_rec *r = &cmd->rec;
    bool known;
    td_st st = issuer_known(svc, c, r->issuer_id, &cmd->w.err, &known);
    if (st != TD_ST_OK || !known) return st;
    /* The secret stored now: the new one, none, or the one already there. */
    td_delivery_rec old = {0};
    bool had = false;
    if (!cmd->secret_given) {
        st = OPS(svc)->delivery_get(c, r->issuer_id, &old);
        if (st != TD_ST_OK && st != TD_ST_NOT_FOUND) return st;
        had = st == TD_ST_OK && old.secret_len > 0;
    }
    bool has_secret = cmd->secret_given ? cmd->secret[0] != 0 : had;
    if (td_delivery_validate(r, has_secret, &cmd->w.err) != TD_OK) {
        td_delivery_rec_free(&old);
        return TD_ST_OK;
    }
    memset(r->secret_sealed, 0, sizeof r->secret_sealed);
    r->secret_len = 0;
    if (cmd->secret_given && cmd->secret[0]) {
        uint8_t *sealed = NULL;
        size_t n = 0;
        if (td_seal(svc->cfg->master_key, (const uint8_t *)cmd->secret, strlen(cmd->secret), &sealed, &n) != 0 ||
            n > sizeof r->secret_sealed) {
            free(sealed);
            td_delivery_rec_free(&old);
            td_fail(&cmd->w.err, TD_E_INVALID_ARGUMENT, "secret is too long (at most %d characters)",
                    TD_DELIVERY_SECRET_MAX);
            return TD_ST_OK;
        }
        memcpy(r->secret_sealed, sealed, n);
        r->secret_len = n;
        free(sealed);
    } else if (had) {
        memcpy(r->secret_sealed, old.secret_sealed, old.secret_len);
        r->secret_len = old.secret_len;
    }
    td_delivery_rec_free(&old);
    r->updated_ms = td_now_ms();
    return OPS(svc)->delivery_put(c, r);
}

static td_st run_put_delivery(td_conn *c, td_write *w)
{
    td_put_delivery *cmd = (td_put_delivery *)w;
    td_st st = put_delivery(c, cmd);
    td_wipe(cmd->secret, sizeof cmd->secret);
    return st;
}

void td_svc_put_delivery(td_svc *svc, td_put_delivery *cmd)
{
    cmd->w.run = run_put_delivery;
    td_svc_submit(svc, &cmd->w);
}

td_err td_svc_get_delivery(td_svc *svc, const char *issuer_id, td_delivery_rec *out, td_error *e)
{
    memset(out, 0, sizeof *out);
    td_conn *c = svc->store->reader(svc->store);
    bool known = false;
    if (!c || issuer_known(svc, c, issuer_id, e, &known) != TD_ST_OK)
        return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    if (!known) return e->code;
    td_st st = OPS(svc)->delivery_get(c, issuer_id, out);
    if (st == TD_ST_NOT_FOUND) return td_fail(e, TD_E_NOT_FOUND, "issuer %s has no delivery settings", issuer_id);
    if (st != TD_ST_OK) return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    /* Only whether a secret is set leaves this function. */
    td_wipe(out->secret_sealed, sizeof out->secret_sealed);
    return TD_OK;
}

typedef struct {
    int64_t id;
    char state[12];
    bool found;
} row_peek;

static void peek_row(const td_outbox_rec *o, void *arg)
{
    row_peek *p = arg;
    if (o->id == p->id) {
        p->found = true;
        td_strlcpy(p->state, o->state, sizeof p->state);
    }
}

static td_st run_replay(td_conn *c, td_write *w)
{
    td_replay *cmd = (td_replay *)w;
    bool known;
    td_st st = issuer_known(w->svc, c, cmd->issuer_id, &w->err, &known);
    if (st != TD_ST_OK || !known) return st;
    if (cmd->id > 0) {
        row_peek p = {.id = cmd->id};
        st = OPS(w->svc)->outbox_list(c, cmd->issuer_id, NULL, cmd->id - 1, 1, peek_row, &p);
        if (st != TD_ST_OK) return st;
        if (!p.found) {
            td_fail(&w->err, TD_E_NOT_FOUND, "notification %lld not found", (long long)cmd->id);
            return TD_ST_OK;
        }
        if (strcmp(p.state, "DEAD") != 0) {
            td_fail(&w->err, TD_E_NOT_ALLOWED_IN_STATE, "notification %lld is %s, not DEAD", (long long)cmd->id,
                    p.state);
            return TD_ST_OK;
        }
    }
    cmd->n_replayed = 0;
    return OPS(w->svc)->outbox_replay(c, cmd->issuer_id, cmd->id, td_now_ms(), &cmd->n_replayed);
}

void td_svc_replay_dead(td_svc *svc, td_replay *cmd)
{
    cmd->w.run = run_replay;
    td_svc_submit(svc, &cmd->w);
}
