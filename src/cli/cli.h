/* cli.h — what tokenctl's pieces share: the run context (server URL,
 * credentials, output mode), exit codes, the argument parser, the HTTP call,
 * answer reporting, and each command's entry point. */
#ifndef TD_CLI_H
#define TD_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Exit codes: scripts tell a refusal by the server from a broken command
 * line from an unreachable server. */
enum {
    CLI_OK = 0,
    CLI_HTTP_ERROR = 1,
    CLI_USAGE = 2,
    CLI_TRANSPORT = 3,
    CLI_HELP = -1, /* internal: --help was answered; exit 0 */
};

#define CLI_URL_MAX 4096

typedef struct {
    char url[1024];             /* server base URL, no trailing '/' */
    const char *admin_key_file; /* --admin-key-file */
    const char *api_key;        /* --api-key or TOKEND_API_KEY */
    const char *member;         /* --member: Basic auth with api_key */
    long timeout_s;
    bool quiet;
} cli_ctx;

/* ---- arguments (args.c) ---- */

typedef struct {
    const char *name; /* "--from" */
    int nargs;        /* values taken: 0 (a flag) to 3 */
    const char **out; /* nargs slots; a flag gets "" in out[0] */
} cli_opt;

typedef struct {
    const char *usage;   /* the command's help text */
    const cli_opt *opts; /* terminated by a NULL name; may be NULL */
    int min_pos, max_pos;
    const char **pos; /* max_pos slots for the positional arguments */
} cli_spec;

/* Parses a command's arguments; global options are accepted anywhere.
 * Returns CLI_OK, CLI_HELP (help printed), or CLI_USAGE (message printed). */
int cli_parse(cli_ctx *ctx, const cli_spec *spec, int argc, char **argv);
/* Consumes one global option at argv[*i] (advancing *i past its value).
 * 1 if it was one, 0 if not, CLI_USAGE on a bad value (message printed). */
