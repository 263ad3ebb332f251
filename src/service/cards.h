/* cards.h — the network tokenization use cases: issuers' cards and card
 * policies, tokenization decisions, OTP delivery, lifecycle events from the
 * TSP or wallet, issuer operations on digital cards and cards (carried out at
 * the TSP first), step-up timers, and the CARD token view for the Token API.
 * The engine (core/card.h, core/decision.h) decides; these functions read,
 * ask it, and apply its outcome in one store transaction: the record, its
 * event, its operation, the outbox rows it owes and its timers.
 * docs/network.md is the HTTP contract; docs/cards.md the engine's rules. */
#ifndef TD_CARDS_H
#define TD_CARDS_H

#include <jansson.h>

#include "core/card.h"
#include "core/decision.h"
#include "crypto/crypto.h"
#include "service/service.h"
#include "service/tsp.h"

/* ---- per-issuer card policy (policy.c) ---- */

typedef struct {
    td_decision_policy decision;
    td_idv_config idv;
    int64_t first_reminder_ms; /* after the YELLOW answer (24 h) */
    int64_t reminder_every_ms; /* between reminders (24 h) */
    int max_reminders;         /* 2; 0 = none */
    int64_t session_ms;        /* step-up session length (7 days) */
    td_otp_limit otp;          /* OTP deliveries per digital card (3 per 10 min) */
    bool notify_cancellation;  /* end-user message when a pending tokenization is canceled (true) */
} td_card_policy;

void td_card_policy_default(td_card_policy *p);
/* Parses the admin API's JSON (docs/network.md §policy) over the defaults:
 * absent fields keep their default; unknown fields, wrong types and values out
 * of range are refused (TD_E_INVALID_ARGUMENT naming the field). */
td_err td_card_policy_from_json(json_t *v, td_card_policy *p, td_error *e);
json_t *td_card_policy_to_json(const td_card_policy *p);
/* The issuer's stored policy, or the defaults. Reader or writer connection. */
td_st td_card_policy_load(td_svc *svc, td_conn *c, const char *issuer_id, td_card_policy *out);
/* The policy in effect for an issuer (admin API); NOT_FOUND for an unknown issuer. */
td_err td_svc_get_card_policy(td_svc *svc, const char *issuer_id, td_card_policy *out, td_error *e);

/* Stores an issuer's policy: the full effective policy as JSON, so a read
 * needs no merge. An unknown issuer is NOT_FOUND. */
typedef struct {
    td_write w;
    char issuer_id[16];
    char *json; /* the policy (td_card_policy_to_json, serialized; malloc'd, freed by the face) */
} td_put_card_policy;
void td_svc_put_card_policy(td_svc *svc, td_put_card_policy *cmd);

/* An issuer's outbox rows in id order after after_id (state NULL = any), for
 * operators; NOT_FOUND for an unknown issuer. */
td_err td_svc_list_outbox(td_svc *svc, const char *issuer_id, const char *state, int64_t after_id, int limit,
                          void (*fn)(const td_outbox_rec *, void *), void *arg, td_error *e);

/* ---- ids (times: util.h td_iso8601_ms) ---- */

/* New ids in ^[A-Za-z0-9_-]{1,64}$: "dc_" + 22 base62 (digital cards),
 * "op_" + 22 base62 (operations). */
void td_new_dcard_id(char out[65]);
void td_new_operation_id(char out[65]);

/* ---- applying an engine outcome (apply.c) ---- */

/* Everything needed to write one engine result for a digital card inside the
 * writer's transaction. */
typedef struct {
    td_dcard_rec *dc;           /* the record as read (updated in place on success) */
    const td_dcard_input *in;   /* what was applied */
    const td_dcard_result *res; /* td_dcard_apply's answer on dc->d */
    const char *event_type;     /* the type as received (unknown types verbatim) */
    const char *event_id;       /* inbound event id, "" for commands and timers */
    const char *operation_id;   /* the operation to record (commands: made before the TSP call); NULL = make one */
    const char *requestor_type; /* ISSUER, USER, TSP, D1 (operation records) */
    const char *reason, *reason_code;
    const char *detail_json; /* stored with the event; may be NULL */
    const char *answer_json; /* stored with the event (a duplicate gets it again); may be NULL */
    const td_card_policy *policy;
    const char *correlation_id; /* notifications: the session's; NULL = the digital card's enrolment id */
} td_apply_ctx;

