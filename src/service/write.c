/* write.c — the generic write: idempotency, the use case, rendering and the
 * stored answer in one transaction; mapping commit failures to 503/504. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "service/service.h"
#include "util/log.h"

void td_request_hash(const char *method, const char *path, const char *body, size_t body_len, char out[65])
{
    crypto_hash_sha256_state st;
    uint8_t h[32];
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)method, strlen(method) + 1);
    crypto_hash_sha256_update(&st, (const uint8_t *)path, strlen(path) + 1);
    if (body) crypto_hash_sha256_update(&st, (const uint8_t *)body, body_len);
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(out, 65, h, sizeof h);
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
    if (strcmp(rec.req_hash, w->req_hash) != 0) {
        td_fail(&w->err, TD_E_IDEMPOTENCY_REUSED, "Idempotency-Key '%.64s' was used with a different request",
                w->idem_key);
    } else {
        w->status = rec.status;
        w->body = rec.body;
        rec.body = NULL;
        w->replayed = true;
        *replayed = true;
    }
    td_idem_rec_free(&rec);
    return TD_ST_OK;
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
    if (w->idem && w->status >= 200 && w->status < 300) {
        td_idem_rec rec = {.status = w->status, .body = w->body};
        memcpy(rec.req_hash, w->req_hash, sizeof rec.req_hash);
        st = w->svc->store->ops->idem_put(c, w->idem_scope, w->idem_key, &rec);
    }
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
