/* admin.c — the admin API (Bearer <admin key>): members with their signing
 * keys, member and issuer API keys, issuers, test-only fault injection, and
 * for network tokenization: issuers' card policies, their outbox, and the
 * simulated TSP's behaviour; for notification delivery: issuers' delivery
 * settings and the replay of dead letters. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/faces.h"
#include "api/tls.h"
#include "crypto/crypto.h"
#include "service/cards.h"
#include "service/delivery.h"
#include "util/util.h"

static void render_member(td_write *w)
{
    td_write_answer(w, 201, json_pack("{s:s}", "memberId", ((td_create_member *)w)->member_id));
}

void admin_create_member(td_req *r)
{
    static const char *const ALLOWED[] = {"displayName", NULL};
    td_error e = {0};
    const char *name;
    json_t *b = td_body_json(r, &e);
    if (!b || td_json_only(b, "body", ALLOWED, &e) || td_json_string(b, "body", "displayName", true, 255, &name, &e)) {
        json_decref(b);
        td_reply_error(r, &e, "");
        return;
    }
    td_create_member *cmd = td_face_new_write(r, sizeof *cmd, render_member);
    if (cmd) td_strlcpy(cmd->display_name, name, sizeof cmd->display_name);
    json_decref(b);
    if (cmd) td_svc_create_member(r->svc, cmd);
}

static void render_api_key(td_write *w)
{
    td_create_api_key *cmd = (td_create_api_key *)w;
    json_t *v = json_pack("{s:s, s:s}", "apiKey", cmd->api_key, "keyId", cmd->key_id);
    if (v && cmd->cert_sha256[0]) json_object_set_new(v, "certFingerprint", json_string(cmd->cert_sha256));
    td_write_answer(w, 201, v);
}

/* body.certFingerprint: the SHA-256 fingerprint of the client certificate an
 * API key is bound to (docs/operations.md, "TLS"); out "" when absent, or null
 * where null_unbinds. */
static int parse_cert_fingerprint(json_t *b, bool required, bool null_unbinds, char out[65], td_error *e)
{
    json_t *v = json_object_get(b, "certFingerprint");
    out[0] = 0;
    if (!v && !required) return 0;
    if (!v) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "body.certFingerprint is required (null unbinds)");
        return -1;
    }
    if (json_is_null(v) && null_unbinds) return 0;
    const char *s = json_string_value(v);
    if (!s || strlen(s) != json_string_length(v) || td_tls_fingerprint_parse(s, out)) {
        out[0] = 0;
        td_fail(e, TD_E_INVALID_ARGUMENT,
                "body.certFingerprint must be the client certificate's SHA-256 fingerprint: 64 hex digits, "
                "in pairs separated by ':' or not%s",
                null_unbinds ? ", or null to unbind" : "");
        return -1;
    }
    return 0;
}

void admin_create_member_api_key(td_req *r)
{
    static const char *const ALLOWED[] = {"level", "certFingerprint", NULL};
    if (!td_param_id(r, 0, "memberId")) return;
    td_error e = {0};
    const char *level;
    td_level lvl;
    char fp[65];
    json_t *b = td_body_json(r, &e);
    if (!b || td_json_only(b, "body", ALLOWED, &e) || td_json_string(b, "body", "level", true, 16, &level, &e) ||
        (td_level_parse(level, &lvl) &&
         td_fail(&e, TD_E_INVALID_ARGUMENT, "level must be LOW, STANDARD or PRIVILEGED")) ||
        parse_cert_fingerprint(b, false, false, fp, &e)) {
        json_decref(b);
        td_reply_error(r, &e, r->params[0]);
        return;
    }
    json_decref(b);
    td_create_api_key *cmd = td_face_new_write(r, sizeof *cmd, render_api_key);
    if (!cmd) return;
    cmd->kind = TD_CRED_MEMBER;
    td_strlcpy(cmd->owner_id, r->params[0], sizeof cmd->owner_id);
    cmd->level = lvl;
    td_strlcpy(cmd->cert_sha256, fp, sizeof cmd->cert_sha256);
    cmd->w.subject = cmd->owner_id;
    td_svc_create_api_key(r->svc, cmd);
}

/* D1 issuer ids are exactly 10 characters. */
bool admin_valid_issuer_id(const char *s)
{
    return strlen(s) == 10 && td_is_id_chars(s, 10, 10, "_-");
}

