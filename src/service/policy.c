/* policy.c — an issuer's card policy: the decision thresholds, the ID&V
 * methods, the step-up session's timers, the OTP delivery rate and whether
 * canceled tokenizations are told to the end user. The admin API's JSON
 * (docs/network.md "Card policy") is parsed over the defaults, and the full
 * effective policy is what the store keeps, so reading it back needs no merge. */
#include <stdlib.h>
#include <string.h>

#include "service/cards.h"
#include "util/log.h"
#include "util/util.h"

#define SECOND_MS 1000LL
#define HOUR_MS (3600 * SECOND_MS)
#define DAY_MS (24 * HOUR_MS)
#define MAX_SECONDS (366LL * 24 * 3600) /* a year: keeps every sum of times far from overflow */
#define MAX_REMINDERS 100
#define MAX_OTP 100 /* the service reads at most this many past deliveries */

void td_card_policy_default(td_card_policy *p)
{
    memset(p, 0, sizeof *p);
    td_decision_policy_default(&p->decision);
    td_idv_config_default(&p->idv); /* no app label, no service number */
    p->first_reminder_ms = DAY_MS;
    p->reminder_every_ms = DAY_MS;
    p->max_reminders = 2;
    p->session_ms = 7 * DAY_MS;
    td_otp_limit_default(&p->otp);
    p->notify_cancellation = true;
}

/* ---- parsing ---- */

static int only(json_t *obj, const char *where, const char *const *allowed, td_error *e)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        const char *const *a = allowed;
        while (*a && strcmp(*a, key))
            a++;
        if (!*a) {
            td_fail(e, TD_E_INVALID_ARGUMENT, "%s: unknown field '%.64s'", where, key);
            return -1;
        }
    }
    return 0;
}

/* An optional object member; absent leaves *out NULL. */
static int object_at(json_t *obj, const char *key, json_t **out, td_error *e)
{
    *out = json_object_get(obj, key);
    if (*out && !json_is_object(*out)) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "%s must be an object", key);
        return -1;
    }
    return 0;
}

/* An optional integer in [lo, hi]; absent keeps *out. */
static int int_at(json_t *obj, const char *where, const char *key, long long lo, long long hi, long long *out,
                  td_error *e)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "%s.%s must be an integer from %lld to %lld", where, key, lo, hi);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static int int_field(json_t *obj, const char *where, const char *key, long long lo, long long hi, int *out, td_error *e)
{
    long long v = *out;
    if (int_at(obj, where, key, lo, hi, &v, e)) return -1;
    *out = (int)v;
    return 0;
}

/* Seconds in JSON, milliseconds in the policy. */
static int seconds_field(json_t *obj, const char *where, const char *key, long long lo, int64_t *ms, td_error *e)
{
    long long v = *ms / SECOND_MS;
    if (int_at(obj, where, key, lo, MAX_SECONDS, &v, e)) return -1;
    *ms = v * SECOND_MS;
    return 0;
}

/* An optional string of at most cap-1 bytes, copied into out. */
static int string_field(json_t *obj, const char *where, const char *key, char *out, size_t cap, td_error *e)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    if (!json_is_string(v) || json_string_length(v) >= cap || strlen(json_string_value(v)) != json_string_length(v)) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "%s.%s must be a string of at most %zu characters", where, key, cap - 1);
        return -1;
    }
    td_strlcpy(out, json_string_value(v), cap);
    return 0;
}

static int verdict_field(json_t *obj, const char *key, td_verdict *out, td_error *e)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    if (!json_is_string(v) || td_verdict_parse(json_string_value(v), out)) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "decision.%s must be GREEN, YELLOW or RED", key);
        return -1;
    }
    return 0;
}

static int parse_decision(json_t *d, td_decision_policy *p, td_error *e)
{
    static const char *const ALLOWED[] = {"maxActiveTokens", "maxAttemptsPerHour", "redBelow",         "yellowBelow",
                                          "phoneMismatch",   "emailMismatch",      "phoneMatchDigits", NULL};
    if (only(d, "decision", ALLOWED, e) ||
        int_field(d, "decision", "maxActiveTokens", 1, 1000000, &p->max_active_tokens, e) ||
        int_field(d, "decision", "maxAttemptsPerHour", 1, 1000000, &p->max_attempts_per_hour, e) ||
        int_field(d, "decision", "redBelow", 0, 6, &p->red_below, e) ||
        int_field(d, "decision", "yellowBelow", 0, 6, &p->yellow_below, e) ||
        verdict_field(d, "phoneMismatch", &p->phone_mismatch, e) ||
        verdict_field(d, "emailMismatch", &p->email_mismatch, e) ||
        int_field(d, "decision", "phoneMatchDigits", 0, 15, &p->phone_match_digits, e))
        return -1;
    if (p->red_below > p->yellow_below) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "decision.redBelow must not be above decision.yellowBelow");
        return -1;
    }
    if (td_decision_policy_check(p)) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "decision: the thresholds do not make sense");
        return -1;
    }
    return 0;
}

