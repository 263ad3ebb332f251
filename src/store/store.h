/* store.h — the store as a struct of verbs. The service layer calls these and
 * holds no SQL; src/store/sqlite/ implements them (one file per entity group).
 *
 * Reads run on a per-thread read connection (td_store_reader). Writes are jobs
 * handed to td_store_submit: one writer commits many jobs in one transaction
 * (group commit), each job inside its own savepoint so one job's failure does
 * not undo the others; `done` runs after the commit is durable (or failed). */
#ifndef TD_STORE_H
#define TD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/card.h"
#include "core/token.h"

typedef enum {
    TD_ST_OK = 0,
    TD_ST_NOT_FOUND,
    TD_ST_CONFLICT, /* a unique constraint refused the row */
    TD_ST_BUSY,     /* retryable: lock contention or serialization failure */
    TD_ST_ERROR,    /* hard error: the store is broken or unreachable */
    TD_ST_INTERNAL, /* not the store: a bug or misconfiguration in the job (500) */
    TD_ST_UNKNOWN,  /* the connection broke during COMMIT: it may or may not have committed */
} td_st;

typedef struct td_store td_store;
typedef struct td_conn td_conn; /* one connection: a reader, or the writer inside a transaction */

/* ---- records (fixed-size ids; JSON documents as malloc'd strings) ---- */

#define TD_ID_MAX 96

typedef struct {
    char id[TD_ID_MAX];
    char display_name[256];
    int64_t created_ms;
} td_member_rec;

typedef struct {
    char member_id[TD_ID_MAX];
    char key_id[24];
    td_level level;
    char algorithm[16]; /* ED25519 */
    uint8_t public_key[32];
    uint8_t sealed_secret[128]; /* private key sealed with the master key; empty for submitted keys */
    size_t sealed_len;
    int64_t created_ms;
    int64_t expires_ms; /* 0 = never */
} td_key_rec;

typedef enum { TD_CRED_MEMBER = 0, TD_CRED_ISSUER = 1 } td_cred_kind;

typedef struct {
    char hash[65]; /* keyed hash of the API key */
    char key_id[17]; /* names the key without showing it: td_api_key_id (migration 012/010) */
    td_cred_kind kind;
    char owner_id[TD_ID_MAX]; /* memberId or issuerId */
    td_level level;           /* members */
    char role[16];            /* issuers: issuer | network */
    int64_t created_ms;
    char cert_sha256[65]; /* bound client certificate: SHA-256 of its DER, lower-case hex; "" = not bound */
    int64_t revoked_ms; /* 0 = valid; else when it was revoked (it no longer authenticates) */
} td_cred_rec;

/* One entry of the credential audit log (credential_events): an API key made
 * or revoked, a master key rotation. */
typedef struct {
    int64_t id; /* assigned on insert, increasing */
    int64_t time_ms;
    char type[32];       /* API_KEY_CREATED, API_KEY_REVOKED, MASTER_KEY_ROTATED, ADMIN_KEY_ROTATED */
    char owner_kind[8];  /* member | issuer | store | admin */
    char owner_id[TD_ID_MAX];
    char key_id[24];     /* the API key's id; "" for the store */
    char detail_json[512];
} td_credevent_rec;

typedef struct {
    char id[16];
    char display_name[256];
    int64_t created_ms;
} td_issuer_rec;

typedef struct {
    char id[TD_ID_MAX];
    td_kind kind;
    char from_id[TD_ID_MAX];
    char to_id[TD_ID_MAX];
    td_request_state state;
    int64_t created_ms;
    int64_t expires_ms;
    char *request_json; /* the stored TokenRequest object {id, requestOptions, requestPayload} */
    char token_id[TD_ID_MAX];
    char *signature_json;  /* {keyId, memberId, signature} of the ENDORSED signature, once processed */
    char consent_hash[65]; /* hash of the current one-time consent code ("" if none) */
    int64_t consent_expires_ms;
    bool consent_used;
} td_request_rec;

