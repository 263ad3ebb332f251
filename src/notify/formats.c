/* formats.c — the requests tokend sends for its outbox rows, per profile (d1,
 * classic, webhook), and end-user messages from templates. Pure: no I/O, no
 * clock. docs/notifications.md is the contract this file implements. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/card.h"
#include "crypto/crypto.h"
#include "notify/notify.h"
#include "util/util.h"

#define NOTIFY_MAX_ROWS ((int)(sizeof(((td_notify_req *)0)->ids) / sizeof(int64_t)))

/* ---- small helpers ---- */

static bool eq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static bool nonempty(const char *s)
{
    return s && s[0];
}

static void set_err(char *err, size_t cap, const char *msg)
{
    if (err && cap) td_strlcpy(err, msg, cap);
}

static bool is_user_row(const td_outbox_rec *o)
{
    return eq(o->channel, "USER");
}

static bool is_card_level(const td_outbox_rec *o)
{
    return o->digital_card_id[0] == '\0';
}

static bool is_digitize(const td_outbox_rec *o)
{
    return eq(o->operation, "DIGITIZE");
}

static bool is_digitize_failed(const td_outbox_rec *o)
{
    return is_digitize(o) && eq(o->status, "FAILED");
}

/* d1: the rows that go to Notify Card Operation (and may be batched). */
static bool is_d1_card_op(const td_outbox_rec *o)
{
    return !is_user_row(o) && (is_card_level(o) || is_digitize(o));
}

/* A header value must not be able to end the header. */
static bool header_safe(const char *v)
{
    for (; *v; v++)
        if (*v == '\r' || *v == '\n') return false;
    return true;
}

static int add_header(td_notify_req *r, const char *name, const char *value)
{
    if (r->n_headers >= TD_NOTIFY_MAX_HEADERS || !header_safe(value)) return -1;
    int n = snprintf(r->headers[r->n_headers], sizeof r->headers[0], "%s: %s", name, value);
    if (n < 0 || (size_t)n >= sizeof r->headers[0]) return -1;
    r->n_headers++;
    return 0;
}

/* base + path, without a doubled slash when base ends with one. */
static int join_url(char *out, size_t cap, const char *base, const char *path)
{
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    int n = snprintf(out, cap, "%.*s%s", (int)bl, base, path);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static bool id_ok(const char *s, size_t max)
{
    return td_is_id_chars(s, 1, max, "_-");
}

static json_t *jstr_or_null(const char *s)
{
    return nonempty(s) ? json_string(s) : json_null();
}

static void iso(int64_t ms, char out[40])
{
    td_iso8601_ms(ms, out, 40);
}

/* Serializes root into r->body; frees root. */
static int finish_body(td_notify_req *r, json_t *root)
{
    if (!root) return -1;
    r->body = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!r->body) return -1;
    r->body_len = strlen(r->body);
    return 0;
}

static int add_bearer(td_notify_req *r, const char *bearer)
{
    if (!nonempty(bearer)) return 0;
    char v[600];
    int n = snprintf(v, sizeof v, "Bearer %s", bearer);
    int rc = (n < 0 || (size_t)n >= sizeof v) ? -1 : add_header(r, "Authorization", v);
    td_wipe(v, sizeof v);
    return rc;
}

static void webhook_id(const td_outbox_rec *o, char out[64])
{
    snprintf(out, 64, "msg_%s_%" PRId64, o->issuer_id, o->id);
}

/* webhook-id, webhook-timestamp and (with a secret) webhook-signature over the body. */
static int add_webhook_headers(td_notify_req *r, const td_outbox_rec *o, const char *secret, int64_t now_s, char *err,
                               size_t cap)
{
    char id[64], ts[24], sig[128];
    webhook_id(o, id);
    snprintf(ts, sizeof ts, "%" PRId64, now_s);
    if (add_header(r, "webhook-id", id) || add_header(r, "webhook-timestamp", ts)) {
        set_err(err, cap, "too many headers");
        return -1;
    }
    if (!nonempty(secret)) return 0;
    if (td_webhook_sign(secret, id, now_s, r->body, r->body_len, sig, sizeof sig)) {
        set_err(err, cap, "webhook secret unusable");
        return -1;
    }
    if (add_header(r, "webhook-signature", sig)) {
        set_err(err, cap, "too many headers");
        return -1;
    }
    return 0;
}

