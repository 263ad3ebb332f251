/* members.c — members and their signing keys, issuers (API keys: credentials.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "service/service.h"
#include "util/log.h"
#include "util/util.h"

#define OPS(w) ((w)->svc->store->ops)

/* Fills what every key record has, given its public key. */
static void describe_key(td_key_rec *k, const char *member_id, td_level level)
{
    td_strlcpy(k->member_id, member_id, sizeof k->member_id);
    td_key_id(k->public_key, k->key_id);
    k->level = level;
    td_strlcpy(k->algorithm, "ED25519", sizeof k->algorithm);
    k->created_ms = td_now_ms();
}

/* A generated signing key: the private half sealed with the master key. */
static td_st insert_generated_key(td_conn *c, td_write *w, const char *member_id, td_level level)
{
    td_key_rec k = {0};
    uint8_t sk[TD_ED25519_SK_LEN];
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    td_ed25519_keypair(k.public_key, sk);
    int rc = td_seal(w->svc->cfg->master_key, sk, sizeof sk, &sealed, &sealed_len);
    td_wipe(sk, sizeof sk);
    if (rc || sealed_len > sizeof k.sealed_secret) {
        free(sealed);
        return TD_ST_ERROR;
    }
    memcpy(k.sealed_secret, sealed, sealed_len);
    k.sealed_len = sealed_len;
    free(sealed);
    describe_key(&k, member_id, level);
    return OPS(w)->key_insert(c, &k);
}

static td_st run_create_member(td_conn *c, td_write *w)
{
    td_create_member *cmd = (td_create_member *)w;
    td_member_rec m = {0};
    if (td_new_id("m", m.id, sizeof m.id)) return TD_ST_ERROR;
    td_strlcpy(m.display_name, cmd->display_name, sizeof m.display_name);
    m.created_ms = td_now_ms();
    td_st st = OPS(w)->member_insert(c, &m);
    for (int l = TD_LEVEL_LOW; st == TD_ST_OK && l <= TD_LEVEL_PRIVILEGED; l++)
        st = insert_generated_key(c, w, m.id, (td_level)l);
    if (st == TD_ST_OK) memcpy(cmd->member_id, m.id, sizeof m.id);
    return st;
}

void td_svc_create_member(td_svc *svc, td_create_member *cmd)
{
    cmd->w.run = run_create_member;
    td_svc_submit(svc, &cmd->w);
}

static td_st run_create_issuer(td_conn *c, td_write *w)
{
    td_create_issuer *cmd = (td_create_issuer *)w;
    td_issuer_rec i = {0};
    td_strlcpy(i.id, cmd->issuer_id, sizeof i.id);
    td_strlcpy(i.display_name, cmd->display_name, sizeof i.display_name);
    i.created_ms = td_now_ms();
    td_st st = OPS(w)->issuer_insert(c, &i);
    if (st == TD_ST_CONFLICT) {
        td_fail(&w->err, TD_E_CONFLICT, "issuer %s already exists", cmd->issuer_id);
        return TD_ST_OK;
    }
    return st;
}

void td_svc_create_issuer(td_svc *svc, td_create_issuer *cmd)
{
    cmd->w.run = run_create_issuer;
    td_svc_submit(svc, &cmd->w);
}

static td_st run_add_key(td_conn *c, td_write *w)
{
    td_add_key *cmd = (td_add_key *)w;
    td_key_rec k = {0};
    memcpy(k.public_key, cmd->public_key, sizeof k.public_key);
    describe_key(&k, cmd->member_id, cmd->level);
    k.expires_ms = cmd->expires_ms;
    td_st st = OPS(w)->key_insert(c, &k);
    if (st == TD_ST_CONFLICT) {
        td_fail(&w->err, TD_E_CONFLICT, "key %s is already registered", k.key_id);
        return TD_ST_OK;
    }
    if (st == TD_ST_OK) memcpy(cmd->key_id, k.key_id, sizeof cmd->key_id);
    return st;
}

void td_svc_add_key(td_svc *svc, td_add_key *cmd)
{
    cmd->w.run = run_add_key;
    td_svc_submit(svc, &cmd->w);
}

/* Generated signing keys cannot be deleted: tokens' signatures refer to them
 * and the member would lose the level they sign at. */
static td_st run_delete_key(td_conn *c, td_write *w)
{
    td_delete_key *cmd = (td_delete_key *)w;
    td_key_rec k;
    td_st st = OPS(w)->key_get(c, cmd->member_id, cmd->key_id, &k);
    if (st == TD_ST_NOT_FOUND) {
        td_fail(&w->err, TD_E_NOT_FOUND, "key %s not found", cmd->key_id);
        return TD_ST_OK;
    }
    if (st != TD_ST_OK) return st;
    if (k.sealed_len) {
        td_fail(&w->err, TD_E_PERMISSION_DENIED, "key %s is a tokend-held signing key and cannot be deleted",
                cmd->key_id);
        return TD_ST_OK;
    }
    return OPS(w)->key_delete(c, cmd->member_id, cmd->key_id);
}

void td_svc_delete_key(td_svc *svc, td_delete_key *cmd)
{
    cmd->w.run = run_delete_key;
    td_svc_submit(svc, &cmd->w);
}

static td_err read_failed(td_st st, td_error *e, const char *what, const char *id)
{
    if (st == TD_ST_NOT_FOUND) return td_fail(e, TD_E_NOT_FOUND, "%s %s not found", what, id);
    return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
}

td_err td_svc_list_keys(td_svc *svc, const char *member_id, void (*fn)(const td_key_rec *, void *), void *arg,
                        td_error *e)
{
    td_conn *c = svc->store->reader(svc->store);
    td_member_rec m;
    if (!c) return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    td_st st = svc->store->ops->member_get(c, member_id, &m);
    if (st != TD_ST_OK) return read_failed(st, e, "member", member_id);
    st = svc->store->ops->key_list(c, member_id, fn, arg);
    return st == TD_ST_OK ? TD_OK : read_failed(st, e, "member", member_id);
}

td_err td_svc_get_key(td_svc *svc, const char *member_id, const char *key_id, td_key_rec *out, td_error *e)
{
    td_conn *c = svc->store->reader(svc->store);
    if (!c) return td_fail(e, TD_E_UNAVAILABLE, "the store is unavailable");
    td_st st = svc->store->ops->key_get(c, member_id, key_id, out);
    return st == TD_ST_OK ? TD_OK : read_failed(st, e, "key", key_id);
}

bool td_svc_ready(td_svc *svc, char *why, size_t cap)
{
    if (!svc->store->writable(svc->store, why, cap)) return false;
    td_conn *c = svc->store->reader(svc->store);
    if (c && svc->store->ops->ping(c) == TD_ST_OK) return true;
    snprintf(why, cap, "the store is not reachable");
    return false;
}
