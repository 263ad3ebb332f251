/* credentials.c — API keys: made (shown once, stored as a keyed hash),
 * revoked, listed, and checked on every request through a short cache; and
 * the credential audit log (credential_events) each change is written to. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "service/service.h"
#include "util/log.h"
#include "util/util.h"

#define OPS(w) ((w)->svc->store->ops)

static const char *owner_kind_name(td_cred_kind kind)
{
    return kind == TD_CRED_MEMBER ? "member" : "issuer";
}

td_st td_credevent_write(td_conn *c, const td_store_ops *ops, const char *type, const char *owner_kind,
                         const char *owner_id, const char *key_id, const char *detail_json)
{
    td_credevent_rec e = {.time_ms = td_now_ms()};
    td_strlcpy(e.type, type, sizeof e.type);
    td_strlcpy(e.owner_kind, owner_kind, sizeof e.owner_kind);
    td_strlcpy(e.owner_id, owner_id, sizeof e.owner_id);
    td_strlcpy(e.key_id, key_id, sizeof e.key_id);
    td_strlcpy(e.detail_json, detail_json ? detail_json : "{}", sizeof e.detail_json);
    return ops->credevent_append(c, &e);
}

/* ---- the cache of authenticated credentials ---- */

/* Credentials that authenticated, cached briefly so that a request does not
 * pay a store read for its key (16 % of a GET, bench/HISTORY.md). A revocation
 * drops its entry on the node that made it; another node on the same
 * PostgreSQL reads the key again at most TD_CRED_CACHE_TTL_S seconds after it
 * cached it, and then refuses it (docs/api.md, Credentials). Only keys that
 * authenticated are cached: an unknown or revoked key is read every time. */
#define CRED_SLOTS 4096
#define CRED_TTL_US (TD_CRED_CACHE_TTL_S * 1000000LL)
static struct {
    pthread_mutex_t mu;
    struct {
        td_cred_rec cred;
        int64_t until_us;
    } slot[CRED_SLOTS];
} cred_cache = {.mu = PTHREAD_MUTEX_INITIALIZER};

static unsigned cred_slot(const char *hash)
{
    unsigned v = 0;
    for (int i = 0; i < 8; i++)
        v = v * 16 + (unsigned)(hash[i] <= '9' ? hash[i] - '0' : hash[i] - 'a' + 10);
    return v % CRED_SLOTS;
}

static bool cred_cached(const char *hash, td_cred_rec *out)
{
    unsigned i = cred_slot(hash);
    pthread_mutex_lock(&cred_cache.mu);
    bool hit = cred_cache.slot[i].until_us > td_mono_us() && !strcmp(cred_cache.slot[i].cred.hash, hash);
    if (hit) *out = cred_cache.slot[i].cred;
    pthread_mutex_unlock(&cred_cache.mu);
    return hit;
}

static void cred_remember(const td_cred_rec *cred)
{
    unsigned i = cred_slot(cred->hash);
    pthread_mutex_lock(&cred_cache.mu);
    cred_cache.slot[i].cred = *cred;
    cred_cache.slot[i].until_us = td_mono_us() + CRED_TTL_US;
    pthread_mutex_unlock(&cred_cache.mu);
}

static void cred_forget(const char *hash)
{
    unsigned i = cred_slot(hash);
    pthread_mutex_lock(&cred_cache.mu);
    if (!strcmp(cred_cache.slot[i].cred.hash, hash)) cred_cache.slot[i].until_us = 0;
    pthread_mutex_unlock(&cred_cache.mu);
}

td_err td_svc_authenticate(td_svc *svc, const char *api_key, td_cred_rec *cred, td_error *e)
{
    char hash[65];
    td_api_key_hash(api_key, hash);
    if (cred_cached(hash, cred)) return TD_OK;
    td_conn *c = svc->store->reader(svc->store);
    if (!c) return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    td_st st = svc->store->ops->cred_get(c, hash, cred);
    if (st == TD_ST_NOT_FOUND) return td_fail(e, TD_E_UNAUTHENTICATED, "unknown API key");
    if (st != TD_ST_OK) return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    if (cred->revoked_ms) return td_fail(e, TD_E_UNAUTHENTICATED, "the API key was revoked");
    cred_remember(cred);
    return TD_OK;
}

