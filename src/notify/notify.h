/* notify.h — the notification worker's one interface: the worker that
 * delivers the outbox (worker.c, claims.c, transfer.c, auth.c), the formats it
 * sends (formats.c: d1, classic, webhook, end-user messages), the Standard
 * Webhooks signature (auth.c) and the retry policy (retry.c).
 *
 * The worker is one thread driving a libcurl multi handle (up to
 * cfg->delivery_concurrency transfers in flight). Each loop it claims due
 * outbox rows (store verb outbox_claim: only the first undelivered row of each
 * order key, so one digital card's notifications go in sequence), builds the
 * requests in the issuer's profile, sends them, classifies the answers
 * (td_attempt_classify) and records the outcomes of the loop in one write
 * job. A crash leaves claimed rows IN_FLIGHT until their lease runs out; they
 * are then claimed again (at least once; receivers drop duplicates by
 * operation / webhook id, which every attempt keeps). The formats, the
 * signature and the retry policy are pure functions: no I/O, no clock (the
 * caller passes the time and the secrets). The per-issuer settings and the
 * dead-letter replay are use cases of the service (service/delivery.h).
 * docs/notifications.md is the contract (formats, auth, retry policy). */
#ifndef TD_NOTIFY_H
#define TD_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "service/service.h"
#include "store/store.h"

/* ---- the formats (formats.c) ---- */

#define TD_NOTIFY_MAX_HEADERS 8
#define TD_NOTIFY_BATCH_MAX 64 /* rows one request carries at most (a d1 batch) */

/* One HTTP request to send: POST url with these headers and body. */
typedef struct {
    char url[1024];
    char headers[TD_NOTIFY_MAX_HEADERS][2304]; /* "Name: value"; room for a 2 KiB OAuth2 JWT bearer */
    int n_headers;
    char *body; /* malloc'd JSON */
    size_t body_len;
    int64_t ids[TD_NOTIFY_BATCH_MAX]; /* the outbox rows this request carries (d1 card batches carry several) */
    int n_ids;
} td_notify_req;

void td_notify_req_free(td_notify_req *r);

/* Whether rows a and b can share one request (d1 Notify Card Operation
 * batches ISSUER rows of the same issuer; nothing else batches). */
bool td_notify_batchable(const td_delivery_rec *d, const td_outbox_rec *a, const td_outbox_rec *b);

/* Builds the request for rows[0..n) (n > 1 only for batchable rows) of one
 * issuer, in its profile:
 *  - d1, ISSUER row with a digital card: Notify Digital Card Operation when the
 *    row is not DIGITIZE; every DIGITIZE row and card-level row: Notify Card
 *    Operation ({"operations":[...]}); docs/notifications.md says exactly which.
 *  - classic: notifyVirtualCardChange with x-correlation-id and x-issuer-id.
 *  - webhook: the JSON event, signed (Standard Webhooks) with `secret` at now_s.
 *  - USER rows: the message rendered from the issuer's template, to the
 *    messaging endpoint; `otp` (NULL unless the row is an OTP delivery) is
 *    the opened OTP, placed only in the body sent, never elsewhere.
 * `bearer` (may be NULL) becomes Authorization: Bearer (not for webhook auth).
 * Built from the rows alone: each carries what it says about its digital card
 * (isPrimary, tokenStorageId, last4, wallet, state) as its change left it.
 * Returns 0; 1 when the profile has nothing to say for these rows (e.g.
 * DIGITIZE PENDING in classic: the worker marks them delivered); or -1 with a
 * reason in err (the row is then dead: e.g. a USER row and no messaging endpoint). */
int td_notify_build(const td_delivery_rec *d, const td_outbox_rec *rows, int n, const char *secret, const char *bearer,
                    const char *otp, int64_t now_s, td_notify_req *out, char *err, size_t cap);

/* The end-user message text for a USER row from the issuer's templates JSON
 * (NULL/"" = the defaults): placeholders {last4}, {wallet}, {otp} (OTP rows
 * only), {issuer}. Returns a malloc'd string or NULL. */
char *td_render_message(const char *templates_json, const char *message, const char *last4, const char *wallet,
                        const char *otp, const char *issuer_id);