typedef struct {
    char id[TD_ID_MAX];
    td_kind kind;
    td_token_state state;
    char from_id[TD_ID_MAX];
    char to_id[TD_ID_MAX];
    char issuer_id[TD_ID_MAX];
    char ref_id[32];
    char acting_as_ref_id[64];
    char token_request_id[TD_ID_MAX];
    char replaced_by[TD_ID_MAX];
    char canceled_by[TD_ID_MAX];
    int64_t created_ms;
    int64_t expires_ms;
    int64_t seq;             /* number of the last event appended */
    char *json;              /* the Token object exactly as served */
    char *payload_canonical; /* canonical JSON of payload: the bytes signed */
    char *accounts_src;      /* space-separated accountIds, for filters (may be NULL) */
    char *accounts_dst;
} td_token_rec;

typedef struct {
    char token_id[TD_ID_MAX];
    int64_t seq;
    int64_t time_ms;
    char type[32]; /* CREATED, CANCELED, ... */
    char actor[TD_ID_MAX];
    char customer_ip[64];
    char customer_initiated[8];
    char customer_device_id[128];
    const char *detail_json; /* optional */
} td_event_rec;

typedef struct {
    int status;
    char *body; /* malloc'd */
    char req_hash[65];
} td_idem_rec;

typedef struct {
    const char *member_id; /* the caller: only tokens it is a party to */
    int kind;              /* -1 = all kinds */
    int role;              /* 0 ANY, 1 FROM, 2 TO, 3 ISSUER */
    const char *source_account;
    const char *destination_account;
    int64_t start_ms, end_ms; /* 0 = unbounded; created_ms in [start, end) */
    const char *acting_as_ref_id;
    int64_t offset;
    int limit;
} td_token_filter;


/* ---- network tokenization records (migration 003; docs/network.md) ---- */

typedef struct {
    char issuer_id[16];
    char card_id[49];
    char consumer_id[65];
    char pan_fp[65];             /* td_pan_fingerprint */
    uint8_t pan_sealed[128];     /* td_pan_seal, AAD "issuerId/cardId" */
    size_t pan_sealed_len;
    char last4[5];
    char expiry[5]; /* MMYY */
    /* The end user's contact, as the issuer registered it; "" = none. Stored
     * sealed (contact_sealed, AAD "contact:issuerId/cardId"): the store writes
     * and reads only the seal, and the service opens it into these two. A row
     * written before migration 010/008 may still hold them in clear until
     * td_svc_seal_contacts seals it at the next start. */
    char phone[40];
    char email[256];
    uint8_t contact_sealed[400];
    size_t contact_sealed_len;
    td_card_state state;
    int64_t seq;
    int64_t created_ms, updated_ms;
} td_card_rec;

typedef struct {
    char id[65]; /* digitalCardId, also the CARD token's id */
    char issuer_id[16];
    char card_id[49]; /* "" when the card was unknown (a RED record) */
    td_dcard d;       /* the engine's view: state, suspenders, seq, step-up flags */
    td_verdict verdict;
    char decision_reason[32];
    char wallet_provider_id[129];
    char token_requestor_id[65];
    char token_storage_id[129];
    bool is_primary;
    char correlation_id[65]; /* the enrolment session: the tokenization request's */
    char digitize_op_id[65]; /* the DIGITIZE operation: PENDING then SUCCESSFUL/FAILED under one id */
    char last4[5];
    char *device_json;  /* malloc'd; "{}" when none */
    char *idv_json;     /* malloc'd: the ID&V methods offered, [{id,type,value}] */
    char *answer_json;  /* malloc'd: the tokenization answer, replayed to a retried request */
    int64_t stepup_deadline_ms; /* YELLOW: when the step-up session ends */
    int64_t created_ms, updated_ms;
} td_dcard_rec;

typedef struct {
    char digital_card_id[65];
    int64_t seq;
    char issuer_id[16];
    char event_id[65]; /* "" for commands and timers */
    char source[8];    /* WALLET | TSP | ISSUER */
    char type[49];     /* as received (unknown types verbatim), up to 48 characters */
    char outcome[24];  /* td_dcard_outcome_name */
    char why[32];
    int64_t event_ms, time_ms;
    const char *detail_json; /* may be NULL ("{}") */
    const char *answer_json; /* the answer given; a duplicate gets it again (may be NULL) */
} td_dcard_event_rec;

