/* cmd_listen.c — `tokenctl listen`: the reference issuer backend. It receives
 * what tokend's delivery worker sends (docs/notifications.md) in every
 * profile — d1 (Notify Card Operation, Notify Digital Card Operation),
 * classic (notifyVirtualCardChange), webhook (Standard Webhooks) — and the
 * end-user messages, and handles them the way an issuer backend should
 * (PRODUCT.md item 2, docs/receiver.md):
 *  - authenticate: a static bearer token, an OAuth2 access token it issued
 *    itself (--oauth-client), or a Standard Webhooks signature; else 401;
 *  - drop duplicates by id: d1 (issuerId, operationId, status), classic
 *    (virtualCardId, operationId, action), webhook-id, messageId;
 *  - keep its own view of each token (digital card id → the status an issuer
 *    app shows) and ignore late callbacks: a lower sequence than the last one
 *    applied, or anything that would move a finished token (deleted,
 *    canceled, declined, expired) back to life;
 *  - on a deletion: the token is finished, its step-up stopped, and the card
 *    may be enrolled again.
 * It prints one JSON line per callback (an OTP is masked), serves GET /state
 * (its view and counters) for tests, keeps that view in --state-file across
 * restarts, and can be told to fail the first N attempts of every id. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/buf.h"
#include "util/util.h"

#define BODY_MAX (1u << 20)
#define KEY_MAX 512
#define SECRET_MAX 512
#define WEBHOOK_TOLERANCE_S 300

static const char LISTEN[] =
    "usage: tokenctl listen [--port P] [--listen ADDR] [--profile d1|classic|webhook|all]\n"
    "                       [--bearer TOKEN] [--webhook-secret whsec_...] [--oauth-client ID:SECRET]\n"
    "                       [--oauth-ttl S]\n"
    "                       [--fail-first N --fail-mode 500|503|429|400|404|401|timeout|slow]\n"
    "                       [--fail-percent P]\n"
    "                       [--slow-ms MS] [--hang-ms MS] [--state-file FILE]\n"
    "  The reference issuer backend: receives tokend's notifications and end-user messages\n"
    "  (docs/notifications.md) and handles them as docs/receiver.md describes.\n"
    "  Paths (any prefix before them is accepted, so the base URL can carry one):\n"
    "    d1       POST .../notifications/d1/v2/issuers/{issuerId}/cards              -> 204\n"
    "             POST .../notifications/d1/v1/issuers/{issuerId}/digitalCards/{id}/notifications -> 204\n"
    "    classic  POST .../notifyVirtualCardChange                                   -> 200\n"
    "    webhook  POST any other path with a webhook-id header (e.g. /webhook)        -> 204\n"
    "    messages POST .../messages                                                  -> 204\n"
    "    GET /state: the receiver's view (tokens, cards, messages, counters); GET /healthz.\n"
    "    POST .../oauth2/token: an OAuth2 client-credentials token endpoint (--oauth-client).\n"
    "  --port P (default 0: any free port; the first line printed names it), --listen ADDR\n"
    "  (IPv4, default 127.0.0.1). --profile limits the notification paths served (default all).\n"
    "  Auth: --bearer TOKEN and/or --oauth-client ID:SECRET (Authorization: Bearer), and/or\n"
    "  --webhook-secret (Standard Webhooks signature); with none given, nothing is checked.\n"
    "  --oauth-ttl S: the lifetime of the tokens its token endpoint issues (default 900).\n"
    "  Failures: the first N attempts of every distinct id get --fail-mode: an HTTP status,\n"
    "  `timeout` (no answer; the connection is closed after --hang-ms, default 30000) or `slow`\n"
    "  (handled normally after --slow-ms, default 2000). --fail-percent P: only P percent of the ids\n"
    "  (picked by a hash of the id) fail; default 100.\n"
    "  --state-file FILE keeps the view, the ids seen and the counters across restarts.\n"
    "  Prints one JSON line per callback (-q: only the first line); stops on SIGINT/SIGTERM.\n";

enum { FAIL_HTTP, FAIL_TIMEOUT, FAIL_SLOW };

enum { P_D1 = 1, P_CLASSIC = 2, P_WEBHOOK = 4, P_ALL = 7 };

typedef struct {
    /* settings */
    unsigned profiles;
    const char *bearer;
    uint8_t wh_key[SECRET_MAX];
    size_t wh_key_len;
    bool wh_set;
    char oauth_id[256], oauth_secret[256];
    bool oauth_set;
    int64_t oauth_ttl_s;
    int64_t fail_first;
    int64_t fail_percent; /* the share of ids that fail (by a hash of the id; 100 = all) */
    int fail_kind, fail_status;
    int64_t slow_ms, hang_ms;
    const char *state_file;
    bool quiet;
    /* state, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    json_t *tokens;       /* digitalCardId → view */
    json_t *cards;        /* cardId → view */
    json_t *seen;         /* dedupe key → true */
    json_t *attempts;     /* attempt key → count */
    json_t *messages;     /* array of received messages (OTP masked) */
    json_t *counts;       /* name → integer */
    json_t *oauth_tokens; /* issued access token → expiry (s) */
} listener;

typedef struct {
    td_buf body; /* at most BODY_MAX bytes */
} conn_ctx;

/* ---- small helpers ---- */

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static void iso_now(char *out, size_t cap)
{
    td_iso8601_ms(td_now_ms(), out, cap);
}

static void count(listener *L, const char *name, int64_t n)
{
    json_t *v = json_object_get(L->counts, name);
    json_object_set_new(L->counts, name, json_integer((v ? json_integer_value(v) : 0) + n));
}

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static json_t *compact(json_t *v);

static void line_out(listener *L, json_t *v)
{
    if (v && json_is_object(v)) compact(v);
    if (!L->quiet) {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (s) {
            /* One line per record, whole: connections run on their own
             * threads, and stdio locks each call, not the pair. */
            flockfile(stdout);
            fputs(s, stdout);
            fputc('\n', stdout);
            fflush(stdout);
            funlockfile(stdout);
            free(s);
        }
    }
    json_decref(v);
}

/* The state file, written whole to FILE.tmp then renamed (a crash leaves the
 * old or the new one, never half of one). Called under mu. */
