/* delivery.c — per-issuer delivery settings, dead-letter replay, and the
 * delivery worker: one thread, one libcurl multi handle, many transfers.
 *
 * The worker's loop, all on its thread:
 *  - write jobs, submitted without waiting (up to JOBS_MAX in flight): each
 *    records the outcomes collected since the last job (outbox_attempt each)
 *    and then claims due rows (outbox_claim) for the free transfer slots and
 *    asks when the next waiting retry comes due (outbox_next_due). Recording
 *    before claiming in the same transaction lets the next row of a digital
 *    card be claimed as soon as the one before it is delivered. While a job
 *    commits (without fsync: td_job.lax), the transfers go on; outcomes
 *    gather for the next job.
 *  - claimed rows become "works": one request each (d1 card operations of an
 *    issuer batched up to its d1_batch_max), built by notify.c with the
 *    issuer's settings (cached a few seconds), the digital card read on this
 *    thread's read connection and, for an OTP row, the OTP opened only for the
 *    build and wiped after it (and the body, which carries it, wiped once sent).
 *  - OAuth2 issuers first need a token: fetched as one more transfer in the
 *    multi handle while the works wait; a 401 drops it and refetches it once.
 *  - curl_multi_poll waits for the network, a job's completion, a kick, the
 *    next retry coming due, or the next poll (cfg->delivery_poll_ms when idle:
 *    one claim per poll, which also finds rows whose lease ran out).
 * A work never outlives its lease: transfers get at most the lease left as
 * timeout, so a row is never claimed again while this worker holds it. */
#include "service/delivery.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto/crypto.h"
#include "service/cards.h"
#include "service/notify.h"
#include "util/log.h"
#include "util/util.h"

#define OPS(svc) ((svc)->store->ops)

#define CACHE_MS 3000       /* issuers' settings are re-read after this */
#define STATS_EVERY_MS 1000 /* outbox_stats refresh */
#define CLAIM_MAX 1024      /* rows per claim */
#define BATCH_MAX 64        /* td_notify_req.ids */
/* Works held (claimed, not finished) per transfer slot: claiming ahead keeps
 * the slots busy while the next write job runs and its completion comes back
 * to this thread, instead of leaving them idle between a transfer's end and
 * the claim of its successor. */
#define HOLD_PER_SLOT 4
#define DRAIN_MS 10000       /* td_delivery_stop waits this long for transfers in flight */
#define TOKEN_BODY_MAX 65536 /* an OAuth2 token answer larger than this is refused */
#define TOKEN_SKEW_MS 30000  /* a token is refreshed this long before it expires */
#define FAIL_PAUSE_MS 200    /* after a failed write job */
/* A kick (a commit owed rows) claims at most this often: under a write load
 * every group commit kicks, and a claim per commit would be a writer job per
 * commit; rows then wait at most this long. */
#define KICK_MIN_MS 10
/* Write jobs in flight at once: while one commits and its completion reaches
 * this thread, the next already carries the outcomes that came in meanwhile
 * (a single job in flight left the transfers idle for the whole round trip). A
 * second job waits for at least PIPELINE_MIN outcomes, so that jobs stay big
 * enough to be cheap per row. */
#define JOBS_MAX 2
#define PIPELINE_MIN 32
#define MIN_ATTEMPT_MS 200 /* less lease left than this: the attempt is not started */
#define DEFAULT_BACKOFF_BASE 1000
#define DEFAULT_BACKOFF_CAP 3600000

/* ================= settings (admin API) ================= */

void td_delivery_defaults(td_delivery_rec *d)
{
    memset(d, 0, sizeof *d);
    td_strlcpy(d->profile, "webhook", sizeof d->profile);
    td_strlcpy(d->auth, "none", sizeof d->auth);
    d->d1_batch_max = 1;
    d->max_age_ms = 24LL * 3600 * 1000;
    d->timeout_ms = 5000;
}

static bool one_of(const char *v, const char *const *set)
{
    for (; *set; set++)
        if (!strcmp(v, *set)) return true;
    return false;
}

static bool has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return true;
    return false;
}

/* http(s)://host... without spaces or control characters; "" if allow_empty. */
static bool url_ok(const char *u, bool allow_empty)
{
    if (!u[0]) return allow_empty;
    if (strncasecmp(u, "http://", 7) != 0 && strncasecmp(u, "https://", 8) != 0) return false;
    const char *host = u + (u[4] == ':' ? 7 : 8);
    if (!*host || *host == '/') return false;
    return !has_ctl(u) && !strchr(u, ' ');
}

static const char *const MESSAGES[] = {"ACTIVATION", "REMINDER", "DELETION", "CANCELLATION", "OTP", NULL};

static td_err templates_ok(const char *js, td_error *e)
{
    if (!js || !js[0]) return TD_OK;
    json_error_t je;
    json_t *v = json_loads(js, JSON_REJECT_DUPLICATES, &je);
    if (!v || !json_is_object(v)) {
        json_decref(v);
        return td_fail(e, TD_E_INVALID_ARGUMENT, "templates must be a JSON object of strings");
    }
    const char *k;
    json_t *t;
    json_object_foreach(v, k, t)
    {
        if (!one_of(k, MESSAGES) || !json_is_string(t) || json_string_length(t) > 1000) {
            td_fail(e, TD_E_INVALID_ARGUMENT,
                    "templates.%.24s: expected one of ACTIVATION, REMINDER, DELETION, CANCELLATION, OTP with a "
                    "string of at most 1000 characters",
                    k);
            json_decref(v);
            return e ? e->code : TD_E_INVALID_ARGUMENT;
        }
    }
    json_decref(v);
    return TD_OK;
}

td_err td_delivery_validate(const td_delivery_rec *d, bool has_secret, td_error *e)
{
    static const char *const PROFILES[] = {"d1", "classic", "webhook", NULL};
    static const char *const AUTHS[] = {"none", "bearer", "oauth2", "webhook", NULL};
    if (!one_of(d->profile, PROFILES))
        return td_fail(e, TD_E_INVALID_ARGUMENT, "profile must be one of d1, classic, webhook");
    if (!one_of(d->auth, AUTHS))
        return td_fail(e, TD_E_INVALID_ARGUMENT, "auth must be one of none, bearer, oauth2, webhook");
    if (!strcmp(d->auth, "webhook") && strcmp(d->profile, "webhook") != 0)
        return td_fail(e, TD_E_INVALID_ARGUMENT, "auth webhook (a Standard Webhooks secret) needs profile webhook");
    if (!url_ok(d->base_url, false))
        return td_fail(e, TD_E_INVALID_ARGUMENT, "baseUrl must be an http:// or https:// URL");
    if (!url_ok(d->messaging_url, true))
        return td_fail(e, TD_E_INVALID_ARGUMENT, "messagingUrl must be empty or an http:// or https:// URL");
    if (!strcmp(d->auth, "oauth2")) {
        if (!url_ok(d->oauth_token_url, false))
            return td_fail(e, TD_E_INVALID_ARGUMENT, "oauthTokenUrl must be an http:// or https:// URL");
        if (!d->oauth_client_id[0] || strchr(d->oauth_client_id, ':') || has_ctl(d->oauth_client_id))
            return td_fail(e, TD_E_INVALID_ARGUMENT, "oauthClientId is required and must not contain ':'");
        if (has_ctl(d->oauth_scope)) return td_fail(e, TD_E_INVALID_ARGUMENT, "oauthScope is invalid");
    }
    if (strcmp(d->auth, "none") != 0 && !has_secret)
        return td_fail(e, TD_E_INVALID_ARGUMENT, "auth %s needs a secret", d->auth);
    if (has_ctl(d->tls_cert_file) || has_ctl(d->tls_key_file) || has_ctl(d->tls_ca_file))
        return td_fail(e, TD_E_INVALID_ARGUMENT, "TLS file names must not contain control characters");
    if (d->tls_key_file[0] && !d->tls_cert_file[0])
        return td_fail(e, TD_E_INVALID_ARGUMENT, "tlsKeyFile needs tlsCertFile");
    if (d->tls_pinned_key[0] && (strncmp(d->tls_pinned_key, "sha256//", 8) != 0 || has_ctl(d->tls_pinned_key)))
        return td_fail(e, TD_E_INVALID_ARGUMENT, "tlsPinnedKey must be sha256//<base64> (curl's pinned public key)");
    if (d->d1_batch_max < 1 || d->d1_batch_max > BATCH_MAX)
        return td_fail(e, TD_E_INVALID_ARGUMENT, "d1BatchMax must be in [1, %d]", BATCH_MAX);
    if (d->timeout_ms < 100 || d->timeout_ms > 120000)
        return td_fail(e, TD_E_INVALID_ARGUMENT, "timeoutMs must be in [100, 120000]");
    if (d->max_age_ms < 1000 || d->max_age_ms > 30LL * 86400 * 1000)
        return td_fail(e, TD_E_INVALID_ARGUMENT, "maxAgeMs must be in [1000, 2592000000]");
    return templates_ok(d->templates_json, e);
}

