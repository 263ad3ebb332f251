/* fuzz_request.c — libFuzzer target for what tokend does with untrusted
 * request bytes before any store access: route matching, the strict JSON body
 * parse, POST /token-requests validation, the consent form decoder, and the
 * card faces' parsers (tokenization, OTP, event, card registration, issuer
 * operations, Classic RPC headers and bodies), chosen by the POST route the
 * path matches. Input: [method byte][path]\n[body]; on /igwapi/v2.0/ paths
 * the body is [x-correlation-id]\n[x-issuer-id]\n[JSON]. See docs/fuzzing.md. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/faces.h"
#include "api/http.h"
#include "crypto/crypto.h"
#include "util/util.h"

/* Longest path tried; the server refuses URIs over url_max (2048) first. */
#define FZ_PATH_MAX 8192

static const td_method FZ_METHODS[] = {TD_GET, TD_POST, TD_PUT, TD_DELETE, TD_METHOD_OTHER};
#define FZ_N_METHODS (sizeof FZ_METHODS / sizeof FZ_METHODS[0])

/* An invariant broke: crash so libFuzzer keeps the input. */
#define FZ_CHECK(cond)                                                                                                 \
    do {                                                                                                               \
        if (!(cond)) abort();                                                                                          \
    } while (0)

/* The path's segments as the router sees them: split on '/', then each
 * percent-decoded. Returns the count, or -1 for a malformed escape or %00. */
static int fz_segments(const char *path, char segs[][FZ_PATH_MAX / 8], size_t *lens, int max)
{
    int n = 0;
    if (path[0] != '/') return 0;
    for (const char *s = path; *s == '/' && n < max;) {
        s++;
        size_t len = strcspn(s, "/"), o = 0;
        for (size_t i = 0; i < len; i++) {
            if (s[i] != '%') {
                if (o < FZ_PATH_MAX / 8) segs[n][o] = s[i];
                o++;
                continue;
            }
            int v = i + 2 < len ? td_hex_byte(s + i + 1) : -1;
            if (v <= 0) return -1;
            if (o < FZ_PATH_MAX / 8) segs[n][o] = (char)v;
            o++;
            i += 2;
        }
        lens[n++] = o;
        s += len;
    }
    return n;
}

/* A matched route must explain the path exactly: segment by segment, each
 * literal of the pattern equals the decoded segment and each {param} holds it
 * whole (a decoded '/' included, a NUL never). */
static void fz_check_match(const td_route *rt, const td_req *r, td_method m, const char *path)
{
    static char segs[16][FZ_PATH_MAX / 8];
    size_t lens[16];
    FZ_CHECK(rt->method == m);
    int n = fz_segments(path, segs, lens, 16), np = 0, i = 0;
    FZ_CHECK(n > 0);
    for (const char *p = rt->pattern; *p == '/'; i++) {
        p++;
        size_t pn = strcspn(p, "/");
        FZ_CHECK(i < n && lens[i] <= FZ_PATH_MAX / 8);
        if (*p == '{') {
            FZ_CHECK(np < r->nparams);
            const char *v = r->params[np++];
            FZ_CHECK(lens[i] > 0 && strlen(v) == lens[i] && memcmp(v, segs[i], lens[i]) == 0);
        } else {
            FZ_CHECK(pn == lens[i] && memcmp(p, segs[i], pn) == 0);
        }
        p += pn;
    }
    FZ_CHECK(i == n);
    FZ_CHECK(np == r->nparams);
}