typedef struct {
    char id[65];
    char issuer_id[16];
    char digital_card_id[65];
    char card_id[49];
    char operation[32]; /* DIGITIZE, SUSPEND, RESUME, DELETE, ... */
    char status[16];    /* PENDING, SUCCESSFUL, FAILED */
    char requestor_type[16]; /* ISSUER, USER, TSP, D1 */
    char reason[65];
    char reason_code[40];
    char error_code[40];
    char correlation_id[65];
    int64_t start_ms, end_ms; /* end 0 = not ended */
} td_operation_rec;

typedef struct {
    int64_t id;            /* assigned on insert */
    char issuer_id[16];
    char channel[8];       /* ISSUER (a notification) | USER (an end-user message) */
    char digital_card_id[65];
    char card_id[49];
    int64_t dcard_seq;     /* the digital card's seq after the change: deliveries keep this order */
    char operation_id[65];
    char operation[32];
    char status[16];
    char error_code[40];
    char source[8];
    char correlation_id[65];
    char wallet_provider_id[129];
    char message[24];      /* USER: ACTIVATION, REMINDER, DELETION, CANCELLATION, OTP */
    char method_id[24];    /* USER: the channel (otp-sms, otp-email) */
    uint8_t secret_sealed[160]; /* OTP: sealed with the master key, never in clear */
    size_t secret_len;
    int64_t event_ms, created_ms, due_ms;
    char state[12];        /* PENDING, IN_FLIGHT, DELIVERED, DEAD, CANCELLED */
    /* delivery (migration 005) */
    char order_key[80];    /* deliveries with the same key go in id order: the digital card, or "card:<cardId>"; USER rows prefixed "msg:" */
    int attempts;
    int last_status;       /* HTTP status of the last attempt; 0 = none or no answer */
    char last_error[160];  /* never a secret */
    int64_t first_attempt_ms, lease_until_ms, done_ms;
    int64_t replayed_ms;   /* the last replay of this dead letter (0: never): its maximum age starts again there */
    /* the digital card as the change left it (migration 007): what the notification says about it */
    char token_storage_id[129];
    char last4[5];
    bool is_primary;
    int dcard_state;       /* td_dc_state after the change; -1 not known (card-level rows, rows older than 007) */
} td_outbox_rec;

/* The outcome of one delivery attempt, as outbox_attempt takes it. */
typedef struct {
    int64_t id;
    char issuer_id[16];     /* the row's */
    int64_t lease_until_ms; /* the claim's: the outcome counts only while it holds */
    char state[12];         /* DELIVERED, DEAD, PENDING */
    int http_status;
    char error[160];
    int64_t retry_at_ms;
} td_outbox_outcome;

/* How an issuer's backend is reached (migration 005; docs/notifications.md). */
typedef struct {
    char issuer_id[16];
    char profile[12];      /* d1 | classic | webhook */
    char base_url[512];    /* d1/classic: the base; webhook: the endpoint */
    char auth[16];         /* none | bearer | oauth2 | webhook */
    uint8_t secret_sealed[512]; /* bearer token, OAuth2 client secret, or webhook secret, sealed */
    size_t secret_len;
    char oauth_token_url[512];
    char oauth_client_id[128];
    char oauth_scope[128];
    char tls_cert_file[512];   /* client certificate (mTLS), PEM; "" = none */
    char tls_key_file[512];
    char tls_ca_file[512];     /* CA bundle to verify the backend with; "" = system */
    char tls_pinned_key[128];  /* curl CURLOPT_PINNEDPUBLICKEY ("sha256//..."); "" = none */
    int d1_batch_max;          /* operations per Notify Card Operation call (1 = no batching) */
    int64_t max_age_ms;        /* retry until this old, then dead letter (24 h) */
    int timeout_ms;            /* per attempt (5000) */
    char messaging_url[512];   /* end-user messages; "" = not sent (kept as DEAD "no messaging endpoint") */
    char *templates_json;      /* malloc'd: {"ACTIVATION": "...", ...}; NULL/"" = defaults */
    int64_t updated_ms;
} td_delivery_rec;