static td_st issuer_known(td_svc *svc, td_conn *c, const char *issuer_id, td_error *e, bool *known)
{
    td_issuer_rec i;
    td_st st = OPS(svc)->issuer_get(c, issuer_id, &i);
    *known = st == TD_ST_OK;
    if (st == TD_ST_NOT_FOUND) {
        td_fail(e, TD_E_NOT_FOUND, "issuer %s not found", issuer_id);
        return TD_ST_OK;
    }
    return st;
}

static td_st put_delivery(td_conn *c, td_put_delivery *cmd)
{
    td_svc *svc = cmd->w.svc;
    td_delivery_rec *r = &cmd->rec;
    bool known;
    td_st st = issuer_known(svc, c, r->issuer_id, &cmd->w.err, &known);
    if (st != TD_ST_OK || !known) return st;
    /* The secret stored now: the new one, none, or the one already there. */
    td_delivery_rec old = {0};
    bool had = false;
    if (!cmd->secret_given) {
        st = OPS(svc)->delivery_get(c, r->issuer_id, &old);
        if (st != TD_ST_OK && st != TD_ST_NOT_FOUND) return st;
        had = st == TD_ST_OK && old.secret_len > 0;
    }
    bool has_secret = cmd->secret_given ? cmd->secret[0] != 0 : had;
    if (td_delivery_validate(r, has_secret, &cmd->w.err) != TD_OK) {
        td_delivery_rec_free(&old);
        return TD_ST_OK;
    }
    memset(r->secret_sealed, 0, sizeof r->secret_sealed);
    r->secret_len = 0;
    if (cmd->secret_given && cmd->secret[0]) {
        uint8_t *sealed = NULL;
        size_t n = 0;
        if (td_seal(svc->cfg->master_key, (const uint8_t *)cmd->secret, strlen(cmd->secret), &sealed, &n) != 0 ||
            n > sizeof r->secret_sealed) {
            free(sealed);
            td_delivery_rec_free(&old);
            td_fail(&cmd->w.err, TD_E_INVALID_ARGUMENT, "secret is too long (at most %d characters)",
                    TD_DELIVERY_SECRET_MAX);
            return TD_ST_OK;
        }
        memcpy(r->secret_sealed, sealed, n);
        r->secret_len = n;
        free(sealed);
    } else if (had) {
        memcpy(r->secret_sealed, old.secret_sealed, old.secret_len);
        r->secret_len = old.secret_len;
    }
    td_delivery_rec_free(&old);
    r->updated_ms = td_now_ms();
    return OPS(svc)->delivery_put(c, r);
}

static td_st run_put_delivery(td_conn *c, td_write *w)
{
    td_put_delivery *cmd = (td_put_delivery *)w;
    td_st st = put_delivery(c, cmd);
    td_wipe(cmd->secret, sizeof cmd->secret);
    return st;
}

void td_svc_put_delivery(td_svc *svc, td_put_delivery *cmd)
{
    cmd->w.run = run_put_delivery;
    td_svc_submit(svc, &cmd->w);
}

td_err td_svc_get_delivery(td_svc *svc, const char *issuer_id, td_delivery_rec *out, td_error *e)
{
    memset(out, 0, sizeof *out);
    td_conn *c = svc->store->reader(svc->store);
    bool known = false;
    if (!c || issuer_known(svc, c, issuer_id, e, &known) != TD_ST_OK)
        return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    if (!known) return e->code;
    td_st st = OPS(svc)->delivery_get(c, issuer_id, out);
    if (st == TD_ST_NOT_FOUND) return td_fail(e, TD_E_NOT_FOUND, "issuer %s has no delivery settings", issuer_id);
    if (st != TD_ST_OK) return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    /* Only whether a secret is set leaves this function. */
    td_wipe(out->secret_sealed, sizeof out->secret_sealed);
    return TD_OK;
}

typedef struct {
    int64_t id;
    char state[12];
    bool found;
} row_peek;

static void peek_row(const td_outbox_rec *o, void *arg)
{
    row_peek *p = arg;
    if (o->id == p->id) {
        p->found = true;
        td_strlcpy(p->state, o->state, sizeof p->state);
    }
}

static td_st run_replay(td_conn *c, td_write *w)
{
    td_replay *cmd = (td_replay *)w;
    bool known;
    td_st st = issuer_known(w->svc, c, cmd->issuer_id, &w->err, &known);
    if (st != TD_ST_OK || !known) return st;
    if (cmd->id > 0) {
        row_peek p = {.id = cmd->id};
        st = OPS(w->svc)->outbox_list(c, cmd->issuer_id, NULL, cmd->id - 1, 1, peek_row, &p);
        if (st != TD_ST_OK) return st;
        if (!p.found) {
            td_fail(&w->err, TD_E_NOT_FOUND, "notification %lld not found", (long long)cmd->id);
            return TD_ST_OK;
        }
        if (strcmp(p.state, "DEAD") != 0) {
            td_fail(&w->err, TD_E_NOT_ALLOWED_IN_STATE, "notification %lld is %s, not DEAD", (long long)cmd->id,
                    p.state);
            return TD_ST_OK;
        }
    }
    cmd->n_replayed = 0;
    return OPS(w->svc)->outbox_replay(c, cmd->issuer_id, cmd->id, td_now_ms(), &cmd->n_replayed);
}

void td_svc_replay_dead(td_svc *svc, td_replay *cmd)
{
    cmd->w.run = run_replay;
    td_svc_submit(svc, &cmd->w);
}

/* ================= the worker's state ================= */

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
    char *resp;
    size_t resp_len;
    bool resp_too_big;
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

typedef struct {
    int64_t id;
    char state[12]; /* DELIVERED, DEAD, PENDING */
    int http_status;
    char error[160];
    int64_t retry_at_ms;
} outcome;

typedef struct {
    outcome *v;
    size_t n, cap;
} outcomes;

