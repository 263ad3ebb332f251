/* consent.c — the consent page a user opens from a token request's
 * authorization link: GET shows what is asked (parties, accounts or amount,
 * expiry) with Approve and Reject; POST (form field decision=approve|reject)
 * decides once and redirects to the request's redirectUrl. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/faces.h"
#include "util/util.h"

/* The characters of a request id (':') and of a secret (base64url), and the
 * separator; the service reads the shape (td_svc_consent_lookup). */
static bool valid_code(const char *c)
{
    return td_is_id_chars(c, 16, TD_CONSENT_CODE_MAX - 1, "_-:.");
}

/* Appends HTML-escaped text. */
static void esc(char *out, size_t cap, const char *s)
{
    size_t n = strlen(out);
    for (; s && *s && n + 7 < cap; s++) {
        const char *rep = *s == '<'    ? "&lt;"
                          : *s == '>'  ? "&gt;"
                          : *s == '&'  ? "&amp;"
                          : *s == '"'  ? "&quot;"
                          : *s == '\'' ? "&#39;"
                                       : NULL;
        if (rep) {
            memcpy(out + n, rep, strlen(rep));
            n += strlen(rep);
        } else {
            out[n++] = *s;
        }
    }
    out[n] = 0;
}

static void cat(char *out, size_t cap, const char *s)
{
    size_t n = strlen(out), l = strlen(s);
    if (n + l < cap) memcpy(out + n, s, l + 1);
}

static void row(char *out, size_t cap, const char *label, const char *value)
{
    if (!value || !*value) return;
    cat(out, cap, "<tr><th>");
    cat(out, cap, label);
    cat(out, cap, "</th><td>");
    esc(out, cap, value);
    cat(out, cap, "</td></tr>");
}

static void describe_body(char *out, size_t cap, td_kind kind, json_t *p)
{
    char buf[512];
    if (kind == TD_KIND_ACCESS) {
        json_t *res =
            json_object_get(json_object_get(json_object_get(p, "accessBody"), "resourceTypeList"), "resources");
        size_t i;
        json_t *t;
        buf[0] = 0;
        json_array_foreach(res, i, t)
        {
            if (i) cat(buf, sizeof buf, ", ");
            cat(buf, sizeof buf, json_string_value(t));
        }
        row(out, cap, "Access to", buf);
        const char *exp = json_string_value(json_object_get(p, "tokenExpiration"));
        row(out, cap, "Expires (epoch)", exp ? exp : "default lifetime");
        return;
    }
    json_t *b = json_object_get(p, kind == TD_KIND_TRANSFER ? "transferBody" : "standingOrderBody");
    const char *cur = json_string_value(json_object_get(b, "currency"));
    const char *amt = json_string_value(json_object_get(b, kind == TD_KIND_TRANSFER ? "lifetimeAmount" : "amount"));
    snprintf(buf, sizeof buf, "%s %s", amt ? amt : "", cur ? cur : "");
    row(out, cap, kind == TD_KIND_TRANSFER ? "Payment up to" : "Standing order of", buf);
    row(out, cap, "Frequency", json_string_value(json_object_get(b, "frequency")));
    row(out, cap, "Start", json_string_value(json_object_get(b, "startDate")));
    row(out, cap, "End", json_string_value(json_object_get(b, "endDate")));
    row(out, cap, "Reference", json_string_value(json_object_get(b, "remittanceReference")));
}

void consent_page(td_req *r)
{
    td_error e = {0};
    td_request_rec rq;
    if (!valid_code(r->params[0])) {
        td_reply_err(r, TD_E_NOT_FOUND, "this consent link is not valid");
        return;
    }
    if (td_svc_consent_lookup(r->svc, r->params[0], &rq, &e) != TD_OK) {
        td_reply_error(r, &e, "");
        return;
    }
    json_t *req = json_loads(rq.request_json, 0, NULL);
    json_t *p = json_object_get(req, "requestPayload");
    size_t cap = 16384;
    char *html = calloc(1, cap);
    if (!html) {
        json_decref(req);
        td_request_rec_free(&rq);
        td_reply_err(r, TD_E_INTERNAL, "out of memory");
        return;
    }
    cat(html, cap,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Approve access</title></head><body>"
        "<h1>A request needs your decision</h1><table>");
    const char *who = json_string_value(json_object_get(json_object_get(p, "actingAs"), "displayName"));
    row(html, cap, "Requested by", who ? who : rq.to_id);
    row(html, cap, "Requester member", rq.to_id);
    row(html, cap, "Granted by (you)", rq.from_id);
    row(html, cap, "Kind", td_kind_name(rq.kind));
    describe_body(html, cap, rq.kind, p);
    row(html, cap, "Description", json_string_value(json_object_get(p, "description")));
    row(html, cap, "Reference", json_string_value(json_object_get(p, "refId")));
    cat(html, cap, "</table><form method=\"post\">");
    if (rq.kind == TD_KIND_ACCESS)
        cat(html, cap,
            "<p><label>Accounts to share (comma-separated account ids): <input name=\"accounts\" "
            "required></label></p>");
    cat(html, cap,
        "<button name=\"decision\" value=\"approve\">Approve</button> "
        "<button name=\"decision\" value=\"reject\">Reject</button></form></body></html>");
    json_decref(req);
    td_request_rec_free(&rq);
    td_reply_html_steal(r, 200, html);
}

