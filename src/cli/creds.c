/* creds.c — where tokenctl finds its credentials and how it sends them:
 * the admin key (--admin-key-file, TOKEND_ADMIN_KEY, or ./var/admin.key,
 * where `tokend serve` writes it by default) and a member's API key (Bearer,
 * or Basic memberId:apiKey with --member). No message ever shows a key. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/util.h"

#define DEFAULT_ADMIN_KEY_FILE "./var/admin.key"
#define KEY_MAX 256

/* A key is printable ASCII without spaces; anything else would corrupt the
 * Authorization header. */
static bool key_ok(const char *k)
{
    if (!*k) return false;
    for (; *k; k++)
        if ((unsigned char)*k <= 0x20 || (unsigned char)*k >= 0x7f) return false;
    return true;
}

/* Reads the key file into out, without its trailing whitespace. */
static int read_key_file(const char *path, char *out, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr,
                "tokenctl: cannot read the admin key from %s: %s (use --admin-key-file FILE or TOKEND_ADMIN_KEY)\n",
                path, strerror(errno));
        return CLI_USAGE;
    }
    ssize_t n = read(fd, out, cap - 1);
    close(fd);
    if (n < 0) {
        fprintf(stderr, "tokenctl: cannot read the admin key from %s: %s\n", path, strerror(errno));
        return CLI_USAGE;
    }
    out[n] = 0;
    while (n > 0 && strchr(" \t\r\n", out[n - 1]))
        out[--n] = 0;
    if (!key_ok(out)) {
        sodium_memzero(out, cap);
        fprintf(stderr, "tokenctl: %s does not hold an admin key on one line\n", path);
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* "Authorization: <scheme> <credential>" into hdr. */
static int auth_header(char *hdr, size_t cap, const char *scheme, const char *cred)
{
    int n = snprintf(hdr, cap, "Authorization: %s %s", scheme, cred);
    if (n < 0 || (size_t)n >= cap) {
        cli_forget(hdr, cap);
        fputs("tokenctl: the credential is too long\n", stderr);
        return CLI_USAGE;
    }
    return CLI_OK;
}

int cli_admin_auth(const cli_ctx *ctx, char *hdr, size_t cap)
{
    char key[KEY_MAX];
    const char *env = getenv("TOKEND_ADMIN_KEY");
    if (ctx->admin_key_file || !env || !*env) {
        int rc = read_key_file(ctx->admin_key_file ? ctx->admin_key_file : DEFAULT_ADMIN_KEY_FILE, key, sizeof key);
        if (rc != CLI_OK) return rc;
    } else if (td_strlcpy(key, env, sizeof key) || !key_ok(key)) {
        sodium_memzero(key, sizeof key);
        fputs("tokenctl: TOKEND_ADMIN_KEY is not a valid key\n", stderr);
        return CLI_USAGE;
    }
    int rc = auth_header(hdr, cap, "Bearer", key);
    sodium_memzero(key, sizeof key);
    return rc;
}

int cli_member_auth(const cli_ctx *ctx, char *hdr, size_t cap)
{
    const char *key = ctx->api_key;
    if (!key || !*key) {
        fputs("tokenctl: this command needs a member API key: --api-key KEY or TOKEND_API_KEY\n", stderr);
        return CLI_USAGE;
    }
    if (strlen(key) >= KEY_MAX || !key_ok(key)) {
        fputs("tokenctl: the API key is not valid (printable characters, no spaces)\n", stderr);
        return CLI_USAGE;
    }
    if (!ctx->member) return auth_header(hdr, cap, "Bearer", key);
    if (!key_ok(ctx->member) || strlen(ctx->member) >= 128) {
        fputs("tokenctl: --member must be a member id\n", stderr);
        return CLI_USAGE;
    }
    /* Basic base64(memberId:apiKey): the server checks the key is that member's. */
    char pair[KEY_MAX + 130], b64[sizeof pair * 4 / 3 + 8];
    int n = snprintf(pair, sizeof pair, "%s:%s", ctx->member, key);
    sodium_bin2base64(b64, sizeof b64, (const unsigned char *)pair, (size_t)n, sodium_base64_VARIANT_ORIGINAL);
    int rc = auth_header(hdr, cap, "Basic", b64);
    sodium_memzero(pair, sizeof pair);
    sodium_memzero(b64, sizeof b64);
    return rc;
}

void cli_forget(char *hdr, size_t cap)
{
    sodium_memzero(hdr, cap);
}