/* A set of the row ids this worker holds (claimed, outcome not yet committed). */
typedef struct {
    int64_t *slot; /* 0 = empty, -1 = removed */
    size_t cap, used;
} idset;

struct td_delivery {
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
    int64_t pause_until_ms;
    /* the write jobs in flight, oldest first (the writer runs them in order) */
    struct loop_job *jobs, *jobs_tail;
    int n_jobs;
    int claim_pending; /* transfer slots the claims in flight are filling */
};

static _Atomic(td_delivery *) current;

td_delivery *td_delivery_current(void)
{
    return atomic_load(&current);
}

/* ---- id set (open addressing) ---- */

static size_t id_hash(int64_t id, size_t cap)
{
    uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ULL;
    return (size_t)(x >> 17) & (cap - 1);
}

static bool idset_has(const idset *s, int64_t id)
{
    if (!s->cap) return false;
    for (size_t i = id_hash(id, s->cap), k = 0; k < s->cap; k++, i = (i + 1) & (s->cap - 1)) {
        if (s->slot[i] == 0) return false;
        if (s->slot[i] == id) return true;
    }
    return false;
}

static int idset_add(idset *s, int64_t id);

/* Rehashes without the tombstones; doubles only when live ids fill a quarter. */
static int idset_grow(idset *s)
{
    size_t live = 0;
    for (size_t i = 0; i < s->cap; i++)
        live += s->slot[i] > 0;
    idset n = {.cap = s->cap < 1024 ? 1024 : live * 4 > s->cap ? s->cap * 2 : s->cap};
    n.slot = calloc(n.cap, sizeof *n.slot);
    if (!n.slot) return -1;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slot[i] > 0) idset_add(&n, s->slot[i]);
    free(s->slot);
    *s = n;
    return 0;
}

static int idset_add(idset *s, int64_t id)
{
    if ((s->used + 1) * 2 > s->cap && idset_grow(s)) return -1;
    size_t i = id_hash(id, s->cap);
    while (s->slot[i] > 0 && s->slot[i] != id)
        i = (i + 1) & (s->cap - 1);
    if (s->slot[i] != id) {
        s->slot[i] = id;
        s->used++;
    }
    return 0;
}

static void idset_del(idset *s, int64_t id)
{
    if (!s->cap) return;
    for (size_t i = id_hash(id, s->cap), k = 0; k < s->cap; k++, i = (i + 1) & (s->cap - 1)) {
        if (s->slot[i] == 0) return;
        if (s->slot[i] == id) {
            s->slot[i] = -1; /* a tombstone: probing goes on past it */
            return;
        }
    }
}

/* Tombstones accumulate: rebuilt when the set is empty of live ids. */
static void idset_compact(idset *s)
{
    bool live = false;
    for (size_t i = 0; i < s->cap && !live; i++)
        live = s->slot[i] > 0;
    if (!live && s->cap) {
        memset(s->slot, 0, s->cap * sizeof *s->slot);
        s->used = 0;
    }
}

/* ---- outcomes ---- */

static void add_outcome(td_delivery *d, const td_outbox_rec *o, const char *state, int http_status, const char *error,
                        int64_t retry_at_ms)
{
    outcomes *os = &d->outs;
    if (os->n == os->cap) {
        size_t cap = os->cap ? os->cap * 2 : 256;
        outcome *v = realloc(os->v, cap * sizeof *v);
        if (!v) {
            /* The row stays IN_FLIGHT; its lease brings it back. */
            td_log(TD_LOG_ERROR, "delivery_oom", "notification %lld: outcome not recorded", (long long)o->id);
            idset_del(&d->held, o->id);
            return;
        }
        os->v = v;
        os->cap = cap;
    }
    outcome *r = &os->v[os->n++];
    memset(r, 0, sizeof *r);
    r->id = o->id;
    td_strlcpy(r->state, state, sizeof r->state);
    r->http_status = http_status;
    td_strlcpy(r->error, error ? error : "", sizeof r->error);
    r->retry_at_ms = retry_at_ms;
    if (!strcmp(state, "DEAD"))
        td_log(TD_LOG_WARN, "notification_dead", "notification %lld (issuer %s, %s %s) dead after %d attempts: %s",
               (long long)o->id, o->issuer_id, o->channel, o->channel[0] == 'U' ? o->message : o->operation,
               o->attempts + 1, r->error);
}

static double rnd01(void)
{
    uint32_t r;
    td_random_bytes(&r, sizeof r);
    return (double)r / 4294967296.0;
}

/* A failed attempt: PENDING again at `at` (after the back-off), or DEAD past max age. */
static void retry_or_dead(td_delivery *d, const work *w, const td_outbox_rec *o, int http_status, const char *why,
                          int64_t at)
{
    if (td_past_max_age(o, at, w->iss->configured ? w->iss->rec.max_age_ms : 24LL * 3600 * 1000)) {
        char e[160];
        snprintf(e, sizeof e, "max age reached: %s", why);
        add_outcome(d, o, "DEAD", http_status, e, 0);
    } else {
        add_outcome(d, o, "PENDING", http_status, why, at);
    }
}

static void work_free(work *w)
{
    if (!w) return;
    if (w->req.body) td_wipe(w->req.body, w->req.body_len);
    /* the headers may hold a bearer token: wiped (what was written of them) */
    for (int i = 0; i < w->req.n_headers && i < TD_NOTIFY_MAX_HEADERS; i++)
        td_wipe(w->req.headers[i], strnlen(w->req.headers[i], sizeof w->req.headers[i]));
    td_notify_req_free(&w->req);
    free(w->rows);
    free(w);
}

/* The work is over: its rows have outcomes. */
static void work_done(td_delivery *d, work *w)
{
    d->n_hand--;
    work_free(w);
}

static void finish_all(td_delivery *d, work *w, const char *state, int http_status, const char *error)
{
    for (int i = 0; i < w->n; i++)
        add_outcome(d, &w->rows[i], state, http_status, error, 0);
    work_done(d, w);
}

/* One back-off for all the rows of a request: a failed d1 batch is due again
 * as a whole, so it goes again as the same batch (the receiver sees the same
 * call retried) rather than scattered into new batches, each of which could
 * fail again and push its rows' back-off further. */
static void retry_all(td_delivery *d, work *w, int http_status, const char *why, int64_t retry_after_s)
{
    int attempts = 0;
    for (int i = 0; i < w->n; i++)
        if (w->rows[i].attempts > attempts) attempts = w->rows[i].attempts;
    int64_t at = td_now_ms() + td_backoff_ms(attempts + 1, atomic_load(&d->backoff_base), atomic_load(&d->backoff_cap),
                                             retry_after_s, rnd01());
    for (int i = 0; i < w->n; i++)
        retry_or_dead(d, w, &w->rows[i], http_status, why, at);
    work_done(d, w);
}

/* ---- issuers' settings ---- */

static void ent_drop_secrets(issuer_ent *e)
{
    if (e->secret) {
        td_wipe(e->secret, strlen(e->secret));
        free(e->secret);
        e->secret = NULL;
    }
    if (e->token) {
        td_wipe(e->token, strlen(e->token));
        free(e->token);
        e->token = NULL;
    }
    e->token_exp_ms = 0;
}