static void save_state(listener *L)
{
    if (!L->state_file) return;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", L->state_file) >= (int)sizeof tmp) return;
    json_t *v = json_pack("{s:O, s:O, s:O, s:O, s:O, s:O}", "tokens", L->tokens, "cards", L->cards, "seen", L->seen,
                          "attempts", L->attempts, "messages", L->messages, "counts", L->counts);
    if (!v) return;
    if (json_dump_file(v, tmp, JSON_COMPACT) == 0 && rename(tmp, L->state_file) != 0)
        fprintf(stderr, "tokenctl listen: cannot write %s: %s\n", L->state_file, strerror(errno));
    json_decref(v);
}

static json_t *take_obj(json_t *root, const char *key, bool array)
{
    json_t *v = json_object_get(root, key);
    if (array ? json_is_array(v) : json_is_object(v)) return json_incref(v);
    return array ? json_array() : json_object();
}

static int load_state(listener *L)
{
    if (!L->state_file || access(L->state_file, F_OK) != 0) return 0;
    json_error_t err;
    json_t *v = json_load_file(L->state_file, 0, &err);
    if (!v || !json_is_object(v)) {
        fprintf(stderr, "tokenctl listen: %s is not a state file (%s)\n", L->state_file,
                v ? "not an object" : err.text);
        json_decref(v);
        return -1;
    }
    json_decref(L->tokens);
    json_decref(L->cards);
    json_decref(L->seen);
    json_decref(L->attempts);
    json_decref(L->messages);
    json_decref(L->counts);
    L->tokens = take_obj(v, "tokens", false);
    L->cards = take_obj(v, "cards", false);
    L->seen = take_obj(v, "seen", false);
    L->attempts = take_obj(v, "attempts", false);
    L->messages = take_obj(v, "messages", true);
    L->counts = take_obj(v, "counts", false);
    json_decref(v);
    return 0;
}

/* Sleeps ms, or less if the listener stops. */
static void nap(listener *L, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&L->mu);
    while (!L->stopping && pthread_cond_timedwait(&L->cv, &L->mu, &ts) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&L->mu);
}

/* ---- the user-facing status ---- */

static bool finished(const char *s)
{
    return s && (!strcmp(s, "deleted") || !strcmp(s, "canceled") || !strcmp(s, "declined") || !strcmp(s, "expired"));
}

static bool known_status(const char *s)
{
    static const char *const ALL[] = {"pending", "active", "suspended", "deleted", "canceled", "declined", "expired"};
    for (size_t i = 0; s && i < sizeof ALL / sizeof ALL[0]; i++)
        if (!strcmp(s, ALL[i])) return true;
    return false;
}

/* DIGITIZE FAILED's errorCode → the status the app shows (docs/notifications.md). */
static const char *digitize_failed_status(const char *code)
{
    if (!code) return "declined";
    if (!strcmp(code, "CANCELED_BY_USER") || !strcmp(code, "CANCELED_BY_ISSUER")) return "canceled";
    if (!strcmp(code, "STEP_UP_EXPIRED") || !strcmp(code, "IDV_FAILED")) return "expired";
    return "declined";
}

/* For the callbacks that carry no userStatus (d1's digital card channel,
 * classic): the same table, from the operation (or action) and status. */
static const char *derive_status(const char *op, const char *status, const char *error_code)
{
    if (!op) return NULL;
    bool ok = !status || !strcmp(status, "SUCCESSFUL");
    if (!strcmp(op, "DIGITIZE")) {
        if (!status) return NULL;
        if (!strcmp(status, "PENDING")) return "pending";
        if (!strcmp(status, "SUCCESSFUL")) return "active";
        if (!strcmp(status, "FAILED")) return digitize_failed_status(error_code);
        return NULL;
    }
    if (!ok) return NULL;
    if (!strcmp(op, "ACTIVATE") || !strcmp(op, "RESUME")) return "active";
    if (!strcmp(op, "SUSPEND")) return "suspended";
    if (!strcmp(op, "DELETE") || !strcmp(op, "DELETE_FROM_APP")) {
        /* classic's DIGITIZE FAILED is a DELETE that carries the code */
        return error_code && *error_code ? digitize_failed_status(error_code) : "deleted";
    }
    if (!strcmp(op, "EXPIRE")) return "expired";
    return NULL;
}

static int rank(const char *s)
{
    if (!s || !strcmp(s, "unknown")) return 0;
    if (!strcmp(s, "pending")) return 1;
    if (finished(s)) return 3;
    return 2;
}

/* ---- one notification, whatever its profile ---- */

typedef struct {
    const char *kind;  /* d1.card, d1.digitalCard, classic, webhook */
    char key[KEY_MAX]; /* dedupe key */
    const char *issuer, *dc, *card, *op, *status, *error_code, *wallet, *source, *correlation;
    const char *user_status; /* NULL: none applies */
    bool card_level;
    bool has_seq;
    int64_t seq;
} note;

/* kind|a|b|c (the parts given). */
static void note_key(note *n, const char *a, const char *b, const char *c)
{
    snprintf(n->key, sizeof n->key, "%s|%s%s%s%s%s", n->kind, a ? a : "", b ? "|" : "", b ? b : "", c ? "|" : "",
             c ? c : "");
}

/* Drops the members that are null (what does not apply is left out). */
static json_t *compact(json_t *v)
{
    const char *k;
    json_t *x;
    void *tmp;
    json_object_foreach_safe(v, tmp, k, x)
    {
        if (json_is_null(x)) json_object_del(v, k);
    }
    return v;
}

static void history_add(json_t *view, const note *n, const char *result, const char *why)
{
    json_t *h = json_object_get(view, "history");
    if (!json_is_array(h)) {
        h = json_array();
        json_object_set_new(view, "history", h);
    }
    char at[40];
    iso_now(at, sizeof at);
    json_t *e =
        json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s, s:s}", "kind", n->kind, "key", n->key,
                  "operation", n->op, "status", n->status, "errorCode", n->error_code, "userStatus", n->user_status,
                  "source", n->source, "correlationId", n->correlation, "result", result, "at", at);
    if (!e) return;
    if (n->has_seq) json_object_set_new(e, "sequence", json_integer(n->seq));
    if (why) json_object_set_new(e, "why", json_string(why));
    json_array_append_new(h, compact(e));
}

