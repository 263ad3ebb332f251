/* cmd_cards.c — network tokenization from the issuer's side: register and
 * read cards, read digital cards and operations, issuer operations on
 * digital cards and cards (the Issuer API, issuer key), and the admin
 * additions (card policy, outbox, simulated TSP). The PAN is sent once, at
 * registration, and never printed: an answer that would show it is withheld.
 * docs/network.md is the HTTP contract. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/util.h"

#define KEY_MAX 256
#define JSON_ARG_MAX (1u << 20)

#define ISSUER_AUTH                                                                                                    \
    "  Issuer API: --issuer ID (else TOKEND_ISSUER_ID) and the issuer's API key of role issuer:\n"                     \
    "  --issuer-key KEY, else TOKEND_ISSUER_KEY.\n"
#define ADMIN_AUTH                                                                                                     \
    "  Authenticates with the admin key: --admin-key-file FILE, else TOKEND_ADMIN_KEY,\n"                              \
    "  else ./var/admin.key.\n"
#define OP_OPTS                                                                                                        \
    "  Options: --reason TEXT ([a-zA-Z0-9 ]{1,64}), --reason-code CODE, --correlation-id ID\n"                         \
    "  (sent as x-correlation-id), --idempotency-key K. -q prints only the operationId.\n"

static const char REGISTER[] =
    "usage: tokenctl cards register --card-id ID --consumer-id ID --pan PAN|- --expiry MMYY\n"
    "                               [--phone P] [--email E] [--state ACTIVE|SUSPENDED]\n"
    "  Registers a card (POST /banking/v1/issuers/{issuerId}/cards). --pan - reads the PAN\n"
    "  from stdin (command lines are visible to other users). The PAN is never printed.\n"
    "  -q prints only the cardId.\n" ISSUER_AUTH;

static const char GET[] = "usage: tokenctl cards get CARD_ID\n"
                          "  Shows a card and its digital cards (GET .../cards/{cardId}).\n"
                          "  -q prints only the card's state.\n" ISSUER_AUTH;

static const char DCARDS[] = "usage: tokenctl cards dcards CARD_ID\n"
                             "  Lists a card's digital cards (GET .../cards/{cardId}/digitalCards).\n"
                             "  -q prints only the digitalCardIds, one per line.\n" ISSUER_AUTH;

static const char DCARD[] =
    "usage: tokenctl cards dcard get DIGITAL_CARD_ID\n"
    "       tokenctl cards dcard suspend|resume|delete DIGITAL_CARD_ID [--reason TEXT]\n"
    "            [--reason-code CODE] [--correlation-id ID] [--idempotency-key K]\n"
    "  get shows a digital card (GET .../digitalCards/{id}); -q prints only its state.\n"
    "  suspend, resume and delete are issuer operations (POST .../operations:<verb>),\n"
    "  carried out at the TSP first. Reason codes: USER_DECISION, ISSUER_DECISION (default),\n"
    "  DEVICE_LOST, DEVICE_STOLEN, DEVICE_FOUND, SUSPECTED_FRAUD, NOT_FRAUD, ACCOUNT_CLOSED, OTHER.\n" OP_OPTS
        ISSUER_AUTH;

static const char CARD[] =
    "usage: tokenctl cards card suspend|resume|delete CARD_ID [--reason TEXT] [--reason-code CODE]\n"
    "            [--correlation-id ID] [--idempotency-key K]\n"
    "  Card operations (POST .../cards/{cardId}/operations:<verb>). Suspend and resume leave\n"
    "  the digital cards as they are; delete deletes every live digital card through the TSP.\n"
    "  Reason codes: CARD_LOST, CARD_FOUND, CARD_STOLEN, CARD_BROKEN, FRAUD, USER_DECISION,\n"
    "  ISSUER_DECISION (default), CLOSED_ACCOUNT, CLOSED_CARD.\n" OP_OPTS ISSUER_AUTH;

static const char OP[] = "usage: tokenctl cards op get OPERATION_ID\n"
                         "  Shows an operation (GET .../operations/{operationId}).\n"
                         "  -q prints only its status (PENDING, SUCCESSFUL, FAILED).\n" ISSUER_AUTH;

static const char POLICY[] =
    "usage: tokenctl cards policy get ISSUER_ID\n"
    "       tokenctl cards policy set ISSUER_ID --json JSON|@FILE|-\n"
    "  Reads or changes an issuer's card policy (GET/PUT /admin/v1/issuers/{id}/card-policy).\n"
    "  set sends only the fields to change, e.g. --json '{\"stepUp\": {\"sessionSeconds\": 60}}'.\n" ADMIN_AUTH;

static const char OUTBOX[] = "usage: tokenctl cards outbox ISSUER_ID [--after ID] [--state STATE] [--limit N]\n"
                             "  Lists the notifications and messages owed (GET /admin/v1/issuers/{id}/outbox).\n"
                             "  OTP rows never show the OTP. -q prints only the row ids.\n" ADMIN_AUTH;

static const char TSP[] = "usage: tokenctl cards tsp accept|fail|refuse|timeout [--count N]\n"
                          "  Tells the built-in simulated TSP how to answer the next N calls (0, the default:\n"
                          "  until changed) (POST /admin/v1/tsp). For tests and demos.\n" ADMIN_AUTH;

/* ---- credentials and ids shared with cmd_sim.c ---- */