static void ent_load(td_delivery *d, issuer_ent *e, int64_t now)
{
    td_svc *svc = d->svc;
    td_conn *c = svc->store->reader(svc->store);
    td_delivery_rec r;
    memset(&r, 0, sizeof r);
    td_st st = c ? OPS(svc)->delivery_get(c, e->issuer_id, &r) : TD_ST_ERROR;
    if (st == TD_ST_NOT_FOUND) {
        if (e->configured) ent_drop_secrets(e);
        td_delivery_rec_free(&e->rec);
        e->configured = false;
        e->loaded_ms = now;
        return;
    }
    if (st != TD_ST_OK) {
        td_delivery_rec_free(&r);
        return; /* keep what we had; try again next time */
    }
    bool same = e->configured && r.updated_ms == e->rec.updated_ms && r.secret_len == e->rec.secret_len &&
                !memcmp(r.secret_sealed, e->rec.secret_sealed, r.secret_len);
    if (!same) {
        ent_drop_secrets(e);
        if (r.secret_len) {
            uint8_t *plain = NULL;
            size_t n = 0;
            if (td_open(svc->cfg->master_key, r.secret_sealed, r.secret_len, &plain, &n) == 0) {
                e->secret = malloc(n + 1);
                if (e->secret) {
                    memcpy(e->secret, plain, n);
                    e->secret[n] = 0;
                }
                td_wipe(plain, n);
            } else {
                td_log(TD_LOG_ERROR, "delivery_secret", "issuer %s: the delivery secret does not open (master key?)",
                       e->issuer_id);
            }
            free(plain);
        }
    }
    td_delivery_rec_free(&e->rec);
    e->rec = r;
    e->configured = true;
    e->loaded_ms = now;
}

static issuer_ent *issuer_get(td_delivery *d, const char *issuer_id, int64_t now)
{
    issuer_ent *e = d->issuers;
    while (e && strcmp(e->issuer_id, issuer_id) != 0)
        e = e->next;
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e) return NULL;
        td_strlcpy(e->issuer_id, issuer_id, sizeof e->issuer_id);
        e->next = d->issuers;
        d->issuers = e;
    }
    if (!e->loaded_ms || now - e->loaded_ms >= CACHE_MS) ent_load(d, e, now);
    return e;
}

/* The largest d1 batch among known issuers: how many rows a free slot may take. */
static int batch_hint(td_delivery *d)
{
    int h = 1;
    for (issuer_ent *e = d->issuers; e; e = e->next)
        if (e->configured && !strcmp(e->rec.profile, "d1") && e->rec.d1_batch_max > h) h = e->rec.d1_batch_max;
    return h;
}

/* ================= transfers ================= */

static size_t discard_body(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

static size_t keep_body(char *p, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    if (x->resp_len + len > TOKEN_BODY_MAX) {
        x->resp_too_big = true;
        return 0; /* aborts the transfer */
    }
    char *np = realloc(x->resp, x->resp_len + len + 1);
    if (!np) return 0;
    memcpy(np + x->resp_len, p, len);
    x->resp = np;
    x->resp_len += len;
    x->resp[x->resp_len] = 0;
    return len;
}

/* A new easy handle, or a spare one (with its options reset). */
static CURL *handle_get(td_delivery *d)
{
    return d->n_spare ? d->spare[--d->n_spare] : curl_easy_init();
}

static void handle_put(td_delivery *d, CURL *h)
{
    int cap = (int)(sizeof d->spare / sizeof d->spare[0]);
    if (d->n_spare < cap && d->n_spare < d->concurrency) {
        curl_easy_reset(h); /* forgets every option: URL, headers, body, credentials */
        d->spare[d->n_spare++] = h;
    } else {
        curl_easy_cleanup(h);
    }
}

static void xfer_cleanup(td_delivery *d, xfer *x)
{
    if (x->h) {
        curl_multi_remove_handle(d->multi, x->h);
        handle_put(d, x->h);
        x->h = NULL;
    }
    for (struct curl_slist *h = x->hdrs; h; h = h->next)
        td_wipe(h->data, strlen(h->data));
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
    if (x->post) {
        td_wipe(x->post, strlen(x->post));
        free(x->post);
        x->post = NULL;
    }
    if (x->resp) {
        td_wipe(x->resp, x->resp_len);
        free(x->resp);
        x->resp = NULL;
    }
    x->resp_len = 0;
}

static bool append_hdr(xfer *x, const char *h)
{
    struct curl_slist *n = curl_slist_append(x->hdrs, h);
    if (!n) return false;
    x->hdrs = n;
    return true;
}

/* The options every transfer shares: http(s) only, no redirects, the
 * issuer's TLS settings, a timeout within the lease. */
static bool common_opts(xfer *x, const td_delivery_rec *r, const char *url, long timeout_ms)
{
    CURL *h = x->h;
    bool ok = curl_easy_setopt(h, CURLOPT_URL, url) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->err) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_PRIVATE, x) == CURLE_OK;
    if (r->tls_cert_file[0]) ok = ok && curl_easy_setopt(h, CURLOPT_SSLCERT, r->tls_cert_file) == CURLE_OK;
    if (r->tls_key_file[0]) ok = ok && curl_easy_setopt(h, CURLOPT_SSLKEY, r->tls_key_file) == CURLE_OK;
    if (r->tls_ca_file[0]) ok = ok && curl_easy_setopt(h, CURLOPT_CAINFO, r->tls_ca_file) == CURLE_OK;
    if (r->tls_pinned_key[0]) ok = ok && curl_easy_setopt(h, CURLOPT_PINNEDPUBLICKEY, r->tls_pinned_key) == CURLE_OK;
    return ok;
}

/* What went wrong, for last_error: curl's message (no credentials: URLs
 * carry none, validation refuses control characters). */
static void curl_why(const xfer *x, CURLcode rc, long timeout_ms, char *out, size_t cap)
{
    if (rc == CURLE_OPERATION_TIMEDOUT)
        snprintf(out, cap, "timeout: no answer within %ld ms", timeout_ms);
    else
        snprintf(out, cap, "connection: %.120s", x->err[0] ? x->err : curl_easy_strerror(rc));
}

/* ---- OAuth2 client credentials ---- */

static void release_waiting(td_delivery *d, issuer_ent *e, bool ok, const char *why);
static void prepare(td_delivery *d, work *w);

