/* cmd_requests.c — token requests through the Token API: create one from
 * flags (access, transfer or standing order) or from a JSON file, read it and
 * its result, and authorize it to get the consent link. The caller's API key
 * must belong to the requesting (--to) member. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/util.h"

#define MEMBER_AUTH "  Authenticates with --api-key KEY or TOKEND_API_KEY (Bearer); add --member ID for Basic.\n"
#define JSON_FILE_MAX (1u << 20)

static const char REQUEST_CREATE[] =
    "usage: tokenctl request create --from MEMBER --to MEMBER --redirect-url URL --ref-id REF\n"
    "           (--access RES[,RES...] [--expires EPOCH_S]\n"
    "            | --transfer AMOUNT CURRENCY --payee-iban IBAN\n"
    "            | --standing-order AMOUNT CURRENCY FREQUENCY --payee-iban IBAN) [--description TEXT]\n"
    "       tokenctl request create --json FILE     (FILE holds the whole body; - reads stdin)\n"
    "  Stores a token request (POST /token-requests). --to is the requesting member, whose\n"
    "  API key is used; --from is the member asked to grant. RES are ACCOUNTS, BALANCES,\n"
    "  TRANSACTIONS, TRANSFER_DESTINATIONS, STANDING_ORDERS. --payee-iban is the payee's\n"
    "  SEPA account (the request's one transferDestination).\n"
    "  -q prints only the request id.\n" MEMBER_AUTH;

static const char REQUEST_GET[] = "usage: tokenctl request get REQUEST_ID\n"
                                  "  Shows a stored token request (GET /token-requests/{id}).\n"
                                  "  -q prints only the request id.\n" MEMBER_AUTH;

static const char REQUEST_RESULT[] =
    "usage: tokenctl request result REQUEST_ID\n"
    "  Shows the request's status and, once PROCESSED, its tokenId and signature\n"
    "  (GET /token-requests/{id}/result).\n"
    "  -q prints the tokenId once PROCESSED, else the status (PENDING, REJECTED, EXPIRED).\n" MEMBER_AUTH;

static const char REQUEST_AUTHORIZE[] = "usage: tokenctl request authorize REQUEST_ID\n"
                                        "  Issues a fresh one-time consent link for the request (POST\n"
                                        "  /token-requests/{id}/authorization); open it, or use `tokenctl consent`.\n"
                                        "  -q prints only the consent URL.\n" MEMBER_AUTH;

typedef struct {
    const char *from, *to, *redirect, *ref, *access, *expires, *description, *json_file, *payee_iban;
    const char *transfer[2], *standing[3];
} create_args;

/* Sets obj[key] to the string s; clears *ok if s is not valid UTF-8. */
static void set_str(json_t *obj, const char *key, const char *s, bool *ok)
{
    if (json_object_set_new(obj, key, json_string(s))) *ok = false;
}

/* ["ACCOUNTS", "BALANCES"] from "ACCOUNTS,BALANCES" (empty items skipped). */
static json_t *resource_list(const char *list, bool *ok)
{
    json_t *a = json_array();
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n && json_array_append_new(a, json_stringn(p, n))) *ok = false;
        p += n + (p[n] == ',');
    }
    return a;
}

/* {"transferDestinations": [{"sepa": {"iban": IBAN}}]}: the payee tokend requires. */
static json_t *sepa_instructions(const char *iban, bool *ok)
{
    json_t *sepa = json_object();
    set_str(sepa, "iban", iban, ok);
    return json_pack("{s:[{s:o}]}", "transferDestinations", "sepa", sepa);
}

static json_t *kind_body(const create_args *a, const char **key, bool *ok)
{
    json_t *b = json_object();
    if (a->access) {
        *key = "accessBody";
        json_object_set_new(b, "resourceTypeList", json_pack("{s:o}", "resources", resource_list(a->access, ok)));
    } else if (a->transfer[0]) {
        /* One payment of AMOUNT: it is both the amount and the lifetime cap. */
        *key = "transferBody";
        set_str(b, "currency", a->transfer[1], ok);
        set_str(b, "lifetimeAmount", a->transfer[0], ok);
        set_str(b, "amount", a->transfer[0], ok);
        json_object_set_new(b, "instructions", sepa_instructions(a->payee_iban, ok));
    } else {
        *key = "standingOrderBody";
        set_str(b, "amount", a->standing[0], ok);
        set_str(b, "currency", a->standing[1], ok);
        set_str(b, "frequency", a->standing[2], ok);
        json_object_set_new(b, "instructions", sepa_instructions(a->payee_iban, ok));
    }
    return b;
}

/* The POST /token-requests body from the flags; NULL after a usage message. */
static char *body_from_flags(const create_args *a)
{
    bool ok = true;
    const char *key = NULL;
    json_t *p = json_object(), *to = json_object(), *from = json_object();
    set_str(p, "refId", a->ref, &ok);
    set_str(to, "id", a->to, &ok);
    json_object_set_new(p, "to", to);
    set_str(p, "redirectUrl", a->redirect, &ok);
    if (a->description) set_str(p, "description", a->description, &ok);
    json_t *kb = kind_body(a, &key, &ok);
    json_object_set_new(p, key, kb);
    if (a->expires) set_str(p, "tokenExpiration", a->expires, &ok);
    set_str(from, "id", a->from, &ok);
    json_t *v = json_pack("{s:{s:o}, s:o}", "requestOptions", "from", from, "requestPayload", p);
    char *body = cli_body(ok ? v : NULL, REQUEST_CREATE);
    json_decref(v);
    return body;
}