static bool key_ok(const char *k)
{
    if (!*k || strlen(k) >= KEY_MAX) return false;
    for (; *k; k++)
        if ((unsigned char)*k <= 0x20 || (unsigned char)*k >= 0x7f) return false;
    return true;
}

int cli_key_auth(const char *flag_value, const char *env_name, const char *flag_name, char *hdr, size_t cap,
                 bool required)
{
    const char *key = flag_value;
    if (!key || !*key) key = getenv(env_name);
    if (!key || !*key) {
        if (required) fprintf(stderr, "tokenctl: this command needs a key: %s KEY or %s\n", flag_name, env_name);
        hdr[0] = 0;
        return required ? CLI_USAGE : CLI_OK;
    }
    if (!key_ok(key)) {
        fprintf(stderr, "tokenctl: the key from %s or %s is not valid (printable characters, no spaces)\n", flag_name,
                env_name);
        return CLI_USAGE;
    }
    int n = snprintf(hdr, cap, "Authorization: Bearer %s", key);
    if (n < 0 || (size_t)n >= cap) {
        cli_forget(hdr, cap);
        fputs("tokenctl: the key is too long\n", stderr);
        return CLI_USAGE;
    }
    return CLI_OK;
}

const char *cli_issuer_id(const char *flag_value)
{
    const char *id = flag_value && *flag_value ? flag_value : getenv("TOKEND_ISSUER_ID");
    return id && *id ? id : NULL;
}

/* ---- one Issuer API call ---- */

typedef struct {
    const char *issuer, *key;
} issuer_args;

/* The options every Issuer API command takes. */
#define ISSUER_OPTS(a)                                                                                                 \
    {"--issuer", 1, &(a).issuer},                                                                                      \
    {                                                                                                                  \
        "--issuer-key", 1, &(a).key                                                                                    \
    }

/* Starts u with /banking/v1/issuers/{issuerId}. */
static int issuer_url(cli_ctx *ctx, const issuer_args *a, const char *usage, cli_buf *u)
{
    const char *id = cli_issuer_id(a->issuer);
    if (!id) return cli_usage_error(usage, "the issuer id is missing: --issuer ID or TOKEND_ISSUER_ID");
    cli_buf_url(u, ctx, "/banking/v1/issuers/");
    cli_buf_add_enc(u, id);
    return CLI_OK;
}

/* Sends the call with the issuer key and reports the answer; with secret
 * set, an answer (or error) that contains it is withheld. */
