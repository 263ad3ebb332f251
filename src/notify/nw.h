/* nw.h — the notification worker's insides, shared by the files of src/notify/
 * and by nothing else: the worker's state, its works and transfers, and the
 * entry points each file gives the others. The rest of tokend uses notify.h. */
#ifndef TD_NOTIFY_NW_H
#define TD_NOTIFY_NW_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "notify/notify.h"
#include "util/buf.h"

#define OPS(svc) ((svc)->store->ops)

/* An issuer's settings as the worker uses them. Entries live until the worker
 * stops (one per issuer seen). */
typedef struct issuer_ent {
    char issuer_id[16];
    bool configured;
    td_delivery_rec rec;
    char *secret; /* opened, NUL-terminated; wiped when replaced */
    int64_t loaded_ms;
    /* OAuth2 */
    char *token;
    int64_t token_exp_ms;
    unsigned token_gen;   /* bumped on each new token */
    bool fetching;        /* a token transfer is in flight */
    struct xfer *fetch;   /* that transfer */
    struct work *waiting; /* works waiting for a token */
    struct issuer_ent *next;
} issuer_ent;

typedef enum { X_NOTIFY, X_TOKEN } xfer_kind;

typedef struct xfer {
    xfer_kind kind;
    CURL *h;
    struct curl_slist *hdrs;
    char err[CURL_ERROR_SIZE];
    /* X_TOKEN */
    issuer_ent *iss;
    char *post;
    td_buf resp; /* the token endpoint's answer, at most TOKEN_BODY_MAX bytes */
} xfer;

/* One request's rows (several only for a d1 batch). */
typedef struct work {
    issuer_ent *iss;
    td_outbox_rec *rows;
    int n;
    int64_t deadline_ms; /* the lease, less a margin: the work ends before */
    bool reauthed;       /* a 401 already made us fetch a new token */
    unsigned token_gen;  /* the token the request carried */
    td_notify_req req;
    xfer x;
    struct work *next;          /* the ready queue or an issuer's token wait list */
    struct work *aprev, *anext; /* the list of works with a transfer in flight */
} work;

/* A finished attempt, recorded by the next write job (outbox_attempts). */
typedef td_outbox_outcome outcome;

typedef struct {
    outcome *v;
    size_t n, cap;
} outcomes;

/* A set of the row ids this worker holds (claimed, outcome not yet committed). */
typedef struct {
    int64_t *slot; /* 0 = empty, -1 = removed */
    size_t cap, used;
} idset;

#define UNROUTABLE_MAX 64 /* issuers without settings tracked by name (more are counted, not named) */

struct td_notify {
    td_svc *svc;
    pthread_t thread;
    CURLM *multi;
    /* Easy handles of finished transfers, reset, for the next ones (an easy
     * handle is several KiB to set up and free; reused, its options are reset). */
    CURL *spare[1024]; /* the largest --delivery-concurrency */
    int n_spare;
    atomic_bool stop;
    atomic_bool kicked;
    /* counters */
    _Atomic uint64_t delivered, retried, dead, requests, reauth, token_fetches;
    _Atomic int64_t in_flight, st_pending, st_in_flight, st_dead, st_oldest_ms;
    _Atomic int64_t st_unroutable_rows, st_unroutable_issuers;
    _Atomic int64_t backoff_base, backoff_cap;
    /* the worker thread's own */
    int concurrency;
    int64_t poll_ms, lease_ms;
    issuer_ent *issuers;
    work *ready, *ready_tail; /* claimed works waiting for a slot */
    work *active;             /* works with a transfer in flight */
    int n_ready;
    int n_hand;    /* works claimed and not finished */
    int n_xfers;   /* notification transfers in the multi handle */
    outcomes outs; /* finished, to record with the next job */
    idset held;
    int64_t last_claim_ms;
    bool last_claim_full;
    int64_t next_due_ms; /* when a row waiting for its back-off comes due (0: none known) */
    int64_t stats_ms;
    int64_t unroutable_ms;                     /* last look for issuers owed rows without settings */
    char unroutable_seen[UNROUTABLE_MAX][16]; /* the issuers that look found (each is warned about once) */
    size_t n_unroutable_seen;
    int64_t pause_until_ms;
    /* the write jobs in flight, oldest first (the writer runs them in order) */
    struct loop_job *jobs, *jobs_tail;
    int n_jobs;
    int claim_pending; /* transfer slots the claims in flight are filling */
};