static void fz_routes(const char *path)
{
    bool any_path_match = false, none = false, bad = false;
    for (size_t i = 0; i < FZ_N_METHODS; i++) {
        td_req *r = calloc(1, sizeof *r);
        if (!r) return;
        td_route_miss miss = TD_MISS_NOT_FOUND;
        const td_route *rt = td_route_match(r, FZ_METHODS[i], path, &miss);
        if (rt) fz_check_match(rt, r, FZ_METHODS[i], path);
        if (rt || miss == TD_MISS_METHOD)
            any_path_match = true;
        else
            none = true;
        if (!rt && miss == TD_MISS_BAD_PATH) bad = true;
        free(r);
    }
    /* Whether the path exists cannot depend on the method: either some method
     * finds a route or a mismatch for every method, or nothing for all. */
    FZ_CHECK(!(any_path_match && none));
    /* A path refused as malformed holds a malformed escape or %00, and no
     * method routes it. */
    static char segs[16][FZ_PATH_MAX / 8];
    size_t lens[16];
    if (bad) FZ_CHECK(!any_path_match && fz_segments(path, segs, lens, 16) < 0);
}

/* As the server parses a body (td_body_json), then validates it like
 * tokenio_store_request. */
static void fz_token_request(const uint8_t *body, size_t len)
{
    if (!len) return;
    json_error_t je;
    json_t *v = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &je);
    if (!v) return;
    if (json_is_object(v)) {
        td_error e = {0};
        td_kind kind = TD_KIND__COUNT;
        int rc = tokenio_check_request(v, &kind, &e);
        if (rc == 0) {
            FZ_CHECK(e.code == TD_OK);
            FZ_CHECK(kind == TD_KIND_ACCESS || kind == TD_KIND_TRANSFER || kind == TD_KIND_STANDING_ORDER);
            /* what the handler reads right after a successful check */
            json_t *opt = json_object_get(v, "requestOptions"), *p = json_object_get(v, "requestPayload");
            FZ_CHECK(json_string_value(json_object_get(json_object_get(p, "to"), "id")) != NULL);
            FZ_CHECK(json_string_value(json_object_get(json_object_get(opt, "from"), "id")) != NULL);
            json_t *opt_to = json_object_get(opt, "to");
            FZ_CHECK(!opt_to || json_string_value(json_object_get(opt_to, "id")) != NULL);
        } else {
            FZ_CHECK(rc == -1);
            FZ_CHECK(e.code == TD_E_INVALID_ARGUMENT);
            size_t dl = strnlen(e.detail, sizeof e.detail);
            FZ_CHECK(dl > 0 && dl < sizeof e.detail);
        }
        /* Validation does not change the body: a second run agrees. */
        td_error e2 = {0};
        td_kind kind2 = TD_KIND__COUNT;
        FZ_CHECK(tokenio_check_request(v, &kind2, &e2) == rc);
        FZ_CHECK(e2.code == e.code && (rc != 0 || kind2 == kind));
    }
    json_decref(v);
}

/* The consent form decoder, as POST /consent/{code} runs it. */
static void fz_consent_form(const uint8_t *body, size_t len)
{
    td_consent_decide *cmd = calloc(1, sizeof *cmd);
    if (!cmd) return;
    td_error e = {0};
    int rc = consent_parse_form((const char *)body, len, cmd, &e);
    FZ_CHECK(cmd->naccounts >= 0 && cmd->naccounts <= 8);
    for (int i = 0; i < cmd->naccounts; i++)
        FZ_CHECK(td_is_id_chars(cmd->accounts[i], 1, 64, ":_-"));
    if (rc)
        FZ_CHECK(e.code == TD_E_INVALID_ARGUMENT || e.code == TD_E_INTERNAL);
    else
        FZ_CHECK(e.code == TD_OK);
    free(cmd);
}

/* ---- the card faces (docs/network.md) ---- */

/* The caller's issuer for the Classic RPC headers. */
#define FZ_ISSUER "ISS0000001"

/* A request that only carries a body, for td_body_json and its variants
 * (they read nothing else). */
static td_req *fz_body_req(const uint8_t *body, size_t len)
{
    td_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->body = (char *)body;
    r->body_len = len;
    return r;
}

/* A refused input: -1, a code among the expected ones, a terminated
 * non-empty message. */
static void fz_check_refusal(int rc, const td_error *e)
{
    FZ_CHECK(rc == -1);
    FZ_CHECK(e->code == TD_E_INVALID_ARGUMENT || e->code == TD_E_INTERNAL);
    size_t dl = strnlen(e->detail, sizeof e->detail);
    FZ_CHECK(dl > 0 && dl < sizeof e->detail);
}

