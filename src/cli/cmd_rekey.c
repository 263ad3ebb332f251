/* cmd_rekey.c — tokenctl store rekey: rotates a stopped store's master key
 * (docs/operations.md, "Rotating the master key"). The work is the service's
 * (service/rekey.c); this file reads the two key files and reports. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "service/service.h"
#include "store/store.h"
#include "util/log.h"
#include "util/util.h"

static const char REKEY_USAGE[] =
    "usage: tokenctl store rekey STORE --old-key FILE --new-key FILE\n"
    "  Reseals every value of the store sealed with the master key in --old-key\n"
    "  (members' private keys, cards' PANs and contacts, delivery secrets, OTPs\n"
    "  waiting in the outbox, idempotency answers) with the one in --new-key, one\n"
    "  row per transaction, then records the new key's check. Each FILE holds 64\n"
    "  hex characters, as tokend's master key file. STORE is sqlite:PATH or a\n"
    "  postgres:// URL; every tokend on it must be stopped (SQLite: its file lock;\n"
    "  PostgreSQL: no session named tokend), and none starts until it has finished.\n"
    "  Interrupted (a crash, kill -9), run it again with the same keys: it finishes\n"
    "  the job. Then start tokend with --master-key-file pointing at the new key.\n"
    "  Exit status: 0 done (or done before), 1 refused or failed, 2 usage.\n";

/* A master key file: 64 hex characters, trailing whitespace allowed. */
static int read_key(const char *path, uint8_t out[32], char *err, size_t cap)
{
    FILE *f = fopen(path, "r");
    char buf[160] = "";
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    if (!f) {
        snprintf(err, cap, "cannot read %s", path);
        return -1;
    }
    buf[n] = 0;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) buf[--n] = 0;
    int bad = n != 64;
    for (size_t i = 0; !bad && i < 32; i++) {
        int v = td_hex_byte(buf + 2 * i);
        bad = v < 0;
        if (!bad) out[i] = (uint8_t)v;
    }
    sodium_memzero(buf, sizeof buf);
    if (bad) snprintf(err, cap, "%s must hold 64 hex characters", path);
    return bad ? -1 : 0;
}

/* TD_REKEY_KILL_AFTER=N (tests only): the process kills itself with SIGKILL
 * once N rows are resealed, to prove that a rerun finishes the job. */
static int64_t kill_after(void)
{
    const char *v = getenv("TD_REKEY_KILL_AFTER");
    int64_t n = 0;
    return v && td_parse_i64(v, &n) == 0 && n > 0 ? n : 0;
}

int cmd_store_rekey(cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[1], *old_file = NULL, *new_file = NULL;
    cli_opt opts[] = {{"--old-key", 1, &old_file}, {"--new-key", 1, &new_file}, {NULL, 0, NULL}};
    cli_spec spec = {REKEY_USAGE, opts, 1, 1, pos};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc != CLI_OK) return rc;
    if (!old_file || !new_file) return cli_usage_error(REKEY_USAGE, "--old-key and --new-key are required");
    if (sodium_init() < 0) return CLI_HTTP_ERROR;
    td_rekey *rk = calloc(1, sizeof *rk);
    if (!rk) return CLI_HTTP_ERROR;
    char err[1024] = "", safe[1024];
    td_store_redact_url(pos[0], safe, sizeof safe);
    if (read_key(old_file, rk->old_key, err, sizeof err) == 0 && read_key(new_file, rk->new_key, err, sizeof err) == 0) {
        td_log_set_level(TD_LOG_WARN);
        td_store_set_client_name("tokenctl rekey"); /* not counted as a serving node */
        rk->store = td_store_open(pos[0], err, sizeof err);
    }
    if (rk->store) {
        rk->kill_after = kill_after();
        if (td_rekey_run(rk) != 0) snprintf(err, sizeof err, "%s", rk->err);
        rk->store->close(rk->store);
    }
    rc = err[0] ? CLI_HTTP_ERROR : CLI_OK;
    if (err[0])
        fprintf(stderr, "tokenctl: store rekey %s: %s\n", safe, err);
    else if (!ctx->quiet && rk->was_done)
        printf("%s is already sealed with the new key: nothing to do\n", safe);
    else if (!ctx->quiet)
        printf("%s: resealed %lld values with the new master key (%lld were resealed by an earlier run); start "
               "tokend with the new key\n",
               safe, (long long)rk->resealed, (long long)rk->already);
    sodium_memzero(rk, sizeof *rk);
    free(rk);
    return rc;
}
