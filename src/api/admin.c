/* admin.c — the admin API (Bearer <admin key>): members with their signing
 * keys, member and issuer API keys, issuers, and test-only fault injection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/faces.h"
#include "util/util.h"

static void render_member(td_write *w)
{
    td_write_answer(w, 201, json_pack("{s:s}", "memberId", ((td_create_member *)w)->member_id));
}

void admin_create_member(td_req *r)
{
    static const char *const ALLOWED[] = {"displayName", NULL};
    td_error e = {0};
    const char *name;
    json_t *b = td_body_json(r, &e);
    if (!b || td_json_only(b, "body", ALLOWED, &e) || td_json_string(b, "body", "displayName", true, 255, &name, &e)) {
        json_decref(b);
        td_reply_error(r, &e, "");
        return;
    }
    td_create_member *cmd = td_face_new_write(r, sizeof *cmd, render_member);
    if (cmd) td_strlcpy(cmd->display_name, name, sizeof cmd->display_name);
    json_decref(b);
    if (cmd) td_svc_create_member(r->svc, cmd);
}

static void render_api_key(td_write *w)
{
    td_write_answer(w, 201, json_pack("{s:s}", "apiKey", ((td_create_api_key *)w)->api_key));
}

void admin_create_member_api_key(td_req *r)
{
    static const char *const ALLOWED[] = {"level", NULL};
    if (!td_param_id(r, 0, "memberId")) return;
    td_error e = {0};
    const char *level;
    td_level lvl;
    json_t *b = td_body_json(r, &e);
    if (!b || td_json_only(b, "body", ALLOWED, &e) || td_json_string(b, "body", "level", true, 16, &level, &e) ||
        (td_level_parse(level, &lvl) &&
         td_fail(&e, TD_E_INVALID_ARGUMENT, "level must be LOW, STANDARD or PRIVILEGED"))) {
        json_decref(b);
        td_reply_error(r, &e, r->params[0]);
        return;
    }
    json_decref(b);
    td_create_api_key *cmd = td_face_new_write(r, sizeof *cmd, render_api_key);
    if (!cmd) return;
    cmd->kind = TD_CRED_MEMBER;
    td_strlcpy(cmd->owner_id, r->params[0], sizeof cmd->owner_id);
    cmd->level = lvl;
    cmd->w.subject = cmd->owner_id;
    td_svc_create_api_key(r->svc, cmd);
}

/* D1 issuer ids are exactly 10 characters. */
static bool valid_issuer_id(const char *s)
{
    return strlen(s) == 10 && td_is_id_chars(s, 10, 10, "_-");
}

static void render_issuer(td_write *w)
{
    td_create_issuer *cmd = (td_create_issuer *)w;
    td_write_answer(w, 201, json_pack("{s:s, s:s}", "issuerId", cmd->issuer_id, "displayName", cmd->display_name));
}

void admin_create_issuer(td_req *r)
{
    static const char *const ALLOWED[] = {"issuerId", "displayName", NULL};
    td_error e = {0};
    const char *id, *name;
    json_t *b = td_body_json(r, &e);
    if (!b || td_json_only(b, "body", ALLOWED, &e) || td_json_string(b, "body", "issuerId", true, 10, &id, &e) ||
        td_json_string(b, "body", "displayName", true, 255, &name, &e) ||
        (!valid_issuer_id(id) &&
         td_fail(&e, TD_E_INVALID_ARGUMENT, "issuerId must be exactly 10 characters of [A-Za-z0-9_-]"))) {
        json_decref(b);
        td_reply_error(r, &e, "");
        return;
    }
    td_create_issuer *cmd = td_face_new_write(r, sizeof *cmd, render_issuer);
    if (cmd) {
        td_strlcpy(cmd->issuer_id, id, sizeof cmd->issuer_id);
        td_strlcpy(cmd->display_name, name, sizeof cmd->display_name);
    }
    json_decref(b);
    if (cmd) td_svc_create_issuer(r->svc, cmd);
}

void admin_create_issuer_api_key(td_req *r)
{
    static const char *const ALLOWED[] = {"role", NULL};
    td_error e = {0};
    const char *role;
    if (!valid_issuer_id(r->params[0])) {
        td_reply_err(r, TD_E_INVALID_ARGUMENT, "issuerId must be exactly 10 characters of [A-Za-z0-9_-]");
        return;
    }
    json_t *b = td_body_json(r, &e);
    if (!b || td_json_only(b, "body", ALLOWED, &e) || td_json_string(b, "body", "role", true, 16, &role, &e) ||
        (strcmp(role, "issuer") && strcmp(role, "network") &&
         td_fail(&e, TD_E_INVALID_ARGUMENT, "role must be issuer or network"))) {
        json_decref(b);
        td_reply_error(r, &e, r->params[0]);
        return;
    }
    td_create_api_key *cmd = td_face_new_write(r, sizeof *cmd, render_api_key);
    if (cmd) {
        cmd->kind = TD_CRED_ISSUER;
        td_strlcpy(cmd->owner_id, r->params[0], sizeof cmd->owner_id);
        td_strlcpy(cmd->role, role, sizeof cmd->role);
        cmd->w.subject = cmd->owner_id;
    }
    json_decref(b);
    if (cmd) td_svc_create_api_key(r->svc, cmd);
}

/* {"store": "none" | "unavailable" | "stalled"} — only with fault-injection on. */
void admin_set_fault(td_req *r)
{
    static const char *const ALLOWED[] = {"store", NULL};
    static const char *const FAULTS[] = {"none", "unavailable", "stalled"};
    td_error e = {0};
    const char *f;
    if (!r->svc->cfg->fault_injection) {
        td_reply_err(r, TD_E_NOT_FOUND, "fault injection is disabled");
        return;
    }
    json_t *b = td_body_json(r, &e);
    if (!b || td_json_only(b, "body", ALLOWED, &e) || td_json_string(b, "body", "store", true, 16, &f, &e)) {
        json_decref(b);
        td_reply_error(r, &e, "");
        return;
    }
    int fault = -1;
    for (int i = 0; i < 3; i++)
        if (!strcmp(FAULTS[i], f)) fault = i;
    json_decref(b);
    if (fault < 0) {
        td_reply_err(r, TD_E_INVALID_ARGUMENT, "store must be none, unavailable or stalled");
        return;
    }
    r->svc->store->inject_fault(r->svc->store, fault);
    td_reply_json_copy(r, 200, "{}", 2);
}
