/* sign.c — unseals a member's private key just long enough to sign. */
#include "service/sign.h"

#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "util/log.h"

td_st td_sign_as(td_conn *c, td_svc *svc, const char *member_id, td_level level, const char *canonical,
                 const char *suffix, json_t **sig)
{
    td_key_rec k;
    td_st st = svc->store->ops->key_for_level(c, member_id, level, &k);
    if (st == TD_ST_NOT_FOUND) memset(&k, 0, sizeof k);
    else if (st != TD_ST_OK) return st;
    return td_sign_with(svc, member_id, level, &k, canonical, suffix, sig);
}

td_st td_sign_with(td_svc *svc, const char *member_id, td_level level, const td_key_rec *k, const char *canonical,
                   const char *suffix, json_t **sig)
{
    if (!k->key_id[0]) {
        td_log(TD_LOG_ERROR, "signing_key_missing", "member %s has no %s signing key", member_id,
               td_level_name(level));
        return TD_ST_INTERNAL;
    }
    uint8_t *sk = NULL;
    size_t sk_len = 0;
    if (td_open(svc->cfg->master_key, k->sealed_secret, k->sealed_len, &sk, &sk_len) || sk_len != TD_ED25519_SK_LEN) {
        td_log(TD_LOG_ERROR, "signing_key_unreadable", "cannot unseal key %s of %s (wrong master key?)", k->key_id,
               member_id);
        free(sk);
        return TD_ST_INTERNAL;
    }
    char b64[128];
    int rc = td_sign_payload(sk, canonical, suffix, b64, sizeof b64);
    td_wipe(sk, sk_len);
    free(sk);
    if (rc) return TD_ST_INTERNAL;
    *sig = json_pack("{s:s, s:s, s:s}", "keyId", k->key_id, "memberId", member_id, "signature", b64);
    return *sig ? TD_ST_OK : TD_ST_INTERNAL;
}