static void render_issuer(td_write *w)
{
    td_create_issuer *cmd = (td_create_issuer *)w;
    td_write_answer(w, 201, json_pack("{s:s, s:s}", "issuerId", cmd->issuer_id, "displayName", cmd->display_name));
}

void admin_create_issuer(td_req *r)
{
    static const char *const ALLOWED[] = {"issuerId", "displayName", NULL};
    td_error e = {0};
    const char *id, *name;
    json_t *b = td_body_json(r, &e);
    if (!b || td_json_only(b, "body", ALLOWED, &e) || td_json_string(b, "body", "issuerId", true, 10, &id, &e) ||
        td_json_string(b, "body", "displayName", true, 255, &name, &e) ||
        (!admin_valid_issuer_id(id) &&
         td_fail(&e, TD_E_INVALID_ARGUMENT, "issuerId must be exactly 10 characters of [A-Za-z0-9_-]"))) {
        json_decref(b);
        td_reply_error(r, &e, "");
        return;
    }
    td_create_issuer *cmd = td_face_new_write(r, sizeof *cmd, render_issuer);
    if (cmd) {
        td_strlcpy(cmd->issuer_id, id, sizeof cmd->issuer_id);
        td_strlcpy(cmd->display_name, name, sizeof cmd->display_name);
    }
    json_decref(b);
    if (cmd) td_svc_create_issuer(r->svc, cmd);
}

void admin_create_issuer_api_key(td_req *r)
{
    static const char *const ALLOWED[] = {"role", "certFingerprint", NULL};
    td_error e = {0};
    const char *role;
    char fp[65];
    if (!admin_valid_issuer_id(r->params[0])) {
        td_reply_err(r, TD_E_INVALID_ARGUMENT, "issuerId must be exactly 10 characters of [A-Za-z0-9_-]");
        return;
    }
    json_t *b = td_body_json(r, &e);
    if (!b || td_json_only(b, "body", ALLOWED, &e) || td_json_string(b, "body", "role", true, 16, &role, &e) ||
        (strcmp(role, "issuer") && strcmp(role, "network") &&
         td_fail(&e, TD_E_INVALID_ARGUMENT, "role must be issuer or network")) ||
        parse_cert_fingerprint(b, false, false, fp, &e)) {
        json_decref(b);
        td_reply_error(r, &e, r->params[0]);
        return;
    }
    td_create_api_key *cmd = td_face_new_write(r, sizeof *cmd, render_api_key);
    if (cmd) {
        cmd->kind = TD_CRED_ISSUER;
        td_strlcpy(cmd->owner_id, r->params[0], sizeof cmd->owner_id);
        td_strlcpy(cmd->role, role, sizeof cmd->role);
        td_strlcpy(cmd->cert_sha256, fp, sizeof cmd->cert_sha256);
        cmd->w.subject = cmd->owner_id;
    }
    json_decref(b);
    if (cmd) td_svc_create_api_key(r->svc, cmd);
}

static void render_binding(td_write *w)
{
    td_bind_api_key *cmd = (td_bind_api_key *)w;
    td_write_answer(w, 200,
                    json_pack("{s:o}", "certFingerprint",
                              cmd->cert_sha256[0] ? json_string(cmd->cert_sha256) : json_null()));
}

/* {"apiKey": "tk_...", "certFingerprint": "<SHA-256>" | null}: the key (shown
 * once at creation, so its holder names it) gets bound to that client
 * certificate, or unbound. The key is hashed here and never kept or echoed. */
static void bind_api_key(td_req *r, td_cred_kind kind)
{
    static const char *const ALLOWED[] = {"apiKey", "certFingerprint", NULL};
    td_error e = {0};
    const char *key;
    char fp[65];
    json_t *b = td_body_json(r, &e);
    if (!b || td_json_only(b, "body", ALLOWED, &e) || td_json_string(b, "body", "apiKey", true, 200, &key, &e) ||
        parse_cert_fingerprint(b, true, true, fp, &e)) {
        json_decref(b);
        td_reply_error(r, &e, r->params[0]);
        return;
    }
    td_bind_api_key *cmd = td_face_new_write(r, sizeof *cmd, render_binding);
    if (cmd) {
        cmd->kind = kind;
        td_strlcpy(cmd->owner_id, r->params[0], sizeof cmd->owner_id);
        td_api_key_hash(key, cmd->key_hash);
        td_strlcpy(cmd->cert_sha256, fp, sizeof cmd->cert_sha256);
        cmd->w.subject = cmd->owner_id;
    }
    json_decref(b);
    if (cmd) td_svc_bind_api_key(r->svc, cmd);
}