typedef struct {
    int64_t id; /* assigned on insert */
    char issuer_id[16];
    char digital_card_id[65];
    char kind[16]; /* REMINDER | STEPUP_EXPIRE */
    int n;         /* REMINDER: its number, 1.. */
    int64_t due_ms;
    char state[12]; /* PENDING, FIRED, CANCELLED */
} td_timer_rec;

typedef struct {
    char issuer_id[16];
    int64_t rows; /* PENDING and IN_FLIGHT */
} td_unroutable;
/* One row's values sealed with the master key, as `tokenctl store rekey`
 * reads and rewrites them (docs/operations.md). Which fields a kind uses: */
typedef enum {
    TD_SEALED_MEMBER_KEY = 0, /* owner member_id, id key_id; blob: sealed_secret */
    TD_SEALED_CARD,           /* owner issuer_id, id card_id; blob: pan_sealed, blob2: contact_sealed, fp: pan_fp */
    TD_SEALED_DELIVERY,       /* owner issuer_id; blob: secret_sealed */
    TD_SEALED_OUTBOX,         /* owner issuer_id, num id; blob: secret_sealed (an OTP) */
    TD_SEALED_IDEM,           /* owner scope, id key; text: body (a sealed answer), fp: req_hash */
    TD_SEALED_KINDS
} td_sealed_kind;

typedef struct {
    td_sealed_kind kind;
    char owner[TD_ID_MAX];
    char id[256];
    int64_t num;
    uint8_t blob[512];
    size_t blob_len;
    uint8_t blob2[400];
    size_t blob2_len;
    char fp[65];
    char *text; /* malloc'd */
} td_sealed_rec;

/* ---- the verbs ---- */

