/* cmd_store.c — moving tokend's data from the embedded SQLite store to
 * PostgreSQL, with no server involved (docs/postgres.md):
 *
 *   tokenctl store copy sqlite:PATH postgres://...
 *   tokenctl store verify sqlite:PATH postgres://...
 *
 * copy migrates the target through td_store_open (its own schema_migrations),
 * then, in one PostgreSQL transaction: locks the tables, refuses if any holds a
 * row, streams every table with COPY FROM STDIN in foreign-key order, moves the
 * identity sequences past the copied ids, reads every table back and compares
 * row counts and a SHA-256 content digest with the source's, and commits only
 * if all are equal. The source is read in one SQLite read transaction (one
 * snapshot). verify recomputes both sides' digests without writing anything.
 *
 * Sealed secrets and PANs are bytes here: copied byte for byte, never opened,
 * so no master key is needed. The target URL's password is never printed:
 * messages show the URL without it, and any text that repeats it is scrubbed.
 *
 * This file holds the two commands, their help and their output; the rest is
 * in store_catalog.c (what is copied), store_source.c (SQLite), store_target.c
 * (PostgreSQL), store_digest.c (the digest, COPY's format) and store_msg.c
 * (messages without the password), joined by store_copy.h. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/store_copy.h"
#include "store/store.h"
#include "util/log.h"
#include "util/util.h"

#define STORE_EXIT_HELP                                                                                                \
    "  Exit status: 0 done (verify: equal), 1 refused or failed (a non-empty target, a\n"                              \
    "  difference, a schema this tokenctl does not know, a database error: nothing was\n"                              \
    "  committed), 2 usage (bad arguments, a source that is not a readable tokend SQLite\n"                            \
    "  store), 3 PostgreSQL cannot be reached (connection, password).\n"

#define STORE_URL_HELP                                                                                                 \
    "  SRC is sqlite:PATH, the file of a stopped tokend. DST is a libpq URL,\n"                                        \
    "  postgres://USER@HOST:PORT/DB[?...]; its password comes from PGPASSFILE or a\n"                                  \
    "  passfile=FILE parameter (or the URL, which other users may see). Messages show\n"                               \
    "  DST without its password.\n"

static const char COPY_USAGE[] =
    "usage: tokenctl store copy sqlite:PATH postgres://...\n"
    "  Copies every table of a tokend SQLite store into an empty PostgreSQL database\n"
    "  (tokens with their signatures and events, token requests, members, their sealed\n"
    "  keys and credentials, issuers and delivery settings, cards with PANs still\n"
    "  sealed, digital cards and their events, operations, the outbox with its dead\n"
    "  letters, timers, idempotency records), in one transaction. The target gets\n"
    "  tokend's schema first; a target table that already holds a row is refused.\n"
    "  Before committing, every table is read back and its row count and SHA-256\n"
    "  content digest compared with the source's; any difference rolls back.\n"
    "  Prints a table of rows and digests (nothing with -q). Stop tokend first.\n" STORE_URL_HELP STORE_EXIT_HELP;

static const char VERIFY_USAGE[] =
    "usage: tokenctl store verify sqlite:PATH postgres://...\n"
    "  Compares a SQLite store with a PostgreSQL database without changing either:\n"
    "  per table, the row counts and the SHA-256 content digests (the same ones\n"
    "  `store copy` checks), and that PostgreSQL's id sequences are past the copied\n"
    "  ids. Run it after a copy, before any tokend writes to either side. Prints the\n"
    "  table (nothing with -q); names the tables that differ.\n" STORE_URL_HELP STORE_EXIT_HELP;

/* ---- output ---- */

static void hex32(const uint8_t *sum, char out[65])
{
    sodium_bin2hex(out, 65, sum, crypto_hash_sha256_BYTES);
}

static bool table_equal(const table *t)
{
    return t->src_rows == t->dst_rows && !memcmp(t->src_sum, t->dst_sum, sizeof t->src_sum) && !t->seq_behind;
}