void admin_bind_member_api_key(td_req *r)
{
    if (td_param_id(r, 0, "memberId")) bind_api_key(r, TD_CRED_MEMBER);
}

void admin_bind_issuer_api_key(td_req *r)
{
    if (!admin_valid_issuer_id(r->params[0])) {
        td_reply_err(r, TD_E_INVALID_ARGUMENT, "issuerId must be exactly 10 characters of [A-Za-z0-9_-]");
        return;
    }
    bind_api_key(r, TD_CRED_ISSUER);
}

/* {"store": "none" | "unavailable" | "stalled"} — only with fault-injection on. */
void admin_set_fault(td_req *r)
{
    static const char *const ALLOWED[] = {"store", NULL};
    static const char *const FAULTS[] = {"none", "unavailable", "stalled"};
    td_error e = {0};
    const char *f;
    if (!r->svc->cfg->fault_injection) {
        td_reply_err(r, TD_E_NOT_FOUND, "fault injection is disabled");
        return;
    }
    json_t *b = td_body_json(r, &e);
    if (!b || td_json_only(b, "body", ALLOWED, &e) || td_json_string(b, "body", "store", true, 16, &f, &e)) {
        json_decref(b);
        td_reply_error(r, &e, "");
        return;
    }
    int fault = -1;
    for (int i = 0; i < 3; i++)
        if (!strcmp(FAULTS[i], f)) fault = i;
    json_decref(b);
    if (fault < 0) {
        td_reply_err(r, TD_E_INVALID_ARGUMENT, "store must be none, unavailable or stalled");
        return;
    }
    r->svc->store->inject_fault(r->svc->store, fault);
    td_reply_json_copy(r, 200, "{}", 2);
}

/* ---- card policy: PUT/GET /admin/v1/issuers/{issuerId}/card-policy ---- */

static void render_policy(td_write *w)
{
    td_put_card_policy *cmd = (td_put_card_policy *)w;
    w->status = 200;
    w->body = strdup(cmd->json);
}

static void dispose_policy(td_write *w)
{
    td_put_card_policy *cmd = (td_put_card_policy *)w;
    free(cmd->json);
    cmd->json = NULL;
}

static bool issuer_param(td_req *r)
{
    if (admin_valid_issuer_id(r->params[0])) return true;
    td_reply_err(r, TD_E_INVALID_ARGUMENT, "issuerId must be exactly 10 characters of [A-Za-z0-9_-]");
    return false;
}

void admin_put_card_policy(td_req *r)
{
    td_error e = {0};
    td_card_policy p;
    if (!issuer_param(r)) return;
    json_t *b = td_body_json(r, &e);
    if (!b || td_card_policy_from_json(b, &p, &e) != TD_OK) {
        json_decref(b);
        td_reply_error(r, &e, r->params[0]);
        return;
    }
    json_decref(b);
    json_t *v = td_card_policy_to_json(&p);
    char *json = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!json) {
        td_reply_err(r, TD_E_INTERNAL, "out of memory");
        return;
    }
    td_put_card_policy *cmd = td_face_new_write(r, sizeof *cmd, render_policy);
    if (!cmd) {
        free(json);
        return;
    }
    td_strlcpy(cmd->issuer_id, r->params[0], sizeof cmd->issuer_id);
    cmd->json = json;
    cmd->w.dispose = dispose_policy;
    cmd->w.subject = cmd->issuer_id;
    td_svc_put_card_policy(r->svc, cmd);
}

void admin_get_card_policy(td_req *r)
{
    td_card_policy p;
    td_error e = {0};
    if (!issuer_param(r)) return;
    if (td_svc_get_card_policy(r->svc, r->params[0], &p, &e) != TD_OK) {
        td_reply_error(r, &e, r->params[0]);
        return;
    }
    json_t *v = td_card_policy_to_json(&p);
    td_reply_json(r, 200, v);
    json_decref(v);
}

/* ---- GET /admin/v1/issuers/{issuerId}/outbox?state=&after=&limit= ---- */

static json_t *time_or_empty(int64_t ms)
{
    char buf[40] = "";
    if (ms) td_iso8601_ms(ms, buf, sizeof buf);
    return json_string(buf);
}