static int parse_methods(json_t *arr, td_idv_config *c, td_error *e)
{
    size_t i;
    json_t *v;
    unsigned seen = 0;
    if (!json_is_array(arr) || json_array_size(arr) > TD_IDV__COUNT) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "idv.methods must be an array of at most %d methods", TD_IDV__COUNT);
        return -1;
    }
    c->n_offered = 0;
    json_array_foreach(arr, i, v)
    {
        td_idv_type t;
        if (!json_is_string(v) || td_idv_type_parse(json_string_value(v), &t) || (seen & (1u << t))) {
            td_fail(e, TD_E_INVALID_ARGUMENT,
                    "idv.methods[%zu] must be one of OTP_SMS, OTP_EMAIL, ISSUER_APP, CUSTOMER_SERVICE, once", i);
            return -1;
        }
        seen |= 1u << t;
        c->offered[c->n_offered++] = t;
    }
    return 0;
}

/* The service number is optional here, unlike td_idv_config_check: without
 * one, CUSTOMER_SERVICE is not offered (td_idv_methods). */
static int parse_idv(json_t *d, td_idv_config *c, td_error *e)
{
    static const char *const ALLOWED[] = {"methods", "appLabel", "serviceNumber", NULL};
    json_t *m = json_object_get(d, "methods");
    if (only(d, "idv", ALLOWED, e) || (m && parse_methods(m, c, e)) ||
        string_field(d, "idv", "appLabel", c->app_label, sizeof c->app_label, e) ||
        string_field(d, "idv", "serviceNumber", c->service_phone, sizeof c->service_phone, e))
        return -1;
    return 0;
}

static int parse_stepup(json_t *d, td_card_policy *p, td_error *e)
{
    static const char *const ALLOWED[] = {"firstReminderAfterSeconds", "reminderEverySeconds", "maxReminders",
                                          "sessionSeconds", NULL};
    return only(d, "stepUp", ALLOWED, e) ||
                   seconds_field(d, "stepUp", "firstReminderAfterSeconds", 1, &p->first_reminder_ms, e) ||
                   seconds_field(d, "stepUp", "reminderEverySeconds", 1, &p->reminder_every_ms, e) ||
                   int_field(d, "stepUp", "maxReminders", 0, MAX_REMINDERS, &p->max_reminders, e) ||
                   seconds_field(d, "stepUp", "sessionSeconds", 1, &p->session_ms, e)
               ? -1
               : 0;
}

static int parse_otp(json_t *d, td_otp_limit *l, td_error *e)
{
    static const char *const ALLOWED[] = {"max", "windowSeconds", NULL};
    return only(d, "otp", ALLOWED, e) || int_field(d, "otp", "max", 0, MAX_OTP, &l->max, e) ||
                   seconds_field(d, "otp", "windowSeconds", 1, &l->window_ms, e)
               ? -1
               : 0;
}

static int parse_notify(json_t *obj, bool *out, td_error *e)
{
    json_t *v = json_object_get(obj, "notifyCancellation");
    if (!v) return 0;
    if (!json_is_boolean(v)) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "notifyCancellation must be true or false");
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

td_err td_card_policy_from_json(json_t *v, td_card_policy *p, td_error *e)
{
    static const char *const ALLOWED[] = {"decision", "idv", "stepUp", "otp", "notifyCancellation", NULL};
    json_t *d, *i, *s, *o;
    td_card_policy_default(p);
    if (!json_is_object(v)) return td_fail(e, TD_E_INVALID_ARGUMENT, "the card policy must be a JSON object");
    if (only(v, "body", ALLOWED, e) || object_at(v, "decision", &d, e) || object_at(v, "idv", &i, e) ||
        object_at(v, "stepUp", &s, e) || object_at(v, "otp", &o, e) || (d && parse_decision(d, &p->decision, e)) ||
        (i && parse_idv(i, &p->idv, e)) || (s && parse_stepup(s, p, e)) || (o && parse_otp(o, &p->otp, e)) ||
        parse_notify(v, &p->notify_cancellation, e))
        return e ? e->code : TD_E_INVALID_ARGUMENT;
    return TD_OK;
}

/* ---- rendering ---- */

static json_t *methods_json(const td_idv_config *c)
{
    json_t *a = json_array();
    for (int i = 0; a && i < c->n_offered; i++)
        json_array_append_new(a, json_string(td_idv_type_name(c->offered[i])));
    return a;
}