static void token_fetch(td_delivery *d, issuer_ent *e)
{
    if (e->fetching) return;
    const td_delivery_rec *r = &e->rec;
    xfer *x = calloc(1, sizeof *x);
    if (!x) {
        release_waiting(d, e, false, "token endpoint: out of memory");
        return;
    }
    x->kind = X_TOKEN;
    x->iss = e;
    x->h = handle_get(d);
    /* Authorization: Basic base64(client_id:secret) */
    const char *secret = e->secret ? e->secret : "";
    size_t cl = strlen(r->oauth_client_id) + 1 + strlen(secret);
    char *cred = malloc(cl + 1);
    size_t b64n = sodium_base64_ENCODED_LEN(cl, sodium_base64_VARIANT_ORIGINAL);
    char *auth = malloc(b64n + 32);
    bool ok = x->h && cred && auth;
    if (ok) {
        snprintf(cred, cl + 1, "%s:%s", r->oauth_client_id, secret);
        memcpy(auth, "Authorization: Basic ", 21);
        sodium_bin2base64(auth + 21, b64n, (const unsigned char *)cred, cl, sodium_base64_VARIANT_ORIGINAL);
        ok = append_hdr(x, auth) && append_hdr(x, "Accept: application/json") &&
             append_hdr(x, "Content-Type: application/x-www-form-urlencoded") && append_hdr(x, "Expect:");
    }
    if (cred) {
        td_wipe(cred, cl);
        free(cred);
    }
    if (auth) {
        td_wipe(auth, strlen(auth));
        free(auth);
    }
    if (ok) {
        char *scope = r->oauth_scope[0] ? curl_easy_escape(x->h, r->oauth_scope, 0) : NULL;
        size_t pn = 64 + (scope ? strlen(scope) : 0);
        x->post = malloc(pn);
        if (x->post)
            snprintf(x->post, pn, "grant_type=client_credentials%s%s", scope ? "&scope=" : "", scope ? scope : "");
        curl_free(scope);
        ok = x->post != NULL;
    }
    ok = ok && common_opts(x, r, r->oauth_token_url, r->timeout_ms) &&
         curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs) == CURLE_OK &&
         curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, x->post) == CURLE_OK &&
         curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, keep_body) == CURLE_OK &&
         curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x) == CURLE_OK && curl_multi_add_handle(d->multi, x->h) == CURLM_OK;
    if (!ok) {
        xfer_cleanup(d, x);
        free(x);
        release_waiting(d, e, false, "token endpoint: the request could not be set up");
        return;
    }
    e->fetching = true;
    e->fetch = x;
    atomic_fetch_add(&d->token_fetches, 1);
}

static void token_done(td_delivery *d, xfer *x, CURLcode rc)
{
    issuer_ent *e = x->iss;
    e->fetching = false;
    e->fetch = NULL;
    char why[160] = "";
    long code = 0;
    if (rc != CURLE_OK) {
        char c[140];
        if (x->resp_too_big)
            snprintf(c, sizeof c, "answer larger than %d bytes", TOKEN_BODY_MAX);
        else
            curl_why(x, rc, e->rec.timeout_ms, c, sizeof c);
        snprintf(why, sizeof why, "token endpoint: %s", c);
    } else {
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
        if (code < 200 || code >= 300) snprintf(why, sizeof why, "token endpoint: HTTP %ld", code);
    }
    if (!why[0]) {
        json_error_t je;
        json_t *v = x->resp ? json_loadb(x->resp, x->resp_len, 0, &je) : NULL;
        json_t *tok = json_object_get(v, "access_token");
        json_t *exp = json_object_get(v, "expires_in");
        const char *t = json_string_value(tok);
        if (!t || !t[0] || has_ctl(t)) {
            snprintf(why, sizeof why, "token endpoint: no access_token in the answer");
        } else {
            int64_t life_s = json_is_integer(exp) ? (int64_t)json_integer_value(exp) : 3600;
            if (json_is_string(exp)) td_parse_i64(json_string_value(exp), &life_s);
            if (e->token) {
                td_wipe(e->token, strlen(e->token));
                free(e->token);
            }
            e->token = strdup(t);
            int64_t keep = life_s * 1000 - TOKEN_SKEW_MS;
            e->token_exp_ms = td_now_ms() + (keep > 0 ? keep : 0);
            e->token_gen++;
            if (!e->token) snprintf(why, sizeof why, "token endpoint: out of memory");
        }
        if (v) {
            /* jansson keeps its own copy of the token: wipe it before freeing */
            if (json_is_string(tok)) td_wipe((char *)json_string_value(tok), json_string_length(tok));
            json_decref(v);
        }
    }
    if (why[0]) td_log(TD_LOG_WARN, "delivery_token", "issuer %s: %s", e->issuer_id, why);
    xfer_cleanup(d, x);
    free(x);
    release_waiting(d, e, why[0] == 0, why);
}

/* The works that waited for a token: sent now, or retried later. */
static void release_waiting(td_delivery *d, issuer_ent *e, bool ok, const char *why)
{
    work *w = e->waiting;
    e->waiting = NULL;
    while (w) {
        work *next = w->next;
        w->next = NULL;
        if (ok)
            prepare(d, w);
        else
            retry_all(d, w, 0, why, 0);
        w = next;
    }
}

static bool token_valid(const issuer_ent *e, int64_t now)
{
    return e->token && (now < e->token_exp_ms || e->token_exp_ms == 0);
}

/* ---- notification transfers ---- */

static bool has_header(const td_notify_req *r, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < r->n_headers; i++)
        if (!strncasecmp(r->headers[i], name, n) && r->headers[i][n] == ':') return true;
    return false;
}

static void start_transfer(td_delivery *d, work *w, int64_t now)
{
    long timeout = w->iss->rec.timeout_ms;
    if (w->deadline_ms - now < timeout) timeout = (long)(w->deadline_ms - now);
    xfer *x = &w->x;
    memset(x, 0, sizeof *x);
    x->kind = X_NOTIFY;
    x->h = handle_get(d);
    bool ok = x->h != NULL;
    for (int i = 0; ok && i < w->req.n_headers; i++)
        ok = append_hdr(x, w->req.headers[i]);
    if (ok && !has_header(&w->req, "Content-Type")) ok = append_hdr(x, "Content-Type: application/json");
    ok = ok && append_hdr(x, "Expect:");
    ok = ok && common_opts(x, &w->iss->rec, w->req.url, timeout) &&
         curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs) == CURLE_OK &&
         curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, w->req.body ? w->req.body : "") == CURLE_OK &&
         curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE, (long)(w->req.body ? w->req.body_len : 0)) == CURLE_OK &&
         curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, discard_body) == CURLE_OK &&
         curl_multi_add_handle(d->multi, x->h) == CURLM_OK;
    if (!ok) {
        xfer_cleanup(d, x);
        retry_all(d, w, 0, "the request could not be set up", 0);
        return;
    }
    d->n_xfers++;
    w->aprev = NULL;
    w->anext = d->active;
    if (d->active) d->active->aprev = w;
    d->active = w;
    atomic_fetch_add(&d->in_flight, 1);
    atomic_fetch_add(&d->requests, 1);
}

/* A 401: an OAuth2 issuer's token is dropped and fetched again, once per
 * work; the work waits for it and is then built (signed) and sent afresh. */
static bool reauth(td_delivery *d, work *w)
{
    issuer_ent *e = w->iss;
    if (w->reauthed || !e->configured || strcmp(e->rec.auth, "oauth2") != 0) return false;
    w->reauthed = true;
    atomic_fetch_add(&d->reauth, 1);
    if (e->token && e->token_gen == w->token_gen) {
        td_wipe(e->token, strlen(e->token));
        free(e->token);
        e->token = NULL;
    }
    td_wipe(w->req.headers, sizeof w->req.headers);
    if (w->req.body) td_wipe(w->req.body, w->req.body_len);
    td_notify_req_free(&w->req);
    memset(&w->req, 0, sizeof w->req);
    prepare(d, w);
    return true;
}

static void unlink_active(td_delivery *d, work *w)
{
    if (w->aprev)
        w->aprev->anext = w->anext;
    else
        d->active = w->anext;
    if (w->anext) w->anext->aprev = w->aprev;
    w->aprev = w->anext = NULL;
    d->n_xfers--;
    atomic_fetch_sub(&d->in_flight, 1);
}