/* Applies one new (not duplicate) notification to the view; returns
 * "applied", "recorded" (no status change) or "ignored" (late), and why. */
static const char *apply_note(listener *L, const note *n, const char **why)
{
    *why = NULL;
    json_t *map = n->card_level ? L->cards : L->tokens;
    const char *id = n->card_level ? n->card : n->dc;
    if (!id || !*id) {
        *why = "no digital card or card id";
        return "recorded";
    }
    json_t *v = json_object_get(map, id);
    if (!v) {
        v = json_pack("{s:s, s:s, s:I, s:b, s:b}", n->card_level ? "cardId" : "digitalCardId", id, "status", "unknown",
                      "sequence", (json_int_t)0, "stepUpStopped", 0, "reenrolmentAllowed", 0);
        if (!v) return "recorded";
        json_object_set_new(map, id, v);
    }
    if (!n->card_level && n->card && *n->card) json_object_set_new(v, "cardId", json_string(n->card));
    if (n->wallet && *n->wallet) json_object_set_new(v, "walletProviderId", json_string(n->wallet));
    const char *cur = jstr(v, "status");
    int64_t last_seq = json_integer_value(json_object_get(v, "sequence"));
    const char *result = "applied";
    if (n->has_seq && n->seq < last_seq) {
        *why = "late: a lower sequence than the last one applied";
        result = "ignored";
    } else if (!n->user_status || !known_status(n->user_status)) {
        result = "recorded";
    } else if (finished(cur)) {
        if (!strcmp(cur, n->user_status)) {
            result = "recorded";
        } else if (!strcmp(cur, "expired") && !strcmp(n->user_status, "deleted")) {
            result = "applied"; /* an expired token can still be deleted */
        } else {
            *why = "the token is finished: it never moves back";
            result = "ignored";
        }
    } else if (!strcmp(n->user_status, "pending") && rank(cur) >= 2) {
        *why = "late: the tokenization already ended";
        result = "ignored";
    }
    if (strcmp(result, "ignored")) {
        if (n->has_seq && n->seq > last_seq) json_object_set_new(v, "sequence", json_integer(n->seq));
        if (n->op) {
            char last[96];
            snprintf(last, sizeof last, "%s%s%s", n->op, n->status ? " " : "", n->status ? n->status : "");
            json_object_set_new(v, "lastOperation", json_string(last));
        }
    }
    if (!strcmp(result, "applied")) {
        json_object_set_new(v, "status", json_string(n->user_status));
        if (finished(n->user_status)) {
            /* A deletion: the token is finished, pending step-up stops (no more
             * OTPs or reminders for it), and the card may be enrolled again. */
            json_object_set_new(v, "stepUpStopped", json_true());
            json_object_set_new(v, "reenrolmentAllowed", json_true());
            if (!n->card_level && n->card && *n->card) {
                json_t *c = json_object_get(L->cards, n->card);
                if (!c) {
                    c = json_pack("{s:s, s:s, s:I}", "cardId", n->card, "status", "unknown", "sequence", (json_int_t)0);
                    json_object_set_new(L->cards, n->card, c);
                }
                if (c) json_object_set_new(c, "reenrolmentAllowed", json_true());
            }
        }
    }
    history_add(v, n, result, *why);
    return result;
}

/* Handles one parsed notification: dedupe, apply, count, print. */
static void handle_note(listener *L, note *n, const char *via)
{
    const char *result, *why = NULL;
    count(L, "received", 1);
    if (json_object_get(L->seen, n->key)) {
        result = "duplicate";
        count(L, "duplicates", 1);
    } else {
        json_object_set_new(L->seen, n->key, json_true());
        result = apply_note(L, n, &why);
        count(L, result, 1);
    }
    char at[40];
    iso_now(at, sizeof at);
    json_t *line = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?}", "at", at,
                             "kind", n->kind, "via", via, "result", result, "why", why, "digitalCardId", n->dc,
                             "cardId", n->card, "operation", n->op, "status", n->status, "errorCode", n->error_code,
                             "userStatus", n->user_status, "source", n->source, "correlationId", n->correlation);
    if (line) {
        json_object_set_new(line, "id", json_string(n->key));
        if (n->has_seq) json_object_set_new(line, "sequence", json_integer(n->seq));
        line_out(L, line);
    }
}

/* ---- the request ---- */

typedef enum { K_NONE, K_D1_CARDS, K_D1_DCARD, K_CLASSIC, K_WEBHOOK, K_MESSAGE, K_STATE, K_HEALTH, K_OAUTH } kind;

typedef struct {
    struct MHD_Connection *conn;
    const char *url;
    const char *body;
    size_t len;
    kind k;
    char issuer[64], dc[128];
    /* the answer */
    int status;
    char *resp; /* malloc'd JSON, or NULL */
    bool drop;  /* close without answering */
    const char *retry_after;
} req;