/* A body td_body_json refused: the parser's quote of the text is cut (any
 * body may carry a secret), and no run of 6+ digits of the body shows in the
 * message (line and column numbers stay under 6 digits at the default
 * -max_len). */
static void fz_check_bad_body(const td_error *e, const uint8_t *body, size_t len)
{
    FZ_CHECK(e->code == TD_E_BAD_JSON);
    size_t dl = strnlen(e->detail, sizeof e->detail);
    FZ_CHECK(dl > 0 && dl < sizeof e->detail);
    FZ_CHECK(!strstr(e->detail, " near "));
    for (size_t i = 0; i < dl;) {
        size_t j = i;
        while (j < dl && e->detail[j] >= '0' && e->detail[j] <= '9')
            j++;
        if (j - i >= 6) FZ_CHECK(!memmem(body, len, e->detail + i, j - i));
        i = j > i ? j : i + 1;
    }
}

/* Whether s[0..n) is part of a field name anywhere in v (td_json_only echoes
 * an unknown field's name). */
static bool fz_in_keys(json_t *v, const char *s, size_t n)
{
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (fz_in_keys(json_array_get(v, i), s, n)) return true;
        return false;
    }
    const char *key;
    json_t *x;
    json_object_foreach(v, key, x)
    {
        if (memmem(key, strlen(key), s, n) || fz_in_keys(x, s, n)) return true;
    }
    return false;
}

/* A copy of a secret string field (PAN, OTP) taken before the parser runs
 * (the tokenization parser wipes card.pan in the tree). */
typedef struct {
    char *s; /* NULL if the field is not a string */
    size_t n;
} fz_secret;

static fz_secret fz_secret_of(json_t *obj, const char *key)
{
    fz_secret sec = {0};
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v)) return sec;
    sec.n = json_string_length(v);
    sec.s = malloc(sec.n + 1);
    if (!sec.s) return (fz_secret){0};
    memcpy(sec.s, json_string_value(v), sec.n + 1);
    return sec;
}

static void fz_secret_free(fz_secret *sec)
{
    if (sec->s) td_wipe(sec->s, sec->n);
    free(sec->s);
}

/* A refusal never quotes the secret. Looked for when it is 6+ characters
 * with 6+ digits (a PAN, a numeric OTP): no fixed message has more than 5
 * digits, so only the value can put it there. Skipped when the same text is
 * part of a field name, which the unknown-field message echoes. */
static void fz_check_no_secret(const td_error *e, const fz_secret *sec, json_t *body)
{
    if (!sec->s || sec->n < 6) return;
    size_t digits = 0;
    for (size_t i = 0; i < sec->n; i++)
        digits += sec->s[i] >= '0' && sec->s[i] <= '9';
    if (digits < 6 || fz_in_keys(body, sec->s, sec->n)) return;
    FZ_CHECK(!memmem(e->detail, strnlen(e->detail, sizeof e->detail), sec->s, sec->n));
}

/* A command buffer holds exactly the body's field (no truncation, no
 * embedded NUL): the field as sent, or "" when absent. */
static bool fz_copied(const char *got, json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return got[0] == 0;
    size_t n = json_string_length(v);
    return json_is_string(v) && strlen(got) == n && memcmp(got, json_string_value(v), n) == 0;
}

/* A pointer output is the body's field itself (NULL when absent), whole, and
 * fits the command buffer (cap bytes) the handler copies it into. */
static bool fz_points_to(const char *got, json_t *obj, const char *key, size_t cap)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return got == NULL;
    return got && json_is_string(v) && got == json_string_value(v) && strlen(got) == json_string_length(v) &&
           strlen(got) < cap;
}

static bool fz_mmyy(const char *s)
{
    int m, y;
    return td_expiry_parse(s, &m, &y) == 0 && m >= 1 && m <= 12 && y >= 2000 && y <= 2099;
}

