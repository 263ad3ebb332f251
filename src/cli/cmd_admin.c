/* cmd_admin.c — the admin API commands: creating members and issuers and
 * their API keys. The answer's apiKey is the one secret tokenctl prints,
 * because the server shows it only once. */
#include "cli/cli.h"

#define ADMIN_AUTH                                                                                                     \
    "  Authenticates with the admin key: --admin-key-file FILE, else TOKEND_ADMIN_KEY,\n"                              \
    "  else ./var/admin.key (where `tokend serve` writes it by default).\n"

static const char MEMBER_CREATE[] = "usage: tokenctl member create NAME\n"
                                    "  Creates a member with display name NAME (POST /admin/v1/members).\n"
                                    "  -q prints only the memberId.\n" ADMIN_AUTH;

static const char MEMBER_API_KEY[] = "usage: tokenctl member api-key MEMBER_ID LEVEL\n"
                                     "  Creates an API key for the member (POST /admin/v1/members/{id}/api-keys);\n"
                                     "  LEVEL is LOW, STANDARD or PRIVILEGED. The key is shown only this once.\n"
                                     "  -q prints only the apiKey.\n" ADMIN_AUTH;

static const char ISSUER_CREATE[] = "usage: tokenctl issuer create ISSUER_ID NAME\n"
                                    "  Creates an issuer (POST /admin/v1/issuers); ISSUER_ID is exactly 10\n"
                                    "  characters of [A-Za-z0-9_-].\n"
                                    "  -q prints only the issuerId.\n" ADMIN_AUTH;

static const char ISSUER_API_KEY[] = "usage: tokenctl issuer api-key ISSUER_ID ROLE\n"
                                     "  Creates an API key for the issuer (POST /admin/v1/issuers/{id}/api-keys);\n"
                                     "  ROLE is issuer or network. The key is shown only this once.\n"
                                     "  -q prints only the apiKey.\n" ADMIN_AUTH;

/* POST to the URL built from prefix [+ encoded id + suffix], with body. */
static int admin_post(cli_ctx *ctx, const char *usage, const char *prefix, const char *id, const char *suffix,
                      json_t *body, const char *quiet_path)
{
    cli_buf u;
    cli_buf_url(&u, ctx, prefix);
    if (id) {
        cli_buf_add_enc(&u, id);
        cli_buf_add(&u, suffix);
    }
    int rc = cli_url_check(&u, usage);
    if (rc == CLI_OK)
        rc = body ? cli_admin_call(ctx, "POST", u.s, body, quiet_path)
                  : cli_usage_error(usage, "arguments must be valid UTF-8 text");
    json_decref(body);
    return rc;
}

int cmd_member_create(cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[1];
    cli_spec spec = {MEMBER_CREATE, NULL, 1, 1, pos};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc != CLI_OK) return rc;
    return admin_post(ctx, MEMBER_CREATE, "/admin/v1/members", NULL, "", json_pack("{s:s}", "displayName", pos[0]),
                      "memberId");
}

int cmd_member_api_key(cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[2];
    cli_spec spec = {MEMBER_API_KEY, NULL, 2, 2, pos};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc != CLI_OK) return rc;
    return admin_post(ctx, MEMBER_API_KEY, "/admin/v1/members/", pos[0], "/api-keys",
                      json_pack("{s:s}", "level", pos[1]), "apiKey");
}

int cmd_issuer_create(cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[2];
    cli_spec spec = {ISSUER_CREATE, NULL, 2, 2, pos};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc != CLI_OK) return rc;
    return admin_post(ctx, ISSUER_CREATE, "/admin/v1/issuers", NULL, "",
                      json_pack("{s:s, s:s}", "issuerId", pos[0], "displayName", pos[1]), "issuerId");
}

int cmd_issuer_api_key(cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[2];
    cli_spec spec = {ISSUER_API_KEY, NULL, 2, 2, pos};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc != CLI_OK) return rc;
    return admin_post(ctx, ISSUER_API_KEY, "/admin/v1/issuers/", pos[0], "/api-keys",
                      json_pack("{s:s}", "role", pos[1]), "apiKey");
}