/* One row, as docs/network.md lists it; a sealed OTP is never shown. */
static void append_outbox(const td_outbox_rec *o, void *arg)
{
    json_t *v = json_object();
    json_object_set_new(v, "id", json_integer(o->id));
    json_object_set_new(v, "channel", json_string(o->channel));
    json_object_set_new(v, "digitalCardId", json_string(o->digital_card_id));
    json_object_set_new(v, "cardId", json_string(o->card_id));
    json_object_set_new(v, "sequence", json_integer(o->dcard_seq));
    json_object_set_new(v, "operationId", json_string(o->operation_id));
    json_object_set_new(v, "operation", json_string(o->operation));
    json_object_set_new(v, "status", json_string(o->status));
    json_object_set_new(v, "errorCode", json_string(o->error_code));
    json_object_set_new(v, "source", json_string(o->source));
    json_object_set_new(v, "correlationId", json_string(o->correlation_id));
    json_object_set_new(v, "walletProviderId", json_string(o->wallet_provider_id));
    json_object_set_new(v, "message", json_string(o->message));
    json_object_set_new(v, "methodId", json_string(o->method_id));
    json_object_set_new(v, "eventTime", time_or_empty(o->event_ms));
    json_object_set_new(v, "createdAt", time_or_empty(o->created_ms));
    json_object_set_new(v, "dueAt", time_or_empty(o->due_ms));
    json_object_set_new(v, "state", json_string(o->state));
    /* delivery (issue 4): attempts so far, the last one's HTTP status (0: none
     * or no answer) and error, the first attempt, and when it ended */
    json_object_set_new(v, "attempts", json_integer(o->attempts));
    json_object_set_new(v, "lastStatus", json_integer(o->last_status));
    json_object_set_new(v, "lastError", json_string(o->last_error));
    json_object_set_new(v, "firstAttemptAt", time_or_empty(o->first_attempt_ms));
    json_object_set_new(v, "doneAt", time_or_empty(o->done_ms));
    json_object_set_new(v, "replayedAt", time_or_empty(o->replayed_ms));
    json_array_append_new((json_t *)arg, v);
}

static bool outbox_state_ok(const char *s)
{
    static const char *const STATES[] = {"PENDING", "IN_FLIGHT", "DELIVERED", "DEAD", "CANCELLED", NULL};
    for (const char *const *p = STATES; *p; p++)
        if (!strcmp(*p, s)) return true;
    return false;
}

void admin_list_outbox(td_req *r)
{
    static const char *const ALLOWED[] = {"state", "after", "limit", NULL};
    td_error e = {0};
    int64_t after = 0, limit = 100;
    if (!issuer_param(r)) return;
    const char *state = td_query(r, "state"), *a = td_query(r, "after"), *l = td_query(r, "limit");
    if (td_query_allowed(r, ALLOWED, &e) ||
        (state && !outbox_state_ok(state) &&
         td_fail(&e, TD_E_INVALID_ARGUMENT, "state must be PENDING, IN_FLIGHT, DELIVERED, DEAD or CANCELLED")) ||
        (a && (td_parse_i64(a, &after) || after < 0) &&
         td_fail(&e, TD_E_INVALID_ARGUMENT, "after must be a row id (an integer >= 0)")) ||
        (l && (td_parse_i64(l, &limit) || limit < 1 || limit > 500) &&
         td_fail(&e, TD_E_INVALID_ARGUMENT, "limit must be an integer from 1 to 500"))) {
        td_reply_error(r, &e, "");
        return;
    }
    json_t *rows = json_array();
    if (td_svc_list_outbox(r->svc, r->params[0], state, after, (int)limit, append_outbox, rows, &e) != TD_OK) {
        json_decref(rows);
        td_reply_error(r, &e, r->params[0]);
        return;
    }
    json_t *v = json_pack("{s:o}", "outbox", rows);
    td_reply_json(r, 200, v);
    json_decref(v);
}

/* ---- POST /admin/v1/tsp {"mode", "count"}: the simulated TSP ---- */