static const char *hdr(req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static void answer(req *r, int status, const char *fmt_json)
{
    r->status = status;
    free(r->resp);
    r->resp = fmt_json ? strdup(fmt_json) : NULL;
}

static void answer_error(req *r, int status, const char *msg)
{
    json_t *v = json_pack("{s:s}", "error", msg);
    r->status = status;
    free(r->resp);
    r->resp = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
}

/* Copies the segment of s before the next '/' (at most cap-1 chars); the
 * pointer after it, or NULL if the segment is empty or too long. */
static const char *segment(const char *s, char *out, size_t cap)
{
    size_t n = strcspn(s, "/");
    if (n == 0 || n >= cap) return NULL;
    memcpy(out, s, n);
    out[n] = 0;
    return s + n;
}

/* Which endpoint a POST is, from the end of its path (any base prefix). */
static kind classify_post(req *r)
{
    const char *u = r->url;
    const char *p;
    if ((p = strstr(u, "/notifications/d1/v2/issuers/"))) {
        const char *rest = segment(p + 29, r->issuer, sizeof r->issuer);
        if (rest && !strcmp(rest, "/cards")) return K_D1_CARDS;
        return K_NONE;
    }
    if ((p = strstr(u, "/notifications/d1/v1/issuers/"))) {
        const char *rest = segment(p + 29, r->issuer, sizeof r->issuer);
        if (!rest || strncmp(rest, "/digitalCards/", 14)) return K_NONE;
        rest = segment(rest + 14, r->dc, sizeof r->dc);
        if (rest && !strcmp(rest, "/notifications")) return K_D1_DCARD;
        return K_NONE;
    }
    if (ends_with(u, "/notifyVirtualCardChange")) return K_CLASSIC;
    if (ends_with(u, "/messages")) return K_MESSAGE;
    if (ends_with(u, "/oauth2/token")) return K_OAUTH;
    if (hdr(r, "webhook-id")) return K_WEBHOOK;
    return K_NONE;
}

/* ---- authentication ---- */

static bool bearer_ok(listener *L, req *r)
{
    const char *a = hdr(r, "Authorization");
    if (!a || strncasecmp(a, "Bearer ", 7)) return false;
    const char *tok = a + 7;
    if (L->bearer && strlen(tok) == strlen(L->bearer) && !sodium_memcmp(tok, L->bearer, strlen(tok))) return true;
    if (L->oauth_set) {
        pthread_mutex_lock(&L->mu);
        json_t *exp = json_object_get(L->oauth_tokens, tok);
        bool ok = exp && json_integer_value(exp) > now_s();
        pthread_mutex_unlock(&L->mu);
        if (ok) return true;
    }
    return false;
}

/* Standard Webhooks: HMAC-SHA256(key, id.timestamp.body), base64, against
 * each "v1,<sig>" of the header; the timestamp within 5 minutes of now. */
static const char *webhook_check(listener *L, req *r)
{
    const char *id = hdr(r, "webhook-id"), *ts = hdr(r, "webhook-timestamp"), *sig = hdr(r, "webhook-signature");
    if (!id || !ts || !sig) return "missing webhook-id, webhook-timestamp or webhook-signature";
    int64_t t;
    if (td_parse_i64(ts, &t)) return "webhook-timestamp is not a number of seconds";
    int64_t skew = now_s() - t;
    if (skew > WEBHOOK_TOLERANCE_S || skew < -WEBHOOK_TOLERANCE_S) return "webhook-timestamp is too far from now";
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, L->wh_key, L->wh_key_len);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)id, strlen(id));
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)ts, strlen(ts));
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)r->body, r->len);
    crypto_auth_hmacsha256_final(&st, mac);
    /* space-separated "v1,<base64>" entries */
    const char *p = sig;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n > 3 && !strncmp(p, "v1,", 3)) {
            char b64[128];
            uint8_t got[64];
            size_t got_len = 0;
            if (n - 3 < sizeof b64) {
                memcpy(b64, p + 3, n - 3);
                b64[n - 3] = 0;
                if (sodium_base642bin(got, sizeof got, b64, n - 3, NULL, &got_len, NULL,
                                      sodium_base64_VARIANT_ORIGINAL) == 0 &&
                    got_len == sizeof mac && sodium_memcmp(got, mac, sizeof mac) == 0)
                    return NULL;
            }
        }
        p += n;
    }
    return "no webhook-signature entry matches";
}

/* NULL if the request may pass; else why not (answered 401). */
static const char *authenticate(listener *L, req *r)
{
    bool need_bearer = L->bearer || L->oauth_set;
    if (!need_bearer && !L->wh_set) return NULL;
    if (L->wh_set && hdr(r, "webhook-signature")) return webhook_check(L, r);
    if (need_bearer && bearer_ok(L, r)) return NULL;
    if (r->k == K_WEBHOOK && L->wh_set) return "missing webhook-signature";
    return need_bearer ? "missing or wrong bearer token" : "missing webhook-signature";
}

/* ---- OAuth2 token endpoint (client credentials, Basic auth) ---- */