/* ---- outbound auth (auth.c) ---- */

/* Standard Webhooks: "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>", key =
 * the base64 part of a "whsec_..." secret (or the raw secret if it has no
 * such prefix). Returns 0, -1 if the secret is unusable. */
int td_webhook_sign(const char *secret, const char *msg_id, int64_t ts_s, const char *body, size_t len, char *out,
                    size_t cap);

/* ---- the retry policy (retry.c) ---- */

/* What one attempt's result means. http_status 0 = no answer (connection
 * error or timeout). */
typedef enum {
    TD_ATTEMPT_DELIVERED, /* 2xx */
    TD_ATTEMPT_PERMANENT, /* 400, 404 and other 4xx but those below: dead letter now */
    TD_ATTEMPT_REAUTH,    /* 401: refresh the credentials once, then retry */
    TD_ATTEMPT_RETRY,     /* 408, 429, 5xx, no answer: retry with back-off */
} td_attempt_class;

td_attempt_class td_attempt_classify(int http_status);

/* The next try after `attempts` failed ones: exponential back-off with full
 * jitter (uniform in [0, min(cap, base * 2^attempts))), but not before
 * retry_after_s (429's Retry-After; 0 = none). rnd01 in [0,1) is passed in. */
int64_t td_backoff_ms(int attempts, int64_t base_ms, int64_t cap_ms, int64_t retry_after_s, double rnd01);

/* Dead when a retry would be due after origin + max_age_ms; origin is the
 * later of created_ms and replayed_ms (a replayed row retries for a whole
 * maximum age again). */
bool td_past_max_age(const td_outbox_rec *o, int64_t retry_at_ms, int64_t max_age_ms);

/* ---- the worker (worker.c) ---- */

typedef struct td_notify td_notify;

typedef struct {
    /* since the worker started (counted per outbox row) */
    uint64_t delivered;     /* 2xx, or nothing to send in the issuer's profile */
    uint64_t retried;       /* attempts that failed and were rescheduled */
    uint64_t dead;          /* rows dead-lettered (permanent answer, build error, past max age) */
    uint64_t requests;      /* HTTP requests sent (a d1 batch is one) */
    uint64_t reauth;        /* OAuth2 tokens refetched after a 401 */
    uint64_t token_fetches; /* OAuth2 token requests, all causes */
    int64_t in_flight;      /* transfers in flight now */
    /* from the store (outbox_stats), refreshed by the worker about once a second */
    int64_t store_pending, store_in_flight, store_dead;
    int64_t oldest_pending_age_ms; /* age of the oldest PENDING/IN_FLIGHT row; 0 if none */
    /* refreshed every 10 polls (1 to 10 s): open rows of issuers without delivery
     * settings (they wait), and how many such issuers (up to 64) */
    int64_t unroutable_rows, unroutable_issuers;
} td_notify_counters;

/* Starts the worker thread (curl_global_init is done once per process).
 * NULL if it cannot start. Settings: cfg->delivery_concurrency,
 * delivery_poll_ms, delivery_lease_ms. */
td_notify *td_notify_start(td_svc *svc);
/* Stops taking new rows, lets the rows it holds finish (for at most 10 s; rows
 * still held then stay IN_FLIGHT and go again once their lease ends), records
 * their outcomes, joins the thread and frees w.
 * Call it after the HTTP server drained and before the store closes. NULL ok. */
void td_notify_stop(td_notify *w);
/* Wakes an idle worker now (e.g. after a write that owes a notification);
 * without it the worker polls every cfg->delivery_poll_ms. NULL ok. */
void td_notify_kick(td_notify *w);
/* A snapshot of the counters; all zero for NULL. Thread-safe and cheap (no
 * store access: the store figures are the worker's last refresh). This is how
 * the faces (/metrics) read the worker: through the handle main.c gives them. */
void td_notify_stats(const td_notify *w, td_notify_counters *out);

/* Test hook: the retry back-off's base and cap (defaults 1000 ms and 1 h),
 * for attempts that fail after the call (call it right after td_notify_start). */
void td_notify_set_backoff(td_notify *w, int64_t base_ms, int64_t cap_ms);

#endif