static bool fz_pan(const char *s, const fz_secret *sent)
{
    size_t n = strlen(s);
    return td_pan_check(s) == TD_PAN_OK && n >= 10 && n <= 19 && td_luhn_ok(s) && sent->s && sent->n == n &&
           memcmp(s, sent->s, n) == 0;
}

#define FZ_CAP(type, member) sizeof(((type *)0)->member)

/* POST /network/v1/tokenizations */
static void fz_tokenize(const uint8_t *body, size_t len)
{
    td_req *r = fz_body_req(body, len);
    if (!r) return;
    td_error e = {0};
    json_t *b = td_body_json(r, &e);
    free(r);
    if (!b) {
        fz_check_bad_body(&e, body, len);
        return;
    }
    td_tokenize *cmd = calloc(1, sizeof *cmd);
    if (!cmd) {
        json_decref(b);
        return;
    }
    json_t *card = json_object_get(b, "card");
    fz_secret pan = json_is_object(card) ? fz_secret_of(card, "pan") : (fz_secret){0};
    int rc = network_parse_tokenize(b, cmd, &e);
    if (rc == 0) {
        FZ_CHECK(e.code == TD_OK);
        FZ_CHECK(td_ref_id_ok(cmd->correlation_id) && fz_copied(cmd->correlation_id, b, "correlationId"));
        FZ_CHECK(!cmd->pan[0] != !cmd->card_id[0]); /* exactly one */
        if (cmd->pan[0]) {
            FZ_CHECK(fz_pan(cmd->pan, &pan));
            FZ_CHECK(fz_mmyy(cmd->expiry));
        } else {
            FZ_CHECK(td_card_id_ok(cmd->card_id) && fz_copied(cmd->card_id, card, "cardId"));
            FZ_CHECK(!cmd->expiry[0] || fz_mmyy(cmd->expiry));
        }
        FZ_CHECK(fz_copied(cmd->expiry, card, "expiry"));
        FZ_CHECK(td_printable_ok(cmd->wallet_provider_id, 128) &&
                 fz_copied(cmd->wallet_provider_id, b, "walletProviderId"));
        FZ_CHECK(!cmd->token_requestor_id[0] || td_printable_ok(cmd->token_requestor_id, 64));
        FZ_CHECK(fz_copied(cmd->token_requestor_id, b, "tokenRequestorId"));
        FZ_CHECK(!cmd->token_storage_id[0] || td_printable_ok(cmd->token_storage_id, 128));
        FZ_CHECK(fz_copied(cmd->token_storage_id, b, "tokenStorageId"));
        json_t *primary = json_object_get(b, "isPrimary");
        FZ_CHECK(cmd->is_primary == (primary ? json_is_true(primary) : true));
        json_t *device = json_object_get(b, "device");
        FZ_CHECK(!device == !cmd->device_json);
        if (cmd->device_json) {
            FZ_CHECK(strlen(cmd->device_json) <= 2048);
            json_t *d = json_loads(cmd->device_json, JSON_REJECT_DUPLICATES, NULL);
            FZ_CHECK(json_is_object(d) && json_equal(d, device));
            json_decref(d);
        }
        json_t *scores = json_object_get(b, "scores");
        FZ_CHECK(cmd->wallet_score == (int)json_integer_value(json_object_get(scores, "wallet")));
        FZ_CHECK(cmd->device_score == (int)json_integer_value(json_object_get(scores, "device")));
        FZ_CHECK(cmd->wallet_score == 0 || (cmd->wallet_score >= 1 && cmd->wallet_score <= 5));
        FZ_CHECK(cmd->device_score == 0 || (cmd->device_score >= 1 && cmd->device_score <= 5));
        json_t *user = json_object_get(b, "endUser");
        FZ_CHECK(!cmd->phone[0] || td_phone_ok(cmd->phone));
        FZ_CHECK(!cmd->email[0] || td_email_ok(cmd->email));
        FZ_CHECK(fz_copied(cmd->phone, user, "phone") && fz_copied(cmd->email, user, "email"));
    } else {
        fz_check_refusal(rc, &e);
        fz_check_no_secret(&e, &pan, b);
    }
    /* as network_tokenize: no copy of the PAN is left behind */
    if (json_is_object(card)) {
        json_t *v = json_object_get(card, "pan");
        if (json_is_string(v)) td_wipe((char *)json_string_value(v), json_string_length(v));
    }
    td_wipe(cmd->pan, sizeof cmd->pan);
    free(cmd->device_json);
    free(cmd);
    fz_secret_free(&pan);
    json_decref(b);
}