void admin_set_tsp(td_req *r)
{
    static const char *const ALLOWED[] = {"mode", "count", NULL};
    static const char *const MODES[] = {"accept", "fail", "refuse", "timeout"};
    td_error e = {0};
    const char *mode;
    json_t *b = td_body_json(r, &e);
    if (!b || td_json_only(b, "body", ALLOWED, &e) || td_json_string(b, "body", "mode", true, 16, &mode, &e)) {
        json_decref(b);
        td_reply_error(r, &e, "");
        return;
    }
    int m = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(MODES[i], mode)) m = i;
    json_t *cv = json_object_get(b, "count");
    if (m < 0 || (cv && (!json_is_integer(cv) || json_integer_value(cv) < 0 || json_integer_value(cv) > 1000000))) {
        json_decref(b);
        td_reply_err(r, TD_E_INVALID_ARGUMENT,
                     m < 0 ? "mode must be accept, fail, refuse or timeout"
                           : "count must be an integer from 0 to 1000000");
        return;
    }
    int count = cv ? (int)json_integer_value(cv) : 0;
    json_decref(b);
    if (td_tsp_sim_set(r->svc->tsp, MODES[m], count) != 0) {
        td_reply_err(r, TD_E_CONFLICT, "the TSP connector is not the simulated one (--tsp-url is set)");
        return;
    }
    json_t *v = json_pack("{s:s, s:i}", "mode", MODES[m], "count", count);
    td_reply_json(r, 200, v);
    json_decref(v);
}

/* ---- delivery settings: PUT/GET /admin/v1/issuers/{issuerId}/delivery ----
 * docs/notifications.md is what tokend sends with them; the secret (bearer
 * token, OAuth2 client secret, webhook secret) is accepted here and never
 * shown again: answers say only "secretSet". */

#define DELIVERY_URL_MAX 511

static const char *const DELIVERY_MESSAGES[] = {"ACTIVATION", "REMINDER", "DELETION", "CANCELLATION", "OTP", NULL};

static bool delivery_url_ok(const char *s)
{
    if (strncmp(s, "http://", 7) && strncmp(s, "https://", 8)) return false;
    const char *host = s + (s[4] == 's' ? 8 : 7);
    if (!*host || *host == '/') return false;
    return td_printable_ok(s, DELIVERY_URL_MAX) && !strchr(s, ' ');
}

static bool delivery_file_ok(const char *s)
{
    return td_printable_ok(s, 511);
}

static bool delivery_pin_ok(const char *s)
{
    return td_printable_ok(s, 127) && !strncmp(s, "sha256//", 8) && s[8];
}

static bool delivery_token_ok(const char *s)
{
    return td_printable_ok(s, TD_DELIVERY_SECRET_MAX) && !strchr(s, ' ');
}

/* A Standard Webhooks secret: "whsec_<standard base64>" (or raw bytes). */
static bool delivery_whsec_ok(const char *s)
{
    if (!delivery_token_ok(s)) return false;
    if (strncmp(s, "whsec_", 6)) return true;
    unsigned char key[TD_DELIVERY_SECRET_MAX];
    size_t n = 0;
    bool ok =
        sodium_base642bin(key, sizeof key, s + 6, strlen(s + 6), NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) == 0 &&
        n > 0;
    td_wipe(key, sizeof key);
    return ok;
}

static bool delivery_scope_ok(const char *s)
{
    return td_printable_ok(s, 127);
}

static bool delivery_client_id_ok(const char *s)
{
    return td_printable_ok(s, 127);
}

/* An integer field in [lo, hi], or its default when absent. */
static int delivery_int(json_t *b, const char *key, int64_t lo, int64_t hi, int64_t dflt, int64_t *out, td_error *e)
{
    json_t *v = json_object_get(b, key);
    *out = dflt;
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "body.%s must be an integer from %lld to %lld", key, (long long)lo,
                (long long)hi);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static int copy_field(char *dst, size_t cap, const char *src, const char *name, td_error *e)
{
    if (!src) return 0;
    if (td_strlcpy(dst, src, cap)) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "%s is too long", name);
        return -1;
    }
    return 0;
}

