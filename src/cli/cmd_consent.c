/* cmd_consent.c — deciding a consent link the way the user's browser would:
 * POST the form (decision=approve|reject, accounts=...) and report where
 * tokend redirects, with the tokenId taken from that Location. The redirect
 * is not followed: it points at the requester's site, not at tokend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define CONSENT_NOTE                                                                                                   \
    "  CONSENT_URL is what `tokenctl request authorize` printed (the code alone, or\n"                                 \
    "  /consent/CODE, is taken relative to --url). The link works once. No API key is\n"                               \
    "  needed: the link is the credential.\n"

static const char CONSENT_APPROVE[] =
    "usage: tokenctl consent approve CONSENT_URL [--accounts ACCOUNT[,ACCOUNT...]]\n"
    "  Approves the request behind the link (POST decision=approve) and prints the redirect\n"
    "  Location and the tokenId in it. Access requests need --accounts (at most 8 ids).\n"
    "  -q prints only the tokenId.\n" CONSENT_NOTE;

static const char CONSENT_REJECT[] =
    "usage: tokenctl consent reject CONSENT_URL\n"
    "  Rejects the request behind the link (POST decision=reject) and prints the redirect\n"
    "  Location (it carries error=access_denied).\n"
    "  -q prints only the Location.\n" CONSENT_NOTE;

/* The consent link as an absolute URL. */
static int consent_url(const cli_ctx *ctx, const char *arg, cli_buf *u, const char *usage)
{
    u->len = 0;
    u->s[0] = 0;
    u->overflow = false;
    if (!strncmp(arg, "http://", 7) || !strncmp(arg, "https://", 8)) {
        cli_buf_add(u, arg);
    } else if (arg[0] == '/') {
        cli_buf_url(u, ctx, arg);
    } else {
        cli_buf_url(u, ctx, "/consent/");
        cli_buf_add_enc(u, arg);
    }
    if (!cli_header_value_ok(u->s) || strpbrk(u->s, " \"<>\\^`{|}"))
        return cli_usage_error(usage, "CONSENT_URL contains characters not allowed in a URL");
    return cli_url_check(u, usage);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* The decoded value of query parameter `name` in url; false if absent. */
static bool query_param(const char *url, const char *name, char *out, size_t cap)
{
    const char *q = strpbrk(url, "?#"); /* a '?' after '#' is in the fragment */
    size_t klen = strlen(name);
    for (const char *p = q && *q == '?' ? q : NULL; p && *p != '#'; p = strpbrk(p + 1, "&#")) {
        const char *k = p + 1;
        if (strncmp(k, name, klen) || k[klen] != '=') continue;
        size_t n = 0;
        for (const char *v = k + klen + 1; *v && *v != '&' && *v != '#' && n + 1 < cap; v++) {
            int hi = *v == '%' ? hexval(v[1]) : -1, lo = hi >= 0 ? hexval(v[2]) : -1;
            if (lo >= 0) {
                out[n++] = (char)(hi * 16 + lo);
                v += 2;
            } else {
                out[n++] = *v;
            }
        }
        out[n] = 0;
        return true;
    }
    return false;
}

/* Reports a 303 answer: {"location", "tokenId" | "error"}. */
static int report_redirect(const cli_ctx *ctx, const cli_resp *r, bool approve)
{
    char token_id[256], error[256];
    bool has_token = query_param(r->location, "tokenId", token_id, sizeof token_id);
    bool has_error = query_param(r->location, "error", error, sizeof error);
    if (approve && !has_token) {
        fprintf(stderr,
                "tokenctl: the decision was recorded, but the redirect carries no tokenId: %s\n"
                "(`tokenctl request result REQUEST_ID` shows the token)\n",
                r->location);
        return CLI_HTTP_ERROR;
    }
    if (ctx->quiet) {
        printf("%s\n", approve ? token_id : r->location);
        return CLI_OK;
    }
    json_t *v = json_pack("{s:s}", "location", r->location);
    if (has_token) json_object_set_new(v, "tokenId", json_string(token_id));
    if (has_error) json_object_set_new(v, "error", json_string(error));
    cli_print_json(stdout, v);
    json_decref(v);
    return CLI_OK;
}

static int decide(cli_ctx *ctx, const char *link, bool approve, const char *accounts, const char *usage)
{
    cli_buf u, form;
    int rc = consent_url(ctx, link, &u, usage);
    if (rc != CLI_OK) return rc;
    form.len = 0;
    form.s[0] = 0;
    form.overflow = false;
    cli_buf_add(&form, approve ? "decision=approve" : "decision=reject");
    if (accounts) {
        cli_buf_add(&form, "&accounts=");
        cli_buf_add_enc(&form, accounts);
    }
    if (form.overflow) return cli_usage_error(usage, "--accounts is too long");
    cli_call call = {.method = "POST", .url = u.s, .body = form.s, .content_type = "application/x-www-form-urlencoded"};
    cli_resp r;
    if ((rc = cli_http(ctx, &call, &r)) != CLI_OK) return rc;
    if (r.status >= 300 && r.status <= 399 && r.location[0]) {
        rc = report_redirect(ctx, &r, approve);
    } else {
        cli_print_error(&r);
        rc = CLI_HTTP_ERROR;
    }
    cli_resp_free(&r);
    return rc;
}

int cmd_consent_approve(cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[1], *accounts = NULL;
    cli_opt opts[] = {{"--accounts", 1, &accounts}, {NULL, 0, NULL}};
    cli_spec spec = {CONSENT_APPROVE, opts, 1, 1, pos};
    int rc = cli_parse(ctx, &spec, argc, argv);
    return rc != CLI_OK ? rc : decide(ctx, pos[0], true, accounts, CONSENT_APPROVE);
}

int cmd_consent_reject(cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[1];
    cli_spec spec = {CONSENT_REJECT, NULL, 1, 1, pos};
    int rc = cli_parse(ctx, &spec, argc, argv);
    return rc != CLI_OK ? rc : decide(ctx, pos[0], false, NULL, CONSENT_REJECT);
}
