/* requests.c — token requests and the consent they wait for: storing a
 * request, issuing a one-time consent link, and the user's decision, which
 * creates the token signed ENDORSED by the granting member. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/canonical.h"
#include "crypto/crypto.h"
#include "service/service.h"
#include "service/sign.h"
#include "util/log.h"
#include "util/util.h"

#define OPS(w) ((w)->svc->store->ops)

static td_st run_store_request(td_conn *c, td_write *w)
{
    td_store_request *cmd = (td_store_request *)w;
    td_member_rec m;
    td_st st = OPS(w)->member_get(c, cmd->from_id, &m);
    if (st == TD_ST_NOT_FOUND) {
        td_fail(&w->err, TD_E_INVALID_ARGUMENT, "requestOptions.from.id: no member %s", cmd->from_id);
        return TD_ST_OK;
    }
    if (st != TD_ST_OK) return st;

    td_request_rec r = {0};
    if (td_new_id("rq", r.id, sizeof r.id)) return TD_ST_ERROR;
    r.kind = cmd->kind;
    td_strlcpy(r.from_id, cmd->from_id, sizeof r.from_id);
    td_strlcpy(r.to_id, cmd->to_id, sizeof r.to_id);
    r.state = TD_TRS_PENDING;
    r.created_ms = td_now_ms();
    r.expires_ms = r.created_ms + w->svc->cfg->request_ttl_ms;

    /* The stored TokenRequest is what GET /token-requests/{id} serves. */
    json_t *doc = json_deep_copy(cmd->request);
    json_t *payload = json_object_get(doc, "requestPayload");
    json_object_set_new(payload, "id", json_string(r.id));
    json_object_set_new(doc, "id", json_string(r.id));
    r.request_json = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!r.request_json) return TD_ST_ERROR;
    st = OPS(w)->request_insert(c, &r);
    if (st == TD_ST_OK) memcpy(cmd->request_id, r.id, sizeof r.id);
    free(r.request_json);
    return st;
}

void td_svc_store_request(td_svc *svc, td_store_request *cmd)
{
    cmd->w.run = run_store_request;
    td_svc_submit(svc, &cmd->w);
}

static bool is_party(const td_request_rec *r, const char *member)
{
    return !strcmp(r->from_id, member) || !strcmp(r->to_id, member);
}

td_err td_svc_get_request(td_svc *svc, const char *caller, const char *id, td_request_rec *out, td_error *e)
{
    td_conn *c = svc->store->reader(svc->store);
    if (!c) return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    td_st st = svc->store->ops->request_get(c, id, out);
    if (st == TD_ST_OK && !is_party(out, caller)) {
        td_request_rec_free(out);
        st = TD_ST_NOT_FOUND;
    }
    if (st == TD_ST_NOT_FOUND) return td_fail(e, TD_E_NOT_FOUND, "token request %s not found", id);
    if (st != TD_ST_OK) return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    /* Expiry is a fact of time: report it without waiting for a sweeper. */
    td_request_view v = {out->state, out->expires_ms, out->consent_used};
    out->state = td_request_effective_state(&v, td_now_ms());
    return TD_OK;
}

static td_st run_authorize(td_conn *c, td_write *w)
{
    td_authorize_request *cmd = (td_authorize_request *)w;
    td_request_rec r;
    td_st st = OPS(w)->request_get(c, cmd->request_id, &r);
    if (st == TD_ST_OK && !is_party(&r, cmd->caller)) {
        td_request_rec_free(&r);
        st = TD_ST_NOT_FOUND;
    }
    if (st == TD_ST_NOT_FOUND) {
        td_fail(&w->err, TD_E_NOT_FOUND, "token request %s not found", cmd->request_id);
        return TD_ST_OK;
    }
    if (st != TD_ST_OK) return st;
    int64_t now = td_now_ms();
    td_request_view v = {r.state, r.expires_ms, r.consent_used};
    if (!td_request_can_authorize(&v, now)) {
        td_fail(&w->err, TD_E_INVALID_ARGUMENT, "token request %s is %s; it cannot be authorized", r.id,
                td_request_state_name(td_request_effective_state(&v, now)));
        td_request_rec_free(&r);
        return TD_ST_OK;
    }
    /* A new link replaces any earlier one: only the newest secret works. */
    char secret[64];
    if (td_new_secret(32, secret, sizeof secret)) {
        td_request_rec_free(&r);
        return TD_ST_ERROR;
    }
    td_api_key_hash(secret, r.consent_hash);
    r.consent_expires_ms = now + w->svc->cfg->consent_ttl_ms;
    if (r.consent_expires_ms > r.expires_ms) r.consent_expires_ms = r.expires_ms;
    r.consent_used = false;
    st = OPS(w)->request_update(c, &r);
    snprintf(cmd->redirect_url, sizeof cmd->redirect_url, "%s/consent/%s%c%s", w->svc->cfg->public_url, r.id,
             TD_CONSENT_SEP, secret);
    td_request_rec_free(&r);
    return st;
}