/* body.auth into d and the secret; *secret NULL when none was given. */
static int delivery_parse_auth(json_t *auth, td_delivery_rec *d, const char **secret, td_error *e)
{
    static const char *const NONE[] = {"type", NULL};
    static const char *const BEARER[] = {"type", "token", NULL};
    static const char *const OAUTH[] = {"type", "clientId", "clientSecret", "tokenUrl", "scope", NULL};
    static const char *const WEBHOOK[] = {"type", "secret", NULL};
    const char *type, *client = NULL, *url = NULL, *scope = NULL;
    *secret = NULL;
    td_strlcpy(d->auth, "none", sizeof d->auth);
    if (!auth) return 0;
    if (td_json_string(auth, "body.auth", "type", true, 16, &type, e)) return -1;
    if (!strcmp(type, "none")) return td_json_only(auth, "body.auth", NONE, e);
    if (!strcmp(type, "bearer")) {
        if (td_json_only(auth, "body.auth", BEARER, e) ||
            td_json_str_ok(auth, "body.auth", "token", false, TD_DELIVERY_SECRET_MAX, delivery_token_ok,
                           "must be printable ASCII without spaces (at most 400 characters)", secret, e))
            return -1;
    } else if (!strcmp(type, "oauth2")) {
        if (td_json_only(auth, "body.auth", OAUTH, e) ||
            td_json_str_ok(auth, "body.auth", "clientId", true, 127, delivery_client_id_ok,
                           "must be printable ASCII (at most 127 characters)", &client, e) ||
            td_json_str_ok(auth, "body.auth", "clientSecret", false, TD_DELIVERY_SECRET_MAX, delivery_token_ok,
                           "must be printable ASCII without spaces (at most 400 characters)", secret, e) ||
            td_json_str_ok(auth, "body.auth", "tokenUrl", true, DELIVERY_URL_MAX, delivery_url_ok,
                           "must be an http:// or https:// URL (at most 511 characters)", &url, e) ||
            td_json_str_ok(auth, "body.auth", "scope", false, 127, delivery_scope_ok,
                           "must be printable ASCII (at most 127 characters)", &scope, e) ||
            copy_field(d->oauth_client_id, sizeof d->oauth_client_id, client, "body.auth.clientId", e) ||
            copy_field(d->oauth_token_url, sizeof d->oauth_token_url, url, "body.auth.tokenUrl", e) ||
            copy_field(d->oauth_scope, sizeof d->oauth_scope, scope, "body.auth.scope", e))
            return -1;
    } else if (!strcmp(type, "webhook")) {
        if (td_json_only(auth, "body.auth", WEBHOOK, e) ||
            td_json_str_ok(auth, "body.auth", "secret", false, TD_DELIVERY_SECRET_MAX, delivery_whsec_ok,
                           "must be whsec_<standard base64> (or printable ASCII without spaces; at most 400 "
                           "characters)",
                           secret, e))
            return -1;
    } else {
        td_fail(e, TD_E_INVALID_ARGUMENT, "body.auth.type must be none, bearer, oauth2 or webhook");
        return -1;
    }
    td_strlcpy(d->auth, type, sizeof d->auth);
    return 0;
}

static int delivery_parse_tls(json_t *tls, td_delivery_rec *d, td_error *e)
{
    static const char *const ALLOWED[] = {"certFile", "keyFile", "caFile", "pinnedPublicKey", NULL};
    const char *cert = NULL, *key = NULL, *ca = NULL, *pin = NULL;
    if (!tls) return 0;
    const char *rule = "must be a file path of printable ASCII (at most 511 characters)";
    return td_json_only(tls, "body.tls", ALLOWED, e) ||
                   td_json_str_ok(tls, "body.tls", "certFile", false, 511, delivery_file_ok, rule, &cert, e) ||
                   td_json_str_ok(tls, "body.tls", "keyFile", false, 511, delivery_file_ok, rule, &key, e) ||
                   td_json_str_ok(tls, "body.tls", "caFile", false, 511, delivery_file_ok, rule, &ca, e) ||
                   td_json_str_ok(tls, "body.tls", "pinnedPublicKey", false, 127, delivery_pin_ok,
                                  "must be sha256//<base64> (curl's pinned public key; at most 127 characters)", &pin,
                                  e) ||
                   (key && !cert && td_fail(e, TD_E_INVALID_ARGUMENT, "body.tls.keyFile needs body.tls.certFile")) ||
                   copy_field(d->tls_cert_file, sizeof d->tls_cert_file, cert, "body.tls.certFile", e) ||
                   copy_field(d->tls_key_file, sizeof d->tls_key_file, key, "body.tls.keyFile", e) ||
                   copy_field(d->tls_ca_file, sizeof d->tls_ca_file, ca, "body.tls.caFile", e) ||
                   copy_field(d->tls_pinned_key, sizeof d->tls_pinned_key, pin, "body.tls.pinnedPublicKey", e)
               ? -1
               : 0;
}

/* body.templates: an object of the known messages → text (1–1000 chars). */
static int delivery_parse_templates(json_t *t, td_delivery_rec *d, td_error *e)
{
    if (!t) return 0;
    if (td_json_only(t, "body.templates", DELIVERY_MESSAGES, e)) return -1;
    const char *key;
    json_t *v;
    json_object_foreach(t, key, v)
    {
        const char *text;
        (void)v;
        if (td_json_str_ok(t, "body.templates", key, true, 1000, NULL, "must be text without NUL characters", &text, e))
            return -1;
    }
    d->templates_json = json_dumps(t, JSON_COMPACT | JSON_SORT_KEYS);
    if (!d->templates_json) {
        td_fail(e, TD_E_INTERNAL, "out of memory");
        return -1;
    }
    return 0;
}