/* POST /network/v1/digitalCards/{digitalCardId}/otp */
static void fz_otp(const uint8_t *body, size_t len)
{
    td_req *r = fz_body_req(body, len);
    if (!r) return;
    td_error e = {0};
    json_t *b = td_body_json(r, &e);
    free(r);
    if (!b) {
        fz_check_bad_body(&e, body, len);
        return;
    }
    fz_secret otp_sent = fz_secret_of(b, "otp");
    const char *method = NULL, *otp = NULL;
    int rc = network_parse_otp(b, &method, &otp, &e);
    if (rc == 0) {
        FZ_CHECK(e.code == TD_OK);
        FZ_CHECK(td_is_id_chars(method, 1, 23, "_-") &&
                 fz_points_to(method, b, "methodId", FZ_CAP(td_send_otp, method_id)));
        FZ_CHECK(td_is_id_chars(otp, 4, 12, NULL) && fz_points_to(otp, b, "otp", FZ_CAP(td_send_otp, otp)));
    } else {
        fz_check_refusal(rc, &e);
        fz_check_no_secret(&e, &otp_sent, b);
    }
    json_t *v = json_object_get(b, "otp");
    if (json_is_string(v)) td_wipe((char *)json_string_value(v), json_string_length(v));
    fz_secret_free(&otp_sent);
    json_decref(b);
}

/* POST /network/v1/events */
static void fz_event(const uint8_t *body, size_t len)
{
    td_req *r = fz_body_req(body, len);
    if (!r) return;
    td_error e = {0};
    json_t *b = td_body_json(r, &e);
    free(r);
    if (!b) {
        fz_check_bad_body(&e, body, len);
        return;
    }
    td_ingest_event *cmd = calloc(1, sizeof *cmd);
    if (!cmd) {
        json_decref(b);
        return;
    }
    int rc = network_parse_event(b, cmd, &e);
    if (rc == 0) {
        FZ_CHECK(e.code == TD_OK);
        FZ_CHECK(td_ref_id_ok(cmd->event_id) && fz_copied(cmd->event_id, b, "eventId"));
        FZ_CHECK(td_ref_id_ok(cmd->digital_card_id) && fz_copied(cmd->digital_card_id, b, "digitalCardId"));
        FZ_CHECK(td_printable_ok(cmd->type, sizeof cmd->type - 1) && fz_copied(cmd->type, b, "type"));
        FZ_CHECK(cmd->source == TD_SRC_WALLET || cmd->source == TD_SRC_TSP || cmd->source == TD_SRC_ISSUER);
        FZ_CHECK(!strcmp(td_source_name(cmd->source), json_string_value(json_object_get(b, "source"))));
        const char *when = json_string_value(json_object_get(b, "eventTime"));
        int64_t ms = 0;
        if (when)
            FZ_CHECK(td_parse_iso8601_ms(when, &ms) == 0 &&
                     strlen(when) == json_string_length(json_object_get(b, "eventTime")));
        FZ_CHECK(cmd->event_ms == ms);
        FZ_CHECK(!cmd->reason_code[0] || td_printable_ok(cmd->reason_code, sizeof cmd->reason_code - 1));
        FZ_CHECK(fz_copied(cmd->reason_code, b, "reasonCode"));
        FZ_CHECK(!cmd->suspended_by[0] || td_printable_ok(cmd->suspended_by, sizeof cmd->suspended_by - 1));
        FZ_CHECK(fz_copied(cmd->suspended_by, b, "suspendedBy"));
        json_t *details = json_object_get(b, "details");
        FZ_CHECK(!details == !cmd->detail_json);
        if (cmd->detail_json) {
            json_t *d = json_loads(cmd->detail_json, JSON_REJECT_DUPLICATES, NULL);
            FZ_CHECK(json_is_object(d) && json_equal(d, details));
            json_decref(d);
        }
    } else {
        fz_check_refusal(rc, &e);
    }
    free(cmd->detail_json);
    free(cmd);
    json_decref(b);
}