void td_svc_authorize_request(td_svc *svc, td_authorize_request *cmd)
{
    cmd->w.run = run_authorize;
    td_svc_submit(svc, &cmd->w);
}

/* Splits a consent code, "<requestId>.<secret>", into its request id (id,
 * TD_ID_MAX bytes) and its secret; false for any other shape. Neither part
 * can hold the separator (ids are base58 and ':', secrets base64url). */
static bool consent_code_split(const char *code, char *id, const char **secret)
{
    const char *sep = code ? strrchr(code, TD_CONSENT_SEP) : NULL;
    if (!sep || sep == code || !sep[1] || (size_t)(sep - code) >= TD_ID_MAX) return false;
    memcpy(id, code, (size_t)(sep - code));
    id[sep - code] = '\0';
    *secret = sep + 1;
    return true;
}

/* Finds the request behind a code and checks the code is still usable. The
 * request is read by its id (one shard on a distributed store), then the
 * secret's hash compared in constant time. A wrong secret, or a request
 * without a link, answers as an unknown code does, before anything about the
 * request's state: the link is the credential. The hash is made before the
 * read, so that an unknown request takes the same steps. */
static td_err consent_find(td_svc *svc, td_conn *c, const char *code, td_request_rec *out, td_error *e, td_st *st_out)
{
    char id[TD_ID_MAX], hash[65];
    const char *secret;
    *st_out = TD_ST_NOT_FOUND;
    if (!consent_code_split(code, id, &secret)) return td_fail(e, TD_E_NOT_FOUND, "this consent link is not valid");
    td_api_key_hash(secret, hash);
    td_st st = svc->store->ops->request_get(c, id, out);
    if (st == TD_ST_OK && (!out->consent_hash[0] || td_ct_equal(hash, out->consent_hash) != 0)) {
        td_request_rec_free(out);
        st = TD_ST_NOT_FOUND;
    }
    *st_out = st;
    if (st == TD_ST_NOT_FOUND) return td_fail(e, TD_E_NOT_FOUND, "this consent link is not valid");
    if (st != TD_ST_OK) return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    int64_t now = td_now_ms();
    td_request_view v = {out->state, out->expires_ms, out->consent_used};
    if (td_decide_request(&v, now) != TD_REQ_OK || now >= out->consent_expires_ms) {
        td_request_rec_free(out);
        return td_fail(e, TD_E_GONE, "this consent link was already used or has expired");
    }
    return TD_OK;
}

td_err td_svc_consent_lookup(td_svc *svc, const char *code, td_request_rec *out, td_error *e)
{
    td_conn *c = svc->store->reader(svc->store);
    td_st st;
    if (!c) return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    return consent_find(svc, c, code, out, e, &st);
}

/* Adds k=v (v percent-encoded) to a URL's query, before any #fragment, so
 * that the parameter reaches the server. The URL is rebuilt whole in a new
 * allocation: a redirect cut short would hand the TPP a truncated token id.
 * -1 when out of memory (*url is then left as it was). */
static int url_add_param(char **url, const char *k, const char *v)
{
    static const char HEX[] = "0123456789ABCDEF";
    const char *old = *url, *hash = strchr(old, '#');
    size_t head = hash ? (size_t)(hash - old) : strlen(old), tail = strlen(old + head);
    size_t cap = head + 1 + strlen(k) + 1 + 3 * strlen(v) + tail + 1;
    char *out = malloc(cap);
    if (!out) return -1;
    memcpy(out, old, head);
    size_t n = head;
    out[n++] = memchr(old, '?', head) ? '&' : '?';
    memcpy(out + n, k, strlen(k));
    n += strlen(k);
    out[n++] = '=';
    for (; *v; v++) {
        unsigned char ch = (unsigned char)*v;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr("-_.~", ch)) {
            out[n++] = (char)ch;
        } else {
            out[n++] = '%';
            out[n++] = HEX[ch >> 4];
            out[n++] = HEX[ch & 15];
        }
    }
    memcpy(out + n, old + head, tail + 1);
    free(*url);
    *url = out;
    return 0;
}

/* Space-separated "accountId" strings found under v, for list filters. */
static void collect_accounts(json_t *v, char *out, size_t cap)
{
    const char *key;
    json_t *child;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach(v, key, child)
        {
            if (!strcmp(key, "accountId") && json_is_string(child)) {
                size_t n = strlen(out), l = strlen(json_string_value(child));
                if (n + l + 2 < cap) {
                    if (n) out[n++] = ' ';
                    memcpy(out + n, json_string_value(child), l + 1);
                }
            } else {
                collect_accounts(child, out, cap);
            }
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, child) collect_accounts(child, out, cap);
    }
}

