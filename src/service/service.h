/* service.h — use cases. Each write is a job run inside the store's group
 * commit: it re-reads what it needs, asks the engine, writes the record, its
 * event and (with an Idempotency-Key) the answer, all in one transaction.
 * Faces parse and validate input, then call these; they never see the store. */
#ifndef TD_SERVICE_H
#define TD_SERVICE_H

#include <jansson.h>
#include <stdbool.h>

#include "core/errors.h"
#include "core/token.h"
#include "store/store.h"
#include "util/config.h"

struct td_tsp;
typedef struct td_svc {
    td_store *store;
    td_config *cfg;
    struct td_tsp *tsp; /* the TSP connector (service/tsp.h): simulated unless tsp_url is set */
} td_svc;

/* ---- the generic write ---- */

typedef struct td_write td_write;
struct td_write {
    td_job job;
    td_svc *svc;
    /* The use case: runs in the writer's transaction. Refusals go in w->err and
     * return TD_ST_OK (the job's changes are then rolled back); store failures
     * return their td_st. */
    td_st (*run)(td_conn *c, td_write *w);
    /* The face: renders the use case's result into status/body, inside the
     * transaction, so an idempotent replay can be stored with the change. */
    void (*render)(td_write *w);
    /* The face: called once after the commit (or its failure); frees w. */
    void (*complete)(td_write *w);

    bool idem;           /* an Idempotency-Key was given */
    char idem_scope[80]; /* the caller's credential */
    char idem_key[256];
    char req_hash[65]; /* hash of method, path and body */

    td_error err;                 /* a refusal (or 503/504 after a failed commit) */
    int status;                   /* the rendered answer */
    char *body;                   /* malloc'd; the face frees it */
    bool replayed;                /* the answer came from the idempotency record */
    void *face;                   /* the face's request */
    const char *subject;          /* the id the request is about (error bodies name it) */
    void (*dispose)(td_write *w); /* frees what the command holds, not w itself */
};

/* At start: 0 if this node's master key is the one the store's secrets are
 * sealed with (the first node to serve a store records a check of it), else
 * -1 with the reason in err (service/master_key.c). */
int td_svc_check_master_key(td_svc *svc, char *err, size_t cap);

/* store_meta names of a master key rotation: the new key's check while one is
 * under way (tokend refuses to start), and the idempotency hashing key a
 * rotated store keeps, sealed with the current master key. */
#define TD_META_REKEY_TO "rekey_to"
#define TD_META_IDEM_HASH_KEY "idem_hash_key"
/* The master key check sealed with key (*sealed malloc'd; 0 on success), and
 * whether a sealed check opens with key. */
int td_master_check_seal(const uint8_t key[32], uint8_t **sealed, size_t *len);
bool td_master_check_opens(const uint8_t key[32], const uint8_t *sealed, size_t n);

/* Master key rotation (service/rekey.c; `tokenctl store rekey`, with every
 * tokend stopped): reseals every sealed value of the store from old_key to
 * new_key, one row per transaction, then records the new key's check. Run
 * again after any interruption, it finishes the job: a value that opens with
 * the new key is left as it is. */
typedef struct {
    td_store *store;
    uint8_t old_key[32], new_key[32];
    int64_t kill_after; /* test hook: SIGKILL itself after this many rows resealed (0 = never) */
    /* out */
    int64_t resealed, already; /* rows resealed now, rows found resealed by an earlier run */
    bool was_done;             /* the store was already under new_key */
    char err[512];
} td_rekey;
int td_rekey_run(td_rekey *rk);

/* Queues w. If the store refuses (shutting down), completes it with 503. */
void td_svc_submit(td_svc *svc, td_write *w);
/* The idempotency request hash of the parts: keyed with the master key
 * (td_idem_request_hash), so that every node on one store agrees. */
void td_request_hash(const td_svc *svc, const char *method, const char *path, const char *body, size_t body_len,
                     char out[65]);
/* The request hash of records written before hashes were keyed (SQLite
 * migration 009, PostgreSQL 007): never a hash, so never matched; a retry
 * under such a key is refused with 409, never run again. */