/* ---- making one ---- */

static td_st owner_exists(td_conn *c, td_write *w, td_cred_kind kind, const char *owner_id)
{
    td_st st;
    if (kind == TD_CRED_MEMBER) {
        td_member_rec m;
        st = OPS(w)->member_get(c, owner_id, &m);
    } else {
        td_issuer_rec i;
        st = OPS(w)->issuer_get(c, owner_id, &i);
    }
    if (st == TD_ST_NOT_FOUND) td_fail(&w->err, TD_E_NOT_FOUND, "%s %s not found", owner_kind_name(kind), owner_id);
    return st;
}

static td_st run_create_api_key(td_conn *c, td_write *w)
{
    td_create_api_key *cmd = (td_create_api_key *)w;
    td_st st = owner_exists(c, w, cmd->kind, cmd->owner_id);
    if (st == TD_ST_NOT_FOUND) return TD_ST_OK;
    if (st != TD_ST_OK) return st;
    /* "tk_" marks tokend keys in secret scanners; 32 random bytes behind it. */
    char secret[64];
    if (td_new_secret(32, secret, sizeof secret)) return TD_ST_ERROR;
    snprintf(cmd->api_key, sizeof cmd->api_key, "tk_%s", secret);
    td_cred_rec k = {0};
    td_api_key_hash(cmd->api_key, k.hash);
    td_api_key_id(k.hash, k.key_id);
    k.kind = cmd->kind;
    td_strlcpy(k.owner_id, cmd->owner_id, sizeof k.owner_id);
    k.level = cmd->level;
    td_strlcpy(k.role, cmd->role, sizeof k.role);
    td_strlcpy(k.cert_sha256, cmd->cert_sha256, sizeof k.cert_sha256);
    k.created_ms = td_now_ms();
    st = OPS(w)->cred_insert(c, &k);
    if (st != TD_ST_OK) return st;
    memcpy(cmd->key_id, k.key_id, sizeof cmd->key_id);
    char detail[64];
    if (cmd->kind == TD_CRED_MEMBER)
        snprintf(detail, sizeof detail, "{\"level\":\"%s\"}", td_level_name(cmd->level));
    else
        snprintf(detail, sizeof detail, "{\"role\":\"%s\"}", cmd->role);
    return td_credevent_write(c, OPS(w), "API_KEY_CREATED", owner_kind_name(cmd->kind), cmd->owner_id, k.key_id,
                              detail);
}

void td_svc_create_api_key(td_svc *svc, td_create_api_key *cmd)
{
    cmd->w.run = run_create_api_key;
    td_svc_submit(svc, &cmd->w);
}

/* ---- the admin key ---- */

static td_st run_record_admin_rotation(td_conn *c, void *arg)
{
    td_svc *svc = arg;
    return td_credevent_write(c, svc->store->ops, "ADMIN_KEY_ROTATED", "admin", "", "", "{}");
}

td_st td_svc_record_admin_key_rotation(td_svc *svc)
{
    return svc->store->run_sync(svc->store, run_record_admin_rotation, svc);
}

/* ---- binding one to a client certificate ---- */

static td_st run_bind_api_key(td_conn *c, td_write *w)
{
    td_bind_api_key *cmd = (td_bind_api_key *)w;
    td_st st = OPS(w)->cred_bind(c, cmd->key_hash, cmd->kind, cmd->owner_id, cmd->cert_sha256);
    if (st == TD_ST_NOT_FOUND) {
        td_fail(&w->err, TD_E_NOT_FOUND, "%s %s has no such API key", owner_kind_name(cmd->kind), cmd->owner_id);
        return TD_ST_OK;
    }
    return st;
}

