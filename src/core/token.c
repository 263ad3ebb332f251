/* token.c — open-banking token and token-request state machines. */
#include "core/token.h"

#include <string.h>

static const char *const KIND_NAMES[] = {"ACCESS", "TRANSFER", "STANDING_ORDER", "CARD"};
static const char *const KIND_PREFIX[] = {"ta", "tt", "so", "tc"};
static const char *const LEVEL_NAMES[] = {"LOW", "STANDARD", "PRIVILEGED"};
static const char *const TS_NAMES[] = {"ACTIVE", "CANCELED", "EXPIRED", "REPLACED"};
static const char *const TRS_NAMES[] = {"PENDING", "PROCESSED", "REJECTED", "EXPIRED"};

static int parse_enum(const char *const *names, int n, const char *s, int *out)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(names[i], s) == 0) {
            *out = i;
            return 0;
        }
    return -1;
}

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

const char *td_kind_name(td_kind k)
{
    return KIND_NAMES[k];
}
const char *td_kind_prefix(td_kind k)
{
    return KIND_PREFIX[k];
}
const char *td_level_name(td_level l)
{
    return LEVEL_NAMES[l];
}
const char *td_token_state_name(td_token_state s)
{
    return TS_NAMES[s];
}
const char *td_request_state_name(td_request_state s)
{
    return TRS_NAMES[s];
}

int td_kind_parse(const char *s, td_kind *out)
{
    int v;
    if (parse_enum(KIND_NAMES, COUNT(KIND_NAMES), s, &v)) return -1;
    *out = (td_kind)v;
    return 0;
}
int td_level_parse(const char *s, td_level *out)
{
    int v;
    if (parse_enum(LEVEL_NAMES, COUNT(LEVEL_NAMES), s, &v)) return -1;
    *out = (td_level)v;
    return 0;
}
int td_token_state_parse(const char *s, td_token_state *out)
{
    int v;
    if (parse_enum(TS_NAMES, COUNT(TS_NAMES), s, &v)) return -1;
    *out = (td_token_state)v;
    return 0;
}
int td_request_state_parse(const char *s, td_request_state *out)
{
    int v;
    if (parse_enum(TRS_NAMES, COUNT(TRS_NAMES), s, &v)) return -1;
    *out = (td_request_state)v;
    return 0;
}

void td_policy_default(td_policy *p)
{
    p->required[TD_KIND_ACCESS] = TD_LEVEL_LOW;
    p->required[TD_KIND_TRANSFER] = TD_LEVEL_STANDARD;
    p->required[TD_KIND_STANDING_ORDER] = TD_LEVEL_STANDARD;
    p->required[TD_KIND_CARD] = TD_LEVEL_STANDARD;
}

td_token_state td_token_effective_state(td_token_state stored, int64_t expires_ms, int64_t now_ms)
{
    if (stored == TD_TS_ACTIVE && expires_ms > 0 && now_ms >= expires_ms) return TD_TS_EXPIRED;
    return stored;
}

static bool is_party(const td_token_view *t, const char *caller)
{
    return caller && ((t->from_id && strcmp(t->from_id, caller) == 0) || (t->to_id && strcmp(t->to_id, caller) == 0));
}

/* Order matters: a canceled token stays canceled whatever else is true (a
 * repeat is a success that changes nothing); a caller who is not a party learns
 * nothing more; then the token must still be live; the key level is checked
 * last, so MORE_SIGNATURES_NEEDED means "this would work with a stronger key". */
td_cancel_outcome td_decide_cancel(const td_policy *p, const td_token_view *t, const char *caller, td_level level,
                                   int64_t now_ms, td_invalid_reason *why)
{
    td_invalid_reason r = TD_INVALID_NONE;
    td_cancel_outcome o;
    td_token_state st = td_token_effective_state(t->state, t->expires_ms, now_ms);
    if (!is_party(t, caller)) {
        r = TD_INVALID_NOT_A_PARTY;
        o = TD_CANCEL_INVALID;
    } else if (st == TD_TS_CANCELED) {
        o = TD_CANCEL_ALREADY;
    } else if (st == TD_TS_EXPIRED) {
        r = TD_INVALID_EXPIRED;
        o = TD_CANCEL_INVALID;
    } else if (st == TD_TS_REPLACED) {
        r = TD_INVALID_REPLACED;
        o = TD_CANCEL_INVALID;
    } else if (level < p->required[t->kind]) {
        o = TD_CANCEL_MORE_SIGNATURES;
    } else {
        o = TD_CANCEL_APPLY;
    }
    if (why) *why = r;
    return o;
}

const char *td_cancel_status_name(td_cancel_outcome o)
{
    switch (o) {
    case TD_CANCEL_APPLY:
    case TD_CANCEL_ALREADY: return "SUCCESS";
    case TD_CANCEL_MORE_SIGNATURES: return "MORE_SIGNATURES_NEEDED";
    default: return "INVALID";
    }
}

const char *td_invalid_reason_text(td_invalid_reason r)
{
    switch (r) {
    case TD_INVALID_NOT_A_PARTY: return "the caller is neither the token's from nor its to member";
    case TD_INVALID_EXPIRED: return "the token has expired";
    case TD_INVALID_REPLACED: return "the token was replaced";
    default: return "";
    }
}

td_request_state td_request_effective_state(const td_request_view *r, int64_t now_ms)
{
    if (r->state == TD_TRS_PENDING && r->expires_ms > 0 && now_ms >= r->expires_ms) return TD_TRS_EXPIRED;
    return r->state;
}

td_request_outcome td_decide_request(const td_request_view *r, int64_t now_ms)
{
    td_request_state s = td_request_effective_state(r, now_ms);
    if (s == TD_TRS_EXPIRED) return TD_REQ_EXPIRED;
    if (s != TD_TRS_PENDING || r->consent_used) return TD_REQ_ALREADY_DECIDED;
    return TD_REQ_OK;
}

bool td_request_can_authorize(const td_request_view *r, int64_t now_ms)
{
    return td_request_effective_state(r, now_ms) == TD_TRS_PENDING;
}