/* The strict PUT body into d (and the secret in clear, pointing into b). */
int admin_parse_delivery(json_t *b, td_delivery_rec *d, const char **secret, td_error *e)
{
    static const char *const ALLOWED[] = {"profile",       "baseUrl",   "auth",         "tls",       "d1BatchMax",
                                          "maxAgeSeconds", "timeoutMs", "messagingUrl", "templates", NULL};
    const char *profile, *base, *messaging = NULL;
    json_t *auth, *tls, *templates;
    int64_t batch, age, timeout;
    const char *url_rule = "must be an http:// or https:// URL (at most 511 characters)";
    *secret = NULL;
    if (td_json_only(b, "body", ALLOWED, e) || td_json_string(b, "body", "profile", true, 16, &profile, e)) return -1;
    if (strcmp(profile, "d1") && strcmp(profile, "classic") && strcmp(profile, "webhook")) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "body.profile must be d1, classic or webhook");
        return -1;
    }
    td_strlcpy(d->profile, profile, sizeof d->profile);
    if (td_json_str_ok(b, "body", "baseUrl", true, DELIVERY_URL_MAX, delivery_url_ok, url_rule, &base, e) ||
        td_json_str_ok(b, "body", "messagingUrl", false, DELIVERY_URL_MAX, delivery_url_ok, url_rule, &messaging, e) ||
        copy_field(d->base_url, sizeof d->base_url, base, "body.baseUrl", e) ||
        copy_field(d->messaging_url, sizeof d->messaging_url, messaging, "body.messagingUrl", e) ||
        td_json_object(b, "body", "auth", false, &auth, e) || delivery_parse_auth(auth, d, secret, e) ||
        td_json_object(b, "body", "tls", false, &tls, e) || delivery_parse_tls(tls, d, e) ||
        delivery_int(b, "d1BatchMax", 1, 64, 1, &batch, e) ||
        delivery_int(b, "maxAgeSeconds", 60, 604800, 86400, &age, e) ||
        delivery_int(b, "timeoutMs", 100, 60000, 5000, &timeout, e) ||
        td_json_object(b, "body", "templates", false, &templates, e) || delivery_parse_templates(templates, d, e))
        return -1;
    d->d1_batch_max = (int)batch;
    d->max_age_ms = age * 1000;
    d->timeout_ms = (int)timeout;
    if (!strcmp(d->auth, "webhook") && strcmp(d->profile, "webhook")) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "body.auth.type webhook (a signing secret) needs profile webhook");
        return -1;
    }
    return 0;
}

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

/* The settings as the admin API shows them: never the secret. */
json_t *admin_delivery_view(const td_delivery_rec *d, bool secret_set)
{
    json_t *auth = json_pack("{s:s}", "type", d->auth);
    if (strcmp(d->auth, "none")) json_object_set_new(auth, "secretSet", json_boolean(secret_set));
    if (!strcmp(d->auth, "oauth2")) {
        json_object_set_new(auth, "clientId", json_string(d->oauth_client_id));
        json_object_set_new(auth, "tokenUrl", json_string(d->oauth_token_url));
        json_object_set_new(auth, "scope", str_or_null(d->oauth_scope));
    }
    json_t *tls = json_pack("{s:o, s:o, s:o, s:o}", "certFile", str_or_null(d->tls_cert_file), "keyFile",
                            str_or_null(d->tls_key_file), "caFile", str_or_null(d->tls_ca_file), "pinnedPublicKey",
                            str_or_null(d->tls_pinned_key));
    json_t *templates = d->templates_json && *d->templates_json ? json_loads(d->templates_json, 0, NULL) : NULL;
    if (!json_is_object(templates)) {
        json_decref(templates);
        templates = json_object();
    }
    char updated[40] = "";
    if (d->updated_ms) td_iso8601_ms(d->updated_ms, updated, sizeof updated);
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:i, s:I, s:i, s:o, s:o, s:o}", "issuerId", d->issuer_id, "profile",
                     d->profile, "baseUrl", d->base_url, "auth", auth, "tls", tls, "d1BatchMax", d->d1_batch_max,
                     "maxAgeSeconds", (json_int_t)(d->max_age_ms / 1000), "timeoutMs", d->timeout_ms, "messagingUrl",
                     str_or_null(d->messaging_url), "templates", templates, "updatedAt", str_or_null(updated));
}