/* ---- the user-facing status and DIGITIZE FAILED texts ---- */

typedef struct {
    const char *code, *error, *user_status;
} failed_reason;

static const failed_reason FAILED_REASONS[] = {
    {"CANCELED_BY_USER", "Tokenization canceled by the end user during step-up", "canceled"},
    {"CANCELED_BY_ISSUER", "Tokenization canceled by the issuer during step-up", "canceled"},
    {"DECLINED", "Tokenization declined by the issuer's decision rules", "declined"},
    {"STEP_UP_EXPIRED", "Step-up session expired before the end user verified their identity", "expired"},
    {"IDV_FAILED", "Identity verification failed and the step-up session expired", "expired"},
};

static const failed_reason *failed_reason_of(const char *code)
{
    for (size_t i = 0; i < sizeof FAILED_REASONS / sizeof FAILED_REASONS[0]; i++)
        if (eq(code, FAILED_REASONS[i].code)) return &FAILED_REASONS[i];
    return NULL;
}

/* The `error` text of a DIGITIZE FAILED row (the code itself when unknown). */
static const char *failed_error_text(const td_outbox_rec *o)
{
    const failed_reason *f = failed_reason_of(o->error_code);
    return f ? f->error : o->error_code;
}

/* What an issuer app shows after this row; NULL when nothing applies. */
static const char *user_status(const td_outbox_rec *o)
{
    if (is_digitize(o)) {
        if (eq(o->status, "PENDING")) return "pending";
        if (eq(o->status, "SUCCESSFUL")) return "active";
        if (eq(o->status, "FAILED")) {
            const failed_reason *f = failed_reason_of(o->error_code);
            return f ? f->user_status : "declined";
        }
        return NULL;
    }
    if (!eq(o->status, "SUCCESSFUL")) return NULL;
    if (eq(o->operation, "SUSPEND")) return "suspended";
    if (eq(o->operation, "RESUME")) {
        /* A resume by one party leaves the card SUSPENDED while another holds
         * a suspension: the row says how the change left the card. */
        if (!is_card_level(o) && o->dcard_state == (int)TD_DC_SUSPENDED) return "suspended";
        return "active";
    }
    if (eq(o->operation, "DELETE") || eq(o->operation, "DELETE_FROM_APP")) return "deleted";
    if (eq(o->operation, "EXPIRE")) return "expired";
    return NULL;
}

static const char *wallet_of(const td_outbox_rec *o)
{
    return nonempty(o->wallet_provider_id) ? o->wallet_provider_id : "";
}

/* The name an end user knows the wallet by. */
static const char *wallet_display(const char *id)
{
    static const char *const NAMES[][2] = {
        {"APPLE_PAY", "Apple Pay"},   {"ANDROID_PAY", "Google Pay"},    {"GOOGLE_PAY", "Google Pay"},
        {"SPAYHCE", "Samsung Pay"},   {"SAMSUNG_PAY", "Samsung Pay"},   {"GARMIN_PAY", "Garmin Pay"},
        {"FITBIT_PAY", "Fitbit Pay"}, {"CLICK_TO_PAY", "Click to Pay"},
    };
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (eq(id, NAMES[i][0])) return NAMES[i][1];
    return id ? id : "";
}

/* ---- d1 ---- */