static void notify_done(td_delivery *d, work *w, CURLcode rc)
{
    xfer *x = &w->x;
    long code = 0;
    curl_off_t ra = 0;
    long timeout = 0;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(x->h, CURLINFO_RETRY_AFTER, &ra);
    timeout = w->iss->rec.timeout_ms;
    char why[160];
    if (rc != CURLE_OK) curl_why(x, rc, timeout, why, sizeof why);
    xfer_cleanup(d, x);
    unlink_active(d, w);
    /* The body is sent: an OTP in it is wiped now. */
    if (w->req.body) td_wipe(w->req.body, w->req.body_len);
    int hs = rc == CURLE_OK && code > 0 && code < 1000 ? (int)code : 0;
    td_attempt_class cls = rc != CURLE_OK ? TD_ATTEMPT_RETRY : td_attempt_classify(hs);
    if (rc == CURLE_OK) snprintf(why, sizeof why, "HTTP %d", hs);
    switch (cls) {
    case TD_ATTEMPT_DELIVERED: finish_all(d, w, "DELIVERED", hs, ""); return;
    case TD_ATTEMPT_PERMANENT: {
        char e[160];
        snprintf(e, sizeof e, "HTTP %d: refused (permanent)", hs);
        finish_all(d, w, "DEAD", hs, e);
        return;
    }
    case TD_ATTEMPT_REAUTH:
        if (reauth(d, w)) return;
        /* Not OAuth2, or refreshed already: a retry, with the settings read
         * again (an operator may be fixing the credentials). */
        w->iss->loaded_ms = 0;
        snprintf(why, sizeof why, "HTTP %d: credentials refused", hs);
        retry_all(d, w, hs, why, 0);
        return;
    case TD_ATTEMPT_RETRY: retry_all(d, w, hs, why, hs == 429 || hs == 503 ? (int64_t)ra : 0); return;
    }
}

/* Builds the request for a work and starts it; or parks it for a token; or
 * gives its rows their outcome when there is nothing to send. */
static void prepare(td_delivery *d, work *w)
{
    td_svc *svc = d->svc;
    issuer_ent *e = w->iss;
    int64_t now = td_now_ms();
    if (!e->configured) {
        retry_all(d, w, 0, "the issuer has no delivery settings", 0);
        return;
    }
    if (w->deadline_ms - now < MIN_ATTEMPT_MS) {
        retry_all(d, w, 0, "the claim ran out before the attempt", 0);
        return;
    }
    if (strcmp(e->rec.auth, "none") != 0 && !e->secret) {
        retry_all(d, w, 0, "the delivery secret cannot be opened", 0);
        return;
    }
    const char *bearer = NULL, *sign = NULL;
    if (!strcmp(e->rec.auth, "oauth2")) {
        if (!token_valid(e, now)) {
            w->next = e->waiting;
            e->waiting = w;
            token_fetch(d, e);
            return;
        }
        bearer = e->token;
        w->token_gen = e->token_gen;
    } else if (!strcmp(e->rec.auth, "bearer")) {
        bearer = e->secret;
    } else if (!strcmp(e->rec.auth, "webhook")) {
        sign = e->secret;
    }
    char otp[64] = "";
    bool otp_bad = false;
    if (w->n == 1 && w->rows[0].secret_len > 0) {
        uint8_t *plain = NULL;
        size_t n = 0;
        if (td_open(svc->cfg->master_key, w->rows[0].secret_sealed, w->rows[0].secret_len, &plain, &n) == 0 &&
            n < sizeof otp) {
            memcpy(otp, plain, n);
            otp[n] = 0;
        } else {
            otp_bad = true;
        }
        if (plain) {
            td_wipe(plain, n);
            free(plain);
        }
    }
    char err[160] = "";
    int rc = -2;
    if (!otp_bad) {
        rc = td_notify_build(&e->rec, w->rows, w->n, sign, bearer, otp[0] ? otp : NULL, now / 1000, &w->req, err,
                             sizeof err);
    }
    td_wipe(otp, sizeof otp);
    if (otp_bad) {
        finish_all(d, w, "DEAD", 0, "the OTP cannot be opened");
        return;
    }
    if (rc == 1) {
        finish_all(d, w, "DELIVERED", 0, "not sent in this profile");
        return;
    }
    if (rc != 0) {
        if (!err[0]) td_strlcpy(err, "the request could not be built", sizeof err);
        finish_all(d, w, "DEAD", 0, err);
        return;
    }
    start_transfer(d, w, now);
}

/* ================= the write job: record, then claim ================= */

typedef struct loop_job {
    td_write w;
    td_delivery *d;
    outcome *outs;
    size_t n_outs;
    int64_t now, lease_until;
    int limit;
    /* out */
    td_outbox_rec *claimed;
    size_t n_claimed, cap;
    bool oom;
    int slots;        /* a claim's: the slots it fills (limit counts rows: d1 batches) */
    int64_t next_due; /* a claim's: outbox_next_due after it */
    atomic_bool done; /* set by the writer thread when the job completed */
    struct loop_job *next;
} loop_job;

static void collect_claim(const td_outbox_rec *o, void *arg)
{
    loop_job *j = arg;
    if (j->n_claimed == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 64;
        td_outbox_rec *v = realloc(j->claimed, cap * sizeof *v);
        if (!v) {
            j->oom = true; /* the row stays IN_FLIGHT until its lease ends */
            return;
        }
        j->claimed = v;
        j->cap = cap;
    }
    j->claimed[j->n_claimed++] = *o;
}

static td_st run_loop_job(td_conn *c, td_write *w)
{
    loop_job *j = (loop_job *)w;
    const td_store_ops *ops = OPS(w->svc);
    for (size_t i = 0; i < j->n_outs; i++) {
        const outcome *o = &j->outs[i];
        td_st st = ops->outbox_attempt(c, o->id, o->state, o->http_status, o->error, j->now, o->retry_at_ms);
        if (st != TD_ST_OK && st != TD_ST_NOT_FOUND) return st;
    }
    j->n_claimed = 0;
    if (j->limit <= 0) return TD_ST_OK;
    td_st st = ops->outbox_claim(c, j->now, j->lease_until, j->limit, collect_claim, j);
    /* Not knowing it only leaves the next retry to the poll. */
    if (st == TD_ST_OK && ops->outbox_next_due(c, j->now, &j->next_due) != TD_ST_OK) j->next_due = 0;
    return st;
}

static void render_empty(td_write *w)
{
    w->status = 200;
    w->body = strdup("{}");
}

static void loop_job_complete(td_write *w)
{
    loop_job *j = (loop_job *)w;
    td_delivery *d = j->d;
    atomic_store(&j->done, true);
    curl_multi_wakeup(d->multi);
}

static void submit_job(td_delivery *d, int64_t now, int limit, int slots)
{
    loop_job *j = calloc(1, sizeof *j);
    if (!j) return;
    j->d = d;
    j->now = now;
    j->lease_until = now + d->lease_ms;
    j->limit = limit;
    j->slots = slots;
    j->outs = d->outs.v;
    j->n_outs = d->outs.n;
    d->outs = (outcomes){0};
    j->w.run = run_loop_job;
    j->w.render = render_empty;
    j->w.complete = loop_job_complete;
    /* Outcomes and claims are bookkeeping that a power failure may only undo:
     * the rows go again under the same ids (at least once; receivers dedupe). */
    j->w.job.lax = true;
    atomic_store(&j->done, false);
    if (d->jobs_tail)
        d->jobs_tail->next = j;
    else
        d->jobs = j;
    d->jobs_tail = j;
    d->n_jobs++;
    d->claim_pending += slots;
    if (limit > 0) d->last_claim_ms = now;
    td_svc_submit(d->svc, &j->w);
}