/* Decodes application/x-www-form-urlencoded text in place. */
static int form_decode(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p == '+') {
            *o++ = ' ';
        } else if (*p == '%') {
            int v = td_hex_byte(p + 1);
            if (v <= 0) return -1; /* not hex, or a NUL byte */
            *o++ = (char)v;
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = 0;
    return 0;
}

/* Adds comma-separated account ids to the command. */
static int add_accounts(td_consent_decide *cmd, char *list, td_error *e)
{
    for (char *save = NULL, *a = strtok_r(list, ", ", &save); a; a = strtok_r(NULL, ", ", &save)) {
        if (!td_is_id_chars(a, 1, 64, ":_-"))
            return td_fail(e, TD_E_INVALID_ARGUMENT, "'%.64s' is not a valid account id", a), -1;
        if (cmd->naccounts >= 8) return td_fail(e, TD_E_INVALID_ARGUMENT, "at most 8 accounts may be shared"), -1;
        td_strlcpy(cmd->accounts[cmd->naccounts++], a, sizeof cmd->accounts[0]);
    }
    return 0;
}

int consent_parse_form(const char *text, size_t len, td_consent_decide *cmd, td_error *e)
{
    char *body = strndup(text ? text : "", len);
    int decision = -1, rc = 0;
    if (!body) return td_fail(e, TD_E_INTERNAL, "out of memory"), -1;
    for (char *save = NULL, *kv = strtok_r(body, "&", &save); kv && rc == 0; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq) continue;
        *eq = 0;
        if (form_decode(kv) || form_decode(eq + 1)) {
            rc = -1;
            td_fail(e, TD_E_INVALID_ARGUMENT, "malformed form encoding");
        } else if (!strcmp(kv, "decision")) {
            decision = !strcmp(eq + 1, "approve") ? 1 : !strcmp(eq + 1, "reject") ? 0 : -2;
        } else if (!strcmp(kv, "accounts") || !strcmp(kv, "accountId")) {
            rc = add_accounts(cmd, eq + 1, e);
        }
    }
    free(body);
    if (rc) return -1;
    if (decision < 0) return td_fail(e, TD_E_INVALID_ARGUMENT, "decision must be approve or reject"), -1;
    cmd->approve = decision == 1;
    return 0;
}

static int parse_form(td_req *r, td_consent_decide *cmd, td_error *e)
{
    const char *ct = td_header(r, "Content-Type");
    if (!ct || strncmp(ct, "application/x-www-form-urlencoded", 33))
        return td_fail(e, TD_E_UNSUPPORTED_MEDIA, "the decision must be posted as a form"), -1;
    return consent_parse_form(r->body, r->body_len, cmd, e);
}

static void complete_decision(td_write *w)
{
    td_consent_decide *cmd = (td_consent_decide *)w;
    td_req *r = w->face;
    td_req_complete_begin(r);
    if (w->err.code)
        td_reply_error(r, &w->err, "");
    else
        td_reply_redirect(r, cmd->redirect);
    td_req_complete_end(r);
    free(cmd->redirect);
    free(w->body);
    free(w);
}

/* The answer is a redirect built in complete_decision; nothing to store. */
static void render_nothing(td_write *w)
{
    w->status = 303;
    w->body = strdup("");
}

void consent_decide(td_req *r)
{
    td_error e = {0};
    if (!valid_code(r->params[0])) {
        td_reply_err(r, TD_E_NOT_FOUND, "this consent link is not valid");
        return;
    }
    td_consent_decide *cmd = calloc(1, sizeof *cmd);
    if (!cmd) {
        td_reply_err(r, TD_E_INTERNAL, "out of memory");
        return;
    }
    if (parse_form(r, cmd, &e)) {
        free(cmd);
        td_reply_error(r, &e, "");
        return;
    }
    cmd->w.face = r;
    cmd->w.render = render_nothing;
    cmd->w.complete = complete_decision;
    td_strlcpy(cmd->code, r->params[0], sizeof cmd->code);
    td_svc_consent_decide(r->svc, cmd);
}
