/* admin_creds.c — the admin API for API keys' lifecycle: an owner's keys
 * listed (ids, never the keys), a key revoked by its id, and the credential
 * audit log (docs/api.md, Credentials). */
#include <stdio.h>
#include <string.h>

#include "api/faces.h"
#include "util/util.h"

/* keyId: the 16 hex characters td_api_key_id gives. */
static bool key_id_param(td_req *r, int i)
{
    const char *s = i < r->nparams ? r->params[i] : "";
    bool ok = strlen(s) == 16;
    for (size_t k = 0; ok && k < 16; k++)
        ok = (s[k] >= '0' && s[k] <= '9') || (s[k] >= 'a' && s[k] <= 'f');
    if (!ok) td_reply_err(r, TD_E_INVALID_ARGUMENT, "keyId must be 16 lowercase hex characters");
    return ok;
}

/* The owner in the path: a member id, or an issuer id of 10 characters. */
static bool owner_param(td_req *r, td_cred_kind kind)
{
    if (kind == TD_CRED_MEMBER) return td_param_id(r, 0, "memberId");
    if (admin_valid_issuer_id(r->params[0])) return true;
    td_reply_err(r, TD_E_INVALID_ARGUMENT, "issuerId must be exactly 10 characters of [A-Za-z0-9_-]");
    return false;
}

static json_t *iso_or_empty(int64_t ms)
{
    char buf[40] = "";
    if (ms) td_iso8601_ms(ms, buf, sizeof buf);
    return json_string(buf);
}

/* ---- GET /admin/v1/{members|issuers}/{id}/api-keys ---- */

static void append_key(const td_cred_rec *k, void *arg)
{
    json_t *v = json_pack("{s:s, s:s, s:o, s:o}", "keyId", k->key_id, "status", k->revoked_ms ? "REVOKED" : "ACTIVE",
                          "createdAt", iso_or_empty(k->created_ms), "revokedAt", iso_or_empty(k->revoked_ms));
    if (k->kind == TD_CRED_MEMBER)
        json_object_set_new(v, "level", json_string(td_level_name(k->level)));
    else
        json_object_set_new(v, "role", json_string(k->role));
    json_array_append_new((json_t *)arg, v);
}

static void list_keys(td_req *r, td_cred_kind kind)
{
    if (!owner_param(r, kind)) return;
    td_error e = {0};
    json_t *keys = json_array();
    if (td_svc_list_api_keys(r->svc, kind, r->params[0], append_key, keys, &e) != TD_OK) {
        json_decref(keys);
        td_reply_error(r, &e, r->params[0]);
        return;
    }
    json_t *v = json_pack("{s:o}", "apiKeys", keys);
    td_reply_json(r, 200, v);
    json_decref(v);
}

void admin_list_member_api_keys(td_req *r)
{
    list_keys(r, TD_CRED_MEMBER);
}

void admin_list_issuer_api_keys(td_req *r)
{
    list_keys(r, TD_CRED_ISSUER);
}

/* ---- DELETE /admin/v1/{members|issuers}/{id}/api-keys/{keyId} ---- */

static void render_revoked(td_write *w)
{
    td_revoke_api_key *cmd = (td_revoke_api_key *)w;
    td_write_answer(w, 200, json_pack("{s:s, s:s, s:o}", "keyId", cmd->key_id, "status", "REVOKED", "revokedAt",
                                      iso_or_empty(cmd->revoked_ms)));
}

static void revoke_key(td_req *r, td_cred_kind kind)
{
    if (!owner_param(r, kind) || !key_id_param(r, 1)) return;
    td_revoke_api_key *cmd = td_face_new_write(r, sizeof *cmd, render_revoked);
    if (!cmd) return;
    cmd->kind = kind;
    td_strlcpy(cmd->owner_id, r->params[0], sizeof cmd->owner_id);
    td_strlcpy(cmd->key_id, r->params[1], sizeof cmd->key_id);
    cmd->w.subject = cmd->key_id;
    td_svc_revoke_api_key(r->svc, cmd);
}

void admin_revoke_member_api_key(td_req *r)
{
    revoke_key(r, TD_CRED_MEMBER);
}

void admin_revoke_issuer_api_key(td_req *r)
{
    revoke_key(r, TD_CRED_ISSUER);
}

/* ---- GET /admin/v1/credential-events?after=&limit= ---- */

static void append_event(const td_credevent_rec *ev, void *arg)
{
    json_error_t err;
    json_t *detail = json_loads(ev->detail_json, 0, &err);
    json_t *v = json_pack("{s:I, s:o, s:s, s:s, s:s, s:s, s:o}", "id", (json_int_t)ev->id, "time",
                          iso_or_empty(ev->time_ms), "type", ev->type, "ownerKind", ev->owner_kind, "ownerId",
                          ev->owner_id, "keyId", ev->key_id, "detail", detail ? detail : json_object());
    json_array_append_new((json_t *)arg, v);
}

void admin_list_credential_events(td_req *r)
{
    static const char *const ALLOWED[] = {"after", "limit", NULL};
    td_error e = {0};
    int64_t after = 0, limit = 100;
    const char *a = td_query(r, "after"), *l = td_query(r, "limit");
    if (td_query_allowed(r, ALLOWED, &e) ||
        (a && (td_parse_i64(a, &after) || after < 0) &&
         td_fail(&e, TD_E_INVALID_ARGUMENT, "after must be an event id (an integer >= 0)")) ||
        (l && (td_parse_i64(l, &limit) || limit < 1 || limit > 500) &&
         td_fail(&e, TD_E_INVALID_ARGUMENT, "limit must be an integer from 1 to 500"))) {
        td_reply_error(r, &e, "");
        return;
    }
    json_t *events = json_array();
    if (td_svc_list_credential_events(r->svc, after, (int)limit, append_event, events, &e) != TD_OK) {
        json_decref(events);
        td_reply_error(r, &e, "");
        return;
    }
    json_t *v = json_pack("{s:o}", "events", events);
    td_reply_json(r, 200, v);
    json_decref(v);
}
