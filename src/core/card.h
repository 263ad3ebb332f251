/* card.h — the engine for network tokenization: the digital card (CARD token)
 * state machine and the physical card it belongs to. Pure decisions, no I/O:
 * each function maps (current record, command or event) to an outcome that
 * the service applies in one store transaction. docs/cards.md is the guide. */
#ifndef TD_CARD_H
#define TD_CARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The three answers a tokenization decision gives (decision.h computes it;
 * it lives here because it is also the first input of the card machine). */
typedef enum { TD_VERDICT_GREEN, TD_VERDICT_YELLOW, TD_VERDICT_RED, TD_VERDICT__COUNT } td_verdict;

const char *td_verdict_name(td_verdict v); /* GREEN, YELLOW, RED */
/* Case-insensitive: classic issuers answer both "green" and "GREEN". */
int td_verdict_parse(const char *s, td_verdict *out);

/* ---- digital card states ---- */

typedef enum {
    TD_DC_PENDING_IDV, /* YELLOW: created inactive, waiting for ID&V */
    TD_DC_ACTIVE,
    TD_DC_SUSPENDED,
    TD_DC_DELETED,  /* terminal */
    TD_DC_DECLINED, /* RED: a record no lifecycle call can use; terminal */
    TD_DC_EXPIRED,  /* the TSP expired the token; only a delete applies */
    TD_DC__COUNT
} td_dcard_state;

const char *td_dcard_state_name(td_dcard_state s);
int td_dcard_state_parse(const char *s, td_dcard_state *out);
/* DELETED, DECLINED and EXPIRED: the card has ended. */
bool td_dcard_state_is_final(td_dcard_state s);

/* ---- who started a change, and who holds a suspension ---- */

/* The `source` of an event or command (classic notifyVirtualCardChange). */
typedef enum { TD_SRC_WALLET, TD_SRC_TSP, TD_SRC_ISSUER, TD_SRC__COUNT } td_source;

const char *td_source_name(td_source s);
int td_source_parse(const char *s, td_source *out);

/* Parties that can hold a suspension, as bits of a set: a card returns to
 * ACTIVE only when the set is empty. WALLET stands for the token requestor
 * and its end user (MDES TOKEN_REQUESTOR); MOBILE_PIN_LOCKED and CARDHOLDER
 * are MDES `suspendedBy` values kept apart so that each needs its own lift. */
typedef enum {
    TD_PARTY_NONE = 0,
    TD_PARTY_ISSUER = 1u << 0,
    TD_PARTY_TSP = 1u << 1,
    TD_PARTY_WALLET = 1u << 2,
    TD_PARTY_MOBILE_PIN_LOCKED = 1u << 3,
    TD_PARTY_CARDHOLDER = 1u << 4,
} td_party;
#define TD_PARTY_ALL 0x1fu

typedef uint8_t td_suspenders; /* a set of td_party bits */

const char *td_party_name(td_party p); /* ISSUER, TSP, WALLET, MOBILE_PIN_LOCKED, CARDHOLDER; "" for NONE */
int td_party_parse(const char *s, td_party *out);
/* The party a source acts as: WALLET→WALLET, TSP→TSP, ISSUER→ISSUER. */
td_party td_party_of_source(td_source s);
/* An MDES `suspendedBy` value: ISSUER→ISSUER, TOKEN_REQUESTOR→WALLET,
 * MOBILE_PIN_LOCKED→MOBILE_PIN_LOCKED, CARDHOLDER→CARDHOLDER; anything else
 * (or NULL) → TD_PARTY_NONE, meaning "derive it from the event's source". */
td_party td_party_from_mdes(const char *suspended_by);
/* The set as "ISSUER,WALLET" (bit order, "" when empty), for storage and
 * display. Returns 0, or -1 if cap is too small (out is then ""). */
int td_suspenders_format(td_suspenders set, char *out, size_t cap);
/* The inverse; an empty string is the empty set. -1 on an unknown name. */
int td_suspenders_parse(const char *s, td_suspenders *out);

/* ---- inputs ---- */

typedef enum {
    TD_EV_ACTIVATE,    /* classic ACTIVATE: the TSP activated the token */
    TD_EV_IDV_SUCCESS, /* ID&V result: success (same effect as ACTIVATE) */
    TD_EV_IDV_FAILED,  /* ID&V result: one failed attempt; the session goes on */
    TD_EV_SUSPEND,
    TD_EV_RESUME,
    TD_EV_DELETE,          /* deleted at the TSP (or by the issuer) */
    TD_EV_DELETE_FROM_APP, /* MDES: removed from the wallet app, revivable for 95 days */
    TD_EV_EXPIRE,          /* the token itself expired at the TSP */
    TD_EV_STEPUP_EXPIRE,   /* tokend's own timer: the step-up session ran out */
    TD_EV_UNKNOWN,         /* any other type: stored verbatim by the service, acknowledged */
    TD_EV__COUNT
} td_dcard_ev;

