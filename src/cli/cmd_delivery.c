/* cmd_delivery.c — notification delivery from the operator's side (admin
 * key): an issuer's delivery settings (PUT/GET /admin/v1/issuers/{id}/delivery),
 * its outbox with each row's attempts and last error, and the replay of dead
 * letters. docs/notifications.md is what tokend sends with these settings;
 * `tokenctl listen` (cmd_listen.c) is a backend that receives it. Secrets
 * (bearer token, OAuth2 client secret, webhook secret) may come from a file
 * or stdin so that they stay off command lines; tokend never shows them back. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/util.h"

#define SECRET_MAX 400

#define ADMIN_AUTH                                                                                                     \
    "  Authenticates with the admin key: --admin-key-file FILE, else TOKEND_ADMIN_KEY,\n"                              \
    "  else ./var/admin.key.\n"

static const char SET[] =
    "usage: tokenctl delivery set ISSUER_ID --profile d1|classic|webhook --base-url URL\n"
    "           [--bearer TOKEN | --oauth CLIENT_ID TOKEN_URL --client-secret S [--scope S]\n"
    "            | --webhook-secret whsec_...]\n"
    "           [--batch N] [--max-age SECONDS] [--timeout-ms MS] [--messaging-url URL]\n"
    "           [--templates JSON|@FILE|-] [--cert FILE [--key FILE]] [--ca FILE] [--pin sha256//...]\n"
    "  Sets how tokend reaches the issuer's backend (PUT /admin/v1/issuers/{id}/delivery); the\n"
    "  whole configuration is replaced. --base-url is the backend's base (d1, classic) or the\n"
    "  webhook endpoint itself (webhook). --batch: d1 Notify Card Operation rows per call\n"
    "  (1-64, default 1: no batching). --max-age: retry for at most this long, then dead letter\n"
    "  (60-604800, default 86400). --timeout-ms: per attempt (100-60000, default 5000).\n"
    "  --messaging-url: where end-user messages go (none: they are dead letters). --templates:\n"
    "  {\"ACTIVATION\": \"...\", \"REMINDER\", \"DELETION\", \"CANCELLATION\", \"OTP\"} with\n"
    "  placeholders {last4} {wallet} {otp} {issuer}. Secrets (TOKEN, S, whsec_...) may be given\n"
    "  as @FILE or - (stdin) to keep them off the command line; they are never shown back.\n"
    "  Leaving the secret out keeps the one stored. -q prints only the profile.\n" ADMIN_AUTH;

static const char GET[] = "usage: tokenctl delivery get ISSUER_ID\n"
                          "  Shows an issuer's delivery settings (GET /admin/v1/issuers/{id}/delivery); the\n"
                          "  secret only as \"secretSet\". -q prints only the profile.\n" ADMIN_AUTH;

static const char LIST[] =
    "usage: tokenctl outbox list ISSUER_ID [--state STATE] [--after ID] [--limit N] [--lines]\n"
    "  Lists the issuer's owed notifications and messages (GET /admin/v1/issuers/{id}/outbox)\n"
    "  with their delivery: state (PENDING, IN_FLIGHT, DELIVERED, DEAD, CANCELLED), attempts,\n"
    "  lastStatus, lastError, firstAttemptAt, doneAt. --state DEAD lists the dead letters.\n"
    "  --lines prints one line per row: id state what status digitalCardId attempts last-status\n"
    "  last-error. OTP rows never show the OTP. -q prints only the row ids.\n" ADMIN_AUTH;

static const char REPLAY[] =
    "usage: tokenctl outbox replay ISSUER_ID ID | tokenctl outbox replay ISSUER_ID --all\n"
    "  Sends dead letters again, under the same ids: one row (POST .../outbox/{id}/replay) or\n"
    "  every dead row of the issuer (POST .../outbox:replay). Answers {\"replayed\": n}.\n"
    "  -q prints only n.\n" ADMIN_AUTH;

/* A secret from the argument itself, @FILE or - (stdin): first line, without
 * its line end. CLI_OK or CLI_USAGE (message printed, never the secret). */