static json_t *d1_card_operation(const td_outbox_rec *o)
{
    char t[40];
    json_t *op = json_object();
    json_object_set_new(op, "operationId", json_string(o->operation_id));
    json_object_set_new(op, "operation", json_string(o->operation));
    json_object_set_new(op, "status", json_string(o->status));
    iso(o->created_ms, t);
    json_object_set_new(op, "startTime", json_string(t));
    if (!eq(o->status, "PENDING")) json_object_set_new(op, "endTime", json_string(t));
    json_object_set_new(op, "cardId", json_string(o->card_id));
    if (is_digitize_failed(o) && nonempty(o->error_code)) {
        json_object_set_new(op, "errorCode", json_string(o->error_code));
        json_object_set_new(op, "error", json_string(failed_error_text(o)));
    }
    json_t *det = json_object();
    if (!is_card_level(o)) json_object_set_new(det, "digitalCardId", json_string(o->digital_card_id));
    const char *w = is_card_level(o) ? "" : wallet_of(o);
    if (nonempty(w)) json_object_set_new(det, "walletProviderId", json_string(w));
    if (nonempty(o->source)) json_object_set_new(det, "source", json_string(o->source));
    json_object_set_new(det, "sequence", json_integer(o->dcard_seq));
    const char *us = user_status(o);
    if (us) json_object_set_new(det, "userStatus", json_string(us));
    json_object_set_new(op, "details", det);
    return op;
}

static int build_d1(const td_delivery_rec *d, const td_outbox_rec *rows, int n, const char *bearer, td_notify_req *out,
                    char *err, size_t cap)
{
    const td_outbox_rec *o = &rows[0];
    char path[512];
    json_t *root;
    if (!is_d1_card_op(o)) {
        if (n != 1) {
            set_err(err, cap, "rows cannot share a request");
            return -1;
        }
        if (!id_ok(o->digital_card_id, 64)) {
            set_err(err, cap, "digital card id unusable in a URL");
            return -1;
        }
        snprintf(path, sizeof path, "/notifications/d1/v1/issuers/%s/digitalCards/%s/notifications", o->issuer_id,
                 o->digital_card_id);
        root = json_object();
        json_object_set_new(root, "operationId", json_string(o->operation_id));
        json_object_set_new(root, "operation", json_string(o->operation));
        json_object_set_new(root, "status", json_string(o->status));
    } else {
        snprintf(path, sizeof path, "/notifications/d1/v2/issuers/%s/cards", o->issuer_id);
        json_t *ops = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(ops, d1_card_operation(&rows[i]));
        root = json_object();
        json_object_set_new(root, "operations", ops);
    }
    if (join_url(out->url, sizeof out->url, d->base_url, path)) {
        json_decref(root);
        set_err(err, cap, "URL too long");
        return -1;
    }
    if (finish_body(out, root)) {
        set_err(err, cap, "out of memory");
        return -1;
    }
    const char *corr = nonempty(o->correlation_id) ? o->correlation_id : o->operation_id;
    if (add_header(out, "Content-Type", "application/json") || add_header(out, "x-correlation-id", corr) ||
        add_bearer(out, bearer)) {
        set_err(err, cap, "header unusable (too long or has a line break)");
        return -1;
    }
    return 0;
}

/* ---- classic ---- */

/* The action for a row, or NULL when classic has nothing to say. */
static const char *classic_action(const td_outbox_rec *o)
{
    if (is_card_level(o)) return NULL;
    if (is_digitize(o)) {
        if (eq(o->status, "SUCCESSFUL")) return "ACTIVATE";
        if (eq(o->status, "FAILED")) return "DELETE";
        return NULL; /* PENDING: the token is INACTIVE until ACTIVATE or DELETE */
    }
    if (!eq(o->status, "SUCCESSFUL")) return NULL;
    return o->operation; /* SUSPEND, RESUME, DELETE, DELETE_FROM_APP, EXPIRE, or a later one verbatim */
}

