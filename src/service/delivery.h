/* delivery.h — delivering the outbox: per-issuer delivery settings (admin API,
 * tokenctl), replaying dead letters, and the worker that sends owed
 * notifications and end-user messages to the issuer's backend.
 *
 * The worker is one thread driving a libcurl multi handle (up to
 * cfg->delivery_concurrency transfers in flight). Each loop it claims due
 * outbox rows (store verb outbox_claim: only the first undelivered row of each
 * order key, so one digital card's notifications go in sequence), builds the
 * requests in the issuer's profile (notify.h), sends them, classifies the
 * answers (td_attempt_classify) and records the outcomes of the loop in one
 * write job. A crash leaves claimed rows IN_FLIGHT until their lease runs
 * out; they are then claimed again (at least once; receivers drop duplicates
 * by operation / webhook id, which every attempt keeps).
 * docs/notifications.md is the contract (formats, auth, retry policy). */
#ifndef TD_DELIVERY_H
#define TD_DELIVERY_H

#include <stdbool.h>
#include <stdint.h>

#include "service/service.h"

/* ---- per-issuer delivery settings (admin API) ---- */

/* The longest secret accepted in clear (bearer token, OAuth2 client secret,
 * webhook "whsec_..." secret): sealed it must fit td_delivery_rec.secret_sealed. */
#define TD_DELIVERY_SECRET_MAX 400

/* Fills the defaults: profile "webhook", auth "none", d1_batch_max 1,
 * max_age_ms 24 h, timeout_ms 5000; everything else empty. */
void td_delivery_defaults(td_delivery_rec *d);

/* Checks a configuration the way td_svc_put_delivery does (faces may call it
 * first to answer 400 without a write): profile d1|classic|webhook; auth
 * none|bearer|oauth2|webhook (webhook auth only with the webhook profile, and
 * the webhook profile only with webhook or none auth); base_url and
 * messaging_url ("" allowed) and oauth_token_url are http:// or https:// URLs;
 * oauth2 needs oauth_token_url and oauth_client_id; bearer, oauth2 and
 * webhook need a secret (has_secret: given now or already stored);
 * tls_key_file only with tls_cert_file; d1_batch_max 1..64; timeout_ms
 * 100..120000; max_age_ms 1 s..30 days; templates_json NULL/"" or a JSON
 * object of strings. Returns TD_OK or TD_E_INVALID_ARGUMENT naming the field. */
td_err td_delivery_validate(const td_delivery_rec *d, bool has_secret, td_error *e);

/* Stores an issuer's delivery settings (insert or replace). The secret comes
 * in clear in `secret`; the writer job seals it with the master key into
 * rec.secret_sealed and wipes `secret` (the face should td_wipe it too before
 * freeing the command, in case the job never ran). secret_given false keeps
 * the secret already stored (so settings can change without resending it);
 * true with "" clears it. Refusals: TD_E_NOT_FOUND for an unknown issuer,
 * TD_E_INVALID_ARGUMENT (td_delivery_validate). rec.updated_ms is set by the
 * job. rec.templates_json is malloc'd and freed by the face (not the job).
 * The worker picks the new settings up within a few seconds (its cache). */
typedef struct {
    td_write w;
    td_delivery_rec rec; /* issuer_id and the settings; secret_sealed/secret_len are ignored on input */
    bool secret_given;
    char secret[TD_DELIVERY_SECRET_MAX + 1]; /* in clear; wiped by the job */
} td_put_delivery;
void td_svc_put_delivery(td_svc *svc, td_put_delivery *cmd);

/* An issuer's delivery settings. The secret is never returned: out->secret_sealed
 * is zeroed and out->secret_len is nonzero iff a secret is set (the face shows
 * only that). TD_E_NOT_FOUND for an unknown issuer or one without delivery
 * settings (the detail says which). Free with td_delivery_rec_free. */
td_err td_svc_get_delivery(td_svc *svc, const char *issuer_id, td_delivery_rec *out, td_error *e);

/* Dead letters back to PENDING, due now, under the same ids (attempts kept):
 * one row (id > 0) or every DEAD row of the issuer (id 0). TD_E_NOT_FOUND for
 * an unknown issuer, or for an id that is not one of the issuer's rows;
 * TD_E_NOT_ALLOWED_IN_STATE for an id of the issuer that is not DEAD. Replaying
 * all with none dead is TD_OK with n_replayed 0. Listing pending and dead rows:
 * td_svc_list_outbox (cards.h) with state "PENDING" / "DEAD". */
typedef struct {
    td_write w;
    char issuer_id[16];
    int64_t id; /* 0 = all dead rows of the issuer */
    /* out */
    int n_replayed;
} td_replay;
void td_svc_replay_dead(td_svc *svc, td_replay *cmd);

/* ---- the worker ---- */

typedef struct td_delivery td_delivery;

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
} td_delivery_counters;

/* Starts the worker thread (curl_global_init is done once per process).
 * NULL if it cannot start. Settings: cfg->delivery_concurrency,
 * delivery_poll_ms, delivery_lease_ms. */
td_delivery *td_delivery_start(td_svc *svc);
/* Stops taking new rows, lets the rows it holds finish (for at most 10 s; rows
 * still held then stay IN_FLIGHT and go again once their lease ends), records
 * their outcomes, joins the thread and frees d.
 * Call it after the HTTP server drained and before the store closes. NULL ok. */
void td_delivery_stop(td_delivery *d);
/* Wakes an idle worker now (e.g. after a write that owes a notification);
 * without it the worker polls every cfg->delivery_poll_ms. NULL ok. */
void td_delivery_kick(td_delivery *d);
/* A snapshot of the counters; all zero for NULL. Thread-safe and cheap (no
 * store access: the store figures are the worker's last refresh). */
void td_delivery_stats(td_delivery *d, td_delivery_counters *out);
/* The worker this process runs (the last started and not stopped), or NULL:
 * for /metrics, which has no other way to reach it. */
td_delivery *td_delivery_current(void);

/* Test hook: the retry back-off's base and cap (defaults 1000 ms and 1 h),
 * for attempts that fail after the call (call it right after td_delivery_start). */
void td_delivery_set_backoff(td_delivery *d, int64_t base_ms, int64_t cap_ms);

#endif
