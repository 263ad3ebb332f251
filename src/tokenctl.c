/* tokenctl.c — the operator CLI of tokend: `tokenctl [OPTIONS] COMMAND ...`
 * talks HTTP to a running tokend (admin API, Token API, consent links,
 * health, the Issuer API's cards, a TSP/wallet simulator, notification
 * delivery settings and dead letters, and a reference issuer backend), and
 * copies a stopped tokend's SQLite store into PostgreSQL (`store`). This file
 * reads the global options and dispatches; the commands are in src/cli/.
 * Exit codes: 0 2xx, 1 HTTP error, 2 usage, 3 transport. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define DEFAULT_URL "http://127.0.0.1:8080"

typedef struct {
    const char *group; /* "member" */
    const char *name;  /* "create"; NULL for a command without a subcommand */
    cli_cmd_fn fn;
} command;

static const command COMMANDS[] = {
    {"member", "create", cmd_member_create},
    {"member", "api-key", cmd_member_api_key},
    {"issuer", "create", cmd_issuer_create},
    {"issuer", "api-key", cmd_issuer_api_key},
    {"keys", "list", cmd_keys_list},
    {"keys", "get", cmd_keys_get},
    {"keys", "add", cmd_keys_add},
    {"keys", "delete", cmd_keys_delete},
    {"request", "create", cmd_request_create},
    {"request", "get", cmd_request_get},
    {"request", "result", cmd_request_result},
    {"request", "authorize", cmd_request_authorize},
    {"consent", "approve", cmd_consent_approve},
    {"consent", "reject", cmd_consent_reject},
    {"tokens", "list", cmd_tokens_list},
    {"token", "get", cmd_token_get},
    {"token", "cancel", cmd_token_cancel},
    {"cards", "register", cmd_cards_register},
    {"cards", "get", cmd_cards_get},
    {"cards", "dcards", cmd_cards_dcards},
    {"cards", "dcard", cmd_cards_dcard},
    {"cards", "card", cmd_cards_card},
    {"cards", "op", cmd_cards_op},
    {"cards", "policy", cmd_cards_policy},
    {"cards", "outbox", cmd_cards_outbox},
    {"cards", "tsp", cmd_cards_tsp},
    {"sim", NULL, cmd_sim},
    {"delivery", "set", cmd_delivery_set},
    {"delivery", "get", cmd_delivery_get},
    {"outbox", "list", cmd_outbox_list},
    {"outbox", "replay", cmd_outbox_replay},
    {"listen", NULL, cmd_listen},
    {"health", NULL, cmd_health},
    {"store", "copy", cmd_store_copy},
    {"store", "verify", cmd_store_verify},
    {"store", "backup", cmd_store_backup},
    {"store", "restore", cmd_store_restore},
    {"store", "rekey", cmd_store_rekey},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static const char USAGE[] =
    "usage: tokenctl [--url URL] [-q] [--admin-key-file FILE] [--api-key KEY [--member ID]]\n"
    "                [--timeout SECONDS] COMMAND ...\n"
    "\n"
    "Admin API (admin key: --admin-key-file FILE, else TOKEND_ADMIN_KEY, else ./var/admin.key):\n"
    "  member create NAME\n"
    "  member api-key MEMBER_ID LOW|STANDARD|PRIVILEGED\n"
    "  issuer create ISSUER_ID NAME\n"
    "  issuer api-key ISSUER_ID issuer|network\n"
    "\n"
    "Token API (--api-key KEY or TOKEND_API_KEY as Bearer; with --member ID as Basic):\n"
    "  keys list MEMBER_ID | keys get MEMBER_ID KEY_ID\n"
    "  keys add MEMBER_ID PUBLIC_KEY|@FILE [--level L] | keys delete MEMBER_ID KEY_ID\n"
    "  request create --from MEMBER --to MEMBER --redirect-url URL --ref-id REF\n"
    "      (--access RES[,RES...] [--expires EPOCH_S] | --transfer AMOUNT CURRENCY --payee-iban IBAN\n"
    "       | --standing-order AMOUNT CURRENCY FREQUENCY --payee-iban IBAN) [--description TEXT]\n"
    "  request create --json FILE\n"
    "  request get ID | request result ID | request authorize ID\n"
    "  tokens list [--type T] [--limit N] [--offset O] [--role R]\n"
    "  token get ID | token cancel ID [--idempotency-key K] [--customer-ip IP]\n"
    "      [--customer-initiated true|false] [--device-id D]\n"
    "\n"
    "Consent links (no key: the link is the credential):\n"
    "  consent approve CONSENT_URL [--accounts a:1,a:2] | consent reject CONSENT_URL\n"
    "\n"
    "Network tokenization, issuer side (--issuer ID, --issuer-key KEY or TOKEND_ISSUER_ID,\n"
    "TOKEND_ISSUER_KEY; policy, outbox and tsp use the admin key):\n"
    "  cards register --card-id ID --consumer-id ID --pan PAN|- --expiry MMYY [--phone P] [--email E]\n"
    "  cards get CARD_ID | cards dcards CARD_ID | cards dcard get DIGITAL_CARD_ID\n"
    "  cards dcard suspend|resume|delete DIGITAL_CARD_ID [--reason TEXT] [--reason-code CODE]\n"
    "  cards card suspend|resume|delete CARD_ID [--reason TEXT] [--reason-code CODE]\n"
    "  cards op get OPERATION_ID\n"
    "  cards policy get ISSUER_ID | cards policy set ISSUER_ID --json JSON|@FILE|-\n"
    "  cards outbox ISSUER_ID [--after ID] [--state S] [--limit N]\n"
    "  cards tsp accept|fail|refuse|timeout [--count N]\n"
    "\n"
    "TSP/wallet simulator (--network-key KEY or TOKEND_NETWORK_KEY):\n"
    "  sim green|yellow-otp|yellow-cancel|yellow-expiry|red|enrollment-failure|all\n"
    "      [--card-id ID | --pan PAN --expiry MMYY | --register] [--duplicates] [--late]\n"
    "\n"
    "Notification delivery (admin key):\n"
    "  delivery set ISSUER_ID --profile d1|classic|webhook --base-url URL\n"
    "      [--bearer TOKEN | --oauth CLIENT_ID TOKEN_URL --client-secret S | --webhook-secret whsec_...]\n"
    "      [--batch N] [--max-age S] [--timeout-ms MS] [--messaging-url URL] [--templates JSON|@FILE]\n"
    "  delivery get ISSUER_ID\n"
    "  outbox list ISSUER_ID [--state DEAD|PENDING|IN_FLIGHT|DELIVERED|CANCELLED] [--lines]\n"
    "  outbox replay ISSUER_ID ID|--all\n"
    "\n"
    "Reference issuer backend (receives what tokend sends; docs/receiver.md):\n"
    "  listen [--port P] [--profile d1|classic|webhook|all] [--bearer TOKEN] [--webhook-secret S]\n"
    "      [--oauth-client ID:SECRET] [--fail-first N --fail-mode 500|400|401|timeout|slow|...]\n"
    "      [--state-file FILE]\n"
    "\n"
    "Operations:\n"
    "  health\n"
    "\n"
    "Moving the store to PostgreSQL (no server involved; tokend stopped; docs/postgres.md):\n"
    "  store copy sqlite:PATH postgres://...     copy into an empty database, verified\n"
    "  store verify sqlite:PATH postgres://...   compare row counts and digests per table\n"
    "Backing up the SQLite store (docs/operations.md):\n"
    "  store backup sqlite:PATH FILE             a consistent copy, while tokend serves\n"
    "  store restore FILE sqlite:PATH [--replace]  put a backup in place (tokend stopped)\n"
    "Rotating the master key (tokend stopped; docs/operations.md):\n"
    "  store rekey STORE --old-key FILE --new-key FILE  reseal every sealed value\n"
    "\n"
    "Options (before or after the command):\n"
    "  --url URL        tokend's base URL (default: TOKEND_URL, else " DEFAULT_URL ")\n"
    "  -q, --quiet      print only the main value: memberId, apiKey, request id, consent URL,\n"
    "                   tokenId, status; lists print one id per line\n"
    "  --timeout S      give up on a call after S seconds (default 30)\n"
    "  -h, --help       this text; `tokenctl COMMAND --help` explains one command\n"
    "\n"
    "Output: the server's JSON answer, indented, on stdout; errors on stderr.\n"
    "Exit status: 0 success (2xx), 1 HTTP error, 2 usage error, 3 transport error.\n";

static const char HINT[] = "Run `tokenctl --help` for the commands and options.\n";

/* The usage lines of one group, for `tokenctl member` and `tokenctl member --help`. */
static void group_usage(FILE *f, const char *group)
{
    const char *lead = "usage:";
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(COMMANDS[i].group, group) || !COMMANDS[i].name) continue;
        fprintf(f, "%s tokenctl %s %s ...\n", lead, group, COMMANDS[i].name);
        lead = "      ";
    }
    fprintf(f, "`tokenctl %s SUBCOMMAND --help` explains one.\n", group);
}