/* Writes the outcome: for APPLIED the digital card (conditioned on the seq
 * read: TD_ST_CONFLICT if it moved), its event, the operation (DIGITIZE
 * outcomes complete dc->digitize_op_id instead of a new one), the outbox rows
 * (the ISSUER notice; USER messages for MSG_* effects), stopping step-up
 * (STOP_STEP_UP cancels OTP/REMINDER rows and timers); NO_OP_ALREADY,
 * IGNORED_LATE and STORED_UNKNOWN from an event record the event only (and
 * the accepted time); a REFUSED result writes nothing. A duplicate event id
 * returns TD_ST_CONFLICT (the caller replays the stored answer).
 * *op_out (may be NULL) gets the operation id recorded (or "" if none). */
td_st td_dcard_apply_write(td_svc *svc, td_conn *c, td_apply_ctx *a, char op_out[65]);

/* Starts a YELLOW card's step-up session: reminder and expiry timers. */
td_st td_stepup_schedule(td_svc *svc, td_conn *c, const td_dcard_rec *dc, const td_card_policy *p, int64_t now_ms);

/* ---- cards (issuer API; cards.c) ---- */

typedef struct {
    td_write w;
    char issuer_id[16];
    char card_id[49];
    char consumer_id[65];
    char pan[20]; /* wiped after use */
    char expiry[5];
    char phone[40];
    char email[256];
    td_card_state state;
    td_card_rec out;
} td_register_card;
void td_svc_register_card(td_svc *svc, td_register_card *cmd);

/* The card with its contact opened (phone and email in clear in out). */
td_err td_svc_get_card(td_svc *svc, const char *issuer_id, const char *card_id, td_card_rec *out, td_error *e);

/* ---- the end user's contact, sealed at rest (card_contact.c) ---- */

/* The associated data of a card's seals: its PAN's ("issuerId/cardId") and
 * its contact's ("contact:issuerId/cardId"). Registration, reads and
 * `tokenctl store rekey` all use these. */
#define TD_CARD_AAD_MAX (16 + 49 + 16)
void td_card_pan_aad(const char *issuer_id, const char *card_id, char *out, size_t cap);
void td_card_contact_aad(const char *issuer_id, const char *card_id, char *out, size_t cap);

/* Seals r's phone and email into r->contact_sealed (empty when both are
 * empty). 0, or -1 if sealing failed. */
int td_card_seal_contact(const uint8_t master[TD_MASTER_KEY_LEN], td_card_rec *r);
/* Opens r->contact_sealed into r->phone and r->email (a row with no seal keeps
 * what the store read). -1, with both blank, if it does not open. */
int td_card_open_contact(const uint8_t master[TD_MASTER_KEY_LEN], td_card_rec *r);
/* At start: seals the contacts of cards written before they were sealed.
 * 0, or -1 with the reason. */
int td_svc_seal_contacts(td_svc *svc, char *err, size_t cap);
/* fn gets each digital card of the card, oldest first. NOT_FOUND if the card is not the issuer's. */
td_err td_svc_list_dcards(td_svc *svc, const char *issuer_id, const char *card_id,
                          void (*fn)(const td_dcard_rec *, void *), void *arg, td_error *e);
/* Another issuer's digital card is NOT_FOUND (tenancy). */
td_err td_svc_get_dcard(td_svc *svc, const char *issuer_id, const char *id, td_dcard_rec *out, td_error *e);
td_err td_svc_get_operation(td_svc *svc, const char *issuer_id, const char *id, td_operation_rec *out, td_error *e);

/* ---- issuer operations (issuer_ops.c) ---- */

/* D1 digital-card reason codes (docs/network.md): USER_DECISION,
 * ISSUER_DECISION (default), DEVICE_LOST, DEVICE_STOLEN, DEVICE_FOUND,
 * SUSPECTED_FRAUD, NOT_FRAUD, ACCOUNT_CLOSED, OTHER. */
bool td_dcard_reason_code_ok(const char *code);
/* D1 card-level reason codes: CARD_LOST, CARD_FOUND, CARD_STOLEN, CARD_BROKEN,
 * FRAUD, USER_DECISION, ISSUER_DECISION (default), CLOSED_ACCOUNT, CLOSED_CARD. */
bool td_card_reason_code_ok(const char *code);

/* suspend | resume | delete on one digital card, by the issuer. The face
 * validated ids and the body. Reads, asks the engine (a refusal answers
 * without a TSP call), calls the TSP connector on the calling thread, then
 * commits. Answers through w like every write. */
typedef struct {
    td_write w;
    char issuer_id[16];
    char digital_card_id[65];
    td_dcard_ev type; /* TD_EV_SUSPEND, TD_EV_RESUME, TD_EV_DELETE */
    char reason[65];
    char reason_code[40];
    char correlation_id[65]; /* x-correlation-id, may be "" */
    /* out */
    td_dcard_outcome outcome;
    td_dcard_why why;
    char operation_id[65];
    td_dcard_rec after; /* the record as committed (id, state...); free with td_dcard_rec_free */
} td_dcard_op;
void td_svc_dcard_op(td_svc *svc, td_dcard_op *cmd);

