/* token.h — the engine for open-banking authorization tokens and token
 * requests: pure decisions, no I/O. Each function maps (current record,
 * command) to an outcome; the service applies it in one store transaction. */
#ifndef TD_TOKEN_H
#define TD_TOKEN_H

#include <stdbool.h>
#include <stdint.h>

typedef enum { TD_KIND_ACCESS, TD_KIND_TRANSFER, TD_KIND_STANDING_ORDER, TD_KIND_CARD, TD_KIND__COUNT } td_kind;
typedef enum { TD_LEVEL_LOW = 0, TD_LEVEL_STANDARD = 1, TD_LEVEL_PRIVILEGED = 2 } td_level;

/* Open-banking token states (CARD tokens have their own machine). */
typedef enum { TD_TS_ACTIVE, TD_TS_CANCELED, TD_TS_EXPIRED, TD_TS_REPLACED } td_token_state;

typedef enum {
    TD_TRS_PENDING,   /* waiting for the user's decision */
    TD_TRS_PROCESSED, /* approved: a token exists */
    TD_TRS_REJECTED,  /* the user said no */
    TD_TRS_EXPIRED,   /* nobody decided in time */
} td_request_state;

const char *td_kind_name(td_kind k);   /* ACCESS, TRANSFER, STANDING_ORDER, CARD */
const char *td_kind_prefix(td_kind k); /* ta, tt, so, tc */
int td_kind_parse(const char *s, td_kind *out);
const char *td_level_name(td_level l);
int td_level_parse(const char *s, td_level *out);
const char *td_token_state_name(td_token_state s);
int td_token_state_parse(const char *s, td_token_state *out);
const char *td_request_state_name(td_request_state s);
int td_request_state_parse(const char *s, td_request_state *out);

/* What the engine needs to know about a token to decide a cancel. */
typedef struct {
    td_kind kind;
    td_token_state state;
    int64_t expires_ms; /* 0 = no expiry */
    const char *from_id;
    const char *to_id;
    const char *canceled_by; /* member that signed CANCELED, when state is CANCELED */
} td_token_view;

typedef enum {
    TD_CANCEL_APPLY,           /* SUCCESS: sign CANCELED, state -> CANCELED */
    TD_CANCEL_ALREADY,         /* SUCCESS: the existing CANCELED signature stands, nothing changes */
    TD_CANCEL_MORE_SIGNATURES, /* MORE_SIGNATURES_NEEDED: nothing changes */
    TD_CANCEL_INVALID,         /* INVALID: nothing changes */
} td_cancel_outcome;

typedef enum {
    TD_INVALID_NONE,
    TD_INVALID_NOT_A_PARTY, /* the caller is neither from nor to */
    TD_INVALID_EXPIRED,
    TD_INVALID_REPLACED,
} td_invalid_reason;

typedef struct {
    td_level required[TD_KIND__COUNT]; /* minimum key level to cancel, per kind */
} td_policy;

/* Defaults: access LOW, transfer and standing order STANDARD, card STANDARD. */
void td_policy_default(td_policy *p);

/* Decides a cancel by `caller` holding a key of `level` at time `now_ms`. */
td_cancel_outcome td_decide_cancel(const td_policy *p, const td_token_view *t, const char *caller, td_level level,
                                   int64_t now_ms, td_invalid_reason *why);
const char *td_cancel_status_name(td_cancel_outcome o); /* Token.io result.status */
const char *td_invalid_reason_text(td_invalid_reason r);

/* The state a token is in when read at now_ms: an ACTIVE token past its
 * expiry reads as EXPIRED (expiry is a fact of time, not an event). */
td_token_state td_token_effective_state(td_token_state stored, int64_t expires_ms, int64_t now_ms);

/* Token requests. */
typedef struct {
    td_request_state state;
    int64_t expires_ms; /* the request itself (and its consent link) expire */
    bool consent_used;
} td_request_view;

typedef enum {
    TD_DECIDE_APPROVE,
    TD_DECIDE_REJECT,
} td_decision;

typedef enum {
    TD_REQ_OK, /* the decision applies */
    TD_REQ_ALREADY_DECIDED,
    TD_REQ_EXPIRED,
} td_request_outcome;

td_request_state td_request_effective_state(const td_request_view *r, int64_t now_ms);
td_request_outcome td_decide_request(const td_request_view *r, int64_t now_ms);
/* Whether a new consent link may be issued (only while PENDING). */
bool td_request_can_authorize(const td_request_view *r, int64_t now_ms);

#endif