static int read_secret(const char *arg, const char *name, char *out, size_t cap)
{
    if (strcmp(arg, "-") && arg[0] != '@') {
        if (td_strlcpy(out, arg, cap)) return cli_usage_error(SET, "%s is too long", name);
        return CLI_OK;
    }
    FILE *f = strcmp(arg, "-") ? fopen(arg + 1, "rb") : stdin;
    if (!f) return cli_usage_error(SET, "cannot read %s: %s", arg + 1, strerror(errno));
    char *got = fgets(out, (int)cap, f);
    if (f != stdin) fclose(f);
    if (!got) return cli_usage_error(SET, "%s: nothing to read", name);
    out[strcspn(out, "\r\n")] = 0;
    if (!*out) return cli_usage_error(SET, "%s is empty", name);
    return CLI_OK;
}

static int whole(const char *usage, const char *name, const char *v, int64_t lo, int64_t hi, json_t *body,
                 const char *key)
{
    int64_t n;
    if (!v) return CLI_OK;
    if (td_parse_i64(v, &n) || n < lo || n > hi)
        return cli_usage_error(usage, "%s must be a whole number from %lld to %lld", name, (long long)lo,
                               (long long)hi);
    json_object_set_new(body, key, json_integer(n));
    return CLI_OK;
}

static void issuer_url(cli_buf *u, cli_ctx *ctx, const char *issuer, const char *rest)
{
    cli_buf_url(u, ctx, "/admin/v1/issuers/");
    cli_buf_add_enc(u, issuer);
    cli_buf_add(u, rest);
}