/* After the commit and before the answer: the caller's next request, on this
 * node, is checked against the new binding. */
static void bind_api_key_done(td_write *w)
{
    td_bind_api_key *cmd = (td_bind_api_key *)w;
    if (!w->err.code) cred_forget(cmd->key_hash);
    cmd->face_complete(w);
}

void td_svc_bind_api_key(td_svc *svc, td_bind_api_key *cmd)
{
    cmd->w.run = run_bind_api_key;
    cmd->face_complete = cmd->w.complete;
    cmd->w.complete = bind_api_key_done;
    td_svc_submit(svc, &cmd->w);
}

/* ---- revoking one ---- */

static td_st run_revoke_api_key(td_conn *c, td_write *w)
{
    td_revoke_api_key *cmd = (td_revoke_api_key *)w;
    int64_t now = td_now_ms();
    td_cred_rec k;
    td_st st = OPS(w)->cred_revoke(c, cmd->kind, cmd->owner_id, cmd->key_id, now, &k);
    if (st == TD_ST_NOT_FOUND) {
        td_fail(&w->err, TD_E_NOT_FOUND, "API key %s of %s %s not found", cmd->key_id, owner_kind_name(cmd->kind),
                cmd->owner_id);
        return TD_ST_OK;
    }
    if (st != TD_ST_OK) return st;
    memcpy(cmd->hash, k.hash, sizeof cmd->hash);
    cmd->revoked_ms = k.revoked_ms;
    if (k.revoked_ms != now) return TD_ST_OK; /* revoked before: recorded then */
    return td_credevent_write(c, OPS(w), "API_KEY_REVOKED", owner_kind_name(cmd->kind), cmd->owner_id, cmd->key_id,
                              NULL);
}

/* After the commit, not before: a request reading the key between a drop and
 * the commit would put it back in the cache for a whole TTL. */
static void complete_revoke(td_write *w)
{
    td_revoke_api_key *cmd = (td_revoke_api_key *)w;
    if (!w->err.code && cmd->hash[0]) cred_forget(cmd->hash);
    cmd->face_complete(w);
}

void td_svc_revoke_api_key(td_svc *svc, td_revoke_api_key *cmd)
{
    cmd->w.run = run_revoke_api_key;
    cmd->face_complete = cmd->w.complete;
    cmd->w.complete = complete_revoke;
    td_svc_submit(svc, &cmd->w);
}

/* ---- reading ---- */

static td_err read_failed(td_st st, td_error *e, const char *what, const char *id)
{
    if (st == TD_ST_NOT_FOUND) return td_fail(e, TD_E_NOT_FOUND, "%s %s not found", what, id);
    return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
}

td_err td_svc_list_api_keys(td_svc *svc, td_cred_kind kind, const char *owner_id,
                            void (*fn)(const td_cred_rec *, void *), void *arg, td_error *e)
{
    td_conn *c = svc->store->reader(svc->store);
    if (!c) return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    td_st st;
    if (kind == TD_CRED_MEMBER) {
        td_member_rec m;
        st = svc->store->ops->member_get(c, owner_id, &m);
    } else {
        td_issuer_rec i;
        st = svc->store->ops->issuer_get(c, owner_id, &i);
    }
    if (st == TD_ST_OK) st = svc->store->ops->cred_list(c, kind, owner_id, fn, arg);
    return st == TD_ST_OK ? TD_OK : read_failed(st, e, owner_kind_name(kind), owner_id);
}

td_err td_svc_list_credential_events(td_svc *svc, int64_t after_id, int limit,
                                     void (*fn)(const td_credevent_rec *, void *), void *arg, td_error *e)
{
    td_conn *c = svc->store->reader(svc->store);
    if (!c) return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    td_st st = svc->store->ops->credevent_list(c, after_id, limit, fn, arg);
    return st == TD_ST_OK ? TD_OK : read_failed(st, e, "credential events", "");
}
