/* cmd_common.c — the call-and-report step every command ends with: pick the
 * credential, send, print the answer, and wipe the credential afterwards. */
#include <stdlib.h>

#include "cli/cli.h"

char *cli_body(json_t *v, const char *usage)
{
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    if (!s) cli_usage_error(usage, "arguments must be valid UTF-8 text");
    return s;
}

int cli_url_check(const cli_buf *b, const char *usage)
{
    return b->overflow ? cli_usage_error(usage, "the arguments are too long for a URL") : CLI_OK;
}

static int call_and_report(const cli_ctx *ctx, const cli_call *call, const char *quiet_path)
{
    cli_resp r;
    int rc = cli_http(ctx, call, &r);
    if (rc != CLI_OK) return rc;
    rc = cli_report(ctx, &r, quiet_path);
    cli_resp_free(&r);
    return rc;
}

int cli_admin_call(const cli_ctx *ctx, const char *method, const char *url, json_t *body, const char *quiet_path)
{
    char auth[512];
    char *text = NULL;
    if (body && !(text = cli_body(body, NULL))) return CLI_USAGE;
    int rc = cli_admin_auth(ctx, auth, sizeof auth);
    if (rc == CLI_OK) {
        cli_call call = {
            .method = method, .url = url, .auth = auth, .body = text, .content_type = text ? "application/json" : NULL};
        rc = call_and_report(ctx, &call, quiet_path);
    }
    cli_forget(auth, sizeof auth);
    free(text);
    return rc;
}

int cli_member_call(const cli_ctx *ctx, const cli_call *call, const char *quiet_path)
{
    char auth[1024];
    int rc = cli_member_auth(ctx, auth, sizeof auth);
    if (rc == CLI_OK) {
        cli_call c = *call;
        c.auth = auth;
        rc = call_and_report(ctx, &c, quiet_path);
    }
    cli_forget(auth, sizeof auth);
    return rc;
}