static void oauth_token(listener *L, req *r)
{
    if (!L->oauth_set) {
        answer_error(r, 404, "no OAuth2 client configured (--oauth-client)");
        return;
    }
    const char *a = hdr(r, "Authorization");
    char want[600], enc[820];
    snprintf(want, sizeof want, "%s:%s", L->oauth_id, L->oauth_secret);
    sodium_bin2base64(enc, sizeof enc, (const uint8_t *)want, strlen(want), sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(want, sizeof want);
    bool ok =
        a && !strncasecmp(a, "Basic ", 6) && strlen(a + 6) == strlen(enc) && !sodium_memcmp(a + 6, enc, strlen(enc));
    sodium_memzero(enc, sizeof enc);
    if (!ok) {
        answer(r, 401, "{\"error\":\"invalid_client\"}");
        return;
    }
    if (!r->body || !strstr(r->body, "grant_type=client_credentials")) {
        answer(r, 400, "{\"error\":\"unsupported_grant_type\"}");
        return;
    }
    char tok[64];
    if (td_new_secret(24, tok, sizeof tok)) {
        answer_error(r, 500, "no randomness");
        return;
    }
    pthread_mutex_lock(&L->mu);
    json_object_set_new(L->oauth_tokens, tok, json_integer(now_s() + L->oauth_ttl_s));
    count(L, "tokensIssued", 1);
    pthread_mutex_unlock(&L->mu);
    json_t *v = json_pack("{s:s, s:s, s:I}", "access_token", tok, "token_type", "Bearer", "expires_in",
                          (json_int_t)L->oauth_ttl_s);
    r->status = 200;
    r->resp = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    sodium_memzero(tok, sizeof tok);
    char at[40];
    iso_now(at, sizeof at);
    line_out(L, json_pack("{s:s, s:s, s:s}", "at", at, "kind", "oauth2.token", "result", "issued"));
}

/* ---- parsing each format into notes ---- */

static void note_from_d1_item(note *n, json_t *it, const char *issuer)
{
    memset(n, 0, sizeof *n);
    n->kind = "d1.card";
    n->issuer = issuer;
    n->op = jstr(it, "operation");
    n->status = jstr(it, "status");
    n->card = jstr(it, "cardId");
    n->error_code = jstr(it, "errorCode");
    json_t *d = json_object_get(it, "details");
    n->dc = jstr(d, "digitalCardId");
    n->wallet = jstr(d, "walletProviderId");
    n->source = jstr(d, "source");
    n->user_status = jstr(d, "userStatus");
    json_t *seq = json_object_get(d, "sequence");
    if (json_is_integer(seq)) {
        n->has_seq = true;
        n->seq = json_integer_value(seq);
    }
    n->card_level = !n->dc;
    note_key(n, issuer, jstr(it, "operationId"), n->status);
}

/* Whether an id is one of the fail_percent % that fail: FNV-1a of the key,
 * so the same id is picked on every attempt and by every run. */
static bool picked(const char *key, int64_t percent)
{
    if (percent >= 100) return true;
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 16777619u;
    return (int64_t)(h % 100u) < percent;
}

/* The attempt key (failure injection counts attempts per distinct id). */
static void d1_card_key(const req *r, json_t *op, char *out, size_t cap)
{
    snprintf(out, cap, "d1.card|%s|%s|%s", r->issuer, or_empty(op ? jstr(op, "operationId") : NULL),
             or_empty(op ? jstr(op, "status") : NULL));
}

/* One more attempt of this id; its number. Called locked. */
static int64_t count_attempt(listener *L, const char *key)
{
    json_t *c = json_object_get(L->attempts, key);
    int64_t n = (c ? json_integer_value(c) : 0) + 1;
    json_object_set_new(L->attempts, key, json_integer(n));
    return n;
}

static void attempt_key(req *r, json_t *b, char *out, size_t cap)
{
    switch (r->k) {
    case K_D1_CARDS: d1_card_key(r, json_array_get(json_object_get(b, "operations"), 0), out, cap); break;
    case K_D1_DCARD:
        snprintf(out, cap, "d1.digitalCard|%s|%s|%s", r->issuer, or_empty(jstr(b, "operationId")),
                 or_empty(jstr(b, "status")));
        break;
    case K_CLASSIC:
        snprintf(out, cap, "classic|%s|%s|%s", or_empty(jstr(b, "virtualCardId")), or_empty(jstr(b, "operationId")),
                 or_empty(jstr(b, "action")));
        break;
    case K_WEBHOOK: snprintf(out, cap, "webhook|%s", or_empty(hdr(r, "webhook-id"))); break;
    default: snprintf(out, cap, "message|%s", or_empty(jstr(b, "messageId"))); break;
    }
}

/* An OTP message's text with every word of 4+ letters and digits that holds a
 * digit replaced by '*'s (the OTP is such a word; so is the last4, which is
 * no loss). Other messages are kept as they are. malloc'd. */
static char *mask_text(const char *text, bool otp)
{
    char *s = strdup(text ? text : "");
    if (!s || !otp) return s;
    for (char *p = s; *p;) {
        if (!isalnum((unsigned char)*p)) {
            p++;
            continue;
        }
        char *w = p;
        bool digit = false;
        while (*p && isalnum((unsigned char)*p)) {
            if (isdigit((unsigned char)*p)) digit = true;
            p++;
        }
        if (digit && p - w >= 4) memset(w, '*', (size_t)(p - w));
    }
    return s;
}

static void handle_message(listener *L, req *r, json_t *b)
{
    const char *id = jstr(b, "messageId"), *msg = jstr(b, "message");
    if (!id || !*id) {
        answer_error(r, 400, "messageId is missing");
        return;
    }
    char key[KEY_MAX];
    snprintf(key, sizeof key, "message|%s", id);
    char at[40];
    iso_now(at, sizeof at);
    bool otp = msg && !strcmp(msg, "OTP");
    char *text = mask_text(jstr(b, "text"), otp);
    pthread_mutex_lock(&L->mu);
    const char *result = "applied";
    count(L, "received", 1);
    if (json_object_get(L->seen, key)) {
        result = "duplicate";
        count(L, "duplicates", 1);
    } else {
        json_object_set_new(L->seen, key, json_true());
        count(L, "messages", 1);
        json_array_append_new(L->messages,
                              compact(json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s}", "messageId", id,
                                                "issuerId", jstr(b, "issuerId"), "cardId", jstr(b, "cardId"),
                                                "digitalCardId", jstr(b, "digitalCardId"), "message", msg, "channel",
                                                jstr(b, "channel"), "text", text, "at", at)));
        save_state(L);
    }
    pthread_mutex_unlock(&L->mu);
    line_out(L, json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s?}", "at", at, "kind", "message", "result", result,
                          "id", key, "message", msg, "digitalCardId", jstr(b, "digitalCardId"), "channel",
                          jstr(b, "channel"), "text", text));
    free(text);
    answer(r, 204, NULL);
}

