/* decision.h — the tokenization decision (GREEN/YELLOW/RED and why), the ID&V
 * methods a YELLOW answer offers, the OTP delivery rate check, and the card
 * data checks (Luhn, PAN, expiry). Pure functions: no I/O, no clock; the
 * rules, defaults and order are documented in docs/cards.md. */
#ifndef TD_DECISION_H
#define TD_DECISION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/card.h"

/* ---- the decision ---- */

/* The rule that fired, in evaluation order (RED rules first). */
typedef enum {
    TD_RC_NONE,
    TD_RC_CARD_UNKNOWN,
    TD_RC_CARD_DELETED,
    TD_RC_CARD_SUSPENDED,
    TD_RC_CARD_EXPIRED,
    TD_RC_TOO_MANY_TOKENS,
    TD_RC_TOO_MANY_ATTEMPTS,
    TD_RC_LOW_WALLET_SCORE,
    TD_RC_LOW_DEVICE_SCORE,
    TD_RC_PHONE_MISMATCH,
    TD_RC_EMAIL_MISMATCH,
    TD_RC_NO_IDV_METHOD, /* a YELLOW with no method the user could pass (td_idv_settle) */
    TD_RC__COUNT
} td_decision_reason;

const char *td_decision_reason_name(td_decision_reason r);

/* Per-issuer thresholds. td_decision_policy_default gives the documented defaults. */
typedef struct {
    int max_active_tokens;     /* RED when the card already has this many live digital cards (10) */
    int max_attempts_per_hour; /* RED when this many attempts were made in the last hour (10) */
    int red_below;             /* a wallet/device score below this is RED (2) */
    int yellow_below;          /* a score below this (and not RED) is YELLOW (4) */
    td_verdict phone_mismatch; /* what a phone mismatch gives: GREEN = not checked (YELLOW) */
    td_verdict email_mismatch; /* likewise for the email (YELLOW) */
    int phone_match_digits;    /* compare the last N digits of both numbers; 0 = all digits (9) */
} td_decision_policy;

void td_decision_policy_default(td_decision_policy *p);
/* 0 if the policy makes sense (limits ≥ 1, 0 ≤ red_below ≤ yellow_below ≤ 6,
 * 0 ≤ phone_match_digits ≤ 15, verdicts in range), else -1. */
int td_decision_policy_check(const td_decision_policy *p);

typedef struct {
    bool card_found;
    td_card_state card_state;
    int exp_month, exp_year; /* the registered card's expiry (td_expiry_parse) */
    int now_month, now_year; /* the current month, UTC (td_year_month) */
    int active_tokens;       /* the card's digital cards that count (td_decision_counts_token) */
    int attempts_last_hour;  /* earlier tokenization attempts on the card, this one not included */
    int wallet_score;        /* 1 (worst) – 5 (best) as MDES/VTS give it; 0 = not given */
    int device_score;        /* likewise */
    const char *phone;       /* the end user's phone as the wallet gave it; NULL/"" = not given */
    const char *reg_phone;   /* the phone the issuer registered; NULL/"" = none */
    const char *email;       /* likewise for the email */
    const char *reg_email;
} td_decision_input;

typedef struct {
    td_verdict verdict;
    td_decision_reason reason; /* the first rule (in order) that gave this verdict; NONE for GREEN */
} td_decision_result;

td_decision_result td_decide_tokenization(const td_decision_policy *p, const td_decision_input *in);

/* Digital cards in PENDING_IDV, ACTIVE or SUSPENDED count towards
 * max_active_tokens: a pending one will become usable without a new request. */
bool td_decision_counts_token(td_dcard_state s);

/* The digits of a phone number, whatever the punctuation ("+33 6-12" → "3361"
 * ...). Returns the number of digits, or -1 if out is too small. */
int td_phone_digits(const char *phone, char *out, size_t cap);
/* Two numbers match when their last k digits are equal, k = n or the
 * shorter number's digit count if less; when n = 0 or k < 7, all digits
 * must be equal. Either missing → false. */
bool td_phone_match(const char *a, const char *b, int n);
/* Two emails match when equal ignoring case and surrounding blanks. */
bool td_email_match(const char *a, const char *b);

/* ---- ID&V methods ---- */

typedef enum {
    TD_IDV_OTP_SMS,
    TD_IDV_OTP_EMAIL,
    TD_IDV_ISSUER_APP,
    TD_IDV_CUSTOMER_SERVICE,
    TD_IDV__COUNT
} td_idv_type;

