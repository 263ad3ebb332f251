/* cmd_keys.c — a member's public keys through the Token API: list, get, add
 * (an Ed25519 key, raw base64url or PEM, given inline or as @FILE) and
 * delete. Adding and deleting need the member's own API key. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define MEMBER_AUTH "  Authenticates with --api-key KEY or TOKEND_API_KEY (Bearer); add --member ID for Basic.\n"

static const char KEYS_LIST[] = "usage: tokenctl keys list MEMBER_ID\n"
                                "  Lists the member's public keys (GET /member/{id}/keys).\n"
                                "  -q prints only the key ids, one per line.\n" MEMBER_AUTH;

static const char KEYS_GET[] = "usage: tokenctl keys get MEMBER_ID KEY_ID\n"
                               "  Shows one public key (GET /member/{id}/keys/{keyId}).\n"
                               "  -q prints only the key id.\n" MEMBER_AUTH;

static const char KEYS_ADD[] = "usage: tokenctl keys add MEMBER_ID PUBLIC_KEY [--level LOW|STANDARD|PRIVILEGED]\n"
                               "  Adds an Ed25519 public key to the caller's own member (POST /member/{id}/keys).\n"
                               "  PUBLIC_KEY is the raw 32-byte key in base64url, or a PEM; @FILE reads it from FILE.\n"
                               "  -q prints only the new keyId.\n" MEMBER_AUTH;

static const char KEYS_DELETE[] =
    "usage: tokenctl keys delete MEMBER_ID KEY_ID\n"
    "  Deletes a public key the member added (DELETE /member/{id}/keys/{keyId}).\n" MEMBER_AUTH;

/* /member/{id}/keys[/{keyId}] into u. */
static int keys_url(const cli_ctx *ctx, const char *usage, const char *member, const char *key_id, cli_buf *u)
{
    cli_buf_url(u, ctx, "/member/");
    cli_buf_add_enc(u, member);
    cli_buf_add(u, "/keys");
    if (key_id) {
        cli_buf_add(u, "/");
        cli_buf_add_enc(u, key_id);
    }
    return cli_url_check(u, usage);
}

static int keys_simple(cli_ctx *ctx, const char *usage, int npos, const char *method, const char *quiet_path, int argc,
                       char **argv)
{
    const char *pos[2] = {NULL, NULL};
    cli_spec spec = {usage, NULL, npos, npos, pos};
    cli_buf u;
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc == CLI_OK) rc = keys_url(ctx, usage, pos[0], pos[1], &u);
    if (rc != CLI_OK) return rc;
    cli_call call = {.method = method, .url = u.s};
    return cli_member_call(ctx, &call, quiet_path);
}

int cmd_keys_list(cli_ctx *ctx, int argc, char **argv)
{
    return keys_simple(ctx, KEYS_LIST, 1, "GET", "[].key.[].id", argc, argv);
}

int cmd_keys_get(cli_ctx *ctx, int argc, char **argv)
{
    return keys_simple(ctx, KEYS_GET, 2, "GET", "key.[].id", argc, argv);
}

int cmd_keys_delete(cli_ctx *ctx, int argc, char **argv)
{
    return keys_simple(ctx, KEYS_DELETE, 2, "DELETE", NULL, argc, argv);
}

/* Reads a small text file (a PEM) into a malloc'd string. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "tokenctl: cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = calloc(1, 4096);
    size_t n = buf ? fread(buf, 1, 4095, f) : 0;
    bool more = buf && fgetc(f) != EOF;
    fclose(f);
    if (buf && (more || n == 0)) {
        fprintf(stderr, "tokenctl: %s must hold one public key\n", path);
        free(buf);
        return NULL;
    }
    return buf;
}

int cmd_keys_add(cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[2], *level = NULL;
    cli_opt opts[] = {{"--level", 1, &level}, {NULL, 0, NULL}};
    cli_spec spec = {KEYS_ADD, opts, 2, 2, pos};
    cli_buf u;
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc == CLI_OK) rc = keys_url(ctx, KEYS_ADD, pos[0], NULL, &u);
    if (rc != CLI_OK) return rc;
    char *file = pos[1][0] == '@' ? read_text(pos[1] + 1) : NULL;
    if (pos[1][0] == '@' && !file) return CLI_USAGE;
    const char *pk = file ? file : pos[1];
    json_t *v = level ? json_pack("{s:s, s:s, s:s}", "keyAlgorithm", "ED25519", "publicKey", pk, "level", level)
                      : json_pack("{s:s, s:s}", "keyAlgorithm", "ED25519", "publicKey", pk);
    char *body = cli_body(v, KEYS_ADD);
    json_decref(v);
    free(file);
    if (!body) return CLI_USAGE;
    cli_call call = {.method = "POST", .url = u.s, .body = body, .content_type = "application/json"};
    rc = cli_member_call(ctx, &call, "keyId");
    free(body);
    return rc;
}