static int issuer_call(const cli_ctx *ctx, const issuer_args *a, cli_call *call, const char *quiet_path,
                       const char *secret)
{
    char auth[KEY_MAX + 64];
    int rc = cli_key_auth(a->key, "TOKEND_ISSUER_KEY", "--issuer-key", auth, sizeof auth, true);
    if (rc != CLI_OK) return rc;
    call->auth = auth;
    cli_resp r;
    rc = cli_http(ctx, call, &r);
    cli_forget(auth, sizeof auth);
    if (rc != CLI_OK) return rc;
    if (secret && *secret && r.body && strstr(r.body, secret)) {
        fprintf(stderr, "tokenctl: the server's answer (HTTP %ld) contained the PAN; it is not shown\n", r.status);
        rc = r.status >= 200 && r.status <= 299 ? CLI_TRANSPORT : CLI_HTTP_ERROR;
    } else {
        rc = cli_report(ctx, &r, quiet_path);
    }
    if (r.body) sodium_memzero(r.body, r.len);
    cli_resp_free(&r);
    return rc;
}

/* ---- register ---- */

/* The PAN from "-" (one line on stdin) or the argument itself. */
static int read_pan(const char *arg, char *out, size_t cap)
{
    if (strcmp(arg, "-")) {
        if (td_strlcpy(out, arg, cap)) return cli_usage_error(REGISTER, "--pan is too long");
        return CLI_OK;
    }
    if (!fgets(out, (int)cap, stdin)) return cli_usage_error(REGISTER, "no PAN on stdin");
    out[strcspn(out, "\r\n")] = 0;
    return CLI_OK;
}

int cmd_cards_register(cli_ctx *ctx, int argc, char **argv)
{
    issuer_args ia = {0};
    const char *card = NULL, *consumer = NULL, *pan_arg = NULL, *expiry = NULL, *phone = NULL, *email = NULL,
               *state = NULL;
    cli_opt opts[] = {ISSUER_OPTS(ia),        {"--card-id", 1, &card},  {"--consumer-id", 1, &consumer},
                      {"--pan", 1, &pan_arg}, {"--expiry", 1, &expiry}, {"--phone", 1, &phone},
                      {"--email", 1, &email}, {"--state", 1, &state},   {NULL, 0, NULL}};
    cli_spec spec = {REGISTER, opts, 0, 0, NULL};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc != CLI_OK) return rc;
    if (!card || !consumer || !pan_arg || !expiry)
        return cli_usage_error(REGISTER, "--card-id, --consumer-id, --pan and --expiry are required");
    char pan[64];
    if ((rc = read_pan(pan_arg, pan, sizeof pan)) != CLI_OK) return rc;
    cli_buf u;
    if ((rc = issuer_url(ctx, &ia, REGISTER, &u)) != CLI_OK) goto out;
    cli_buf_add(&u, "/cards");
    if ((rc = cli_url_check(&u, REGISTER)) != CLI_OK) goto out;
    json_t *b = json_object();
    json_object_set_new(b, "cardId", json_string(card));
    json_object_set_new(b, "consumerId", json_string(consumer));
    json_object_set_new(b, "pan", json_string(pan));
    json_object_set_new(b, "expiry", json_string(expiry));
    if (phone) json_object_set_new(b, "phone", json_string(phone));
    if (email) json_object_set_new(b, "email", json_string(email));
    if (state) json_object_set_new(b, "state", json_string(state));
    size_t want = 4 + !!phone + !!email + !!state;
    char *body = json_object_size(b) == want ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    if (!body) {
        rc = cli_usage_error(REGISTER, "arguments must be valid UTF-8 text");
        goto out;
    }
    cli_call call = {.method = "POST", .url = u.s, .body = body, .content_type = "application/json"};
    rc = issuer_call(ctx, &ia, &call, "cardId", pan);
    sodium_memzero(body, strlen(body));
    free(body);
