/* cmd_tokens.c — tokens through the Token API (list, get, cancel with the
 * reference's optional customer headers) and the service's health checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/util.h"

#define MEMBER_AUTH "  Authenticates with --api-key KEY or TOKEND_API_KEY (Bearer); add --member ID for Basic.\n"
#define DEFAULT_LIMIT "50"

static const char TOKENS_LIST[] =
    "usage: tokenctl tokens list [--type ACCESS|TRANSFER|STANDING_ORDER] [--limit N] [--offset O]\n"
    "                            [--role ANY|FROM|TO|ISSUER]\n"
    "  Lists the caller's tokens (GET /tokens), newest first; --limit is 1..199 (default " DEFAULT_LIMIT ").\n"
    "  The answer's \"offset\" is the --offset of the next page (empty on the last page).\n"
    "  -q prints only the token ids, one per line.\n" MEMBER_AUTH;

static const char TOKEN_GET[] = "usage: tokenctl token get TOKEN_ID\n"
                                "  Shows a token the caller is a party to (GET /tokens/{id}).\n"
                                "  -q prints only the token id.\n" MEMBER_AUTH;

static const char TOKEN_CANCEL[] =
    "usage: tokenctl token cancel TOKEN_ID [--idempotency-key K] [--customer-ip IP]\n"
    "                             [--customer-initiated true|false] [--device-id D]\n"
    "  Cancels a token (PUT /tokens/{id}/cancel); cancelling again answers SUCCESS again.\n"
    "  A key of too low a level for the token's kind gets MORE_SIGNATURES_NEEDED.\n"
    "  -q prints only the result status (SUCCESS, MORE_SIGNATURES_NEEDED, INVALID).\n" MEMBER_AUTH;

static const char HEALTH[] = "usage: tokenctl health\n"
                             "  Checks liveness (GET /healthz) and readiness (GET /readyz: a write can commit).\n"
                             "  Exits 0 only if both are fine. -q prints only the readiness status.\n";

/* Appends "&name=value" (or "?name=value" first) when value is set. */
static void add_query(cli_buf *u, bool *first, const char *name, const char *value)
{
    if (!value) return;
    cli_buf_add(u, *first ? "?" : "&");
    cli_buf_add(u, name);
    cli_buf_add(u, "=");
    cli_buf_add_enc(u, value);
    *first = false;
}

static int check_count(const char *name, const char *v)
{
    int64_t n;
    if (v && (td_parse_i64(v, &n) || n < 0)) return cli_usage_error(TOKENS_LIST, "%s must be a whole number", name);
    return CLI_OK;
}

int cmd_tokens_list(cli_ctx *ctx, int argc, char **argv)
{
    const char *type = NULL, *limit = DEFAULT_LIMIT, *offset = NULL, *role = NULL;
    cli_opt opts[] = {
        {"--type", 1, &type}, {"--limit", 1, &limit}, {"--offset", 1, &offset}, {"--role", 1, &role}, {NULL, 0, NULL}};
    cli_spec spec = {TOKENS_LIST, opts, 0, 0, NULL};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc == CLI_OK) rc = check_count("--limit", limit);
    if (rc == CLI_OK) rc = check_count("--offset", offset);
    if (rc != CLI_OK) return rc;
    cli_buf u;
    bool first = true;
    cli_buf_url(&u, ctx, "/tokens");
    add_query(&u, &first, "page.limit", limit);
    add_query(&u, &first, "page.offset", offset);
    add_query(&u, &first, "type", type);
    add_query(&u, &first, "filter.role", role);
    if ((rc = cli_url_check(&u, TOKENS_LIST)) != CLI_OK) return rc;
    cli_call call = {.method = "GET", .url = u.s};
    return cli_member_call(ctx, &call, "tokens.[].id");
}

/* Parses TOKEN_ID (and opts) and builds /tokens/{id}{suffix}. */
static int token_url(cli_ctx *ctx, const cli_spec *spec, int argc, char **argv, const char *suffix, cli_buf *u)
{
    int rc = cli_parse(ctx, spec, argc, argv);
    if (rc != CLI_OK) return rc;
    cli_buf_url(u, ctx, "/tokens/");
    cli_buf_add_enc(u, spec->pos[0]);
    cli_buf_add(u, suffix);
    return cli_url_check(u, spec->usage);
}