static bool group_exists(const char *group)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(COMMANDS[i].group, group)) return true;
    return false;
}

static const command *find(const char *group, const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const command *c = &COMMANDS[i];
        if (!strcmp(c->group, group) && (!c->name || (name && !strcmp(c->name, name)))) return c;
    }
    return NULL;
}

/* Defaults from the environment; flags override them later. */
static int init_ctx(cli_ctx *ctx)
{
    const char *url = getenv("TOKEND_URL"), *key = getenv("TOKEND_API_KEY");
    memset(ctx, 0, sizeof *ctx);
    ctx->timeout_s = 30;
    ctx->api_key = key && *key ? key : NULL;
    return cli_set_url(ctx, url && *url ? url : DEFAULT_URL, "TOKEND_URL");
}

/* Finds the command at argv[i..] and runs it with the arguments after it. */
static int dispatch(cli_ctx *ctx, int argc, char **argv, int i)
{
    const char *group = argv[i], *name = i + 1 < argc ? argv[i + 1] : NULL;
    if (!group_exists(group)) return cli_usage_error(HINT, "unknown command '%.64s'", group);
    const command *c = find(group, name);
    if (c && !c->name) return c->fn(ctx, argc - i - 1, argv + i + 1);
    if (c) return c->fn(ctx, argc - i - 2, argv + i + 2);
    if (name && (!strcmp(name, "--help") || !strcmp(name, "-h"))) {
        group_usage(stdout, group);
        return CLI_HELP;
    }
    if (name)
        fprintf(stderr, "tokenctl: unknown command '%s %.64s'\n", group, name);
    else
        fprintf(stderr, "tokenctl: '%s' needs a subcommand\n", group);
    group_usage(stderr, group);
    return CLI_USAGE;
}

static int run(int argc, char **argv)
{
    cli_ctx ctx;
    int rc = init_ctx(&ctx), i = 1;
    if (rc != CLI_OK) return rc;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(USAGE, stdout);
            return CLI_HELP;
        }
        rc = cli_global_option(&ctx, argc, argv, &i);
        if (rc == 0) return cli_usage_error(HINT, "unknown option '%.*s'", (int)strcspn(argv[i], "="), argv[i]);
        if (rc != 1) return CLI_USAGE;
    }
    if (i >= argc) return cli_usage_error(USAGE, "no command given");
    return dispatch(&ctx, argc, argv, i);
}

int main(int argc, char **argv)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fputs("tokenctl: libcurl failed to initialise\n", stderr);
        return CLI_TRANSPORT;
    }
    int rc = run(argc, argv);
    curl_global_cleanup();
    if (fflush(stdout) != 0) {
        perror("tokenctl: stdout");
        if (rc == CLI_OK) rc = CLI_TRANSPORT;
    }
    return rc == CLI_HELP ? CLI_OK : rc;
}