/* suspend | resume | delete on a card; a delete deletes every live digital
 * card through the TSP, each with its own operation. */
typedef struct {
    td_write w;
    char issuer_id[16];
    char card_id[49];
    td_card_cmd cmd;
    char reason[65];
    char reason_code[40];
    char correlation_id[65];
    /* out */
    td_dcard_outcome outcome;
    char operation_id[65];
    int n_deleted; /* digital cards deleted by the cascade */
    int n_failed;  /* digital cards the TSP did not delete (left as they were) */
} td_card_op_cmd;
void td_svc_card_op(td_svc *svc, td_card_op_cmd *cmd);

/* ---- network side (network.c) ---- */

typedef struct {
    td_write w;
    char issuer_id[16];
    char correlation_id[65];
    char pan[20];     /* either a PAN (wiped after use) ... */
    char card_id[49]; /* ... or the issuer's card reference */
    char expiry[5];   /* MMYY; "" = not given (card reference only) */
    char wallet_provider_id[129];
    char token_requestor_id[65];
    char token_storage_id[129];
    bool is_primary;
    char *device_json;              /* malloc'd, validated object; freed by dispose */
    int wallet_score, device_score; /* 0 = not given */
    char phone[40], email[256];     /* the end user as the wallet knows them; "" = not given */
    /* out */
    bool replayed_request; /* a retried correlation id: the first answer */
    char *answer_json;     /* the answer (malloc'd) */
} td_tokenize;
void td_svc_tokenize(td_svc *svc, td_tokenize *cmd);

typedef struct {
    td_write w;
    char issuer_id[16];
    char digital_card_id[65];
    char method_id[24];
    char otp[16]; /* wiped after sealing; never stored in clear or logged */
    /* out */
    char masked_target[TD_IDV_VALUE_MAX];
    int64_t retry_after_s; /* rate-limited: TD_E_RATE_LIMITED and this */
} td_send_otp;
void td_svc_send_otp(td_svc *svc, td_send_otp *cmd);

typedef struct {
    td_write w;
    char issuer_id[16];
    char event_id[65];
    char digital_card_id[65];
    char type[49]; /* as received, up to 48 characters */
    td_source source;
    int64_t event_ms;      /* 0 = not given */
    char reason_code[41];  /* an open string, up to 40 characters */
    char suspended_by[25]; /* MDES suspendedBy; "" = from the source */
    char *detail_json;     /* malloc'd or NULL */
    /* out */
    bool duplicate;
    char *answer_json; /* malloc'd */
} td_ingest_event;
void td_svc_ingest_event(td_svc *svc, td_ingest_event *cmd);

/* ---- step-up timers (timers.c) ---- */

/* Fires one due timer that the runner (src/sched/) picked, at `now_ms`: a
 * REMINDER owes a USER REMINDER row while the card waits for ID&V; a
 * STEPUP_EXPIRE leases the timer, deletes the pending card through the TSP
 * (on the calling thread, outside any transaction) and then applies
 * STEPUP_EXPIRE (DIGITIZE FAILED), or reschedules the timer a minute later if
 * the TSP failed; a timer of another kind is closed. True when this call
 * fired it (false: nothing to do, another runner has it, or it waits for a
 * retry). */
bool td_svc_fire_timer(td_svc *svc, const td_timer_rec *t, int64_t now_ms);

/* ---- synchronous writes (timers.c) ---- */

/* Submits w (its run set) and waits until it completed: committed, refused
 * or failed. Sets w->complete and w->face (and w->render if NULL: an empty
 * answer); returns w->err.code. The caller frees w->body. Never call it on
 * the writer thread (it would wait for itself). */
td_err td_svc_submit_wait(td_svc *svc, td_write *w);

/* ---- the Token API's CARD tokens (card_tokens.c) ---- */

/* The Token.io-shaped token object for a digital card (malloc'd JSON):
 * {id, payload:{version, refId, issuer:{id}, from:{id: consumer or cardId},
 * card:{...}}, payloadSignatures:[]} (docs/network.md §Token API). */
char *td_card_token_json(const td_dcard_rec *dc);
/* The issuer's digital cards as CARD tokens, oldest first, created in
 * [start, end) (0 = unbounded), paged; fn gets each token's JSON. */
td_err td_svc_list_card_tokens(td_svc *svc, const char *issuer_id, int64_t start_ms, int64_t end_ms, int64_t offset,
                               int limit, void (*fn)(const char *json, void *), void *arg, td_error *e);

#endif
