/* admin.c — the admin API (Bearer <admin key>): members with their signing
 * keys, member and issuer API keys, issuers, test-only fault injection, and
 * for network tokenization: issuers' card policies, their outbox, and the
 * simulated TSP's behaviour. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/faces.h"
#include "service/cards.h"
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

/* ---- card policy: PUT/GET /admin/v1/issuers/{issuerId}/card-policy ---- */

static void render_policy(td_write *w)
{
    td_put_card_policy *cmd = (td_put_card_policy *)w;
    w->status = 200;
    w->body = strdup(cmd->json);
}

static void dispose_policy(td_write *w)
{
    td_put_card_policy *cmd = (td_put_card_policy *)w;
    free(cmd->json);
    cmd->json = NULL;
}

static bool issuer_param(td_req *r)
{
    if (valid_issuer_id(r->params[0])) return true;
    td_reply_err(r, TD_E_INVALID_ARGUMENT, "issuerId must be exactly 10 characters of [A-Za-z0-9_-]");
    return false;
}

void admin_put_card_policy(td_req *r)
{
    td_error e = {0};
    td_card_policy p;
    if (!issuer_param(r)) return;
    json_t *b = td_body_json(r, &e);
    if (!b || td_card_policy_from_json(b, &p, &e) != TD_OK) {
        json_decref(b);
        td_reply_error(r, &e, r->params[0]);
        return;
    }
    json_decref(b);
    json_t *v = td_card_policy_to_json(&p);
    char *json = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!json) {
        td_reply_err(r, TD_E_INTERNAL, "out of memory");
        return;
    }
    td_put_card_policy *cmd = td_face_new_write(r, sizeof *cmd, render_policy);
    if (!cmd) {
        free(json);
        return;
    }
    td_strlcpy(cmd->issuer_id, r->params[0], sizeof cmd->issuer_id);
    cmd->json = json;
    cmd->w.dispose = dispose_policy;
    cmd->w.subject = cmd->issuer_id;
    td_svc_put_card_policy(r->svc, cmd);
}

void admin_get_card_policy(td_req *r)
{
    td_card_policy p;
    td_error e = {0};
    if (!issuer_param(r)) return;
    if (td_svc_get_card_policy(r->svc, r->params[0], &p, &e) != TD_OK) {
        td_reply_error(r, &e, r->params[0]);
        return;
    }
    json_t *v = td_card_policy_to_json(&p);
    td_reply_json(r, 200, v);
    json_decref(v);
}

/* ---- GET /admin/v1/issuers/{issuerId}/outbox?state=&after=&limit= ---- */

static json_t *time_or_empty(int64_t ms)
{
    char buf[40] = "";
    if (ms) td_iso8601_ms(ms, buf, sizeof buf);
    return json_string(buf);
}

/* One row, as docs/network.md lists it; a sealed OTP is never shown. */
static void append_outbox(const td_outbox_rec *o, void *arg)
{
    json_t *v = json_object();
    json_object_set_new(v, "id", json_integer(o->id));
    json_object_set_new(v, "channel", json_string(o->channel));
    json_object_set_new(v, "digitalCardId", json_string(o->digital_card_id));
    json_object_set_new(v, "cardId", json_string(o->card_id));
    json_object_set_new(v, "sequence", json_integer(o->dcard_seq));
    json_object_set_new(v, "operationId", json_string(o->operation_id));
    json_object_set_new(v, "operation", json_string(o->operation));
    json_object_set_new(v, "status", json_string(o->status));
    json_object_set_new(v, "errorCode", json_string(o->error_code));
    json_object_set_new(v, "source", json_string(o->source));
    json_object_set_new(v, "correlationId", json_string(o->correlation_id));
    json_object_set_new(v, "walletProviderId", json_string(o->wallet_provider_id));
    json_object_set_new(v, "message", json_string(o->message));
    json_object_set_new(v, "methodId", json_string(o->method_id));
    json_object_set_new(v, "eventTime", time_or_empty(o->event_ms));
    json_object_set_new(v, "createdAt", time_or_empty(o->created_ms));
    json_object_set_new(v, "dueAt", time_or_empty(o->due_ms));
    json_object_set_new(v, "state", json_string(o->state));
    json_array_append_new((json_t *)arg, v);
}

static bool outbox_state_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 11) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_')) return false;
    return true;
}

void admin_list_outbox(td_req *r)
{
    static const char *const ALLOWED[] = {"state", "after", "limit", NULL};
    td_error e = {0};
    int64_t after = 0, limit = 100;
    if (!issuer_param(r)) return;
    const char *state = td_query(r, "state"), *a = td_query(r, "after"), *l = td_query(r, "limit");
    if (td_query_allowed(r, ALLOWED, &e) ||
        (state && !outbox_state_ok(state) &&
         td_fail(&e, TD_E_INVALID_ARGUMENT, "state must be an outbox state such as PENDING or CANCELLED")) ||
        (a && (td_parse_i64(a, &after) || after < 0) &&
         td_fail(&e, TD_E_INVALID_ARGUMENT, "after must be a row id (an integer >= 0)")) ||
        (l && (td_parse_i64(l, &limit) || limit < 1 || limit > 500) &&
         td_fail(&e, TD_E_INVALID_ARGUMENT, "limit must be an integer from 1 to 500"))) {
        td_reply_error(r, &e, "");
        return;
    }
    json_t *rows = json_array();
    if (td_svc_list_outbox(r->svc, r->params[0], state, after, (int)limit, append_outbox, rows, &e) != TD_OK) {
        json_decref(rows);
        td_reply_error(r, &e, r->params[0]);
        return;
    }
    json_t *v = json_pack("{s:o}", "outbox", rows);
    td_reply_json(r, 200, v);
    json_decref(v);
}

/* ---- POST /admin/v1/tsp {"mode", "count"}: the simulated TSP ---- */

void admin_set_tsp(td_req *r)
{
    static const char *const ALLOWED[] = {"mode", "count", NULL};
    static const char *const MODES[] = {"accept", "fail", "refuse", "timeout"};
    td_error e = {0};
    const char *mode;
    json_t *b = td_body_json(r, &e);
    if (!b || td_json_only(b, "body", ALLOWED, &e) || td_json_string(b, "body", "mode", true, 16, &mode, &e)) {
        json_decref(b);
        td_reply_error(r, &e, "");
        return;
    }
    int m = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(MODES[i], mode)) m = i;
    json_t *cv = json_object_get(b, "count");
    if (m < 0 || (cv && (!json_is_integer(cv) || json_integer_value(cv) < 0 || json_integer_value(cv) > 1000000))) {
        json_decref(b);
        td_reply_err(r, TD_E_INVALID_ARGUMENT,
                     m < 0 ? "mode must be accept, fail, refuse or timeout"
                           : "count must be an integer from 0 to 1000000");
        return;
    }
    int count = cv ? (int)json_integer_value(cv) : 0;
    json_decref(b);
    if (td_tsp_sim_set(r->svc->tsp, MODES[m], count) != 0) {
        td_reply_err(r, TD_E_CONFLICT, "the TSP connector is not the simulated one (--tsp-url is set)");
        return;
    }
    json_t *v = json_pack("{s:s, s:i}", "mode", MODES[m], "count", count);
    td_reply_json(r, 200, v);
    json_decref(v);
}