/* POST /banking/v1/issuers/{issuerId}/cards */
static void fz_register(const uint8_t *body, size_t len)
{
    td_req *r = fz_body_req(body, len);
    if (!r) return;
    td_error e = {0};
    json_t *b = td_body_json(r, &e);
    free(r);
    if (!b) {
        fz_check_bad_body(&e, body, len);
        return;
    }
    fz_secret pan = fz_secret_of(b, "pan");
    issuer_card_fields f;
    int rc = issuer_parse_register(b, &f, &e);
    if (rc == 0) {
        FZ_CHECK(e.code == TD_OK);
        FZ_CHECK(td_card_id_ok(f.card_id) && fz_points_to(f.card_id, b, "cardId", FZ_CAP(td_register_card, card_id)));
        FZ_CHECK(td_ref_id_ok(f.consumer_id) &&
                 fz_points_to(f.consumer_id, b, "consumerId", FZ_CAP(td_register_card, consumer_id)));
        FZ_CHECK(fz_pan(f.pan, &pan) && fz_points_to(f.pan, b, "pan", FZ_CAP(td_register_card, pan)));
        FZ_CHECK(fz_mmyy(f.expiry) && fz_points_to(f.expiry, b, "expiry", FZ_CAP(td_register_card, expiry)));
        FZ_CHECK(!f.phone || td_phone_ok(f.phone));
        FZ_CHECK(fz_points_to(f.phone, b, "phone", FZ_CAP(td_register_card, phone)));
        FZ_CHECK(!f.email || td_email_ok(f.email));
        FZ_CHECK(fz_points_to(f.email, b, "email", FZ_CAP(td_register_card, email)));
        const char *state = json_string_value(json_object_get(b, "state"));
        FZ_CHECK(f.state == TD_CS_ACTIVE || f.state == TD_CS_SUSPENDED);
        FZ_CHECK(state ? !strcmp(state, td_card_state_name(f.state)) : f.state == TD_CS_ACTIVE);
    } else {
        fz_check_refusal(rc, &e);
        fz_check_no_secret(&e, &pan, b);
    }
    json_t *v = json_object_get(b, "pan");
    if (json_is_string(v)) td_wipe((char *)json_string_value(v), json_string_length(v));
    fz_secret_free(&pan);
    json_decref(b);
}

/* POST …/cards/{cardId}/operations:* (card_level) and
 * …/digitalCards/{digitalCardId}/operations:* */
static void fz_operation(const uint8_t *body, size_t len, bool card_level)
{
    td_req *r = fz_body_req(body, len);
    if (!r) return;
    td_error e = {0};
    bool failed;
    json_t *b = td_body_json_optional(r, &failed, &e);
    free(r);
    if (failed) {
        FZ_CHECK(!b);
        fz_check_bad_body(&e, body, len);
        return;
    }
    char reason[65], code[40];
    memset(reason, 'x', sizeof reason);
    memset(code, 'x', sizeof code);
    int rc = issuer_parse_operation(b, card_level, reason, code, &e);
    if (rc == 0) {
        FZ_CHECK(e.code == TD_OK);
        FZ_CHECK(!reason[0] || td_reason_ok(reason));
        FZ_CHECK(card_level ? td_card_reason_code_ok(code) : td_dcard_reason_code_ok(code));
        if (b) {
            FZ_CHECK(fz_copied(reason, b, "reason"));
            FZ_CHECK(json_object_get(b, "reasonCode") ? fz_copied(code, b, "reasonCode")
                                                      : !strcmp(code, "ISSUER_DECISION"));
        } else {
            FZ_CHECK(!reason[0] && !strcmp(code, "ISSUER_DECISION"));
        }
    } else {
        FZ_CHECK(b != NULL); /* no body takes the defaults */
        fz_check_refusal(rc, &e);
    }
    json_decref(b);
}