/* After the job: secret_len says whether a secret is stored (new or kept). */
static void render_delivery(td_write *w)
{
    td_put_delivery *cmd = (td_put_delivery *)w;
    td_write_answer(w, 200, admin_delivery_view(&cmd->rec, cmd->rec.secret_len > 0));
}

static void dispose_delivery(td_write *w)
{
    td_put_delivery *cmd = (td_put_delivery *)w;
    td_wipe(cmd->secret, sizeof cmd->secret);
    td_wipe(cmd->rec.secret_sealed, sizeof cmd->rec.secret_sealed);
    free(cmd->rec.templates_json);
    cmd->rec.templates_json = NULL;
}

void admin_put_delivery(td_req *r)
{
    td_error e = {0};
    td_delivery_rec d;
    const char *secret = NULL;
    if (!issuer_param(r)) return;
    td_delivery_defaults(&d);
    td_strlcpy(d.issuer_id, r->params[0], sizeof d.issuer_id);
    json_t *b = td_body_json(r, &e);
    if (!b || admin_parse_delivery(b, &d, &secret, &e) || td_delivery_validate(&d, true, &e) != TD_OK) {
        json_decref(b);
        free(d.templates_json);
        td_reply_error(r, &e, r->params[0]);
        return;
    }
    td_put_delivery *cmd = td_face_new_write(r, sizeof *cmd, render_delivery);
    if (!cmd) {
        if (secret) td_wipe((char *)secret, strlen(secret));
        json_decref(b);
        free(d.templates_json);
        return;
    }
    cmd->rec = d;
    cmd->secret_given = secret != NULL;
    if (secret) {
        td_strlcpy(cmd->secret, secret, sizeof cmd->secret);
        /* the parsed body's copy of the secret */
        td_wipe((char *)secret, strlen(secret));
    }
    json_decref(b);
    cmd->w.dispose = dispose_delivery;
    cmd->w.subject = cmd->rec.issuer_id;
    td_svc_put_delivery(r->svc, cmd);
}

void admin_get_delivery(td_req *r)
{
    td_error e = {0};
    td_delivery_rec d;
    memset(&d, 0, sizeof d);
    if (!issuer_param(r)) return;
    if (td_svc_get_delivery(r->svc, r->params[0], &d, &e) != TD_OK) {
        td_reply_error(r, &e, r->params[0]);
        return;
    }
    json_t *v = admin_delivery_view(&d, d.secret_len > 0);
    td_delivery_rec_free(&d);
    td_reply_json(r, 200, v);
    json_decref(v);
}

/* ---- replaying dead letters ----
 * POST /admin/v1/issuers/{issuerId}/outbox/{id}/replay and
 * POST /admin/v1/issuers/{issuerId}/outbox:replay → {"replayed": n}. */

static void render_replay(td_write *w)
{
    td_write_answer(w, 200, json_pack("{s:i}", "replayed", ((td_replay *)w)->n_replayed));
}

static void replay(td_req *r, int64_t id)
{
    td_error e = {0};
    bool failed;
    json_t *b = td_body_json_optional(r, &failed, &e);
    if (failed || (b && json_object_size(b) > 0 &&
                   td_fail(&e, TD_E_INVALID_ARGUMENT, "the body must be empty or {} (unknown field '%.64s')",
                           json_object_iter_key(json_object_iter(b))))) {
        json_decref(b);
        td_reply_error(r, &e, r->params[0]);
        return;
    }
    json_decref(b);
    td_replay *cmd = td_face_new_write(r, sizeof *cmd, render_replay);
    if (!cmd) return;
    td_strlcpy(cmd->issuer_id, r->params[0], sizeof cmd->issuer_id);
    cmd->id = id;
    cmd->w.subject = cmd->issuer_id;
    td_svc_replay_dead(r->svc, cmd);
}

void admin_replay_one(td_req *r)
{
    int64_t id;
    if (!issuer_param(r)) return;
    if (td_parse_i64(r->params[1], &id) || id < 1) {
        td_reply_err(r, TD_E_INVALID_ARGUMENT, "the outbox row id must be an integer >= 1");
        return;
    }
    replay(r, id);
}

void admin_replay_all(td_req *r)
{
    if (!issuer_param(r)) return;
    replay(r, 0);
}
