/* retry.c — what an attempt's answer means and when a failed row goes again
 * (back-off with jitter, maximum age). Pure: the caller passes time and randomness. */
#include <stdint.h>

#include "notify/notify.h"

#define DEFAULT_BASE_MS 1000
#define DEFAULT_CAP_MS 3600000
#define DEFAULT_MAX_AGE_MS (24 * 3600 * 1000LL)
#define RETRY_AFTER_MAX_S (30 * 24 * 3600LL) /* Retry-After is honoured up to 30 days */

td_attempt_class td_attempt_classify(int http_status)
{
    if (http_status >= 200 && http_status < 300) return TD_ATTEMPT_DELIVERED;
    if (http_status == 401) return TD_ATTEMPT_REAUTH;
    if (http_status <= 0 || http_status == 408 || http_status == 429 || (http_status >= 500 && http_status < 600))
        return TD_ATTEMPT_RETRY;
    return TD_ATTEMPT_PERMANENT;
}

int64_t td_backoff_ms(int attempts, int64_t base_ms, int64_t cap_ms, int64_t retry_after_s, double rnd01)
{
    if (base_ms <= 0) base_ms = DEFAULT_BASE_MS;
    if (cap_ms <= 0) cap_ms = DEFAULT_CAP_MS;
    int64_t ceiling = base_ms < cap_ms ? base_ms : cap_ms;
    for (int i = 0; i < attempts && ceiling < cap_ms; i++)
        ceiling = ceiling > cap_ms / 2 ? cap_ms : ceiling * 2;
    if (!(rnd01 >= 0.0)) rnd01 = 0.0; /* also NaN */
    if (rnd01 >= 1.0) rnd01 = 0.0;
    int64_t v = (int64_t)(rnd01 * (double)ceiling);
    if (v >= ceiling) v = ceiling - 1;
    if (v < 0) v = 0;
    if (retry_after_s > 0) {
        int64_t ra_ms = (retry_after_s > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : retry_after_s) * 1000;
        if (v < ra_ms) v = ra_ms;
    }
    return v;
}

bool td_past_max_age(const td_outbox_rec *o, int64_t retry_at_ms, int64_t max_age_ms)
{
    if (max_age_ms <= 0) max_age_ms = DEFAULT_MAX_AGE_MS;
    /* A replayed dead letter gets a full maximum age from its replay, not one failure. */
    int64_t origin = o->replayed_ms > o->created_ms ? o->replayed_ms : o->created_ms;
    if (origin > INT64_MAX - max_age_ms) return false;
    return retry_at_ms > origin + max_age_ms;
}
