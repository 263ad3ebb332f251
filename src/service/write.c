/* write.c — the generic write: idempotency, the use case, rendering and the
 * stored answer in one transaction; mapping commit failures to 503/504.
 * Records hold a keyed request hash and a sealed answer (docs/api.md,
 * Idempotency). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "service/service.h"
#include "util/log.h"

void td_request_hash(const td_svc *svc, const char *method, const char *path, const char *body, size_t body_len,
                     char out[65])
{
    if (svc->cfg->idem_hash_key_set)
        td_idem_request_hash_keyed(svc->cfg->idem_hash_key, method, path, body, body_len, out);
    else
        td_idem_request_hash(svc->cfg->master_key, method, path, body, body_len, out);
}

/* The unit separator keeps ("ab", "c") apart from ("a", "bc"). */
char *td_idem_answer_aad(const char *scope, const char *key, const char *req_hash)
{
    size_t n = strlen(scope) + strlen(key) + strlen(req_hash) + 3;
    char *aad = malloc(n);
    if (aad) snprintf(aad, n, "%s\x1f%s\x1f%s", scope, key, req_hash);
    return aad;
}

static char *answer_aad(const td_write *w)
{
    return td_idem_answer_aad(w->idem_scope, w->idem_key, w->req_hash);
}

/* The stored answer in clear, from its sealed form; TD_ST_INTERNAL (and a log
 * line naming the record's scope) if it does not open: a store written under
 * another master key, or a row changed by hand. */
static td_st open_answer(const td_write *w, const char *sealed, char **out)
{
    char *aad = answer_aad(w);
    int rc = aad ? td_idem_open_answer(w->svc->cfg->master_key, aad, sealed, out) : -1;
    free(aad);
    if (rc == 0) return TD_ST_OK;
    td_log(TD_LOG_ERROR, "idempotency_answer_unreadable",
           "the stored answer for an Idempotency-Key of credential %.12s does not open (master key?)", w->idem_scope);
    return TD_ST_INTERNAL;
}

static td_st store_answer(td_conn *c, td_write *w)
{
    td_idem_rec rec = {.status = w->status};
    char *aad = answer_aad(w);
    int rc = aad ? td_idem_seal_answer(w->svc->cfg->master_key, aad, w->body, &rec.body) : -1;
    free(aad);
    if (rc != 0) return TD_ST_INTERNAL;
    memcpy(rec.req_hash, w->req_hash, sizeof rec.req_hash);
    td_st st = w->svc->store->ops->idem_put(c, w->idem_scope, w->idem_key, &rec);
    free(rec.body);
    return st;
}

/* A stored answer replays only for the same request; the same key with another
 * request is the caller's mistake (409). */
static td_st check_replay(td_conn *c, td_write *w, bool *replayed)
{
    td_idem_rec rec = {0};
    td_st st = w->svc->store->ops->idem_get(c, w->idem_scope, w->idem_key, &rec);
    *replayed = false;
    if (st == TD_ST_NOT_FOUND) return TD_ST_OK;
    if (st != TD_ST_OK) return st;
    if (!strcmp(rec.req_hash, TD_IDEM_RETIRED)) {
        td_fail(&w->err, TD_E_IDEMPOTENCY_REUSED,
                "Idempotency-Key '%.64s' was used before an upgrade that discarded stored answers: its first "
                "request may have taken effect; check, then use a new key",
                w->idem_key);
    } else if (strcmp(rec.req_hash, w->req_hash) != 0) {
        td_fail(&w->err, TD_E_IDEMPOTENCY_REUSED, "Idempotency-Key '%.64s' was used with a different request",
                w->idem_key);
    } else {
        st = open_answer(w, rec.body, &w->body);
        if (st == TD_ST_OK) {
            w->status = rec.status;
            w->replayed = true;
            *replayed = true;
        }
    }
    td_idem_rec_free(&rec);
    return st;
}

static td_st job_run(td_conn *c, void *arg)
{
    td_write *w = arg;
    bool replayed;
    if (w->idem) {
        td_st st = check_replay(c, w, &replayed);
        if (st != TD_ST_OK) return st;
        if (replayed || w->err.code) return TD_ST_OK;
    }
    td_st st = w->run(c, w);
    if (st != TD_ST_OK) return st;
    /* A refusal changes nothing: roll back anything the use case wrote. */
    if (w->err.code) return TD_ST_NOT_FOUND;
    w->render(w);
    if (!w->body) return TD_ST_INTERNAL; /* rendering failed: out of memory */
    if (w->idem && w->status >= 200 && w->status < 300) st = store_answer(c, w);
    return st;
}

static void job_done(void *arg, td_st st)
{
    td_write *w = arg;
    if (st != TD_ST_OK && !w->err.code) {
        free(w->body);
        w->body = NULL;
        if (st == TD_ST_BUSY)
            td_fail(&w->err, TD_E_TIMEOUT, "the change was not committed in time; nothing was changed");
        else if (st == TD_ST_INTERNAL)
            td_fail(&w->err, TD_E_INTERNAL, "an internal error prevented the change; nothing was changed");
        else if (st == TD_ST_UNKNOWN) /* a failover during COMMIT: never report it done, nor undone */
            td_fail(&w->err, TD_E_UNAVAILABLE,
                    "the store stopped answering while committing: the change may have been made; retrying the "
                    "same request is safe");
        else
            td_fail(&w->err, TD_E_UNAVAILABLE, "the store is unavailable; nothing was changed");
    }
    w->complete(w);
}

void td_svc_submit(td_svc *svc, td_write *w)
{
    w->svc = svc;
    w->job.run = job_run;
    w->job.done = job_done;
    w->job.arg = w;
    if (svc->store->submit(svc->store, &w->job) != 0) {
        td_fail(&w->err, TD_E_UNAVAILABLE, "the service is shutting down");
        w->complete(w);
    }
}