/* Whether two batchable rows may go in one request. The rows of a failed
 * batch got one back-off (retry_all), so they come due together: a retried
 * row joins only rows due at the same instant that were tried before too (the
 * batch it failed in), a fresh row only fresh rows. So a failed batch goes
 * again as the same call, instead of being cut and mixed with other rows
 * under a new first operation. */
static bool same_batch_group(const td_outbox_rec *a, const td_outbox_rec *b)
{
    if (a->attempts == 0 || b->attempts == 0) return a->attempts == 0 && b->attempts == 0;
    return a->due_ms == b->due_ms;
}

/* Groups claimed rows into works: a d1 issuer's batchable rows share one. */
static void make_works(td_delivery *d, loop_job *j, int64_t claimed_at)
{
    int64_t margin = d->lease_ms / 4 < 5000 ? d->lease_ms / 4 : 5000;
    bool *used = calloc(j->n_claimed ? j->n_claimed : 1, sizeof *used);
    if (!used) return; /* the rows come back when their lease ends */
    for (size_t i = 0; i < j->n_claimed; i++) {
        if (used[i]) continue;
        used[i] = true;
        td_outbox_rec *o = &j->claimed[i];
        if (idset_has(&d->held, o->id)) continue; /* already ours (a lease that ran out) */
        issuer_ent *e = issuer_get(d, o->issuer_id, claimed_at);
        if (!e) continue;
        int max = e->configured && !strcmp(e->rec.profile, "d1") ? e->rec.d1_batch_max : 1;
        if (max > BATCH_MAX) max = BATCH_MAX;
        work *w = calloc(1, sizeof *w);
        td_outbox_rec *rows = calloc((size_t)max, sizeof *rows);
        if (!w || !rows) {
            free(w);
            free(rows);
            continue;
        }
        w->iss = e;
        w->rows = rows;
        w->deadline_ms = claimed_at + d->lease_ms - margin;
        w->rows[w->n++] = *o;
        for (size_t k = i + 1; k < j->n_claimed && w->n < max && e->configured; k++) {
            td_outbox_rec *b = &j->claimed[k];
            if (used[k] || strcmp(b->issuer_id, o->issuer_id) != 0 || idset_has(&d->held, b->id)) continue;
            if (!td_notify_batchable(&e->rec, o, b) || !same_batch_group(o, b)) continue;
            used[k] = true;
            w->rows[w->n++] = *b;
        }
        for (int k = 0; k < w->n; k++)
            idset_add(&d->held, w->rows[k].id);
        d->n_hand++;
        if (d->ready_tail)
            d->ready_tail->next = w;
        else
            d->ready = w;
        d->ready_tail = w;
        d->n_ready++;
    }
    free(used);
}

/* The oldest job in flight has completed. */
static bool job_ready(td_delivery *d)
{
    return d->jobs && atomic_load(&d->jobs->done);
}

/* Takes the oldest job in flight, completed (job_ready). */
static void job_finished(td_delivery *d)
{
    loop_job *j = d->jobs;
    d->jobs = j->next;
    if (!d->jobs) d->jobs_tail = NULL;
    d->n_jobs--;
    d->claim_pending -= j->slots;
    int64_t now = td_now_ms();
    bool ok = j->w.err.code == TD_OK;
    free(j->w.body);
    if (ok) {
        /* A retry is claimed when it comes due, not at the next poll: a claim
         * tells when the next waiting row is due (the retries it recorded
         * included), a job without a claim may record retries due sooner. */
        if (j->limit > 0) d->next_due_ms = j->next_due;
        for (size_t i = 0; i < j->n_outs; i++) {
            const outcome *o = &j->outs[i];
            idset_del(&d->held, o->id);
            if (!strcmp(o->state, "DELIVERED")) {
                atomic_fetch_add(&d->delivered, 1);
            } else if (!strcmp(o->state, "DEAD")) {
                atomic_fetch_add(&d->dead, 1);
            } else {
                atomic_fetch_add(&d->retried, 1);
                if (!d->next_due_ms || o->retry_at_ms < d->next_due_ms) d->next_due_ms = o->retry_at_ms;
            }
        }
        free(j->outs);
        /* A full claim means more rows are due: claim again as soon as slots
         * free up, without waiting for the poll. A job that only recorded
         * outcomes says nothing about that (it must not reset it, or every
         * burst would stall until the next poll). */
        if (j->limit > 0) d->last_claim_full = j->n_claimed >= (size_t)j->limit;
        make_works(d, j, j->now);
        idset_compact(&d->held);
    } else {
        /* Nothing was written: the outcomes go with the next job. */
        td_log(TD_LOG_WARN, "delivery_write_failed", "recording %zu outcomes%s: %s; trying again", j->n_outs,
               j->limit > 0 ? " and claiming" : "", j->w.err.detail);
        size_t need = d->outs.n + j->n_outs;
        outcome *v = realloc(j->outs, (need ? need : 1) * sizeof *v);
        if (v) {
            if (d->outs.n) memcpy(v + j->n_outs, d->outs.v, d->outs.n * sizeof *v);
            free(d->outs.v);
            d->outs = (outcomes){.v = v, .n = need, .cap = need};
        } else {
            /* out of memory: these rows come back when their lease ends */
            for (size_t i = 0; i < j->n_outs; i++)
                idset_del(&d->held, j->outs[i].id);
            free(j->outs);
        }
        d->pause_until_ms = now + FAIL_PAUSE_MS;
    }
    free(j->claimed);
    free(j);
}

/* ================= the loop ================= */

static void start_ready(td_delivery *d)
{
    while (d->ready && d->n_xfers < d->concurrency) {
        work *w = d->ready;
        d->ready = w->next;
        if (!d->ready) d->ready_tail = NULL;
        d->n_ready--;
        w->next = NULL;
        prepare(d, w);
    }
}

static void read_done(td_delivery *d)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(d->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        CURLcode rc = m->data.result;
        xfer *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (!x) continue;
        if (x->kind == X_TOKEN) {
            token_done(d, x, rc);
        } else {
            work *w = (work *)((char *)x - offsetof(work, x));
            notify_done(d, w, rc);
        }
    }
}

static void refresh_stats(td_delivery *d, int64_t now)
{
    if (now - d->stats_ms < STATS_EVERY_MS) return;
    d->stats_ms = now;
    td_conn *c = d->svc->store->reader(d->svc->store);
    int64_t p = 0, f = 0, dd = 0, oldest = 0;
    if (c && OPS(d->svc)->outbox_stats(c, &p, &f, &dd, &oldest) == TD_ST_OK) {
        atomic_store(&d->st_pending, p);
        atomic_store(&d->st_in_flight, f);
        atomic_store(&d->st_dead, dd);
        atomic_store(&d->st_oldest_ms, oldest);
    }
}

/* Transfers abandoned at shutdown: their rows stay IN_FLIGHT and are claimed
 * again when the lease ends (after the restart). */
static void abandon_all(td_delivery *d)
{
    while (d->active) {
        work *w = d->active;
        xfer_cleanup(d, &w->x);
        unlink_active(d, w);
        work_done(d, w);
    }
    while (d->ready) {
        work *w = d->ready;
        d->ready = w->next;
        work_done(d, w);
    }
    d->ready_tail = NULL;
    d->n_ready = 0;
    for (issuer_ent *e = d->issuers; e; e = e->next) {
        if (e->fetch) {
            xfer_cleanup(d, e->fetch);
            free(e->fetch);
            e->fetch = NULL;
            e->fetching = false;
        }
        while (e->waiting) {
            work *w = e->waiting;
            e->waiting = w->next;
            work_done(d, w);
        }
    }
}