#define TD_IDEM_RETIRED "retired"

/* ---- members, credentials, issuers (admin) ---- */

typedef struct {
    td_write w;
    char display_name[256];
    char member_id[TD_ID_MAX]; /* out */
} td_create_member;
void td_svc_create_member(td_svc *svc, td_create_member *cmd);

typedef struct {
    td_write w;
    td_cred_kind kind;
    char owner_id[TD_ID_MAX];
    td_level level;   /* members */
    char role[16];    /* issuers */
    char cert_sha256[65]; /* bound client certificate (SHA-256 of its DER, hex); "" = none */
    char api_key[80]; /* out, shown once */
    char key_id[17];  /* out: names it from then on */
} td_create_api_key;
void td_svc_create_api_key(td_svc *svc, td_create_api_key *cmd);

/* Revokes an owner's API key by its id: it stops authenticating at once on
 * this node (its cache entry is dropped after the commit) and within
 * TD_CRED_CACHE_TTL_S seconds on the other nodes of one store. Revoking it
 * again answers the first revocation's time. */
#define TD_CRED_CACHE_TTL_S 5
typedef struct {
    td_write w;
    td_cred_kind kind;
    char owner_id[TD_ID_MAX];
    char key_id[17];
    int64_t revoked_ms;                  /* out */
    char hash[65];                       /* out: its cache entry */
    void (*face_complete)(td_write *w); /* the face's complete, called after the cache is cleared */
} td_revoke_api_key;
void td_svc_revoke_api_key(td_svc *svc, td_revoke_api_key *cmd);

/* Binds an existing API key of this owner to a client certificate, or
 * unbinds it (cert_sha256 ""): 404 if the owner has no such key. This node
 * applies it from the answer on; other nodes within their credential cache's
 * lifetime (TD_CRED_CACHE_TTL_S). */
typedef struct {
    td_write w;
    td_cred_kind kind;
    char owner_id[TD_ID_MAX];
    char key_hash[65]; /* td_api_key_hash of the key: the key itself is not kept */
    char cert_sha256[65];
    void (*face_complete)(td_write *w); /* set by td_svc_bind_api_key */
} td_bind_api_key;
void td_svc_bind_api_key(td_svc *svc, td_bind_api_key *cmd);

/* An owner's API keys (never the keys themselves: id, level or role, times). */
td_err td_svc_list_api_keys(td_svc *svc, td_cred_kind kind, const char *owner_id,
                            void (*fn)(const td_cred_rec *, void *), void *arg, td_error *e);

/* The credential audit log (credential_events), after after_id, at most limit. */
td_err td_svc_list_credential_events(td_svc *svc, int64_t after_id, int limit,
                                     void (*fn)(const td_credevent_rec *, void *), void *arg, td_error *e);
/* The associated data that binds an idempotency record's sealed answer to the
 * record (credential scope, key, request hash): malloc'd, NULL if out of
 * memory. The write path and `tokenctl store rekey` both use it. */
char *td_idem_answer_aad(const char *scope, const char *key, const char *req_hash);

/* Records in it that this node's admin key was replaced (SIGHUP). */
td_st td_svc_record_admin_key_rotation(td_svc *svc);
/* Appends one event to it inside the caller's transaction. */
td_st td_credevent_write(td_conn *c, const td_store_ops *ops, const char *type, const char *owner_kind,
                         const char *owner_id, const char *key_id, const char *detail_json);

typedef struct {
    td_write w;
    char issuer_id[16];
    char display_name[256];
} td_create_issuer;
void td_svc_create_issuer(td_svc *svc, td_create_issuer *cmd);

/* Member keys. */
typedef struct {
    td_write w;
    char member_id[TD_ID_MAX];
    uint8_t public_key[32];
    td_level level;
    int64_t expires_ms;
    char key_id[24]; /* out */
} td_add_key;
void td_svc_add_key(td_svc *svc, td_add_key *cmd);

typedef struct {
    td_write w;
    char member_id[TD_ID_MAX];
    char key_id[24];
} td_delete_key;
void td_svc_delete_key(td_svc *svc, td_delete_key *cmd);