static void print_tables(const job *j)
{
    char a[65], b[65];
    printf("%-16s %10s  %s\n", "TABLE", "ROWS", "SHA-256");
    for (size_t i = 0; i < N_TABLES; i++) {
        const table *t = &j->t[i];
        hex32(t->src_sum, a);
        if (table_equal(t)) {
            printf("%-16s %10lld  %s\n", t->def->name, (long long)t->src_rows, a);
            continue;
        }
        hex32(t->dst_sum, b);
        printf("%-16s %10lld  %s  source\n", t->def->name, (long long)t->src_rows, a);
        printf("%-16s %10lld  %s  target%s\n", "", (long long)t->dst_rows, b,
               t->seq_behind ? ", id sequence behind" : "");
    }
}

/* "outbox (content), timers (rows 3 vs 2)": the tables that differ. */
static void differences(const job *j, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = 0;
    for (size_t i = 0; i < N_TABLES && n < cap; i++) {
        const table *t = &j->t[i];
        if (table_equal(t)) continue;
        char why[96];
        if (t->src_rows != t->dst_rows)
            snprintf(why, sizeof why, "rows: source %lld, target %lld", (long long)t->src_rows, (long long)t->dst_rows);
        else if (memcmp(t->src_sum, t->dst_sum, sizeof t->src_sum))
            snprintf(why, sizeof why, "content digest");
        else
            snprintf(why, sizeof why, "id sequence behind its rows");
        n += (size_t)snprintf(out + n, cap - n, "%s%s (%s)", n ? ", " : "", t->def->name, why);
    }
}

typedef struct {
    int64_t start, copied, verified; /* td_mono_us() */
} copy_times;

static void report_copy(const job *j, const copy_times *tm)
{
    int64_t total = 0;
    for (size_t i = 0; i < N_TABLES; i++)
        total += j->t[i].src_rows;
    print_tables(j);
    printf("copied %lld rows in %zu tables from sqlite:%s to %s in %.2f s (copy %.2f s, read back and "
           "compare %.2f s): row counts and digests equal, committed\n",
           (long long)total, N_TABLES, j->src_path, j->safe_dst, (double)(td_mono_us() - tm->start) / 1e6,
           (double)(tm->copied - tm->start) / 1e6, (double)(tm->verified - tm->copied) / 1e6);
}

/* ---- the commands ---- */

static int parse(cli_ctx *ctx, const char *usage, int argc, char **argv, job *j)
{
    const char *pos[2];
    cli_spec spec = {usage, NULL, 2, 2, pos};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc != CLI_OK) return rc;
    if (strncmp(pos[0], "sqlite:", 7) || !pos[0][7]) return cli_usage_error(usage, "the source must be sqlite:PATH");
    /* Not echoed: it may hold a password. */
    if (strncmp(pos[1], "postgres://", 11) && strncmp(pos[1], "postgresql://", 13))
        return cli_usage_error(usage, "the target must be a postgres:// URL");
    j->src_path = pos[0] + 7;
    j->dst_url = pos[1];
    sc_redact(j, j->dst_url);
    for (size_t i = 0; i < N_TABLES; i++)
        j->t[i].def = &sc_tables[i];
    if (sodium_init() < 0) return sc_fail(j, CLI_HTTP_ERROR, "libsodium failed to initialise");
    return CLI_OK;
}

/* What both commands do first: the arguments, the source, the target. */
static int open_both(cli_ctx *ctx, job *j, const char *usage, int argc, char **argv)
{
    int rc = parse(ctx, usage, argc, argv, j);
    if (rc == CLI_OK) rc = sc_open_source(j);
    if (rc == CLI_OK) rc = sc_connect_target(j);
    return rc;
}

/* Closes both ends (an open transaction rolled back), wipes the passwords and frees j; returns rc. */
static int finish(job *j, int rc)
{
    sc_close_target(j);
    sc_close_source(j);
    sodium_memzero(j->secrets, sizeof j->secrets);
    free(j);
    return rc;
}

static int plan_tables(job *j)
{
    int rc = CLI_OK;
    for (size_t i = 0; i < N_TABLES && rc == CLI_OK; i++)
        rc = sc_plan_table(j, &j->t[i]);
    return rc;
}

/* tokend's own migrations give the target its schema (and its own schema_migrations). */
static int create_schema(job *j)
{
    char err[1024];
    td_log_set_level(TD_LOG_WARN);
    td_store *s = td_store_open(j->dst_url, err, sizeof err);
    if (!s) return sc_fail(j, CLI_HTTP_ERROR, "cannot prepare the target: %s", err);
    s->close(s);
    return CLI_OK;
}