int cmd_token_get(cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[1];
    cli_spec spec = {TOKEN_GET, NULL, 1, 1, pos};
    cli_buf u;
    int rc = token_url(ctx, &spec, argc, argv, "", &u);
    if (rc != CLI_OK) return rc;
    cli_call call = {.method = "GET", .url = u.s};
    return cli_member_call(ctx, &call, "token.id");
}

/* "Name: value" into out, for the optional cancel headers. */
static int header(char *out, size_t cap, const char *name, const char *value, const char **slot)
{
    if (!value) return CLI_OK;
    if (!*value || !cli_header_value_ok(value) || snprintf(out, cap, "%s: %s", name, value) >= (int)cap)
        return cli_usage_error(TOKEN_CANCEL, "the value for %s is empty, too long or has control characters", name);
    *slot = out;
    return CLI_OK;
}

int cmd_token_cancel(cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[1], *idem = NULL, *ip = NULL, *initiated = NULL, *device = NULL;
    cli_opt opts[] = {{"--idempotency-key", 1, &idem},
                      {"--customer-ip", 1, &ip},
                      {"--customer-initiated", 1, &initiated},
                      {"--device-id", 1, &device},
                      {NULL, 0, NULL}};
    cli_spec spec = {TOKEN_CANCEL, opts, 1, 1, pos};
    cli_buf u;
    int rc = token_url(ctx, &spec, argc, argv, "/cancel", &u);
    if (rc != CLI_OK) return rc;
    if (initiated && strcmp(initiated, "true") && strcmp(initiated, "false"))
        return cli_usage_error(TOKEN_CANCEL, "--customer-initiated must be true or false");
    char h[4][320];
    cli_call call = {.method = "PUT", .url = u.s};
    if ((rc = header(h[0], sizeof h[0], "Idempotency-Key", idem, &call.extra[0])) ||
        (rc = header(h[1], sizeof h[1], "token-customer-ip-address", ip, &call.extra[1])) ||
        (rc = header(h[2], sizeof h[2], "customer-initiated", initiated, &call.extra[2])) ||
        (rc = header(h[3], sizeof h[3], "token-customer-device-id", device, &call.extra[3])))
        return rc;
    /* extra[] is NULL-terminated: close the gaps the absent headers left. */
    int n = 0;
    for (int i = 0; i < 4; i++)
        if (call.extra[i]) call.extra[n++] = call.extra[i];
    for (int i = n; i < 4; i++)
        call.extra[i] = NULL;
    return cli_member_call(ctx, &call, "result.status");
}

/* One unauthenticated GET; the parsed body into *out on 2xx. */
static int probe(const cli_ctx *ctx, const char *path, json_t **out)
{
    cli_buf u;
    cli_buf_url(&u, ctx, path);
    cli_call call = {.method = "GET", .url = u.s};
    cli_resp r;
    int rc = cli_http(ctx, &call, &r);
    if (rc != CLI_OK) return rc;
    if (r.status < 200 || r.status > 299) {
        cli_print_error(&r);
        rc = CLI_HTTP_ERROR;
    } else {
        *out = json_loadb(r.body, r.len, JSON_DECODE_ANY, NULL);
        if (!*out) *out = json_stringn(r.body, r.len);
        if (!*out) *out = json_null();
    }
    cli_resp_free(&r);
    return rc;
}

int cmd_health(cli_ctx *ctx, int argc, char **argv)
{
    cli_spec spec = {HEALTH, NULL, 0, 0, NULL};
    json_t *live = NULL, *ready = NULL;
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc == CLI_OK) rc = probe(ctx, "/healthz", &live);
    if (rc == CLI_OK) rc = probe(ctx, "/readyz", &ready);
    if (rc == CLI_OK) {
        json_t *v = json_pack("{s:O, s:O}", "healthz", live, "readyz", ready);
        if (ctx->quiet)
            cli_print_path(stdout, v, "readyz.status");
        else
            cli_print_json(stdout, v);
        json_decref(v);
    }
    json_decref(live);
    json_decref(ready);
    return rc;
}