static void handle_notifications(listener *L, req *r, json_t *b)
{
    const char *corr = hdr(r, "x-correlation-id");
    note n;
    switch (r->k) {
    case K_D1_CARDS: {
        json_t *ops = json_object_get(b, "operations");
        if (!json_is_array(ops) || json_array_size(ops) == 0) {
            answer_error(r, 400, "operations must be a non-empty array");
            return;
        }
        size_t i;
        json_t *it;
        json_array_foreach(ops, i, it)
        {
            if (!json_is_object(it) || !jstr(it, "operationId") || !jstr(it, "operation") || !jstr(it, "status")) {
                answer_error(r, 400, "every operation needs operationId, operation and status");
                return;
            }
        }
        pthread_mutex_lock(&L->mu);
        json_array_foreach(ops, i, it)
        {
            note_from_d1_item(&n, it, r->issuer);
            n.correlation = corr;
            handle_note(L, &n, "d1");
        }
        save_state(L);
        pthread_mutex_unlock(&L->mu);
        answer(r, 204, NULL);
        return;
    }
    case K_D1_DCARD:
        memset(&n, 0, sizeof n);
        n.kind = "d1.digitalCard";
        n.issuer = r->issuer;
        n.dc = r->dc;
        n.op = jstr(b, "operation");
        n.status = jstr(b, "status");
        n.correlation = corr;
        if (!jstr(b, "operationId") || !n.op || !n.status) {
            answer_error(r, 400, "operationId, operation and status are required");
            return;
        }
        n.user_status = derive_status(n.op, n.status, NULL);
        note_key(&n, r->issuer, jstr(b, "operationId"), n.status);
        break;
    case K_CLASSIC: {
        memset(&n, 0, sizeof n);
        n.kind = "classic";
        n.issuer = hdr(r, "x-issuer-id");
        n.dc = jstr(b, "virtualCardId");
        n.card = jstr(b, "issuerCardRefId");
        n.op = jstr(b, "action");
        n.error_code = jstr(b, "errorCode");
        n.wallet = jstr(b, "walletProviderId");
        n.source = jstr(b, "source");
        n.correlation = corr;
        if (!n.dc || !n.card || !n.op || !corr || !n.issuer) {
            answer_error(r, 400,
                         "issuerCardRefId, virtualCardId, action and the x-correlation-id and x-issuer-id headers "
                         "are required");
            return;
        }
        json_t *seq = json_object_get(b, "sequence");
        if (json_is_integer(seq)) {
            n.has_seq = true;
            n.seq = json_integer_value(seq);
        }
        n.user_status = derive_status(n.op, NULL, n.error_code);
        /* without tokend's operationId extension, the correlation id and action
         * are the best key a classic receiver has */
        note_key(&n, n.dc, jstr(b, "operationId") ? jstr(b, "operationId") : corr, n.op);
        break;
    }
    case K_WEBHOOK: {
        json_t *d = json_object_get(b, "data");
        const char *type = jstr(b, "type");
        if (!json_is_object(d) || !type) {
            answer_error(r, 400, "type and data are required");
            return;
        }
        memset(&n, 0, sizeof n);
        n.kind = "webhook";
        n.issuer = jstr(d, "issuerId");
        n.dc = jstr(d, "digitalCardId");
        n.card = jstr(d, "cardId");
        n.op = jstr(d, "operation");
        n.status = jstr(d, "status");
        n.error_code = jstr(d, "errorCode");
        n.user_status = jstr(d, "userStatus");
        n.wallet = jstr(d, "walletProviderId");
        n.source = jstr(d, "source");
        n.correlation = jstr(d, "correlationId");
        n.card_level = !strcmp(type, "card.operation") || !n.dc;
        json_t *seq = json_object_get(d, "sequence");
        if (json_is_integer(seq)) {
            n.has_seq = true;
            n.seq = json_integer_value(seq);
        }
        note_key(&n, hdr(r, "webhook-id"), NULL, NULL);
        break;
    }
    default: answer_error(r, 404, "no such endpoint"); return;
    }
    pthread_mutex_lock(&L->mu);
    handle_note(L, &n, r->k == K_CLASSIC ? "classic" : r->k == K_WEBHOOK ? "webhook" : "d1");
    save_state(L);
    pthread_mutex_unlock(&L->mu);
    if (r->k == K_CLASSIC)
        answer(r, 200, "{}");
    else
        answer(r, 204, NULL);
}

static bool profile_serves(listener *L, kind k)
{
    switch (k) {
    case K_D1_CARDS:
    case K_D1_DCARD: return L->profiles & P_D1;
    case K_CLASSIC: return L->profiles & P_CLASSIC;
    case K_WEBHOOK: return L->profiles & P_WEBHOOK;
    default: return true;
    }
}

static void reject_line(listener *L, req *r, int status, const char *why)
{
    char at[40];
    iso_now(at, sizeof at);
    line_out(L, json_pack("{s:s, s:s, s:s, s:i, s:s}", "at", at, "path", r->url, "result", "rejected", "http", status,
                          "why", why));
}

static void serve_post(listener *L, req *r)
{
    r->k = classify_post(r);
    if (r->k == K_OAUTH) {
        oauth_token(L, r);
        return;
    }
    if (r->k == K_NONE || !profile_serves(L, r->k)) {
        answer_error(r, 404, "no such endpoint (or its profile is not served)");
        return;
    }
    const char *why = authenticate(L, r);
    if (why) {
        pthread_mutex_lock(&L->mu);
        count(L, "rejected", 1);
        pthread_mutex_unlock(&L->mu);
        reject_line(L, r, 401, why);
        answer_error(r, 401, why);
        return;
    }
    json_error_t err;
    json_t *b = r->body ? json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &err) : NULL;
    if (!json_is_object(b)) {
        json_decref(b);
        pthread_mutex_lock(&L->mu);
        count(L, "rejected", 1);
        pthread_mutex_unlock(&L->mu);
        reject_line(L, r, 400, "the body is not a JSON object");
        answer_error(r, 400, "the body must be a JSON object");
        return;
    }
    /* Failure injection: the first N attempts of each distinct id. */
    if (L->fail_first > 0) {
        char key[KEY_MAX];
        attempt_key(r, b, key, sizeof key);
        pthread_mutex_lock(&L->mu);
        int64_t n = count_attempt(L, key);
        /* A d1 batch is as far along as its most-tried operation: each is
         * counted, so that an operation failed once is not failed again when
         * tokend sends it in a batch led by another (--fail-first N holds per id). */
        json_t *ops = r->k == K_D1_CARDS ? json_object_get(b, "operations") : NULL;
        for (size_t i = 1; i < json_array_size(ops); i++) {
            char k[KEY_MAX];
            d1_card_key(r, json_array_get(ops, i), k, sizeof k);
            int64_t m = count_attempt(L, k);
            if (m > n) n = m;
        }
        bool fail = n <= L->fail_first && picked(key, L->fail_percent);
        if (fail) count(L, "failedInjected", 1);
        save_state(L);
        pthread_mutex_unlock(&L->mu);
        if (fail) {
            char at[40];
            iso_now(at, sizeof at);
            const char *mode = L->fail_kind == FAIL_TIMEOUT ? "timeout" : L->fail_kind == FAIL_SLOW ? "slow" : "http";
            json_t *line = json_pack("{s:s, s:s, s:s, s:s, s:I}", "at", at, "result", "injected", "mode", mode, "id",
                                     key, "attempt", (json_int_t)n);
            if (line && L->fail_kind == FAIL_HTTP) json_object_set_new(line, "http", json_integer(L->fail_status));
            line_out(L, line);
            if (L->fail_kind == FAIL_TIMEOUT) {
                nap(L, L->hang_ms);
                r->drop = true;
                json_decref(b);
                return;
            }
            if (L->fail_kind == FAIL_SLOW) {
                nap(L, L->slow_ms);
            } else {
                answer_error(r, L->fail_status, "failure injected (--fail-first)");
                if (L->fail_status == 429 || L->fail_status == 503) r->retry_after = "1";
                json_decref(b);
                return;
            }
        }
    }
    if (r->k == K_MESSAGE)
        handle_message(L, r, b);
    else
        handle_notifications(L, r, b);
    json_decref(b);
}