static int build_classic(const td_delivery_rec *d, const td_outbox_rec *o, const char *bearer, td_notify_req *out,
                         char *err, size_t cap)
{
    const char *action = classic_action(o);
    if (!action || !action[0]) return 1;
    if (join_url(out->url, sizeof out->url, d->base_url, "/notifyVirtualCardChange")) {
        set_err(err, cap, "URL too long");
        return -1;
    }
    json_t *b = json_object();
    json_object_set_new(b, "issuerCardRefId", json_string(o->card_id));
    json_object_set_new(b, "virtualCardId", json_string(o->digital_card_id));
    json_object_set_new(b, "walletProviderId", json_string(wallet_of(o)));
    json_object_set_new(b, "isPrimary", json_boolean(o->is_primary));
    json_object_set_new(b, "tokenStorageId",
                        json_string(o->token_storage_id[0] ? o->token_storage_id : o->digital_card_id));
    json_object_set_new(b, "action", json_string(action));
    if (nonempty(o->source)) json_object_set_new(b, "source", json_string(o->source));
    if (is_digitize_failed(o) && nonempty(o->error_code))
        json_object_set_new(b, "errorCode", json_string(o->error_code));
    if (eq(action, "ACTIVATE") && o->last4[0])
        json_object_set_new(b, "tokenInfo", json_pack("{s:s}", "last4", o->last4));
    /* tokend's extensions: dedupe by id, ignore late callbacks by sequence */
    json_object_set_new(b, "operationId", json_string(o->operation_id));
    json_object_set_new(b, "sequence", json_integer(o->dcard_seq));
    if (finish_body(out, b)) {
        set_err(err, cap, "out of memory");
        return -1;
    }
    const char *corr = nonempty(o->correlation_id) ? o->correlation_id : o->operation_id;
    if (add_header(out, "Content-Type", "application/json") || add_header(out, "x-correlation-id", corr) ||
        add_header(out, "x-issuer-id", o->issuer_id) || add_bearer(out, bearer)) {
        set_err(err, cap, "header unusable (too long or has a line break)");
        return -1;
    }
    return 0;
}

/* ---- webhook ---- */

static int build_webhook(const td_delivery_rec *d, const td_outbox_rec *o, const char *secret, const char *bearer,
                         int64_t now_s, td_notify_req *out, char *err, size_t cap)
{
    if (td_strlcpy(out->url, d->base_url, sizeof out->url)) {
        set_err(err, cap, "URL too long");
        return -1;
    }
    char t[40], ev[40];
    iso(o->created_ms, t);
    iso(o->event_ms ? o->event_ms : o->created_ms, ev);
    bool failed = is_digitize_failed(o) && nonempty(o->error_code);
    json_t *data = json_object();
    json_object_set_new(data, "operationId", json_string(o->operation_id));
    json_object_set_new(data, "operation", json_string(o->operation));
    json_object_set_new(data, "status", json_string(o->status));
    json_object_set_new(data, "errorCode", failed ? json_string(o->error_code) : json_null());
    json_object_set_new(data, "error", failed ? json_string(failed_error_text(o)) : json_null());
    json_object_set_new(data, "userStatus", jstr_or_null(user_status(o)));
    json_object_set_new(data, "issuerId", json_string(o->issuer_id));
    json_object_set_new(data, "cardId", json_string(o->card_id));
    json_object_set_new(data, "digitalCardId", jstr_or_null(o->digital_card_id));
    json_object_set_new(data, "walletProviderId", jstr_or_null(is_card_level(o) ? "" : wallet_of(o)));
    json_object_set_new(data, "source", jstr_or_null(o->source));
    json_object_set_new(data, "correlationId", jstr_or_null(o->correlation_id));
    json_object_set_new(data, "sequence", json_integer(o->dcard_seq));
    json_object_set_new(data, "eventTime", json_string(ev));
    json_t *root = json_object();
    json_object_set_new(root, "type", json_string(is_card_level(o) ? "card.operation" : "digitalCard.operation"));
    json_object_set_new(root, "timestamp", json_string(t));
    json_object_set_new(root, "data", data);
    if (finish_body(out, root)) {
        set_err(err, cap, "out of memory");
        return -1;
    }
    if (add_header(out, "Content-Type", "application/json")) {
        set_err(err, cap, "too many headers");
        return -1;
    }
    if (add_webhook_headers(out, o, secret, now_s, err, cap)) return -1;
    if (add_bearer(out, bearer)) {
        set_err(err, cap, "header unusable (too long or has a line break)");
        return -1;
    }
    return 0;
}

/* ---- end-user messages ---- */

static const char *message_channel(const td_outbox_rec *o)
{
    if (!eq(o->message, "OTP")) return "";
    if (eq(o->method_id, "otp-sms")) return "sms";
    if (eq(o->method_id, "otp-email")) return "email";
    return "";
}