static void *worker(void *arg)
{
    td_delivery *d = arg;
    int64_t drain_until = 0;
    int final_tries = 0;
    for (;;) {
        int64_t now = td_now_ms();
        bool stop = atomic_load(&d->stop);
        if (stop && !drain_until) drain_until = now + DRAIN_MS;
        /* the job in flight */
        while (job_ready(d))
            job_finished(d);
        start_ready(d);
        /* the next job: outcomes to record and/or rows to claim */
        bool may_submit = d->n_jobs == 0 || (d->n_jobs < JOBS_MAX && d->outs.n >= PIPELINE_MIN);
        if (may_submit && now >= d->pause_until_ms) {
            int slots = HOLD_PER_SLOT * d->concurrency - d->n_hand - d->claim_pending;
            bool kicked = atomic_load(&d->kicked) && now - d->last_claim_ms >= KICK_MIN_MS;
            /* Claim when rows are likely due: the last claim was full, a commit
             * owed new rows (kick), or this job records outcomes — a delivered
             * or dead row makes the next row of its order key claimable —,
             * a retry came due, else at the next poll (a lease that ran out). */
            bool due = d->next_due_ms && now >= d->next_due_ms && now - d->last_claim_ms >= KICK_MIN_MS;
            bool claim = !stop && slots > 0 &&
                         (d->last_claim_full || kicked || due || d->outs.n > 0 || now - d->last_claim_ms >= d->poll_ms);
            int limit = 0;
            if (claim) {
                atomic_store(&d->kicked, false); /* this claim answers it */
                d->next_due_ms = 0;              /* and it will tell the next one */
                long l = (long)slots * batch_hint(d);
                limit = l > CLAIM_MAX ? CLAIM_MAX : (int)l;
            }
            if (d->outs.n || limit > 0) submit_job(d, now, limit, limit > 0 ? slots : 0);
        }
        refresh_stats(d, now);
        if (stop && !d->n_jobs && !d->outs.n && d->n_hand == 0) break;
        if (stop && now >= drain_until && !d->n_jobs) {
            /* a few tries to record what finished; then the leases take over */
            if (d->outs.n && final_tries++ < 3) {
                submit_job(d, now, 0, 0);
                continue;
            }
            break;
        }
        /* wait: network, the job, a kick, or the next poll */
        int running = 0;
        curl_multi_perform(d->multi, &running);
        read_done(d);
        if (job_ready(d)) continue;
        long wait = 1000;
        if (!d->n_jobs && !stop && d->n_hand < HOLD_PER_SLOT * d->concurrency) {
            int64_t next = d->last_claim_ms + (atomic_load(&d->kicked) ? KICK_MIN_MS : d->poll_ms) - now;
            if (d->next_due_ms) {
                int64_t at =
                    d->next_due_ms > d->last_claim_ms + KICK_MIN_MS ? d->next_due_ms : d->last_claim_ms + KICK_MIN_MS;
                if (at - now < next) next = at - now;
            }
            wait = next < 1 ? 1 : (long)next;
        }
        if (d->pause_until_ms > now && d->pause_until_ms - now < wait) wait = (long)(d->pause_until_ms - now);
        /* outcomes to record go at once (after a failed job's pause) */
        if (d->outs.n && (!d->n_jobs || (d->n_jobs < JOBS_MAX && d->outs.n >= PIPELINE_MIN)))
            wait = d->pause_until_ms > now ? (long)(d->pause_until_ms - now) : 0;
        if (stop && wait > 50) wait = 50;
        if (d->n_xfers || d->n_jobs || wait > 0) {
            long ct = -1;
            curl_multi_timeout(d->multi, &ct);
            if (ct >= 0 && ct < wait) wait = ct;
            if (wait > 0) curl_multi_poll(d->multi, NULL, 0, (int)wait, NULL);
        }
        curl_multi_perform(d->multi, &running);
        read_done(d);
    }
    abandon_all(d);
    while (d->n_spare)
        curl_easy_cleanup(d->spare[--d->n_spare]);
    return NULL;
}

/* ================= start, stop, stats ================= */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

td_delivery *td_delivery_start(td_svc *svc)
{
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) return NULL;
    td_delivery *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->svc = svc;
    const td_config *cfg = svc->cfg;
    d->concurrency = cfg && cfg->delivery_concurrency > 0 ? cfg->delivery_concurrency : 64;
    d->poll_ms = cfg && cfg->delivery_poll_ms > 0 ? cfg->delivery_poll_ms : 200;
    d->lease_ms = cfg && cfg->delivery_lease_ms >= 1000 ? cfg->delivery_lease_ms : 60000;
    atomic_store(&d->backoff_base, DEFAULT_BACKOFF_BASE);
    atomic_store(&d->backoff_cap, DEFAULT_BACKOFF_CAP);
    d->last_claim_ms = INT64_MIN / 2;
    d->multi = curl_multi_init();
    if (!d->multi) {
        free(d);
        return NULL;
    }
    curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, (long)d->concurrency);
    if (pthread_create(&d->thread, NULL, worker, d) != 0) {
        curl_multi_cleanup(d->multi);
        free(d);
        return NULL;
    }
    pthread_setname_np(d->thread, "td-delivery"); /* names it in top -H, perf and the benchmarks */
    atomic_store(&current, d);
    return d;
}

void td_delivery_stop(td_delivery *d)
{
    if (!d) return;
    td_delivery *me = d;
    atomic_compare_exchange_strong(&current, &me, NULL);
    atomic_store(&d->stop, true);
    curl_multi_wakeup(d->multi);
    pthread_join(d->thread, NULL);
    for (issuer_ent *e = d->issuers; e;) {
        issuer_ent *next = e->next;
        ent_drop_secrets(e);
        td_delivery_rec_free(&e->rec);
        free(e);
        e = next;
    }
    free(d->outs.v);
    free(d->held.slot);
    curl_multi_cleanup(d->multi);
    free(d);
}

void td_delivery_kick(td_delivery *d)
{
    if (!d) return;
    atomic_store(&d->kicked, true);
    curl_multi_wakeup(d->multi);
}

void td_delivery_set_backoff(td_delivery *d, int64_t base_ms, int64_t cap_ms)
{
    if (!d || base_ms < 1 || cap_ms < base_ms) return;
    atomic_store(&d->backoff_base, base_ms);
    atomic_store(&d->backoff_cap, cap_ms);
}

void td_delivery_stats(td_delivery *d, td_delivery_counters *out)
{
    memset(out, 0, sizeof *out);
    if (!d) return;
    out->delivered = atomic_load(&d->delivered);
    out->retried = atomic_load(&d->retried);
    out->dead = atomic_load(&d->dead);
    out->requests = atomic_load(&d->requests);
    out->reauth = atomic_load(&d->reauth);
    out->token_fetches = atomic_load(&d->token_fetches);
    out->in_flight = atomic_load(&d->in_flight);
    out->store_pending = atomic_load(&d->st_pending);
    out->store_in_flight = atomic_load(&d->st_in_flight);
    out->store_dead = atomic_load(&d->st_dead);
    int64_t oldest = atomic_load(&d->st_oldest_ms);
    int64_t age = oldest > 0 ? td_now_ms() - oldest : 0;
    out->oldest_pending_age_ms = age > 0 ? age : 0;
}
