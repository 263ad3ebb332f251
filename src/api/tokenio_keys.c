/* tokenio_keys.c — Token API: a member's public keys. GET lists the keys
 * tokend holds for signing plus any the member submitted; POST submits an
 * Ed25519 public key (raw base64url or PEM); DELETE removes a submitted one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/faces.h"
#include "crypto/crypto.h"
#include "util/util.h"

static json_t *key_json(const td_key_rec *k)
{
    char pk[64], exp[24];
    td_b64url_encode(k->public_key, sizeof k->public_key, pk, sizeof pk);
    json_t *v = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", k->key_id, "keyId", k->key_id, "keyAlgorithm",
                          k->algorithm, "algorithm", k->algorithm, "level", td_level_name(k->level), "publicKey", pk);
    if (k->expires_ms) {
        snprintf(exp, sizeof exp, "%lld", (long long)k->expires_ms);
        json_object_set_new(v, "expiresAtMs", json_string(exp));
    }
    return v;
}

static void add_key(const td_key_rec *k, void *arg)
{
    json_array_append_new(arg, key_json(k));
}

/* Public keys are public: any authenticated member may read them, to verify
 * the signatures on tokens it is a party to. */
void tokenio_list_keys(td_req *r)
{
    if (!td_param_id(r, 0, "memberId")) return;
    td_error e = {0};
    json_t *keys = json_array();
    if (td_svc_list_keys(r->svc, r->params[0], add_key, keys, &e) != TD_OK) {
        json_decref(keys);
        td_reply_error(r, &e, r->params[0]);
        return;
    }
    /* The reference answers an array of {key: [...]}. */
    json_t *v = json_pack("[{s:o}]", "key", keys);
    td_reply_json(r, 200, v);
    json_decref(v);
}

void tokenio_get_key(td_req *r)
{
    if (!td_param_id(r, 0, "memberId")) return;
    td_error e = {0};
    td_key_rec k;
    if (!td_is_id_chars(r->params[1], 1, 23, "_-")) {
        td_reply_err(r, TD_E_INVALID_ARGUMENT, "keyId is not a valid key id");
        return;
    }
    if (td_svc_get_key(r->svc, r->params[0], r->params[1], &k, &e) != TD_OK) {
        td_reply_error(r, &e, r->params[1]);
        return;
    }
    json_t *v = json_pack("{s:[o]}", "key", key_json(&k));
    td_reply_json(r, 200, v);
    json_decref(v);
}

static bool own_member(td_req *r)
{
    if (!strcmp(r->params[0], r->auth.member_id)) return true;
    td_reply_err(r, TD_E_PERMISSION_DENIED, "a member manages only its own keys");
    return false;
}

/* PEM SubjectPublicKeyInfo of an Ed25519 key: this DER prefix + 32 bytes. */
static const uint8_t SPKI_PREFIX[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

static int parse_public_key(const char *s, uint8_t out[32])
{
    uint8_t der[64];
    size_t n = 0;
    if (!strncmp(s, "-----BEGIN PUBLIC KEY-----", 26)) {
        char b64[128];
        size_t j = 0;
        const char *end = strstr(s, "-----END PUBLIC KEY-----");
        if (!end) return -1;
        for (const char *p = s + 26; p < end; p++) {
            if (*p == '\n' || *p == '\r' || *p == ' ') continue;
            if (j + 1 >= sizeof b64) return -1;
            b64[j++] = *p;
        }
        b64[j] = 0;
        if (td_b64_std_decode(b64, der, sizeof der, &n) || n != 44 || memcmp(der, SPKI_PREFIX, 12)) return -1;
        memcpy(out, der + 12, 32);
        return 0;
    }
    return td_b64url_decode(s, strlen(s), out, 32) == 32 ? 0 : -1;
}

static void render_key_added(td_write *w)
{
    td_write_answer(w, 200, json_pack("{s:s}", "keyId", ((td_add_key *)w)->key_id));
}

void tokenio_add_key(td_req *r)
{
    static const char *const ALLOWED[] = {"keyAlgorithm", "publicKey", "level", "expiresAtMs", NULL};
    if (!td_param_id(r, 0, "memberId") || !own_member(r)) return;
    td_error e = {0};
    const char *alg, *pk, *level, *exp;
    uint8_t raw[32];
    td_level lvl = TD_LEVEL_LOW;
    int64_t exp_ms = 0;
    json_t *b = td_body_json(r, &e);
    if (!b || td_json_only(b, "body", ALLOWED, &e) || td_json_string(b, "body", "keyAlgorithm", true, 16, &alg, &e) ||
        td_json_string(b, "body", "publicKey", true, 512, &pk, &e) ||
        td_json_string(b, "body", "level", false, 16, &level, &e) ||
        td_json_string(b, "body", "expiresAtMs", false, 16, &exp, &e))
        goto fail;
    if (strcmp(alg, "ED25519")) {
        td_fail(&e, TD_E_INVALID_ARGUMENT, "keyAlgorithm must be ED25519");
        goto fail;
    }
    if (parse_public_key(pk, raw)) {
        td_fail(&e, TD_E_INVALID_ARGUMENT, "publicKey must be a 32-byte Ed25519 key, base64url or PEM");
        goto fail;
    }
    if (level && td_level_parse(level, &lvl)) {
        td_fail(&e, TD_E_INVALID_ARGUMENT, "level must be LOW, STANDARD or PRIVILEGED");
        goto fail;
    }
    if (exp && (td_parse_i64(exp, &exp_ms) || exp_ms <= td_now_ms())) {
        td_fail(&e, TD_E_INVALID_ARGUMENT, "expiresAtMs must be a future epoch time in milliseconds");
        goto fail;
    }
    json_decref(b);
    td_add_key *cmd = td_face_new_write(r, sizeof *cmd, render_key_added);
    if (!cmd) return;
    td_strlcpy(cmd->member_id, r->params[0], sizeof cmd->member_id);
    memcpy(cmd->public_key, raw, sizeof raw);
    cmd->level = lvl;
    cmd->expires_ms = exp_ms;
    cmd->w.subject = cmd->member_id;
    td_svc_add_key(r->svc, cmd);
    return;
fail:
    json_decref(b);
    td_reply_error(r, &e, "");
}

static void render_key_deleted(td_write *w)
{
    td_write_answer(w, 200, json_object());
}

void tokenio_delete_key(td_req *r)
{
    if (!td_param_id(r, 0, "memberId") || !own_member(r)) return;
    if (!td_is_id_chars(r->params[1], 1, 23, "_-")) {
        td_reply_err(r, TD_E_INVALID_ARGUMENT, "keyId is not a valid key id");
        return;
    }
    td_delete_key *cmd = td_face_new_write(r, sizeof *cmd, render_key_deleted);
    if (!cmd) return;
    td_strlcpy(cmd->member_id, r->params[0], sizeof cmd->member_id);
    td_strlcpy(cmd->key_id, r->params[1], sizeof cmd->key_id);
    cmd->w.subject = cmd->key_id;
    td_svc_delete_key(r->svc, cmd);
}