static int build_message(const td_delivery_rec *d, const td_outbox_rec *o, const char *secret, const char *bearer,
                         const char *otp, int64_t now_s, td_notify_req *out, char *err, size_t cap)
{
    if (!nonempty(d->messaging_url)) {
        set_err(err, cap, "no messaging endpoint");
        return -1;
    }
    bool is_otp = eq(o->message, "OTP");
    if (is_otp && !nonempty(otp)) {
        set_err(err, cap, "OTP row without its OTP");
        return -1;
    }
    if (td_strlcpy(out->url, d->messaging_url, sizeof out->url)) {
        set_err(err, cap, "URL too long");
        return -1;
    }
    char *text = td_render_message(d->templates_json, o->message, o->last4, wallet_display(wallet_of(o)),
                                   is_otp ? otp : NULL, o->issuer_id);
    if (!text) {
        set_err(err, cap, "no template for message");
        return -1;
    }
    char id[64];
    webhook_id(o, id);
    json_t *b = json_object();
    json_object_set_new(b, "messageId", json_string(id));
    json_object_set_new(b, "issuerId", json_string(o->issuer_id));
    json_object_set_new(b, "cardId", json_string(o->card_id));
    json_object_set_new(b, "digitalCardId", json_string(o->digital_card_id));
    json_object_set_new(b, "message", json_string(o->message));
    json_object_set_new(b, "channel", json_string(message_channel(o)));
    json_t *jt = json_string(text);
    json_object_set_new(b, "text", jt);
    td_wipe(text, strlen(text));
    free(text);
    out->body = json_dumps(b, JSON_COMPACT);
    /* the text may hold the OTP: wipe jansson's copy before it is freed */
    if (jt && json_string_value(jt)) td_wipe((char *)json_string_value(jt), json_string_length(jt));
    json_decref(b);
    if (!out->body) {
        set_err(err, cap, "out of memory");
        return -1;
    }
    out->body_len = strlen(out->body);
    if (add_header(out, "Content-Type", "application/json") || add_bearer(out, bearer)) {
        set_err(err, cap, "header unusable (too long or has a line break)");
        return -1;
    }
    if (eq(d->profile, "webhook") && nonempty(secret) && add_webhook_headers(out, o, secret, now_s, err, cap))
        return -1;
    return 0;
}

/* ---- the entry points ---- */

void td_notify_req_free(td_notify_req *r)
{
    if (!r) return;
    if (r->body) {
        td_wipe(r->body, r->body_len);
        free(r->body);
    }
    r->body = NULL;
    r->body_len = 0;
}

bool td_notify_batchable(const td_delivery_rec *d, const td_outbox_rec *a, const td_outbox_rec *b)
{
    if (!d || !a || !b || !eq(d->profile, "d1") || d->d1_batch_max <= 1) return false;
    return is_d1_card_op(a) && is_d1_card_op(b) && eq(a->issuer_id, b->issuer_id) && eq(a->issuer_id, d->issuer_id);
}