static const char *const RESOURCE_TYPES[][2] = {
    {"ACCOUNTS", "account"},
    {"BALANCES", "balance"},
    {"TRANSACTIONS", "transactions"},
    {"TRANSFER_DESTINATIONS", "transferDestinations"},
    {"STANDING_ORDERS", "standingOrders"},
};

/* An access body grants each requested resource type on each approved account. */
static json_t *access_body(json_t *req_body, const td_consent_decide *cmd)
{
    json_t *types = json_object_get(json_object_get(req_body, "resourceTypeList"), "resources");
    json_t *resources = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(types, i, t)
    {
        for (size_t k = 0; k < sizeof RESOURCE_TYPES / sizeof RESOURCE_TYPES[0]; k++) {
            if (strcmp(json_string_value(t), RESOURCE_TYPES[k][0])) continue;
            for (int a = 0; a < cmd->naccounts; a++)
                json_array_append_new(resources,
                                      json_pack("{s:{s:s}}", RESOURCE_TYPES[k][1], "accountId", cmd->accounts[a]));
        }
    }
    json_t *body = json_pack("{s:o}", "resources", resources);
    json_t *days = json_object_get(req_body, "transactionHistoryDays");
    if (days) json_object_set(body, "transactionHistoryDays", days);
    return body;
}

/* Builds the token's payload from the request, as Token.io shapes it. */
static json_t *build_payload(const td_request_rec *r, json_t *req, const td_consent_decide *cmd, int64_t now,
                             int64_t access_ttl_ms, int64_t *expires_ms)
{
    json_t *rp = json_object_get(req, "requestPayload");
    json_t *p = json_object();
    char ms[24];
    json_object_set_new(p, "version", json_string("1.0"));
    json_object_set(p, "refId", json_object_get(rp, "refId"));
    if (json_object_get(rp, "description")) json_object_set(p, "description", json_object_get(rp, "description"));
    json_t *from = json_deep_copy(json_object_get(json_object_get(req, "requestOptions"), "from"));
    json_object_set_new(p, "from", from);
    json_object_set(p, "to", json_object_get(rp, "to"));
    if (json_object_get(rp, "actingAs")) json_object_set(p, "actingAs", json_object_get(rp, "actingAs"));
    json_object_set_new(p, "tokenRequestId", json_string(r->id));
    snprintf(ms, sizeof ms, "%lld", (long long)now);
    json_object_set_new(p, "effectiveAtMs", json_string(ms));
    *expires_ms = 0;
    if (r->kind == TD_KIND_ACCESS) {
        json_t *ab = json_object_get(rp, "accessBody");
        json_object_set_new(p, "access", access_body(ab, cmd));
        *expires_ms = now + access_ttl_ms;
        int64_t exp;
        json_t *te = json_object_get(rp, "tokenExpiration");
        if (te && td_parse_i64(json_string_value(te), &exp) == 0 && exp > 0) *expires_ms = td_epoch_to_ms(exp);
    } else if (r->kind == TD_KIND_TRANSFER) {
        json_t *tb = json_deep_copy(json_object_get(rp, "transferBody"));
        json_object_del(tb, "setTransferDestinationsUrl");
        json_object_set_new(p, "transfer", tb);
    } else {
        json_object_set(p, "standingOrder", json_object_get(rp, "standingOrderBody"));
    }
    if (*expires_ms) {
        snprintf(ms, sizeof ms, "%lld", (long long)*expires_ms);
        json_object_set_new(p, "expiresAtMs", json_string(ms));
    }
    return p;
}