out:
    sodium_memzero(pan, sizeof pan);
    return rc;
}

/* ---- reads ---- */

/* GET /banking/v1/issuers/{issuerId}/<prefix>/{id}<suffix>. */
static int issuer_get(cli_ctx *ctx, const issuer_args *ia, const char *usage, const char *prefix, const char *id,
                      const char *suffix, const char *quiet_path)
{
    cli_buf u;
    int rc = issuer_url(ctx, ia, usage, &u);
    if (rc != CLI_OK) return rc;
    cli_buf_add(&u, prefix);
    cli_buf_add_enc(&u, id);
    cli_buf_add(&u, suffix);
    if ((rc = cli_url_check(&u, usage)) != CLI_OK) return rc;
    cli_call call = {.method = "GET", .url = u.s};
    return issuer_call(ctx, ia, &call, quiet_path, NULL);
}

int cmd_cards_get(cli_ctx *ctx, int argc, char **argv)
{
    issuer_args ia = {0};
    const char *pos[1];
    cli_opt opts[] = {ISSUER_OPTS(ia), {NULL, 0, NULL}};
    cli_spec spec = {GET, opts, 1, 1, pos};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc != CLI_OK) return rc;
    return issuer_get(ctx, &ia, GET, "/cards/", pos[0], "", "state");
}

int cmd_cards_dcards(cli_ctx *ctx, int argc, char **argv)
{
    issuer_args ia = {0};
    const char *pos[1];
    cli_opt opts[] = {ISSUER_OPTS(ia), {NULL, 0, NULL}};
    cli_spec spec = {DCARDS, opts, 1, 1, pos};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc != CLI_OK) return rc;
    return issuer_get(ctx, &ia, DCARDS, "/cards/", pos[0], "/digitalCards", "digitalCards.[].digitalCardId");
}

/* ---- operations ---- */

/* Appends "Name: value" to the call's extra headers. */
static int add_header(cli_call *call, int *n, char *buf, size_t cap, const char *name, const char *value,
                      const char *usage)
{
    if (!value) return CLI_OK;
    if (!*value || !cli_header_value_ok(value) || snprintf(buf, cap, "%s: %s", name, value) >= (int)cap)
        return cli_usage_error(usage, "the value for %s is empty, too long or has control characters", name);
    call->extra[(*n)++] = buf;
    return CLI_OK;
}

/* POST .../<kind>/{id}/operations:<verb> with the optional reason body. */
static int run_operation(cli_ctx *ctx, int argc, char **argv, const char *usage, const char *kind)
{
    issuer_args ia = {0};
    const char *pos[1], *reason = NULL, *code = NULL, *corr = NULL, *idem = NULL;
    cli_opt opts[] = {ISSUER_OPTS(ia),
                      {"--reason", 1, &reason},
                      {"--reason-code", 1, &code},
                      {"--correlation-id", 1, &corr},
                      {"--idempotency-key", 1, &idem},
                      {NULL, 0, NULL}};
    const char *verb = argv[0];
    cli_spec spec = {usage, opts, 1, 1, pos};
    int rc = cli_parse(ctx, &spec, argc - 1, argv + 1);
    if (rc != CLI_OK) return rc;
    cli_buf u;
    if ((rc = issuer_url(ctx, &ia, usage, &u)) != CLI_OK) return rc;
    cli_buf_add(&u, kind);
    cli_buf_add_enc(&u, pos[0]);
    cli_buf_add(&u, "/operations:");
    cli_buf_add(&u, verb);
    if ((rc = cli_url_check(&u, usage)) != CLI_OK) return rc;
    char *body = NULL;
    if (reason || code) {
        json_t *b = json_object();
        if (reason) json_object_set_new(b, "reason", json_string(reason));
        if (code) json_object_set_new(b, "reasonCode", json_string(code));
        if (json_object_size(b) == (size_t)(!!reason + !!code)) body = json_dumps(b, JSON_COMPACT);
        json_decref(b);
        if (!body) return cli_usage_error(usage, "arguments must be valid UTF-8 text");
    }
    char h[2][160];
    int n = 0;
    cli_call call = {.method = "POST", .url = u.s, .body = body, .content_type = body ? "application/json" : NULL};
    if ((rc = add_header(&call, &n, h[0], sizeof h[0], "x-correlation-id", corr, usage)) == CLI_OK &&
        (rc = add_header(&call, &n, h[1], sizeof h[1], "Idempotency-Key", idem, usage)) == CLI_OK)
        rc = issuer_call(ctx, &ia, &call, "operationId", NULL);
    free(body);
    return rc;
}