int td_notify_build(const td_delivery_rec *d, const td_outbox_rec *rows, int n, const char *secret, const char *bearer,
                    const char *otp, int64_t now_s, td_notify_req *out, char *err, size_t cap)
{
    if (err && cap) err[0] = '\0';
    if (!out) return -1;
    /* Not a memset of the whole request: its header slots are 18 KiB, and
     * nothing reads past n_headers. */
    out->url[0] = '\0';
    out->n_headers = 0;
    out->body = NULL;
    out->body_len = 0;
    out->n_ids = 0;
    if (!d || !rows || n < 1 || n > NOTIFY_MAX_ROWS) {
        set_err(err, cap, "bad arguments");
        return -1;
    }
    const td_outbox_rec *o = &rows[0];
    for (int i = 1; i < n; i++)
        if (!td_notify_batchable(d, o, &rows[i])) {
            set_err(err, cap, "rows cannot share a request");
            return -1;
        }
    for (int i = 0; i < n; i++)
        out->ids[out->n_ids++] = rows[i].id;
    if (!td_is_id_chars(o->issuer_id, 1, 15, "_-")) {
        set_err(err, cap, "issuer id unusable in a URL");
        return -1;
    }
    int rc;
    if (is_user_row(o)) {
        rc = n == 1 ? build_message(d, o, secret, bearer, otp, now_s, out, err, cap) : -1;
    } else if (!nonempty(d->base_url)) {
        set_err(err, cap, "no endpoint configured");
        rc = -1;
    } else if (eq(d->profile, "d1")) {
        rc = build_d1(d, rows, n, bearer, out, err, cap);
    } else if (n != 1) {
        set_err(err, cap, "rows cannot share a request");
        rc = -1;
    } else if (eq(d->profile, "classic")) {
        rc = build_classic(d, o, bearer, out, err, cap);
    } else if (eq(d->profile, "webhook")) {
        rc = build_webhook(d, o, secret, bearer, now_s, out, err, cap);
    } else {
        set_err(err, cap, "unknown delivery profile");
        rc = -1;
    }
    if (rc != 0) { /* nothing to send: only the ids stay (the headers written wiped: a bearer token) */
        td_notify_req_free(out);
        out->url[0] = '\0';
        for (int i = 0; i < out->n_headers; i++)
            td_wipe(out->headers[i], strnlen(out->headers[i], sizeof out->headers[i]));
        out->n_headers = 0;
        if (rc < 0 && err && cap && !err[0]) set_err(err, cap, "rows cannot share a request");
    }
    return rc;
}

/* ---- templates ---- */

static const char *const DEFAULT_TEMPLATES[][2] = {
    {"ACTIVATION", "Your card ending {last4} is ready in {wallet}."},
    {"REMINDER", "Finish adding your card ending {last4} to {wallet}: verify your identity in the wallet."},
    {"DELETION", "Your card ending {last4} was removed from {wallet}."},
    {"CANCELLATION", "Adding your card ending {last4} to {wallet} was canceled."},
    {"OTP", "Your code to add your card ending {last4} to {wallet} is {otp}. Never share it."},
};

static const char *default_template(const char *message)
{
    for (size_t i = 0; i < sizeof DEFAULT_TEMPLATES / sizeof DEFAULT_TEMPLATES[0]; i++)
        if (eq(message, DEFAULT_TEMPLATES[i][0])) return DEFAULT_TEMPLATES[i][1];
    return NULL;
}

/* Renders tpl into out (NULL = only count); returns the length. */
static size_t render(const char *tpl, const char *const names[], const char *const values[], size_t n_ph, char *out)
{
    size_t len = 0;
    for (const char *p = tpl; *p;) {
        size_t i = n_ph;
        if (*p == '{')
            for (i = 0; i < n_ph; i++)
                if (strncmp(p, names[i], strlen(names[i])) == 0) break;
        if (i < n_ph) {
            size_t vl = strlen(values[i]);
            if (out) memcpy(out + len, values[i], vl);
            len += vl;
            p += strlen(names[i]);
        } else {
            if (out) out[len] = *p;
            len++;
            p++;
        }
    }
    if (out) out[len] = '\0';
    return len;
}

char *td_render_message(const char *templates_json, const char *message, const char *last4, const char *wallet,
                        const char *otp, const char *issuer_id)
{
    if (!message) return NULL;
    json_t *tj = NULL;
    const char *tpl = NULL;
    if (nonempty(templates_json)) {
        tj = json_loads(templates_json, JSON_REJECT_DUPLICATES, NULL);
        json_t *v = json_is_object(tj) ? json_object_get(tj, message) : NULL;
        if (json_is_string(v)) tpl = json_string_value(v);
    }
    if (!tpl) tpl = default_template(message);
    if (!tpl) {
        json_decref(tj);
        return NULL;
    }
    static const char *const NAMES[] = {"{last4}", "{wallet}", "{otp}", "{issuer}"};
    const char *values[] = {last4 ? last4 : "", wallet ? wallet : "", eq(message, "OTP") && otp ? otp : "",
                            issuer_id ? issuer_id : ""};
    size_t n = render(tpl, NAMES, values, 4, NULL);
    char *out = malloc(n + 1);
    if (out) render(tpl, NAMES, values, 4, out);
    json_decref(tj);
    return out;
}