static void serve_get(listener *L, req *r)
{
    if (!strcmp(r->url, "/healthz")) {
        answer(r, 200, "{\"status\":\"ok\"}");
        return;
    }
    if (strcmp(r->url, "/state")) {
        answer_error(r, 404, "no such endpoint");
        return;
    }
    pthread_mutex_lock(&L->mu);
    json_t *v = json_pack("{s:O, s:O, s:O, s:O}", "tokens", L->tokens, "cards", L->cards, "messages", L->messages,
                          "counts", L->counts);
    r->status = 200;
    r->resp = v ? json_dumps(v, JSON_COMPACT) : NULL;
    pthread_mutex_unlock(&L->mu);
    json_decref(v);
}

/* ---- libmicrohttpd glue ---- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    listener *L = cls;
    conn_ctx *c = *con_cls;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        c->body = td_buf_bounded(BODY_MAX);
        *con_cls = c;
        return MHD_YES;
    }
    if (*upload_size) {
        td_buf_add(&c->body, upload, *upload_size);
        *upload_size = 0;
        if (c->body.oom) return MHD_NO;
        return MHD_YES;
    }
    req r = {.conn = conn, .url = url, .body = c->body.p, .len = c->body.len, .status = 500};
    if (c->body.too_large)
        answer_error(&r, 413, "the body is too large");
    else if (!strcmp(method, "POST"))
        serve_post(L, &r);
    else if (!strcmp(method, "GET"))
        serve_get(L, &r);
    else
        answer_error(&r, 405, "only GET and POST");
    if (r.drop) {
        free(r.resp);
        return MHD_NO;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r.resp ? strlen(r.resp) : 0, r.resp ? r.resp : (void *)"",
                                        r.resp ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(r.resp);
        return MHD_NO;
    }
    if (r.resp) MHD_add_response_header(resp, "Content-Type", "application/json");
    if (r.retry_after) MHD_add_response_header(resp, "Retry-After", r.retry_after);
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)r.status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    conn_ctx *c = *con_cls;
    if (c) {
        td_buf_reset(&c->body);
        free(c);
    }
    *con_cls = NULL;
}

static void on_mhd_error(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    (void)fmt;
    (void)ap; /* MHD's own messages would only be noise on the JSON lines */
}

/* ---- options ---- */

static int parse_fail_mode(listener *L, const char *v)
{
    int64_t n;
    if (!strcmp(v, "timeout")) {
        L->fail_kind = FAIL_TIMEOUT;
    } else if (!strcmp(v, "slow")) {
        L->fail_kind = FAIL_SLOW;
    } else if (!td_parse_i64(v, &n) && n >= 300 && n <= 599) {
        L->fail_kind = FAIL_HTTP;
        L->fail_status = (int)n;
    } else {
        return cli_usage_error(LISTEN, "--fail-mode must be an HTTP status (300-599), timeout or slow");
    }
    return CLI_OK;
}

static int parse_ms(const char *v, const char *name, int64_t max, int64_t *out)
{
    if (v && (td_parse_i64(v, out) || *out < 0 || *out > max))
        return cli_usage_error(LISTEN, "%s must be a whole number from 0 to %lld", name, (long long)max);
    return CLI_OK;
}

static int parse_secret(listener *L, const char *v)
{
    const char *b64 = !strncmp(v, "whsec_", 6) ? v + 6 : NULL;
    if (!b64) {
        size_t n = strlen(v);
        if (n == 0 || n > sizeof L->wh_key) return cli_usage_error(LISTEN, "--webhook-secret is empty or too long");
        memcpy(L->wh_key, v, n);
        L->wh_key_len = n;
    } else if (sodium_base642bin(L->wh_key, sizeof L->wh_key, b64, strlen(b64), NULL, &L->wh_key_len, NULL,
                                 sodium_base64_VARIANT_ORIGINAL) ||
               L->wh_key_len == 0) {
        return cli_usage_error(LISTEN, "--webhook-secret: the part after whsec_ must be standard base64");
    }
    L->wh_set = true;
    return CLI_OK;
}