typedef struct td_store_ops {
    td_st (*ping)(td_conn *c);

    td_st (*member_insert)(td_conn *c, const td_member_rec *m);
    td_st (*member_get)(td_conn *c, const char *id, td_member_rec *out);

    td_st (*key_insert)(td_conn *c, const td_key_rec *k);
    td_st (*key_get)(td_conn *c, const char *member_id, const char *key_id, td_key_rec *out);
    /* The member's newest generated (signing) key at exactly this level. */
    td_st (*key_for_level)(td_conn *c, const char *member_id, td_level level, td_key_rec *out);
    /* Calls fn for each key of the member, oldest first. */
    td_st (*key_list)(td_conn *c, const char *member_id, void (*fn)(const td_key_rec *, void *), void *arg);
    td_st (*key_delete)(td_conn *c, const char *member_id, const char *key_id);

    td_st (*cred_insert)(td_conn *c, const td_cred_rec *k);
    td_st (*cred_get)(td_conn *c, const char *hash, td_cred_rec *out); /* revoked ones too */
    /* Sets the credential's cert_sha256 ("" unbinds); NOT_FOUND unless the
     * credential exists and belongs to this kind and owner. */
    td_st (*cred_bind)(td_conn *c, const char *hash, td_cred_kind kind, const char *owner_id, const char *cert_sha256);
    /* Sets revoked_ms = now_ms on the owner's key key_id unless it is revoked
     * already (then it keeps its first time); out gets the row as it now is.
     * NOT_FOUND if the owner has no such key. */
    td_st (*cred_revoke)(td_conn *c, td_cred_kind kind, const char *owner_id, const char *key_id, int64_t now_ms,
                         td_cred_rec *out);
    /* The owner's keys, oldest first, revoked ones included. */
    td_st (*cred_list)(td_conn *c, td_cred_kind kind, const char *owner_id, void (*fn)(const td_cred_rec *, void *),
                       void *arg);
    td_st (*credevent_append)(td_conn *c, td_credevent_rec *e); /* sets e->id */
    /* Events with id > after_id, in id order, at most limit. */
    td_st (*credevent_list)(td_conn *c, int64_t after_id, int limit, void (*fn)(const td_credevent_rec *, void *),
                            void *arg);

    td_st (*issuer_insert)(td_conn *c, const td_issuer_rec *i);
    td_st (*issuer_get)(td_conn *c, const char *id, td_issuer_rec *out);

    td_st (*request_insert)(td_conn *c, const td_request_rec *r);
    td_st (*request_get)(td_conn *c, const char *id, td_request_rec *out);
    td_st (*request_update)(td_conn *c, const td_request_rec *r); /* state, token, signature, consent */

    td_st (*token_insert)(td_conn *c, const td_token_rec *t);
    td_st (*token_get)(td_conn *c, const char *id, td_token_rec *out);
    /* token_get, and the member's signing key at level (as key_for_level; all
     * zero when there is none) read with it, in one statement where the
     * engine allows: what a cancel decides on and signs with. */
    td_st (*token_get_signing)(td_conn *c, const char *id, const char *member_id, td_level level, td_token_rec *out,
                               td_key_rec *key);
    /* Only when the stored seq still equals expect_seq; TD_ST_CONFLICT otherwise.
     * With ev, also appends that event (as event_append), in one statement
     * where the engine allows: a cancel is then one round trip. */
    td_st (*token_update)(td_conn *c, const td_token_rec *t, int64_t expect_seq, const td_event_rec *ev);
    /* Calls fn for each matching token (json only is guaranteed filled). */
    td_st (*token_list)(td_conn *c, const td_token_filter *f, void (*fn)(const td_token_rec *, void *), void *arg);

    td_st (*event_append)(td_conn *c, const td_event_rec *e);
    td_st (*event_count)(td_conn *c, const char *token_id, int64_t *out);

    td_st (*idem_get)(td_conn *c, const char *scope, const char *key, td_idem_rec *out);
    td_st (*idem_put)(td_conn *c, const char *scope, const char *key, const td_idem_rec *r);

    /* issuers' card policy (JSON, "" = defaults) */
    td_st (*issuer_policy_get)(td_conn *c, const char *issuer_id, char **json_out); /* malloc'd */
    td_st (*issuer_policy_put)(td_conn *c, const char *issuer_id, const char *json);

    /* cards: CONFLICT on a duplicate (issuer, card) or (issuer, PAN fingerprint) */
    td_st (*card_insert)(td_conn *c, const td_card_rec *r);
    td_st (*card_get)(td_conn *c, const char *issuer_id, const char *card_id, td_card_rec *out);
    td_st (*card_by_fp)(td_conn *c, const char *issuer_id, const char *pan_fp, td_card_rec *out);
    /* state, seq, updated_ms; only when the stored seq equals expect_seq, else CONFLICT */
    td_st (*card_update)(td_conn *c, const td_card_rec *r, int64_t expect_seq);
    /* Up to max cards whose phone or email is still in clear (written before
     * contacts were sealed); *n of them in out. */
    td_st (*card_contacts_in_clear)(td_conn *c, td_card_rec *out, size_t max, size_t *n);
    /* Stores the card's sealed contact and blanks the clear columns. */
    td_st (*card_contact_seal)(td_conn *c, const td_card_rec *r);

    /* Issuer-owned rows (digital cards, their events, operations, outbox rows,
     * timers) are found by issuer and id together: another issuer's row is not
     * there (NOT_FOUND, or nothing changed), and on a store distributed by
     * issuer (docs/scaling.md) each such query reads one shard. */

    /* digital cards: CONFLICT on a duplicate id (PostgreSQL: within the issuer) or (issuer, correlation id) */
    td_st (*dcard_insert)(td_conn *c, const td_dcard_rec *r);
    td_st (*dcard_get)(td_conn *c, const char *issuer_id, const char *id, td_dcard_rec *out);
    td_st (*dcard_by_correlation)(td_conn *c, const char *issuer_id, const char *correlation_id, td_dcard_rec *out);
    /* the mutable fields (d.*, stepup_deadline_ms, updated_ms) of r's (issuer_id, id); only when the
     * stored seq equals expect_seq, CONFLICT otherwise (or when there is no such row) */
    td_st (*dcard_update)(td_conn *c, const td_dcard_rec *r, int64_t expect_seq);
    /* a card's digital cards, oldest first (issuer_id + card_id) */
    td_st (*dcard_list_by_card)(td_conn *c, const char *issuer_id, const char *card_id,
                                void (*fn)(const td_dcard_rec *, void *), void *arg);
    /* an issuer's digital cards, oldest first, created in [start,end) (0 = unbounded), paged */
    td_st (*dcard_list_by_issuer)(td_conn *c, const char *issuer_id, int64_t start_ms, int64_t end_ms, int64_t offset,
                                  int limit, void (*fn)(const td_dcard_rec *, void *), void *arg);
    /* the decision's counters: the card's digital cards that count (td_decision_counts_token)
     * and those created at or after since_ms (attempts, any state) */
    td_st (*dcard_counts)(td_conn *c, const char *issuer_id, const char *card_id, int64_t since_ms, int *live,
                          int *attempts);

    /* events: CONFLICT when (issuer, source, event_id) was already recorded */
    td_st (*dcard_event_append)(td_conn *c, const td_dcard_event_rec *e);
    /* the stored answer of a recorded event id (malloc'd), NOT_FOUND if none */
    td_st (*dcard_event_answer)(td_conn *c, const char *issuer_id, const char *source, const char *event_id,
                                char **answer_out);

    td_st (*op_insert)(td_conn *c, const td_operation_rec *o);
    td_st (*op_get)(td_conn *c, const char *issuer_id, const char *id, td_operation_rec *out);
    td_st (*op_update)(td_conn *c, const td_operation_rec *o); /* status, error_code, end_ms */

    td_st (*outbox_insert)(td_conn *c, td_outbox_rec *o); /* sets o->id */
    /* PENDING USER rows of these messages (comma-separated, e.g. "OTP,REMINDER") for a digital card → CANCELLED */
    td_st (*outbox_cancel)(td_conn *c, const char *issuer_id, const char *digital_card_id, const char *messages,
                           int *n_cancelled);
    /* times of a digital card's OTP deliveries created at or after since_ms (any state), at most cap */
    td_st (*outbox_otp_times)(td_conn *c, const char *issuer_id, const char *digital_card_id, int64_t since_ms,
                              int64_t *out, size_t cap, size_t *n);
    /* an issuer's rows, in id order, after after_id; state NULL = any */
    td_st (*outbox_list)(td_conn *c, const char *issuer_id, const char *state, int64_t after_id, int limit,
                         void (*fn)(const td_outbox_rec *, void *), void *arg);
    /* Delivery (issue 4). Claims up to limit rows due at now_ms for delivery:
     * PENDING (or IN_FLIGHT whose lease ran out: a crash mid-delivery) with
     * due_ms <= now, of issuers that have a delivery config, and only the
     * first undelivered row of each order_key (a later row waits while an
     * earlier one is retried). Per issuer the oldest due first; the issuers
     * take turns at being served first, so one backlog cannot starve the
     * others. Claimed rows become IN_FLIGHT until lease_ms; fn gets each (in
     * id order). Writer connection. */
    td_st (*outbox_claim)(td_conn *c, int64_t now_ms, int64_t lease_ms, int limit,
                          void (*fn)(const td_outbox_rec *, void *), void *arg);
    /* The earliest due_ms after now_ms among the claimable rows (heads) of
     * issuers that have a delivery config: when a retry waiting for its
     * back-off comes due. 0 when none waits. */
    td_st (*outbox_next_due)(td_conn *c, int64_t now_ms, int64_t *next_due_ms);
    /* The outcome of one attempt: state DELIVERED or DEAD (done_ms = now), or
     * PENDING again with due_ms = retry_at (attempts+1, last status/error).
     * Fenced by the claim that produced it: recorded only while the row's
     * lease_until_ms is still that claim's (lease_until_ms as claimed). Once
     * the lease ran out and another runner (another node) claimed the row, or
     * it was closed or replayed meanwhile, a late outcome changes nothing:
     * NOT_FOUND. */
    td_st (*outbox_attempt)(td_conn *c, const char *issuer_id, int64_t id, int64_t lease_until_ms, const char *state,
                            int http_status, const char *error, int64_t now_ms, int64_t retry_at_ms);
    /* outbox_attempt for each of n outcomes, as a delivery worker's job
     * records them: in one round trip where the engine allows. st[i] is
     * outcome i's status (OK, NOT_FOUND); the verb fails with the first
     * other failure, and then nothing of any is known. */
    td_st (*outbox_attempts)(td_conn *c, const td_outbox_outcome *v, size_t n, int64_t now_ms, td_st *st);
    /* DEAD → PENDING (due now, attempts kept) for one row (id > 0) or every
     * dead row of the issuer (id 0); *n = rows replayed. */
    td_st (*outbox_replay)(td_conn *c, const char *issuer_id, int64_t id, int64_t now_ms, int *n);
    /* Counts by state and the oldest PENDING/IN_FLIGHT created_ms (0 if none), all issuers. */
    td_st (*outbox_stats)(td_conn *c, int64_t *pending, int64_t *in_flight, int64_t *dead, int64_t *oldest_ms);
    /* Issuers without delivery settings that are owed notifications: up to
     * max of them, by id, with their open rows' count. Nothing claims such
     * rows: they wait until the issuer's settings exist. */
    td_st (*outbox_unroutable)(td_conn *c, td_unroutable *out, size_t max, size_t *n);

    td_st (*delivery_put)(td_conn *c, const td_delivery_rec *d); /* insert or replace; NOT_FOUND if no issuer */
    td_st (*delivery_get)(td_conn *c, const char *issuer_id, td_delivery_rec *out);

    td_st (*timer_insert)(td_conn *c, td_timer_rec *t); /* sets t->id */
    /* PENDING timers due at or before now_ms, earliest first, at most limit */
    td_st (*timer_due)(td_conn *c, int64_t now_ms, int limit, void (*fn)(const td_timer_rec *, void *), void *arg);
    td_st (*timer_get)(td_conn *c, const char *issuer_id, int64_t id, td_timer_rec *out);
    /* PENDING → state (FIRED or CANCELLED); CONFLICT if it was no longer PENDING */
    td_st (*timer_finish)(td_conn *c, const char *issuer_id, int64_t id, const char *state);
    /* all PENDING timers of a digital card → CANCELLED */
    td_st (*timer_cancel_dcard)(td_conn *c, const char *issuer_id, const char *digital_card_id, int *n_cancelled);
    /* moves a PENDING timer's due time (a retry after the TSP failed) */
    td_st (*timer_reschedule)(td_conn *c, const char *issuer_id, int64_t id, int64_t due_ms);
    /* Takes a PENDING timer still due at expect_due_ms for a runner that acts
     * outside the store before finishing it (a TSP call): its due time moves
     * to until_ms, so other runners (other nodes) skip it until then, and take
     * it again if this one dies. CONFLICT when it is no longer PENDING at
     * expect_due_ms (another runner took it), NOT_FOUND if there is none. */
    td_st (*timer_lease)(td_conn *c, const char *issuer_id, int64_t id, int64_t expect_due_ms, int64_t until_ms);
    /* the earliest PENDING due time, NOT_FOUND if none (the runner sleeps until then) */
    td_st (*timer_next_due)(td_conn *c, int64_t *due_ms);

    /* facts about the store itself, by name (store_meta): the value into
     * value[cap], NOT_FOUND if absent, ERROR if it does not fit */
    td_st (*meta_get)(td_conn *c, const char *name, uint8_t *value, size_t cap, size_t *len);
    /* CONFLICT if the name is there already (two nodes starting at once) */
    td_st (*meta_insert)(td_conn *c, const char *name, const uint8_t *value, size_t len);
    /* Upserts a fact; deletes one (OK when absent). */
    td_st (*meta_put)(td_conn *c, const char *name, const uint8_t *value, size_t len);
    td_st (*meta_delete)(td_conn *c, const char *name);
    /* Other processes serving the store: PostgreSQL sessions of tokend nodes
     * (application_name 'tokend'; tokenctl names its own otherwise); 0 on
     * SQLite, whose file lock already keeps tokend out. */
    td_st (*serving_sessions)(td_conn *c, int64_t *n);
    /* The next row of kind after `after` (its owner, id / num; all empty to
     * start) that holds a sealed value, in key order: NOT_FOUND past the last.
     * out->text is malloc'd (td_sealed_rec_free). */
    td_st (*sealed_next)(td_conn *c, td_sealed_kind kind, const td_sealed_rec *after, td_sealed_rec *out);
    /* Writes r's sealed values (and a card's fingerprint) back to its row. */
    td_st (*sealed_put)(td_conn *c, const td_sealed_rec *r);
    /* one sealed member key (the oldest), NOT_FOUND in a store without any:
     * what a store made before the master key check was sealed with */
    td_st (*sealed_sample)(td_conn *c, uint8_t *sealed, size_t cap, size_t *len);
} td_store_ops;