const char *td_dcard_ev_name(td_dcard_ev e);
/* Never fails: an unknown or NULL name is TD_EV_UNKNOWN (unknown is not an
 * error). Case-insensitive; IDV_SUCCEEDED/IDV_SUCCESS, STEP_UP_EXPIRED/
 * STEPUP_EXPIRE are accepted spellings. */
td_dcard_ev td_dcard_ev_parse(const char *s);

/* Commands (the issuer API, the Token API's cancel, a card-level cascade) may
 * be refused; events (from the TSP or wallet, and tokend's own timers) are
 * facts and are always acknowledged: what cannot apply is recorded and ignored. */
typedef enum { TD_ORIGIN_EVENT, TD_ORIGIN_COMMAND } td_origin;

typedef struct {
    td_dcard_ev type;
    td_source source;
    td_origin origin;
    td_party party;   /* the suspender the event names (MDES suspendedBy); NONE = from source */
    int64_t event_ms; /* upstream event time; for commands and timers, now_ms. 0 = not given */
    int64_t now_ms;   /* when tokend received or decided it */
} td_dcard_input;

/* ---- the record ---- */

/* What the engine needs to know about a digital card, and what it gives back. */
typedef struct {
    td_dcard_state state;
    td_suspenders suspended_by; /* non-empty only while SUSPENDED */
    int64_t last_event_ms;      /* newest upstream event time accepted; 0 = none yet */
    int64_t seq;                /* sequence number of the last recorded event */
    bool stepup_open;           /* a step-up session runs: reminders, OTP deliveries, expiry timer */
    int idv_failures;           /* failed ID&V attempts reported during step-up */
    int64_t revivable_until_ms; /* DELETE_FROM_APP: MDES may revive it until then; 0 = no */
} td_dcard;

#define TD_REVIVABLE_MS (95LL * 24 * 3600 * 1000) /* MDES keeps an app-deleted token 95 days */

/* ---- outcomes ---- */

typedef enum {
    TD_DC_APPLIED,        /* the record changes: write it, record the event, owe the effects */
    TD_DC_NO_OP_ALREADY,  /* already so: a success that changes nothing and owes nothing */
    TD_DC_IGNORED_LATE,   /* an event that cannot apply (late, stale, out of place): recorded, acknowledged */
    TD_DC_REFUSED,        /* a command that is not allowed: nothing changes, nothing recorded */
    TD_DC_STORED_UNKNOWN, /* an unknown event type: recorded, acknowledged */
} td_dcard_outcome;

const char *td_dcard_outcome_name(td_dcard_outcome o);

/* Why an input was refused or ignored; a face maps these to its own codes
 * (docs/cards.md suggests the mapping). */
typedef enum {
    TD_DCW_NONE,
    TD_DCW_NOT_A_COMMAND,     /* only SUSPEND, RESUME and DELETE can be commands */
    TD_DCW_PENDING_IDV,       /* suspend before activation */
    TD_DCW_DELETED,           /* nothing moves a deleted card */
    TD_DCW_DECLINED,          /* a RED record is unusable */
    TD_DCW_EXPIRED,           /* only a delete applies to an expired token */
    TD_DCW_ALREADY_ACTIVATED, /* ID&V news about a card that has moved past step-up */
    TD_DCW_OTHER_PARTY,       /* resume by a party that holds no suspension while another does */
    TD_DCW_NOT_PERMITTED,     /* a wallet cannot activate a pending card by resuming it */
    TD_DCW_STALE,             /* an older suspend/resume than the newest event accepted */
} td_dcard_why;

const char *td_dcard_why_name(td_dcard_why w);
const char *td_dcard_why_text(td_dcard_why w);

/* The neutral notification a change owes the issuer backend (one per change at
 * most); each delivery profile formats it (d1, classic, webhook). */
typedef enum {
    TD_OP_NONE, /* nothing owed */
    TD_OP_DIGITIZE,
    TD_OP_SUSPEND,
    TD_OP_RESUME,
    TD_OP_DELETE,
    TD_OP_DELETE_FROM_APP,
    TD_OP_EXPIRE,
} td_card_op;

typedef enum { TD_OPS_PENDING, TD_OPS_SUCCESSFUL, TD_OPS_FAILED } td_op_status;