/* ---- claims.c: the write job (record outcomes, then claim), batching, outcomes ---- */

/* Submits a job recording the outcomes gathered so far and, with limit > 0,
 * claiming up to limit rows for `slots` transfer slots. */
void nw_submit_job(td_notify *d, int64_t now, int limit, int slots);
/* The oldest job in flight has completed. */
bool nw_job_ready(td_notify *d);
/* Takes the oldest job in flight, completed (nw_job_ready): counts its
 * outcomes and turns the rows it claimed into works on the ready queue. */
void nw_job_finished(td_notify *d);
/* The largest d1 batch among known issuers: how many rows a free slot may take. */
int nw_batch_hint(td_notify *d);
/* The work is over: its rows have outcomes (or were abandoned). Frees it. */
void nw_work_done(td_notify *d, work *w);
/* Every row of the work gets this outcome; then nw_work_done. */
void nw_finish_all(td_notify *d, work *w, const char *state, int http_status, const char *error);
/* Every row of the work is retried after one back-off (or dead past its
 * maximum age); then nw_work_done. */
void nw_retry_all(td_notify *d, work *w, int http_status, const char *why, int64_t retry_after_s);

/* ---- transfer.c: libcurl transfers ---- */

/* A new easy handle, or a spare one (with its options reset). */
CURL *nw_handle_get(td_notify *d);
/* Takes the transfer out of the multi handle, keeps its easy handle as a
 * spare, and wipes and frees what it held (headers, form, answer). */
void nw_xfer_cleanup(td_notify *d, xfer *x);
bool nw_append_hdr(xfer *x, const char *h);
/* The options every transfer shares: http(s) only, no redirects, the
 * issuer's TLS settings, a timeout within the lease. */
bool nw_common_opts(xfer *x, const td_delivery_rec *r, const char *url, long timeout_ms);
/* What went wrong, for last_error. */
void nw_curl_why(const xfer *x, CURLcode rc, long timeout_ms, char *out, size_t cap);
/* Builds the request for a work and starts it; or parks it for a token; or
 * gives its rows their outcome when there is nothing to send. */
void nw_prepare(td_notify *d, work *w);
/* A notification transfer ended (rc): the rows' outcomes, a re-authentication or a retry. */
void nw_notify_done(td_notify *d, work *w, CURLcode rc);
/* Takes a work off the list of transfers in flight. */
void nw_unlink_active(td_notify *d, work *w);

/* ---- auth.c: issuers' settings and credentials, OAuth2 tokens ---- */

/* The issuer's entry, its settings read again when older than a few seconds. NULL if out of memory. */
issuer_ent *nw_issuer_get(td_notify *d, const char *issuer_id, int64_t now);
/* Wipes and frees every issuer entry (the worker has stopped). */
void nw_issuers_free(td_notify *d);
/* The credentials the work's request carries: *bearer (the bearer secret or
 * an OAuth2 token) or *sign (the webhook secret), left NULL when none. False
 * when the work is no longer the caller's: its secret does not open (the rows
 * are retried), or it waits for an OAuth2 token (parked on its issuer, and
 * prepared again once the token comes, or retried if it does not). */
bool nw_auth_pick(td_notify *d, work *w, int64_t now, const char **bearer, const char **sign);
/* A 401: an OAuth2 issuer's token is dropped and fetched again, once per
 * work, and the work prepared afresh. False when that does not apply. */
bool nw_reauth(td_notify *d, work *w);
/* A token transfer ended (rc): the token kept, and the works waiting for it released. */
void nw_token_done(td_notify *d, xfer *x, CURLcode rc);

#endif