const char *td_idv_type_name(td_idv_type t); /* OTP_SMS, OTP_EMAIL, ISSUER_APP, CUSTOMER_SERVICE */
int td_idv_type_parse(const char *s, td_idv_type *out);
/* The method's id, stable across requests so that an OTP delivery request's
 * method id maps back to a channel: otp-sms, otp-email, issuer-app, customer-service. */
const char *td_idv_method_id(td_idv_type t);
int td_idv_method_id_parse(const char *id, td_idv_type *out);

#define TD_IDV_VALUE_MAX 256
#define TD_IDV_LABEL_MAX 64

typedef struct {
    td_idv_type offered[TD_IDV__COUNT]; /* the issuer's methods, in the order offered */
    int n_offered;
    char app_label[TD_IDV_LABEL_MAX];     /* ISSUER_APP's value, e.g. "MyBank app"; "" = not offered */
    char service_phone[TD_IDV_LABEL_MAX]; /* CUSTOMER_SERVICE's value, the issuer's number, shown as is */
} td_idv_config;

/* All four methods in the order above, no label or number. */
void td_idv_config_default(td_idv_config *c);
/* 0 if usable: types in range, no repeats, and a customer service number
 * (the fallback every YELLOW may need). -1 otherwise. */
int td_idv_config_check(const td_idv_config *c);

typedef struct {
    td_idv_type type;
    char id[24];
    char value[TD_IDV_VALUE_MAX]; /* masked contact data, or the configured label/number */
} td_idv_method;

typedef struct {
    td_idv_method m[TD_IDV__COUNT];
    int n;
} td_idv_list;

/* The methods a YELLOW answer offers, from the issuer's configuration and the
 * contact data the issuer registered (never the wallet's: the OTP must reach
 * the person the bank knows). A method whose data is missing is left out,
 * CUSTOMER_SERVICE included when the issuer configured no number; if none is
 * left, CUSTOMER_SERVICE is offered anyway when there is a number. Returns
 * out->n, 0 when nothing is usable. */
int td_idv_methods(const td_idv_config *c, const char *reg_phone, const char *reg_email, td_idv_list *out);
/* A YELLOW whose list is empty becomes RED NO_IDV_METHOD: a step-up the end
 * user cannot pass would only strand the digital card in PENDING_IDV. */
void td_idv_settle(td_decision_result *d, const td_idv_list *l);
/* The entry with that id, or NULL. */
const td_idv_method *td_idv_find(const td_idv_list *l, const char *id);

/* "*******1234": one star per digit but the last four. -1 if phone is not a
 * usable number (7–15 digits) or out is too small. */
int td_mask_phone(const char *phone, char *out, size_t cap);
/* "j***@example.com": the first character of the local part, three stars,
 * the domain. -1 if email is not usable (one '@', both sides non-empty, no
 * blanks or control characters) or out is too small. */
int td_mask_email(const char *email, char *out, size_t cap);

/* ---- OTP delivery rate ---- */

typedef struct {
    int max;           /* deliveries allowed per window (3) */
    int64_t window_ms; /* the sliding window (10 minutes) */
} td_otp_limit;

void td_otp_limit_default(td_otp_limit *l);

/* Whether one more OTP delivery to a digital card is allowed at now_ms, given
 * the times of its earlier deliveries (any order; older ones are ignored).
 * When not, *retry_after_s (≥ 1) says when the oldest delivery that matters
 * leaves the window. */
bool td_otp_rate_check(const td_otp_limit *l, const int64_t *sent_ms, size_t n, int64_t now_ms, int64_t *retry_after_s);

/* ---- card data ---- */

/* The Luhn (mod 10) check over a string of digits; false if empty or not all digits. */
bool td_luhn_ok(const char *digits);

typedef enum { TD_PAN_OK, TD_PAN_NOT_DIGITS, TD_PAN_BAD_LENGTH, TD_PAN_BAD_LUHN } td_pan_status;
const char *td_pan_status_name(td_pan_status s);
/* A PAN is 10–19 ASCII digits (no blanks) passing Luhn. */
td_pan_status td_pan_check(const char *pan);

/* "MMYY" (exactly four digits, month 01–12) → month and 2000+YY. 0 or -1. */
int td_expiry_parse(const char *mmyy, int *month, int *year);
/* A card is valid through the last day of its expiry month: passed when
 * (exp_year, exp_month) is before (now_year, now_month). A month outside
 * 1–12 counts as passed. */
bool td_expiry_passed(int exp_month, int exp_year, int now_month, int now_year);
/* The UTC calendar year and month (1–12) of an epoch time in milliseconds. */
void td_year_month(int64_t ms, int *year, int *month);

#endif