typedef enum { FZ_CLASSIC_UPDATE, FZ_CLASSIC_CARD_INFO, FZ_CLASSIC_TOKEN_INFO } fz_classic_op;

/* A Classic RPC refusal: 111 only when a required field is absent. */
static void fz_check_classic_refusal(int rc, const td_error *e, json_t *b, const char *const *required)
{
    fz_check_refusal(rc, e);
    FZ_CHECK(e->code == TD_E_INVALID_ARGUMENT);
    FZ_CHECK(e->classic == 111 || e->classic == 112);
    if (e->classic == 111) {
        bool absent = false;
        for (const char *const *k = required; *k; k++)
            absent |= json_object_get(b, *k) == NULL;
        FZ_CHECK(absent);
    }
}

/* POST /igwapi/v2.0/{updateCardState, getCardInfo, getTokenInfo}: the two
 * headers, then the body. The body's checks run whatever the headers gave. */
static void fz_classic(const uint8_t *in, size_t len, fz_classic_op op)
{
    /* [x-correlation-id]\n[x-issuer-id]\n[JSON]; a missing line is a missing
     * header; a header ends at a NUL as MHD gives it */
    char *hdr[2] = {NULL, NULL};
    const uint8_t *p = in;
    size_t n = len;
    bool oom = false;
    for (int i = 0; i < 2; i++) {
        const uint8_t *nl = memchr(p, '\n', n);
        if (!nl) break;
        hdr[i] = strndup((const char *)p, (size_t)(nl - p));
        oom |= !hdr[i];
        n -= (size_t)(nl + 1 - p);
        p = nl + 1;
    }
    if (!oom) {
        td_error e = {0};
        int rc = classic_check_headers(hdr[0], hdr[1], FZ_ISSUER, &e);
        if (rc == 0) {
            FZ_CHECK(e.code == TD_OK);
            FZ_CHECK(td_correlation_header_ok(hdr[0]) && strlen(hdr[0]) < 65);
            FZ_CHECK(!strcmp(hdr[1], FZ_ISSUER));
        } else {
            FZ_CHECK(rc == -1);
            bool missing = !hdr[0] || !*hdr[0] || !hdr[1] || !*hdr[1];
            FZ_CHECK((e.classic == 111) == missing);
            FZ_CHECK(e.classic == 111 || e.classic == 112 || e.classic == 113);
            FZ_CHECK(e.code == (e.classic == 113 ? TD_E_NOT_FOUND : TD_E_INVALID_ARGUMENT));
            if (e.classic == 113) FZ_CHECK(td_correlation_header_ok(hdr[0]) && td_issuer_id_ok(hdr[1]));
        }
    }
    free(hdr[0]);
    free(hdr[1]);
    if (oom) return;

    td_req *r = fz_body_req(p, n);
    if (!r) return;
    td_error e = {0};
    json_t *b = td_body_json(r, &e);
    free(r);
    if (!b) {
        fz_check_bad_body(&e, p, n);
        return;
    }
    const char *card_id = NULL, *id = NULL, *reason = NULL;
    int rc;
    if (op == FZ_CLASSIC_UPDATE) {
        static const char *const REQUIRED[] = {"issuerCardRefId", "action", NULL};
        td_dcard_ev act = TD_EV__COUNT;
        rc = classic_parse_update(b, &card_id, &id, &act, &reason, &e);
        if (rc == 0) {
            FZ_CHECK(act == TD_EV_SUSPEND || act == TD_EV_RESUME || act == TD_EV_DELETE);
            FZ_CHECK(!strcmp(td_dcard_ev_name(act), json_string_value(json_object_get(b, "action"))));
            FZ_CHECK(!id || td_ref_id_ok(id));
            FZ_CHECK(fz_points_to(id, b, "virtualCardId", FZ_CAP(td_dcard_op, digital_card_id)));
            FZ_CHECK(!reason || td_reason_ok(reason));
            FZ_CHECK(fz_points_to(reason, b, "reason", FZ_CAP(td_dcard_op, reason)));
        } else {
            fz_check_classic_refusal(rc, &e, b, REQUIRED);
        }
    } else if (op == FZ_CLASSIC_CARD_INFO) {
        static const char *const REQUIRED[] = {"issuerCardRefId", NULL};
        rc = classic_parse_card_info(b, &card_id, &e);
        if (rc) fz_check_classic_refusal(rc, &e, b, REQUIRED);
    } else {
        static const char *const REQUIRED[] = {"issuerCardRefId", "virtualCardId", NULL};
        rc = classic_parse_token_info(b, &card_id, &id, &e);
        if (rc == 0)
            FZ_CHECK(td_ref_id_ok(id) && fz_points_to(id, b, "virtualCardId", FZ_CAP(td_dcard_op, digital_card_id)));
        else
            fz_check_classic_refusal(rc, &e, b, REQUIRED);
    }
    if (rc == 0) {
        FZ_CHECK(e.code == TD_OK);
        FZ_CHECK(td_card_id_ok(card_id) &&
                 fz_points_to(card_id, b, "issuerCardRefId", FZ_CAP(td_card_op_cmd, card_id)));
    }
    json_decref(b);
}

