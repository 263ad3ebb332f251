/* notify.h — turning owed outbox rows into HTTP requests in the issuer's
 * chosen profile (d1, classic, webhook) and end-user messages from templates,
 * and deciding what an attempt's answer means. Pure functions: no I/O, no
 * clock (the caller passes the time and the secrets). The delivery worker
 * (delivery.c) sends what these build. docs/notifications.md is the contract. */
#ifndef TD_NOTIFY_H
#define TD_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define TD_NOTIFY_MAX_HEADERS 8

/* One HTTP request to send: POST url with these headers and body. */
typedef struct {
    char url[1024];
    char headers[TD_NOTIFY_MAX_HEADERS][2304]; /* "Name: value"; room for a 2 KiB OAuth2 JWT bearer */
    int n_headers;
    char *body; /* malloc'd JSON */
    size_t body_len;
    int64_t ids[64]; /* the outbox rows this request carries (d1 card batches carry several) */
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
int td_notify_build(const td_delivery_rec *d, const td_outbox_rec *rows, int n,
                    const char *secret, const char *bearer, const char *otp, int64_t now_s, td_notify_req *out,
                    char *err, size_t cap);

/* Standard Webhooks: "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>", key =
 * the base64 part of a "whsec_..." secret (or the raw secret if it has no
 * such prefix). Returns 0, -1 if the secret is unusable. */
int td_webhook_sign(const char *secret, const char *msg_id, int64_t ts_s, const char *body, size_t len, char *out,
                    size_t cap);

/* What one attempt's result means. http_status 0 = no answer (connection
 * error or timeout). */
typedef enum {
    TD_ATTEMPT_DELIVERED,     /* 2xx */
    TD_ATTEMPT_PERMANENT,     /* 400, 404 and other 4xx but those below: dead letter now */
    TD_ATTEMPT_REAUTH,        /* 401: refresh the credentials once, then retry */
    TD_ATTEMPT_RETRY,         /* 408, 429, 5xx, no answer: retry with back-off */
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

/* The end-user message text for a USER row from the issuer's templates JSON
 * (NULL/"" = the defaults): placeholders {last4}, {wallet}, {otp} (OTP rows
 * only), {issuer}. Returns a malloc'd string or NULL. */
char *td_render_message(const char *templates_json, const char *message, const char *last4, const char *wallet,
                        const char *otp, const char *issuer_id);

#endif