json_t *td_card_policy_to_json(const td_card_policy *p)
{
    const td_decision_policy *d = &p->decision;
    return json_pack(
        "{s:{s:i,s:i,s:i,s:i,s:s,s:s,s:i},s:{s:o,s:s,s:s},s:{s:I,s:I,s:i,s:I},s:{s:i,s:I},s:b}", "decision",
        "maxActiveTokens", d->max_active_tokens, "maxAttemptsPerHour", d->max_attempts_per_hour, "redBelow",
        d->red_below, "yellowBelow", d->yellow_below, "phoneMismatch", td_verdict_name(d->phone_mismatch),
        "emailMismatch", td_verdict_name(d->email_mismatch), "phoneMatchDigits", d->phone_match_digits, "idv",
        "methods", methods_json(&p->idv), "appLabel", p->idv.app_label, "serviceNumber", p->idv.service_phone, "stepUp",
        "firstReminderAfterSeconds", (json_int_t)(p->first_reminder_ms / SECOND_MS), "reminderEverySeconds",
        (json_int_t)(p->reminder_every_ms / SECOND_MS), "maxReminders", p->max_reminders, "sessionSeconds",
        (json_int_t)(p->session_ms / SECOND_MS), "otp", "max", p->otp.max, "windowSeconds",
        (json_int_t)(p->otp.window_ms / SECOND_MS), "notifyCancellation", p->notify_cancellation);
}

/* ---- loading ---- */

td_st td_card_policy_load(td_svc *svc, td_conn *c, const char *issuer_id, td_card_policy *out)
{
    char *text = NULL;
    td_card_policy_default(out);
    td_st st = svc->store->ops->issuer_policy_get(c, issuer_id, &text);
    if (st == TD_ST_NOT_FOUND) return TD_ST_OK;
    if (st != TD_ST_OK) return st;
    if (!text || !text[0]) {
        free(text);
        return TD_ST_OK;
    }
    td_error e = {0};
    json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    free(text);
    /* It was validated when stored: a failure here is a damaged row, not a
     * reason to decide with thresholds nobody chose. */
    if (!v || td_card_policy_from_json(v, out, &e) != TD_OK) {
        json_decref(v);
        td_log(TD_LOG_ERROR, "card_policy_unreadable", "issuer %s: %s", issuer_id, e.detail);
        td_card_policy_default(out);
        return TD_ST_INTERNAL;
    }
    json_decref(v);
    return TD_ST_OK;
}

/* The issuer must exist: a policy for nobody is the caller's mistake (404). */
static td_st issuer_known(td_svc *svc, td_conn *c, const char *issuer_id, td_error *e, bool *known)
{
    td_issuer_rec i;
    td_st st = svc->store->ops->issuer_get(c, issuer_id, &i);
    *known = st == TD_ST_OK;
    if (st == TD_ST_NOT_FOUND) {
        td_fail(e, TD_E_NOT_FOUND, "issuer %s not found", issuer_id);
        return TD_ST_OK;
    }
    return st;
}

td_err td_svc_get_card_policy(td_svc *svc, const char *issuer_id, td_card_policy *out, td_error *e)
{
    td_conn *c = svc->store->reader(svc->store);
    bool known = false;
    if (!c || issuer_known(svc, c, issuer_id, e, &known) != TD_ST_OK)
        return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    if (!known) return e->code;
    td_st st = td_card_policy_load(svc, c, issuer_id, out);
    if (st == TD_ST_INTERNAL) return td_fail(e, TD_E_INTERNAL, "the stored card policy cannot be read");
    if (st != TD_ST_OK) return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    return TD_OK;
}

static td_st run_put_policy(td_conn *c, td_write *w)
{
    td_put_card_policy *cmd = (td_put_card_policy *)w;
    bool known = false;
    td_st st = issuer_known(w->svc, c, cmd->issuer_id, &w->err, &known);
    if (st != TD_ST_OK || !known) return st;
    return w->svc->store->ops->issuer_policy_put(c, cmd->issuer_id, cmd->json);
}

void td_svc_put_card_policy(td_svc *svc, td_put_card_policy *cmd)
{
    cmd->w.run = run_put_policy;
    td_svc_submit(svc, &cmd->w);
}

td_err td_svc_list_outbox(td_svc *svc, const char *issuer_id, const char *state, int64_t after_id, int limit,
                          void (*fn)(const td_outbox_rec *, void *), void *arg, td_error *e)
{
    td_conn *c = svc->store->reader(svc->store);
    bool known = false;
    if (!c || issuer_known(svc, c, issuer_id, e, &known) != TD_ST_OK)
        return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    if (!known) return e->code;
    if (svc->store->ops->outbox_list(c, issuer_id, state, after_id, limit, fn, arg) != TD_ST_OK)
        return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    return TD_OK;
}
