/* master_key.c — the check, at start, that this node holds the master key the
 * store's sealed data was sealed with. Nodes on one PostgreSQL database must
 * share one master key (docs/postgres.md); a node started with another one
 * (a missing --master-key-file makes a fresh key) would seal secrets no other
 * node can open and fail on every secret sealed before. It refuses to start
 * instead. The first node to serve a store leaves a value sealed with its key
 * (store_meta "master_key_check"); every start opens it. A store whose
 * master key is being rotated (tokenctl store rekey, service/rekey.c) is
 * refused until the rotation has finished. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "service/service.h"

#define CHECK_NAME "master_key_check"
static const char CHECK_TEXT[] = "tokend master key check, version 1";

typedef struct {
    const td_store_ops *ops;
    const uint8_t *key;
    enum { KEY_SAME, KEY_OTHER, KEY_ROTATING } verdict;
    uint8_t idem_hash_key[32];
    bool idem_hash_key_set;
} check_job;

/* The sealed value opens with the key and says what it should. */
static bool opens(const uint8_t *key, const uint8_t *sealed, size_t n, bool is_check)
{
    uint8_t *plain = NULL;
    size_t len = 0;
    if (td_open(key, sealed, n, &plain, &len)) return false;
    bool ok = !is_check || (len == sizeof CHECK_TEXT - 1 && memcmp(plain, CHECK_TEXT, len) == 0);
    sodium_memzero(plain, len);
    free(plain);
    return ok;
}

/* A store without the check (new, or made before it): its oldest sealed
 * member key must open with this key, then the check is written. */
static td_st first_check(td_conn *c, check_job *j)
{
    const td_store_ops *ops = j->ops;
    uint8_t sample[256];
    size_t n = 0;
    td_st st = ops->sealed_sample(c, sample, sizeof sample, &n);
    if (st == TD_ST_OK && !opens(j->key, sample, n, false)) {
        j->verdict = KEY_OTHER;
        return TD_ST_OK;
    }
    if (st != TD_ST_OK && st != TD_ST_NOT_FOUND) return st;
    uint8_t *sealed = NULL;
    size_t len = 0;
    if (td_seal(j->key, (const uint8_t *)CHECK_TEXT, sizeof CHECK_TEXT - 1, &sealed, &len)) return TD_ST_ERROR;
    st = ops->meta_insert(c, CHECK_NAME, sealed, len);
    free(sealed);
    j->verdict = KEY_SAME;
    return st; /* CONFLICT: another node wrote its check first; read it again */
}

int td_master_check_seal(const uint8_t key[32], uint8_t **sealed, size_t *len)
{
    return td_seal(key, (const uint8_t *)CHECK_TEXT, sizeof CHECK_TEXT - 1, sealed, len);
}

bool td_master_check_opens(const uint8_t key[32], const uint8_t *sealed, size_t n)
{
    return opens(key, sealed, n, true);
}

/* The idempotency hashing key a rotated store keeps (td_idem_hash_key);
 * none in a store never rotated. KEY_OTHER if it does not open. */
static td_st load_idem_hash_key(td_conn *c, check_job *j)
{
    uint8_t sealed[128], *plain = NULL;
    size_t n = 0, len = 0;
    td_st st = j->ops->meta_get(c, TD_META_IDEM_HASH_KEY, sealed, sizeof sealed, &n);
    if (st == TD_ST_NOT_FOUND) return TD_ST_OK;
    if (st != TD_ST_OK) return st;
    if (td_open(j->key, sealed, n, &plain, &len) || len != sizeof j->idem_hash_key) {
        j->verdict = KEY_OTHER;
    } else {
        memcpy(j->idem_hash_key, plain, len);
        j->idem_hash_key_set = true;
    }
    if (plain) sodium_memzero(plain, len);
    free(plain);
    return TD_ST_OK;
}

static td_st run_check(td_conn *c, void *arg)
{
    check_job *j = arg;
    uint8_t sealed[256];
    size_t n = 0;
    /* Half the secrets under one key and half under the other: no key opens
     * them all until `tokenctl store rekey` has finished. */
    td_st st = j->ops->meta_get(c, TD_META_REKEY_TO, sealed, sizeof sealed, &n);
    if (st == TD_ST_OK) {
        j->verdict = KEY_ROTATING;
        return TD_ST_OK;
    }
    if (st != TD_ST_NOT_FOUND) return st;
    st = j->ops->meta_get(c, CHECK_NAME, sealed, sizeof sealed, &n);
    if (st == TD_ST_NOT_FOUND) return first_check(c, j);
    if (st != TD_ST_OK) return st;
    j->verdict = opens(j->key, sealed, n, true) ? KEY_SAME : KEY_OTHER;
    return j->verdict == KEY_SAME ? load_idem_hash_key(c, j) : TD_ST_OK;
}

int td_svc_check_master_key(td_svc *svc, char *err, size_t cap)
{
    check_job j = {.ops = svc->store->ops, .key = svc->cfg->master_key};
    td_st st = svc->store->run_sync(svc->store, run_check, &j);
    if (st == TD_ST_CONFLICT) st = svc->store->run_sync(svc->store, run_check, &j);
    if (st != TD_ST_OK) {
        snprintf(err, cap, "cannot check the master key against the store (store error %d)", (int)st);
        return -1;
    }
    if (j.verdict == KEY_ROTATING) {
        snprintf(err, cap,
                 "a master key rotation of this store is under way or was interrupted: run `tokenctl store rekey` "
                 "again to finish it, then start tokend with the new key; tokend did not start");
        return -1;
    }
    if (j.verdict == KEY_OTHER) {
        snprintf(err, cap,
                 "the master key in %s is not the key this store's secrets were sealed with: give every node the "
                 "store's master key file (--master-key-file); tokend did not start",
                 svc->cfg->master_key_file);
        return -1;
    }
    if (j.idem_hash_key_set) {
        memcpy(svc->cfg->idem_hash_key, j.idem_hash_key, sizeof j.idem_hash_key);
        svc->cfg->idem_hash_key_set = true;
        sodium_memzero(j.idem_hash_key, sizeof j.idem_hash_key);
    }
    return 0;
}