int cli_global_option(cli_ctx *ctx, int argc, char **argv, int *i);
/* Sets the server URL (what names its source in messages). */
int cli_set_url(cli_ctx *ctx, const char *url, const char *what);
/* Prints "tokenctl: <message>" and the usage line to stderr; CLI_USAGE. */
int cli_usage_error(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- building URLs and bodies (args.c) ---- */

typedef struct {
    char s[CLI_URL_MAX];
    size_t len;
    bool overflow;
} cli_buf;

void cli_buf_add(cli_buf *b, const char *s);
/* Appends s percent-encoded: only [A-Za-z0-9-._~:] stay as they are. */
void cli_buf_add_enc(cli_buf *b, const char *s);
/* Starts b with the server URL followed by path. */
void cli_buf_url(cli_buf *b, const cli_ctx *ctx, const char *path);

/* ---- credentials (creds.c) ---- */

/* Fills hdr with "Authorization: ..." for the admin API or the Token API.
 * CLI_OK, or CLI_USAGE with a message that never shows the key. */
int cli_admin_auth(const cli_ctx *ctx, char *hdr, size_t cap);
int cli_member_auth(const cli_ctx *ctx, char *hdr, size_t cap);
/* Overwrites a header that held a credential. */
void cli_forget(char *hdr, size_t cap);

/* ---- HTTP (http.c) ---- */

typedef struct {
    const char *method; /* GET, POST, PUT, DELETE */
    const char *url;
    const char *auth;         /* "Authorization: ..." or NULL */
    const char *body;         /* NULL: none */
    const char *content_type; /* of body */
    const char *extra[6];     /* more "Name: value" headers, NULL-terminated */
} cli_call;

typedef struct {
    long status;
    char *body; /* NUL-terminated, malloc'd */
    size_t len;
    char location[CLI_URL_MAX];
    char trace_id[80];
    char content_type[128];
} cli_resp;

/* Performs the call. CLI_OK with r filled (any HTTP status), or
 * CLI_TRANSPORT after printing why to stderr. */
int cli_http(const cli_ctx *ctx, const cli_call *call, cli_resp *r);
void cli_resp_free(cli_resp *r);
/* A header value must not smuggle in more headers. */
bool cli_header_value_ok(const char *v);

/* ---- output (output.c) ---- */

/* Prints a JSON text indented by 2 (or as is, if it is not JSON). */
void cli_print_body(FILE *f, const char *body, size_t len);
void cli_print_json(FILE *f, json_t *v);
/* Prints the values at a path, one per line: keys separated by '.', "[]"
 * for every element of an array; "a|b" takes the first path that yields.
 * 0 if something was printed. */
int cli_print_path(FILE *f, json_t *root, const char *paths);
/* The server's error (its JSON, or one made from an HTML page) on stderr. */
void cli_print_error(const cli_resp *r);
/* The usual end of a command: 2xx prints the body (or, with -q, what
 * quiet_path selects) and returns CLI_OK; otherwise the error, CLI_HTTP_ERROR. */
int cli_report(const cli_ctx *ctx, const cli_resp *r, const char *quiet_path);

/* ---- commands (cmd_*.c): argv holds the arguments after the command ---- */

typedef int (*cli_cmd_fn)(cli_ctx *ctx, int argc, char **argv);

int cmd_member_create(cli_ctx *ctx, int argc, char **argv);
int cmd_member_api_key(cli_ctx *ctx, int argc, char **argv);
int cmd_issuer_create(cli_ctx *ctx, int argc, char **argv);
int cmd_issuer_api_key(cli_ctx *ctx, int argc, char **argv);
int cmd_keys_list(cli_ctx *ctx, int argc, char **argv);
int cmd_keys_get(cli_ctx *ctx, int argc, char **argv);
int cmd_keys_add(cli_ctx *ctx, int argc, char **argv);
int cmd_keys_delete(cli_ctx *ctx, int argc, char **argv);
int cmd_request_create(cli_ctx *ctx, int argc, char **argv);
int cmd_request_get(cli_ctx *ctx, int argc, char **argv);
int cmd_request_result(cli_ctx *ctx, int argc, char **argv);
int cmd_request_authorize(cli_ctx *ctx, int argc, char **argv);
int cmd_consent_approve(cli_ctx *ctx, int argc, char **argv);
int cmd_consent_reject(cli_ctx *ctx, int argc, char **argv);
int cmd_tokens_list(cli_ctx *ctx, int argc, char **argv);
int cmd_token_get(cli_ctx *ctx, int argc, char **argv);
int cmd_token_cancel(cli_ctx *ctx, int argc, char **argv);
int cmd_health(cli_ctx *ctx, int argc, char **argv);
/* Network tokenization, issuer side (cmd_cards.c) and the TSP/wallet simulator (cmd_sim.c). */
int cmd_cards_register(cli_ctx *ctx, int argc, char **argv);
int cmd_cards_get(cli_ctx *ctx, int argc, char **argv);
int cmd_cards_dcards(cli_ctx *ctx, int argc, char **argv);
int cmd_cards_dcard(cli_ctx *ctx, int argc, char **argv);
int cmd_cards_card(cli_ctx *ctx, int argc, char **argv);
int cmd_cards_op(cli_ctx *ctx, int argc, char **argv);
int cmd_cards_policy(cli_ctx *ctx, int argc, char **argv);
int cmd_cards_outbox(cli_ctx *ctx, int argc, char **argv);
int cmd_cards_tsp(cli_ctx *ctx, int argc, char **argv);
int cmd_sim(cli_ctx *ctx, int argc, char **argv);
/* Notification delivery (cmd_delivery.c): an issuer's delivery settings, its
 * outbox with attempts and dead letters, replay; and the reference issuer
 * backend that receives them (cmd_listen.c). */
int cmd_delivery_set(cli_ctx *ctx, int argc, char **argv);
int cmd_delivery_get(cli_ctx *ctx, int argc, char **argv);
int cmd_outbox_list(cli_ctx *ctx, int argc, char **argv);
int cmd_outbox_replay(cli_ctx *ctx, int argc, char **argv);
int cmd_listen(cli_ctx *ctx, int argc, char **argv);
/* Moving a stopped tokend's SQLite store into PostgreSQL, and comparing the
 * two (cmd_store.c; docs/postgres.md). Talks to no server. */
int cmd_store_copy(cli_ctx *ctx, int argc, char **argv);
int cmd_store_backup(cli_ctx *ctx, int argc, char **argv);
int cmd_store_restore(cli_ctx *ctx, int argc, char **argv);
int cmd_store_rekey(cli_ctx *ctx, int argc, char **argv);
int cmd_store_verify(cli_ctx *ctx, int argc, char **argv);

/* Shared by the commands (cmd_common.c): one call with the admin key or the
 * member's API key, reported with cli_report. body may be NULL. */
int cli_admin_call(const cli_ctx *ctx, const char *method, const char *url, json_t *body, const char *quiet_path);
int cli_member_call(const cli_ctx *ctx, const cli_call *call, const char *quiet_path);
/* Serializes a JSON body; NULL (after a usage message) if an argument was not
 * valid UTF-8 and so never made it into v. */
char *cli_body(json_t *v, const char *usage);
/* CLI_OK, or CLI_USAGE if the arguments made the URL too long. */
int cli_url_check(const cli_buf *b, const char *usage);

/* Issuer API keys (cmd_cards.c): "Authorization: Bearer KEY" into hdr from
 * flag_value, else the environment variable env_name. Without a key: CLI_USAGE
 * (message printed) if required, else CLI_OK with hdr "". Never shows the key. */
int cli_key_auth(const char *flag_value, const char *env_name, const char *flag_name, char *hdr, size_t cap,
                 bool required);
/* The issuer id: flag_value, else TOKEND_ISSUER_ID; NULL if neither. */
const char *cli_issuer_id(const char *flag_value);
/* A JSON object from inline text, @FILE or - (stdin); NULL after a usage message. */
json_t *cli_json_arg(const char *arg, const char *usage);

#endif