/* Lists a member's public keys; fn gets each. */
td_err td_svc_list_keys(td_svc *svc, const char *member_id, void (*fn)(const td_key_rec *, void *), void *arg,
                        td_error *e);
td_err td_svc_get_key(td_svc *svc, const char *member_id, const char *key_id, td_key_rec *out, td_error *e);

/* Authenticates an API key; fills cred. TD_E_UNAUTHENTICATED if unknown or revoked. */
td_err td_svc_authenticate(td_svc *svc, const char *api_key, td_cred_rec *cred, td_error *e);
/* For /readyz: the store answers and a write can commit; else false with
 * the reason. */
bool td_svc_ready(td_svc *svc, char *why, size_t cap);

/* ---- token requests and consent ---- */

typedef struct {
    td_write w;
    char caller[TD_ID_MAX];
    td_kind kind;
    char from_id[TD_ID_MAX];
    char to_id[TD_ID_MAX];
    json_t *request;            /* the validated {requestOptions, requestPayload}; borrowed */
    char request_id[TD_ID_MAX]; /* out */
} td_store_request;
void td_svc_store_request(td_svc *svc, td_store_request *cmd);

/* Reads a request visible to caller (its from or to member). */
td_err td_svc_get_request(td_svc *svc, const char *caller, const char *id, td_request_rec *out, td_error *e);

typedef struct {
    td_write w;
    char caller[TD_ID_MAX];
    char request_id[TD_ID_MAX];
    char redirect_url[2048]; /* out: <public-url>/consent/<code> */
} td_authorize_request;
void td_svc_authorize_request(td_svc *svc, td_authorize_request *cmd);

/* A consent code is "<requestId>.<secret>" (docs/api.md): the request is read
 * by its id, then the secret's hash compared. Codes up to this long (NUL
 * included) are looked at; a longer one is not a code tokend made. */
#define TD_CONSENT_SEP '.'
#define TD_CONSENT_CODE_MAX (TD_ID_MAX + 64)

/* The request behind a consent code, if the code is still usable. */
td_err td_svc_consent_lookup(td_svc *svc, const char *code, td_request_rec *out, td_error *e);

typedef struct {
    td_write w;
    char code[TD_CONSENT_CODE_MAX];
    bool approve;
    char accounts[8][TD_ID_MAX]; /* approved accounts for access requests */
    int naccounts;
    char *redirect;           /* out: the request's redirectUrl with tokenId (or an error); malloc'd, the caller frees */
    char token_id[TD_ID_MAX]; /* out */
} td_consent_decide;
void td_svc_consent_decide(td_svc *svc, td_consent_decide *cmd);

/* ---- tokens ---- */

td_err td_svc_get_token(td_svc *svc, const char *caller, const char *id, td_token_rec *out, td_error *e);

typedef struct {
    const char *caller;
    int kind; /* -1 all */
    int role;
    const char *source_account, *destination_account, *acting_as_ref_id;
    int64_t start_ms, end_ms, offset;
    int limit;
} td_list_query;
/* fn gets each token's served JSON. */
td_err td_svc_list_tokens(td_svc *svc, const td_list_query *q, void (*fn)(const char *json, void *), void *arg,
                          td_error *e);

typedef struct {
    td_write w;
    char caller[TD_ID_MAX];
    td_level level;
    char token_id[TD_ID_MAX];
    char customer_ip[64];
    char customer_initiated[8];
    char customer_device_id[128];
    /* prepared outside the writer (signature, new JSON) when the token is read */
    int64_t prepared_seq;
    char prepared_replaced_by[TD_ID_MAX];
    td_cancel_outcome prepared;
    char *prepared_json;
    /* out */
    td_cancel_outcome outcome;
    td_invalid_reason why;
    char *token_json; /* the token as it now stands (malloc'd) */
} td_cancel;
/* Prepares on the calling thread (reads, decides, signs) then commits. */
void td_svc_cancel(td_svc *svc, td_cancel *cmd);
void td_cancel_free(td_cancel *cmd);

#endif