/* A write job: run() executes inside the writer's transaction and returns
 * TD_ST_OK to keep its changes; anything else rolls them back (its savepoint).
 * done() runs on the writer thread after COMMIT with the final status: TD_ST_OK
 * only if the commit is durable. done() must be quick (it resumes a request). */
typedef struct td_job {
    td_st (*run)(td_conn *c, void *arg);
    void (*done)(void *arg, td_st status);
    void *arg;
    int64_t queued_us;   /* set by submit: a job that waited too long is not run */
    /* Losing this job's commit to a power failure (not a process crash) would
     * only make work be done again — e.g. a notification sent twice, which the
     * receiver drops by id —, never lose an acknowledged change: a group made
     * of such jobs alone is committed without waiting for fsync. */
    bool lax;
    struct td_job *next; /* owned by the queue */
} td_job;

typedef struct {
    uint64_t commits;
    uint64_t jobs;
    uint64_t batch_hist[8]; /* jobs per commit: 1, 2-3, 4-7, 8-15, 16-31, 32-63, 64-127, 128+ */
    uint64_t lax_commits;   /* of the commits, those of lax jobs alone (td_job.lax): no fsync */
} td_store_stats;

struct td_store {
    const td_store_ops *ops;
    /* Returns this thread's read connection (opened on first use), or NULL. */
    td_conn *(*reader)(td_store *s);
    /* Queues a write job; 0 if queued, -1 if the store is shutting down. */
    int (*submit)(td_store *s, td_job *job);
    /* Runs a job synchronously on the writer and waits (for CLI/setup paths). */
    td_st (*run_sync)(td_store *s, td_st (*run)(td_conn *, void *), void *arg);
    void (*stats)(td_store *s, td_store_stats *out);
    /* Test hook (only when fault injection is enabled): 0 none, 1 every verb
     * fails as if the store were unreachable, 2 the writer stalls (jobs time out). */
    void (*inject_fault)(td_store *s, int fault);
    /* Jobs that waited longer than this in the queue fail with TD_ST_BUSY. */
    int64_t job_timeout_us;
    /* Called on the writer thread after a commit in which a job inserted or
     * reopened outbox rows: wakes the delivery worker instead of leaving the
     * rows to its next poll. Set once, before the first write; NULL = none. */
    void (*on_outbox)(void);
    /* Whether a write can commit now (for /readyz): the writers are taking
     * jobs, and for SQLite the store's files are still the ones being written
     * and their file system has min_free_bytes left. False with the reason. */
    bool (*writable)(td_store *s, char *why, size_t cap);
    int64_t min_free_bytes; /* SQLite: below this, not writable (0 = no check) */
    /* Stops accepting jobs, commits what is queued, closes everything. */
    void (*close)(td_store *s);
};

/* Opens the store named by url ("sqlite:PATH"), applying migrations.
 * Returns NULL and sets err (capacity cap) on failure. */
td_store *td_store_open(const char *url, char *err, size_t cap);

/* The store URL without its password, for messages and logs: "user:secret@"
 * loses ":secret", and a password=... parameter its value. */
void td_store_redact_url(const char *url, char *out, size_t cap);

/* What PostgreSQL sessions opened after this call call themselves
 * (application_name; "tokend" unless set, at most 31 characters). */
void td_store_set_client_name(const char *name);
const char *td_store_client_name(void);

/* Frees the malloc'd members of records. */
void td_token_rec_free(td_token_rec *t);
void td_request_rec_free(td_request_rec *r);
void td_idem_rec_free(td_idem_rec *r);
void td_dcard_rec_free(td_dcard_rec *r);
void td_delivery_rec_free(td_delivery_rec *r);
void td_sealed_rec_free(td_sealed_rec *r);

#endif