static int check_flags(const create_args *a)
{
    int kinds = !!a->access + !!a->transfer[0] + !!a->standing[0];
    if (!a->from || !a->to || !a->redirect || !a->ref)
        return cli_usage_error(REQUEST_CREATE, "--from, --to, --redirect-url and --ref-id are required");
    if (kinds != 1)
        return cli_usage_error(REQUEST_CREATE, "give exactly one of --access, --transfer, --standing-order");
    if (!a->access && !a->payee_iban)
        return cli_usage_error(REQUEST_CREATE, "--transfer and --standing-order need --payee-iban");
    if (a->access && a->payee_iban) return cli_usage_error(REQUEST_CREATE, "--payee-iban applies to payments only");
    int64_t t;
    if (a->access && strspn(a->access, ",") == strlen(a->access))
        return cli_usage_error(REQUEST_CREATE, "--access needs at least one resource type");
    if (a->expires && !a->access) return cli_usage_error(REQUEST_CREATE, "--expires applies to --access only");
    if (a->expires && (td_parse_i64(a->expires, &t) || t <= 0))
        return cli_usage_error(REQUEST_CREATE, "--expires must be epoch seconds");
    return CLI_OK;
}

/* The body of --json FILE ("-": stdin), checked to be one JSON value. */
static char *body_from_file(const char *path)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) {
        cli_usage_error(NULL, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(JSON_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, JSON_FILE_MAX + 1, f) : 0;
    if (f != stdin) fclose(f);
    if (!buf || n > JSON_FILE_MAX) {
        free(buf);
        cli_usage_error(NULL, "%s is larger than %u bytes", path, JSON_FILE_MAX);
        return NULL;
    }
    buf[n] = 0;
    json_error_t je;
    json_t *v = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &je);
    if (!v) {
        free(buf);
        cli_usage_error(NULL, "%s: line %d column %d: %s", path, je.line, je.column, je.text);
        return NULL;
    }
    json_decref(v);
    return buf;
}

int cmd_request_create(cli_ctx *ctx, int argc, char **argv)
{
    create_args a = {0};
    bool others = false;
    cli_opt opts[] = {{"--from", 1, &a.from},
                      {"--to", 1, &a.to},
                      {"--redirect-url", 1, &a.redirect},
                      {"--ref-id", 1, &a.ref},
                      {"--access", 1, &a.access},
                      {"--expires", 1, &a.expires},
                      {"--transfer", 2, a.transfer},
                      {"--standing-order", 3, a.standing},
                      {"--description", 1, &a.description},
                      {"--payee-iban", 1, &a.payee_iban},
                      {"--json", 1, &a.json_file},
                      {NULL, 0, NULL}};
    cli_spec spec = {REQUEST_CREATE, opts, 0, 0, NULL};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc != CLI_OK) return rc;
    const char *const given[] = {a.from,    a.to,          a.redirect,    a.ref,         a.access,
                                 a.expires, a.transfer[0], a.standing[0], a.description, a.payee_iban};
    for (size_t i = 0; i < sizeof given / sizeof given[0]; i++)
        others |= given[i] != NULL;
    if (a.json_file && others) return cli_usage_error(REQUEST_CREATE, "--json FILE replaces all the other options");
    if (!a.json_file && (rc = check_flags(&a)) != CLI_OK) return rc;
    char *body = a.json_file ? body_from_file(a.json_file) : body_from_flags(&a);
    if (!body) return CLI_USAGE;
    cli_buf u;
    cli_buf_url(&u, ctx, "/token-requests");
    cli_call call = {.method = "POST", .url = u.s, .body = body, .content_type = "application/json"};
    rc = cli_member_call(ctx, &call, "tokenRequest.id");
    free(body);
    return rc;
}

/* GET or POST /token-requests/{id}{suffix}. */
static int request_call(cli_ctx *ctx, const char *usage, const char *method, const char *suffix, const char *quiet,
                        int argc, char **argv)
{
    const char *pos[1];
    cli_spec spec = {usage, NULL, 1, 1, pos};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc != CLI_OK) return rc;
    cli_buf u;
    cli_buf_url(&u, ctx, "/token-requests/");
    cli_buf_add_enc(&u, pos[0]);
    cli_buf_add(&u, suffix);
    if ((rc = cli_url_check(&u, usage)) != CLI_OK) return rc;
    cli_call call = {.method = method, .url = u.s};
    return cli_member_call(ctx, &call, quiet);
}

int cmd_request_get(cli_ctx *ctx, int argc, char **argv)
{
    return request_call(ctx, REQUEST_GET, "GET", "", "tokenRequest.id", argc, argv);
}

int cmd_request_result(cli_ctx *ctx, int argc, char **argv)
{
    return request_call(ctx, REQUEST_RESULT, "GET", "/result", "tokenId|status", argc, argv);
}

int cmd_request_authorize(cli_ctx *ctx, int argc, char **argv)
{
    return request_call(ctx, REQUEST_AUTHORIZE, "POST", "/authorization", "redirectUrl", argc, argv);
}