int cmd_delivery_set(cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[1], *profile = NULL, *base = NULL, *bearer = NULL, *oauth[2] = {NULL, NULL}, *client_secret = NULL,
                        *scope = NULL, *whsec = NULL, *batch = NULL, *max_age = NULL, *timeout = NULL,
                        *messaging = NULL, *templates = NULL, *cert = NULL, *key = NULL, *ca = NULL, *pin = NULL;
    cli_opt opts[] = {{"--profile", 1, &profile},
                      {"--base-url", 1, &base},
                      {"--bearer", 1, &bearer},
                      {"--oauth", 2, oauth},
                      {"--client-secret", 1, &client_secret},
                      {"--scope", 1, &scope},
                      {"--webhook-secret", 1, &whsec},
                      {"--batch", 1, &batch},
                      {"--max-age", 1, &max_age},
                      {"--timeout-ms", 1, &timeout},
                      {"--messaging-url", 1, &messaging},
                      {"--templates", 1, &templates},
                      {"--cert", 1, &cert},
                      {"--key", 1, &key},
                      {"--ca", 1, &ca},
                      {"--pin", 1, &pin},
                      {NULL, 0, NULL}};
    cli_spec spec = {SET, opts, 1, 1, pos};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc != CLI_OK) return rc;
    if (!profile || !base) return cli_usage_error(SET, "delivery set needs --profile and --base-url");
    if ((bearer != NULL) + (oauth[0] != NULL) + (whsec != NULL) > 1)
        return cli_usage_error(SET, "give one of --bearer, --oauth and --webhook-secret");
    if ((client_secret || scope) && !oauth[0])
        return cli_usage_error(SET, "--client-secret and --scope go with --oauth");
    if (key && !cert) return cli_usage_error(SET, "--key goes with --cert");

    json_t *body = json_pack("{s:s, s:s}", "profile", profile, "baseUrl", base);
    char secret[SECRET_MAX + 2] = "";
    json_t *auth = NULL;
    if (!body) return cli_usage_error(SET, "arguments must be valid UTF-8 text");
    if (bearer) {
        rc = read_secret(bearer, "--bearer", secret, sizeof secret);
        auth = json_pack("{s:s, s:s}", "type", "bearer", "token", secret);
    } else if (oauth[0]) {
        auth = json_pack("{s:s, s:s, s:s}", "type", "oauth2", "clientId", oauth[0], "tokenUrl", oauth[1]);
        if (auth && client_secret &&
            (rc = read_secret(client_secret, "--client-secret", secret, sizeof secret)) == CLI_OK)
            json_object_set_new(auth, "clientSecret", json_string(secret));
        if (auth && scope) json_object_set_new(auth, "scope", json_string(scope));
    } else if (whsec) {
        rc = read_secret(whsec, "--webhook-secret", secret, sizeof secret);
        auth = json_pack("{s:s, s:s}", "type", "webhook", "secret", secret);
    }
    sodium_memzero(secret, sizeof secret);
    if (rc == CLI_OK && (bearer || oauth[0] || whsec) && !auth)
        rc = cli_usage_error(SET, "arguments must be valid UTF-8 text");
    if (auth) json_object_set_new(body, "auth", auth);
    if (rc == CLI_OK && (cert || ca || pin)) {
        json_t *tls = json_object();
        const char *names[] = {"certFile", "keyFile", "caFile", "pinnedPublicKey"}, *vals[] = {cert, key, ca, pin};
        for (int i = 0; i < 4; i++)
            if (vals[i]) json_object_set_new(tls, names[i], json_string(vals[i]));
        json_object_set_new(body, "tls", tls);
    }
    if (rc == CLI_OK) rc = whole(SET, "--batch", batch, 1, 64, body, "d1BatchMax");
    if (rc == CLI_OK) rc = whole(SET, "--max-age", max_age, 60, 604800, body, "maxAgeSeconds");
    if (rc == CLI_OK) rc = whole(SET, "--timeout-ms", timeout, 100, 60000, body, "timeoutMs");
    if (rc == CLI_OK && messaging) json_object_set_new(body, "messagingUrl", json_string(messaging));
    if (rc == CLI_OK && templates) {
        json_t *t = cli_json_arg(templates, SET);
        if (!t)
            rc = CLI_USAGE;
        else
            json_object_set_new(body, "templates", t);
    }
    if (rc == CLI_OK) {
        cli_buf u;
        issuer_url(&u, ctx, pos[0], "/delivery");
        rc = cli_url_check(&u, SET);
        if (rc == CLI_OK) rc = cli_admin_call(ctx, "PUT", u.s, body, "profile");
    }
    /* The body held the secret: wipe its serialization's source. */
    json_t *a = json_object_get(body, "auth");
    const char *fields[] = {"token", "clientSecret", "secret"};
    for (int i = 0; a && i < 3; i++) {
        json_t *s = json_object_get(a, fields[i]);
        if (json_is_string(s)) sodium_memzero((char *)json_string_value(s), json_string_length(s));
    }
    json_decref(body);
    return rc;
}

int cmd_delivery_get(cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[1];
    cli_spec spec = {GET, NULL, 1, 1, pos};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc != CLI_OK) return rc;
    cli_buf u;
    issuer_url(&u, ctx, pos[0], "/delivery");
    if ((rc = cli_url_check(&u, GET)) != CLI_OK) return rc;
    return cli_admin_call(ctx, "GET", u.s, NULL, "profile");
}

/* --lines: one row per line, for a terminal. */
static void print_lines(json_t *rows)
{
    size_t i;
    json_t *o;
    json_array_foreach(rows, i, o)
    {
        const char *ch = json_string_value(json_object_get(o, "channel"));
        bool user = ch && !strcmp(ch, "USER");
        const char *what = json_string_value(json_object_get(o, user ? "message" : "operation"));
        const char *status = user ? "" : json_string_value(json_object_get(o, "status"));
        const char *dc = json_string_value(json_object_get(o, "digitalCardId"));
        const char *err = json_string_value(json_object_get(o, "lastError"));
        const char *state = json_string_value(json_object_get(o, "state"));
        const char *card = json_string_value(json_object_get(o, "cardId"));
        printf("%lld\t%s\t%s %s%s%s\t%s\tattempts=%lld\tlast=%lld\t%s\n",
               (long long)json_integer_value(json_object_get(o, "id")), state ? state : "", user ? "USER" : "ISSUER",
               what ? what : "", status && *status ? " " : "", status ? status : "",
               dc && *dc ? dc
               : card    ? card
                         : "",
               (long long)json_integer_value(json_object_get(o, "attempts")),
               (long long)json_integer_value(json_object_get(o, "lastStatus")), err ? err : "");
    }
}