static bool is_help(const char *a)
{
    return !strcmp(a, "--help") || !strcmp(a, "-h");
}

/* The verb of a three-word command ("cards dcard get"), or a usage answer. */
static int verb_of(int argc, char **argv, const char *usage, const char *const *verbs, int *which)
{
    if (argc < 1 || is_help(argv[0])) {
        if (argc >= 1) {
            fputs(usage, stdout);
            return CLI_HELP;
        }
        return cli_usage_error(usage, "a subcommand is needed");
    }
    for (int i = 0; verbs[i]; i++)
        if (!strcmp(argv[0], verbs[i])) {
            *which = i;
            return CLI_OK;
        }
    return cli_usage_error(usage, "unknown subcommand '%.32s'", argv[0]);
}

int cmd_cards_dcard(cli_ctx *ctx, int argc, char **argv)
{
    static const char *const VERBS[] = {"get", "suspend", "resume", "delete", NULL};
    int which = 0, rc = verb_of(argc, argv, DCARD, VERBS, &which);
    if (rc != CLI_OK) return rc;
    if (which > 0) return run_operation(ctx, argc, argv, DCARD, "/digitalCards/");
    issuer_args ia = {0};
    const char *pos[1];
    cli_opt opts[] = {ISSUER_OPTS(ia), {NULL, 0, NULL}};
    cli_spec spec = {DCARD, opts, 1, 1, pos};
    if ((rc = cli_parse(ctx, &spec, argc - 1, argv + 1)) != CLI_OK) return rc;
    return issuer_get(ctx, &ia, DCARD, "/digitalCards/", pos[0], "", "state");
}

int cmd_cards_card(cli_ctx *ctx, int argc, char **argv)
{
    static const char *const VERBS[] = {"suspend", "resume", "delete", NULL};
    int which = 0, rc = verb_of(argc, argv, CARD, VERBS, &which);
    if (rc != CLI_OK) return rc;
    return run_operation(ctx, argc, argv, CARD, "/cards/");
}

int cmd_cards_op(cli_ctx *ctx, int argc, char **argv)
{
    static const char *const VERBS[] = {"get", NULL};
    int which = 0, rc = verb_of(argc, argv, OP, VERBS, &which);
    if (rc != CLI_OK) return rc;
    issuer_args ia = {0};
    const char *pos[1];
    cli_opt opts[] = {ISSUER_OPTS(ia), {NULL, 0, NULL}};
    cli_spec spec = {OP, opts, 1, 1, pos};
    if ((rc = cli_parse(ctx, &spec, argc - 1, argv + 1)) != CLI_OK) return rc;
    return issuer_get(ctx, &ia, OP, "/operations/", pos[0], "", "status");
}

/* ---- admin additions ---- */

/* A JSON object from the argument: inline text, @FILE, or - (stdin). */
json_t *cli_json_arg(const char *arg, const char *usage)
{
    json_error_t err;
    json_t *v = NULL;
    if (!strcmp(arg, "-") || arg[0] == '@') {
        FILE *f = strcmp(arg, "-") ? fopen(arg + 1, "rb") : stdin;
        if (!f) {
            cli_usage_error(usage, "cannot read %s: %s", arg + 1, strerror(errno));
            return NULL;
        }
        v = json_loadf(f, JSON_REJECT_DUPLICATES, &err);
        if (f != stdin) fclose(f);
    } else {
        v = json_loads(arg, JSON_REJECT_DUPLICATES, &err);
    }
    if (!v || !json_is_object(v)) {
        json_decref(v);
        cli_usage_error(usage, "--json must be a JSON object (%s)", v ? "not an object" : err.text);
        return NULL;
    }
    return v;
}