typedef enum {
    TD_DF_NONE,
    TD_DF_CANCELED_BY_USER,   /* the end user deleted the pending card (source WALLET or TSP) */
    TD_DF_CANCELED_BY_ISSUER, /* the issuer deleted the pending card */
    TD_DF_DECLINED,           /* RED */
    TD_DF_STEP_UP_EXPIRED,    /* the step-up session (or the token) ran out with no ID&V attempt failed */
    TD_DF_IDV_FAILED,         /* the session ran out after at least one failed ID&V attempt */
} td_digitize_reason;

const char *td_card_op_name(td_card_op op);
const char *td_op_status_name(td_op_status s);
const char *td_digitize_reason_name(td_digitize_reason r);
/* The status shown to people (issuer back office, end-user message) for a
 * DIGITIZE FAILED reason: "canceled by the end user", "declined", ... */
const char *td_digitize_reason_text(td_digitize_reason r);

typedef struct {
    td_card_op op;
    td_op_status status;
    td_digitize_reason reason; /* DIGITIZE FAILED only */
    td_source source;          /* who started the change */
} td_card_notice;

/* Effects other than the notification, as bits. */
enum {
    TD_FX_START_STEP_UP = 1u << 0,     /* schedule reminders and the session expiry */
    TD_FX_STOP_STEP_UP = 1u << 1,      /* cancel pending OTP deliveries, reminders and the expiry timer */
    TD_FX_ALLOW_REENROLMENT = 1u << 2, /* the card may be tokenized again for this wallet/device */
    TD_FX_TSP_CALL = 1u << 3,          /* carry the change out at the TSP (through the connector) first */
    TD_FX_MSG_ACTIVATION = 1u << 4,    /* end-user message: the card is ready in the wallet */
    TD_FX_MSG_DELETION = 1u << 5,      /* end-user message: the digital card was deleted */
    TD_FX_MSG_CANCELLATION = 1u << 6,  /* end-user message: the tokenization was canceled */
};
#define TD_FX__COUNT 7
/* The name of one effect bit (START_STEP_UP, ...); "" for anything else. */
const char *td_fx_name(unsigned bit);

typedef struct {
    td_dcard_outcome outcome;
    td_dcard_why why;  /* REFUSED and IGNORED_LATE only */
    td_dcard rec;      /* the record after the input (equal to the view unless something changed) */
    bool record_event; /* append the input to the card's events under rec.seq */
    td_card_notice notice;
    unsigned effects; /* TD_FX_* bits */
} td_dcard_result;

/* The record a tokenization decision creates: GREEN → ACTIVE + DIGITIZE
 * SUCCESSFUL; YELLOW → PENDING_IDV + DIGITIZE PENDING (step-up starts); RED →
 * DECLINED + DIGITIZE FAILED reason DECLINED. seq is 1. */
td_dcard_result td_dcard_initial(td_verdict v);

/* Decides one command or event against the card's current record. */
td_dcard_result td_dcard_apply(const td_dcard *view, const td_dcard_input *in);

/* ---- the physical card ---- */

typedef enum { TD_CS_ACTIVE, TD_CS_SUSPENDED, TD_CS_DELETED, TD_CS__COUNT } td_card_state;
typedef enum { TD_CARD_SUSPEND, TD_CARD_RESUME, TD_CARD_DELETE, TD_CARD_CMD__COUNT } td_card_cmd;

const char *td_card_state_name(td_card_state s);
int td_card_state_parse(const char *s, td_card_state *out);
const char *td_card_cmd_name(td_card_cmd c);
int td_card_cmd_parse(const char *s, td_card_cmd *out);

typedef struct {
    td_dcard_outcome outcome; /* APPLIED, NO_OP_ALREADY or REFUSED (why = DELETED) */
    td_dcard_why why;
    td_card_state state;   /* after */
    td_card_notice notice; /* card-level SUSPEND/RESUME/DELETE SUCCESSFUL, source ISSUER */
} td_card_result;

/* An issuer command on the physical card. Suspend and resume leave the
 * digital cards as they are; a delete cascades (td_card_cascade). */
td_card_result td_card_apply(td_card_state st, td_card_cmd c);

/* Whether `c` on the card must be passed down to a digital card in state
 * `dc`; if so, *out is the command to give it (a DELETE from the ISSUER at
 * now_ms). Only a delete cascades, and only to digital cards that still
 * live (PENDING_IDV, ACTIVE, SUSPENDED, EXPIRED). */
bool td_card_cascade(td_card_cmd c, td_dcard_state dc, int64_t now_ms, td_dcard_input *out);

#endif