int cmd_outbox_list(cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[1], *after = NULL, *state = NULL, *limit = NULL, *lines = NULL;
    cli_opt opts[] = {{"--after", 1, &after},
                      {"--state", 1, &state},
                      {"--limit", 1, &limit},
                      {"--lines", 0, &lines},
                      {NULL, 0, NULL}};
    cli_spec spec = {LIST, opts, 1, 1, pos};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc != CLI_OK) return rc;
    int64_t n;
    if (after && (td_parse_i64(after, &n) || n < 0)) return cli_usage_error(LIST, "--after must be a whole number");
    if (limit && (td_parse_i64(limit, &n) || n < 1 || n > 500))
        return cli_usage_error(LIST, "--limit must be a whole number from 1 to 500");
    cli_buf u;
    char sep = '?';
    issuer_url(&u, ctx, pos[0], "/outbox");
    const char *names[] = {"state", "after", "limit"}, *values[] = {state, after, limit};
    for (int i = 0; i < 3; i++) {
        if (!values[i]) continue;
        char one[2] = {sep, 0};
        cli_buf_add(&u, one);
        cli_buf_add(&u, names[i]);
        cli_buf_add(&u, "=");
        cli_buf_add_enc(&u, values[i]);
        sep = '&';
    }
    if ((rc = cli_url_check(&u, LIST)) != CLI_OK) return rc;
    if (!lines || ctx->quiet) return cli_admin_call(ctx, "GET", u.s, NULL, "outbox.[].id");

    char auth[512];
    if ((rc = cli_admin_auth(ctx, auth, sizeof auth)) != CLI_OK) return rc;
    cli_call call = {.method = "GET", .url = u.s, .auth = auth};
    cli_resp r;
    rc = cli_http(ctx, &call, &r);
    cli_forget(auth, sizeof auth);
    if (rc != CLI_OK) return rc;
    if (r.status < 200 || r.status > 299) {
        rc = cli_report(ctx, &r, NULL);
    } else {
        json_t *v = json_loadb(r.body ? r.body : "", r.len, 0, NULL);
        json_t *rows = json_object_get(v, "outbox");
        if (json_is_array(rows)) {
            print_lines(rows);
        } else {
            fputs("tokenctl: the answer is not an outbox listing\n", stderr);
            rc = CLI_TRANSPORT;
        }
        json_decref(v);
    }
    cli_resp_free(&r);
    return rc;
}

int cmd_outbox_replay(cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[2] = {NULL, NULL}, *all = NULL;
    cli_opt opts[] = {{"--all", 0, &all}, {NULL, 0, NULL}};
    cli_spec spec = {REPLAY, opts, 1, 2, pos};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc != CLI_OK) return rc;
    if ((pos[1] != NULL) == (all != NULL)) return cli_usage_error(REPLAY, "give either a row ID or --all");
    int64_t id;
    if (pos[1] && (td_parse_i64(pos[1], &id) || id < 1))
        return cli_usage_error(REPLAY, "the row ID must be a whole number >= 1");
    cli_buf u;
    if (all) {
        issuer_url(&u, ctx, pos[0], "/outbox:replay");
    } else {
        issuer_url(&u, ctx, pos[0], "/outbox/");
        cli_buf_add_enc(&u, pos[1]);
        cli_buf_add(&u, "/replay");
    }
    if ((rc = cli_url_check(&u, REPLAY)) != CLI_OK) return rc;
    return cli_admin_call(ctx, "POST", u.s, NULL, "replayed");
}
