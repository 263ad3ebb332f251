/* delivery.h — the delivery use cases of the admin API and tokenctl:
 * per-issuer delivery settings and replaying dead letters. The worker that
 * sends owed notifications and end-user messages to the issuer's backend is
 * src/notify/ (notify/notify.h); it reads the settings these store.
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

#endif