/* One transaction: lock, refuse rows, COPY every table, move the sequences,
 * then read all back, which is what COMMIT would make durable. The
 * transaction stays open: committing is the caller's. */
static int copy_and_compare(cli_ctx *ctx, job *j, copy_times *tm)
{
    int rc = sc_pg_cmd(j, "BEGIN", "cannot begin");
    j->in_tx = rc == CLI_OK;
    if (rc == CLI_OK) rc = sc_lock_and_check_empty(j);
    j->copying = rc == CLI_OK;
    for (size_t i = 0; i < N_TABLES && rc == CLI_OK; i++)
        rc = sc_copy_table(j, &j->t[i]);
    for (size_t i = 0; i < N_TABLES && rc == CLI_OK; i++)
        for (int c = 0; c < j->t[i].ncols && rc == CLI_OK; c++)
            if (j->t[i].cols[c].identity) rc = sc_fix_sequence(j, &j->t[i], &j->t[i].cols[c], true, NULL);
    tm->copied = td_mono_us();
    for (size_t i = 0; i < N_TABLES && rc == CLI_OK; i++)
        rc = sc_scan_target(j, &j->t[i]);
    tm->verified = td_mono_us();
    if (rc != CLI_OK) return rc;
    char diff[1024];
    differences(j, diff, sizeof diff);
    if (!diff[0]) return CLI_OK;
    if (!ctx->quiet) print_tables(j);
    return sc_fail(j, CLI_HTTP_ERROR, "the copy differs from the source in %s; rolled back, nothing was committed",
                   diff);
}

int cmd_store_copy(cli_ctx *ctx, int argc, char **argv)
{
    job *j = calloc(1, sizeof *j);
    if (!j) return CLI_HTTP_ERROR;
    j->cmd = "copy";
    int rc = open_both(ctx, j, COPY_USAGE, argc, argv);
    if (rc == CLI_OK) rc = create_schema(j);
    if (rc == CLI_OK) rc = plan_tables(j);
    copy_times tm = {.start = td_mono_us()};
    if (rc == CLI_OK) rc = copy_and_compare(ctx, j, &tm);
    if (rc == CLI_OK) {
        rc = sc_pg_cmd(j, "COMMIT", "commit failed");
        j->in_tx = false;
    } else if (j->copying) {
        fprintf(stderr, "tokenctl: store copy: rolled back: the target's tables are as they were\n");
    }
    if (rc == CLI_OK) {
        sc_analyze(j);
        if (!ctx->quiet) report_copy(j, &tm);
    }
    return finish(j, rc);
}

/* One table on both sides, and that its id sequences are past its rows. */
static int compare_table(job *j, table *t)
{
    int rc = sc_scan_source(j, t, false);
    if (rc == CLI_OK) rc = sc_scan_target(j, t);
    for (int c = 0; c < t->ncols && rc == CLI_OK; c++)
        if (t->cols[c].identity) rc = sc_fix_sequence(j, t, &t->cols[c], false, &t->seq_behind);
    return rc;
}

int cmd_store_verify(cli_ctx *ctx, int argc, char **argv)
{
    job *j = calloc(1, sizeof *j);
    if (!j) return CLI_HTTP_ERROR;
    j->cmd = "verify";
    int rc = open_both(ctx, j, VERIFY_USAGE, argc, argv);
    /* One snapshot of the target too; nothing is written. */
    if (rc == CLI_OK) rc = sc_pg_cmd(j, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "cannot begin");
    j->in_tx = rc == CLI_OK;
    if (rc == CLI_OK) rc = plan_tables(j);
    for (size_t i = 0; i < N_TABLES && rc == CLI_OK; i++)
        rc = compare_table(j, &j->t[i]);
    if (rc == CLI_OK) {
        char diff[1024];
        differences(j, diff, sizeof diff);
        if (!ctx->quiet) print_tables(j);
        if (diff[0])
            rc = sc_fail(j, CLI_HTTP_ERROR, "the target %s differs from the source in %s", j->safe_dst, diff);
        else if (!ctx->quiet)
            printf("sqlite:%s and %s hold the same rows: row counts and digests equal\n", j->src_path, j->safe_dst);
    }
    return finish(j, rc);
}