/* Creates the token for an approved request; fills t (caller frees). */
static td_st create_token(td_conn *c, td_write *w, const td_request_rec *r, json_t *req, td_token_rec *t,
                          json_t **sig_out)
{
    td_consent_decide *cmd = (td_consent_decide *)w;
    int64_t now = td_now_ms();
    memset(t, 0, sizeof *t);
    if (td_new_id(td_kind_prefix(r->kind), t->id, sizeof t->id)) return TD_ST_ERROR;
    json_t *payload = build_payload(r, req, cmd, now, w->svc->cfg->access_ttl_ms, &t->expires_ms);
    t->payload_canonical = td_canonical_json(payload);
    json_t *sig = NULL;
    td_st st = t->payload_canonical
                   ? td_sign_as(c, w->svc, r->from_id, TD_LEVEL_STANDARD, t->payload_canonical, "endorsed", &sig)
                   : TD_ST_INTERNAL;
    if (st != TD_ST_OK) {
        json_decref(payload);
        return st;
    }
    json_t *tok = json_pack("{s:s, s:o, s:[{s:s, s:O}], s:s}", "id", t->id, "payload", payload, "payloadSignatures",
                            "action", "ENDORSED", "signature", sig, "tokenRequestId", r->id);
    t->json = json_dumps(tok, JSON_COMPACT);
    char acc[2048] = "";
    collect_accounts(json_object_get(payload, "access"), acc, sizeof acc);
    json_t *body = json_object_get(payload, r->kind == TD_KIND_TRANSFER ? "transfer" : "standingOrder");
    json_t *instr = json_object_get(body, "instructions");
    collect_accounts(json_object_get(instr, "source"), acc, sizeof acc);
    t->accounts_src = strdup(acc);
    acc[0] = 0;
    collect_accounts(json_object_get(instr, "transferDestinations"), acc, sizeof acc);
    t->accounts_dst = strdup(acc);
    t->kind = r->kind;
    t->state = TD_TS_ACTIVE;
    td_strlcpy(t->from_id, r->from_id, sizeof t->from_id);
    td_strlcpy(t->to_id, r->to_id, sizeof t->to_id);
    json_t *ref = json_object_get(json_object_get(payload, "actingAs"), "refId");
    if (json_is_string(ref)) td_strlcpy(t->acting_as_ref_id, json_string_value(ref), sizeof t->acting_as_ref_id);
    json_t *refid = json_object_get(payload, "refId");
    if (json_is_string(refid)) td_strlcpy(t->ref_id, json_string_value(refid), sizeof t->ref_id);
    td_strlcpy(t->token_request_id, r->id, sizeof t->token_request_id);
    t->created_ms = now;
    t->seq = 1;
    json_decref(tok);
    *sig_out = sig;
    if (!t->json || !t->accounts_src || !t->accounts_dst) return TD_ST_ERROR;
    st = OPS(w)->token_insert(c, t);
    if (st != TD_ST_OK) return st;
    td_event_rec ev = {.seq = 1, .time_ms = now};
    td_strlcpy(ev.token_id, t->id, sizeof ev.token_id);
    td_strlcpy(ev.type, "CREATED", sizeof ev.type);
    td_strlcpy(ev.actor, r->from_id, sizeof ev.actor);
    return OPS(w)->event_append(c, &ev);
}

static td_st run_consent_decide(td_conn *c, td_write *w)
{
    td_consent_decide *cmd = (td_consent_decide *)w;
    td_request_rec r;
    td_st st;
    if (consent_find(w->svc, c, cmd->code, &r, &w->err, &st) != TD_OK)
        return st == TD_ST_OK || st == TD_ST_NOT_FOUND ? TD_ST_OK : st;
    json_t *req = json_loads(r.request_json, JSON_REJECT_DUPLICATES, NULL);
    json_t *rp = json_object_get(req, "requestPayload");
    const char *redirect = json_string_value(json_object_get(rp, "redirectUrl"));
    const char *state = json_string_value(json_object_get(rp, "callbackState"));
    free(cmd->redirect); /* a retried transaction builds it again */
    cmd->redirect = strdup(redirect ? redirect : "");
    if (!cmd->redirect) {
        json_decref(req);
        td_request_rec_free(&r);
        return TD_ST_INTERNAL;
    }
    r.consent_used = true;
    st = TD_ST_OK;
    if (!cmd->approve) {
        r.state = TD_TRS_REJECTED;
        if (url_add_param(&cmd->redirect, "error", "access_denied")) st = TD_ST_INTERNAL;
    } else if (r.kind == TD_KIND_ACCESS && cmd->naccounts == 0) {
        td_fail(&w->err, TD_E_INVALID_ARGUMENT, "choose at least one account to share");
    } else {
        td_token_rec t;
        json_t *sig = NULL;
        st = create_token(c, w, &r, req, &t, &sig);
        if (st == TD_ST_OK) {
            r.state = TD_TRS_PROCESSED;
            td_strlcpy(r.token_id, t.id, sizeof r.token_id);
            free(r.signature_json);
            r.signature_json = json_dumps(sig, JSON_COMPACT);
            memcpy(cmd->token_id, t.id, sizeof cmd->token_id);
            if (url_add_param(&cmd->redirect, "tokenId", t.id)) st = TD_ST_INTERNAL;
        }
        json_decref(sig);
        td_token_rec_free(&t);
    }
    if (st == TD_ST_OK && state && !w->err.code && url_add_param(&cmd->redirect, "state", state)) st = TD_ST_INTERNAL;
    if (st == TD_ST_OK && !w->err.code) st = OPS(w)->request_update(c, &r);
    json_decref(req);
    td_request_rec_free(&r);
    return st;
}

void td_svc_consent_decide(td_svc *svc, td_consent_decide *cmd)
{
    cmd->w.run = run_consent_decide;
    td_svc_submit(svc, &cmd->w);
}