static int parse_options(listener *L, cli_ctx *ctx, int argc, char **argv, int64_t *port, struct in_addr *addr)
{
    const char *port_s = NULL, *listen_s = NULL, *profile = NULL, *bearer = NULL, *secret = NULL, *oauth = NULL,
               *fail_first = NULL, *fail_mode = NULL, *fail_percent = NULL, *slow = NULL, *hang = NULL,
               *oauth_ttl = NULL;
    cli_opt opts[] = {{"--port", 1, &port_s},
                      {"--listen", 1, &listen_s},
                      {"--profile", 1, &profile},
                      {"--bearer", 1, &bearer},
                      {"--webhook-secret", 1, &secret},
                      {"--oauth-client", 1, &oauth},
                      {"--oauth-ttl", 1, &oauth_ttl},
                      {"--fail-first", 1, &fail_first},
                      {"--fail-mode", 1, &fail_mode},
                      {"--fail-percent", 1, &fail_percent},
                      {"--slow-ms", 1, &slow},
                      {"--hang-ms", 1, &hang},
                      {"--state-file", 1, &L->state_file},
                      {NULL, 0, NULL}};
    cli_spec spec = {LISTEN, opts, 0, 0, NULL};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc != CLI_OK) return rc;
    L->quiet = ctx->quiet;
    *port = 0;
    if ((rc = parse_ms(port_s, "--port", 65535, port)) != CLI_OK) return rc;
    addr->s_addr = htonl(INADDR_LOOPBACK);
    if (listen_s && inet_pton(AF_INET, listen_s, addr) != 1)
        return cli_usage_error(LISTEN, "--listen must be an IPv4 address");
    L->profiles = P_ALL;
    if (profile) {
        if (!strcmp(profile, "d1"))
            L->profiles = P_D1;
        else if (!strcmp(profile, "classic"))
            L->profiles = P_CLASSIC;
        else if (!strcmp(profile, "webhook"))
            L->profiles = P_WEBHOOK;
        else if (strcmp(profile, "all"))
            return cli_usage_error(LISTEN, "--profile must be d1, classic, webhook or all");
    }
    if (bearer) {
        if (!*bearer || !cli_header_value_ok(bearer) || strchr(bearer, ' '))
            return cli_usage_error(LISTEN, "--bearer must be a token without spaces or control characters");
        L->bearer = bearer;
    }
    if (secret && (rc = parse_secret(L, secret)) != CLI_OK) return rc;
    if (oauth) {
        const char *colon = strchr(oauth, ':');
        if (!colon || colon == oauth || !colon[1] || (size_t)(colon - oauth) >= sizeof L->oauth_id ||
            strlen(colon + 1) >= sizeof L->oauth_secret)
            return cli_usage_error(LISTEN, "--oauth-client must be CLIENT_ID:SECRET");
        memcpy(L->oauth_id, oauth, (size_t)(colon - oauth));
        L->oauth_id[colon - oauth] = 0;
        td_strlcpy(L->oauth_secret, colon + 1, sizeof L->oauth_secret);
        L->oauth_set = true;
    }
    L->oauth_ttl_s = 900;
    if ((rc = parse_ms(oauth_ttl, "--oauth-ttl", 86400, &L->oauth_ttl_s)) != CLI_OK) return rc;
    L->fail_first = 0;
    if ((rc = parse_ms(fail_first, "--fail-first", 1000000, &L->fail_first)) != CLI_OK) return rc;
    L->fail_kind = FAIL_HTTP;
    L->fail_status = 500;
    if (fail_mode && (rc = parse_fail_mode(L, fail_mode)) != CLI_OK) return rc;
    if ((fail_mode || fail_percent) && !fail_first)
        return cli_usage_error(LISTEN, "--fail-mode and --fail-percent need --fail-first N");
    L->fail_percent = 100;
    if ((rc = parse_ms(fail_percent, "--fail-percent", 100, &L->fail_percent)) != CLI_OK) return rc;
    L->slow_ms = 2000;
    L->hang_ms = 30000;
    if ((rc = parse_ms(slow, "--slow-ms", 600000, &L->slow_ms)) != CLI_OK) return rc;
    if ((rc = parse_ms(hang, "--hang-ms", 600000, &L->hang_ms)) != CLI_OK) return rc;
    return CLI_OK;
}

int cmd_listen(cli_ctx *ctx, int argc, char **argv)
{
    static listener L;
    memset(&L, 0, sizeof L);
    int64_t port;
    struct in_addr addr;
    int rc = parse_options(&L, ctx, argc, argv, &port, &addr);
    if (rc != CLI_OK) return rc;
    if (sodium_init() < 0) {
        fputs("tokenctl listen: libsodium failed to initialise\n", stderr);
        return CLI_TRANSPORT;
    }
    pthread_mutex_init(&L.mu, NULL);
    pthread_cond_init(&L.cv, NULL);
    L.tokens = json_object();
    L.cards = json_object();
    L.seen = json_object();
    L.attempts = json_object();
    L.messages = json_array();
    L.counts = json_object();
    L.oauth_tokens = json_object();
    if (load_state(&L)) return CLI_USAGE;

    /* Signals go to sigwait below, not to MHD's threads (which inherit the mask). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr = addr;
    /* A thread per connection only when injected failures sleep in the handler
     * (timeout, slow): a sleeping request must not hold up the others. Else
     * two epoll threads: a thread per connection costs a wake-up and a context
     * switch per request, which made this receiver use as much CPU as tokend
     * in bench/notify.sh. */
    bool sleeps = L.fail_first > 0 && L.fail_kind != FAIL_HTTP;
    unsigned flags =
        sleeps ? MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD : MHD_USE_EPOLL_INTERNAL_THREAD;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL, on_request, &L, MHD_OPTION_THREAD_POOL_SIZE,
        sleeps ? 0u : 2u, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT, 120u,
        MHD_OPTION_CONNECTION_LIMIT, 2048u, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, &L, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, NULL, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "tokenctl listen: cannot listen on %s:%lld\n", inet_ntoa(addr), (long long)port);
        return CLI_TRANSPORT;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned bound = info ? info->port : (unsigned)port;
    char url[64];
    snprintf(url, sizeof url, "http://%s:%u", inet_ntoa(addr), bound);
    static const char *const PROFILES[] = {"", "d1", "classic", "", "webhook", "", "", "all"};
    json_t *first =
        json_pack("{s:s, s:i, s:s, s:b, s:b, s:b, s:I, s:i}", "listening", url, "port", (int)bound, "profile",
                  PROFILES[L.profiles & 7], "bearer", L.bearer != NULL, "webhookSecret", L.wh_set, "oauth2",
                  L.oauth_set, "failFirst", (json_int_t)L.fail_first, "pid", (int)getpid());
    /* The first line is printed even with -q: it names the port. */
    char *s = first ? json_dumps(first, JSON_COMPACT) : NULL;
    json_decref(first);
    if (s) {
        puts(s);
        fflush(stdout);
        free(s);
    }

    int sig = 0;
    sigwait(&set, &sig);
    pthread_mutex_lock(&L.mu);
    L.stopping = true;
    pthread_cond_broadcast(&L.cv);
    pthread_mutex_unlock(&L.mu);
    MHD_stop_daemon(d);
    pthread_mutex_lock(&L.mu);
    save_state(&L);
    json_t *last = json_pack("{s:s, s:O}", "stopped", sig == SIGINT ? "SIGINT" : "SIGTERM", "counts", L.counts);
    pthread_mutex_unlock(&L.mu);
    bool q = L.quiet;
    L.quiet = false;
    line_out(&L, last);
    L.quiet = q;
    json_decref(L.tokens);
    json_decref(L.cards);
    json_decref(L.seen);
    json_decref(L.attempts);
    json_decref(L.messages);
    json_decref(L.counts);
    json_decref(L.oauth_tokens);
    sodium_memzero(L.wh_key, sizeof L.wh_key);
    sodium_memzero(L.oauth_secret, sizeof L.oauth_secret);
    return CLI_OK;
}