/* The card faces' parsers, chosen by the POST route the path matches, as the
 * server would dispatch the request. */
static void fz_card_faces(const char *path, const uint8_t *body, size_t len)
{
    td_req *r = calloc(1, sizeof *r);
    if (!r) return;
    td_route_miss miss = TD_MISS_NOT_FOUND;
    const td_route *rt = td_route_match(r, TD_POST, path, &miss);
    td_handler h = rt ? rt->handler : NULL;
    free(r);
    if (!h) return;
    if (h == network_tokenize)
        fz_tokenize(body, len);
    else if (h == network_send_otp)
        fz_otp(body, len);
    else if (h == network_event)
        fz_event(body, len);
    else if (h == issuer_register_card)
        fz_register(body, len);
    else if (h == issuer_card_suspend || h == issuer_card_resume || h == issuer_card_delete)
        fz_operation(body, len, true);
    else if (h == issuer_dcard_suspend || h == issuer_dcard_resume || h == issuer_dcard_delete)
        fz_operation(body, len, false);
    else if (h == classic_update_card_state)
        fz_classic(body, len, FZ_CLASSIC_UPDATE);
    else if (h == classic_get_card_info)
        fz_classic(body, len, FZ_CLASSIC_CARD_INFO);
    else if (h == classic_get_token_info)
        fz_classic(body, len, FZ_CLASSIC_TOKEN_INFO);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    /* The method byte is kept in the format (and the seeds) for the request's
     * shape, but every method is tried on the path: matching must agree
     * across methods, which is the interesting property. */
    const uint8_t *rest = data + 1;
    size_t n = size - 1;
    const uint8_t *nl = memchr(rest, '\n', n);
    size_t path_len = nl ? (size_t)(nl - rest) : n;
    if (path_len > FZ_PATH_MAX) path_len = FZ_PATH_MAX;
    /* MHD hands the URL over as a C string: it ends at the first NUL. */
    char *path = strndup((const char *)rest, path_len);
    if (!path) return 0;
    fz_routes(path);
    if (nl) {
        const uint8_t *body = nl + 1;
        size_t body_len = n - (size_t)(body - rest);
        fz_token_request(body, body_len);
        fz_consent_form(body, body_len);
        fz_card_faces(path, body, body_len);
    }
    free(path);
    return 0;
}