int cmd_cards_policy(cli_ctx *ctx, int argc, char **argv)
{
    static const char *const VERBS[] = {"get", "set", NULL};
    int which = 0, rc = verb_of(argc, argv, POLICY, VERBS, &which);
    if (rc != CLI_OK) return rc;
    const char *pos[1], *json = NULL;
    cli_opt opts[] = {{"--json", 1, &json}, {NULL, 0, NULL}};
    cli_spec spec = {POLICY, which ? opts : NULL, 1, 1, pos};
    if ((rc = cli_parse(ctx, &spec, argc - 1, argv + 1)) != CLI_OK) return rc;
    if (which && !json) return cli_usage_error(POLICY, "policy set needs --json");
    cli_buf u;
    cli_buf_url(&u, ctx, "/admin/v1/issuers/");
    cli_buf_add_enc(&u, pos[0]);
    cli_buf_add(&u, "/card-policy");
    if ((rc = cli_url_check(&u, POLICY)) != CLI_OK) return rc;
    if (!which) return cli_admin_call(ctx, "GET", u.s, NULL, NULL);
    json_t *body = cli_json_arg(json, POLICY);
    if (!body) return CLI_USAGE;
    rc = cli_admin_call(ctx, "PUT", u.s, body, NULL);
    json_decref(body);
    return rc;
}

static int check_count(const char *usage, const char *name, const char *v)
{
    int64_t n;
    if (v && (td_parse_i64(v, &n) || n < 0)) return cli_usage_error(usage, "%s must be a whole number", name);
    return CLI_OK;
}

int cmd_cards_outbox(cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[1], *after = NULL, *state = NULL, *limit = NULL;
    cli_opt opts[] = {{"--after", 1, &after}, {"--state", 1, &state}, {"--limit", 1, &limit}, {NULL, 0, NULL}};
    cli_spec spec = {OUTBOX, opts, 1, 1, pos};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc == CLI_OK) rc = check_count(OUTBOX, "--after", after);
    if (rc == CLI_OK) rc = check_count(OUTBOX, "--limit", limit);
    if (rc != CLI_OK) return rc;
    cli_buf u;
    char sep = '?';
    cli_buf_url(&u, ctx, "/admin/v1/issuers/");
    cli_buf_add_enc(&u, pos[0]);
    cli_buf_add(&u, "/outbox");
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
    if ((rc = cli_url_check(&u, OUTBOX)) != CLI_OK) return rc;
    return cli_admin_call(ctx, "GET", u.s, NULL, "outbox.[].id");
}

int cmd_cards_tsp(cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[1], *count = NULL;
    cli_opt opts[] = {{"--count", 1, &count}, {NULL, 0, NULL}};
    cli_spec spec = {TSP, opts, 1, 1, pos};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc == CLI_OK) rc = check_count(TSP, "--count", count);
    if (rc != CLI_OK) return rc;
    if (strcmp(pos[0], "accept") && strcmp(pos[0], "fail") && strcmp(pos[0], "refuse") && strcmp(pos[0], "timeout"))
        return cli_usage_error(TSP, "the mode is accept, fail, refuse or timeout");
    int64_t n = 0;
    if (count) td_parse_i64(count, &n);
    cli_buf u;
    cli_buf_url(&u, ctx, "/admin/v1/tsp");
    json_t *body = json_pack("{s:s, s:I}", "mode", pos[0], "count", (json_int_t)n);
    rc = cli_admin_call(ctx, "POST", u.s, body, NULL);
    json_decref(body);
    return rc;
}
