/* store_target.c — the target of `tokenctl store copy`: a PostgreSQL database
 * with tokend's schema, written with COPY FROM STDIN inside one transaction,
 * read back in key order, and its id sequences moved past the copied ids. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/store_copy.h"
#include "util/util.h"

/* A failed result's message: the primary text and where (COPY's table and
 * line), not the DETAIL or the value COPY's context quotes. */
static const char *pg_msg(const job *j, const PGresult *r, char *out, size_t cap)
{
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *context = r ? PQresultErrorField(r, PG_DIAG_CONTEXT) : NULL;
    if (!primary) primary = PQerrorMessage(j->pg);
    char where[256] = "";
    if (context) {
        td_strlcpy(where, context, sizeof where);
        where[strcspn(where, "\n")] = 0;
        char *quoted = strstr(where, ": \""); /* "COPY t, line 3, column c: \"value\"" */
        if (quoted) *quoted = 0;
    }
    snprintf(out, cap, "%s%s%s%s", primary ? primary : "unknown error", where[0] ? " (" : "", where,
             where[0] ? ")" : "");
    return out;
}

PGresult *sc_pg_exec(job *j, const char *sql, int nparams, const char *const *params, ExecStatusType want,
                     const char *what, int *rc)
{
    PGresult *r = nparams ? PQexecParams(j->pg, sql, nparams, NULL, params, NULL, NULL, 0) : PQexec(j->pg, sql);
    if (PQresultStatus(r) == want) return r;
    char m[768];
    *rc = sc_fail(j, CLI_HTTP_ERROR, "%s: %s (target %s)", what, pg_msg(j, r, m, sizeof m), j->safe_dst);
    PQclear(r);
    return NULL;
}

int sc_pg_cmd(job *j, const char *sql, const char *what)
{
    int rc = CLI_OK;
    PGresult *r = sc_pg_exec(j, sql, 0, NULL, PGRES_COMMAND_OK, what, &rc);
    PQclear(r);
    return rc;
}

/* The server's warnings, as one line each through sc_fail()'s scrubbing. */
static void on_notice(void *arg, const char *message)
{
    sc_fail(arg, 0, "PostgreSQL: %s", message);
}

int sc_connect_target(job *j)
{
    j->pg = PQconnectdb(j->dst_url);
    if (!j->pg || PQstatus(j->pg) != CONNECTION_OK)
        return sc_fail(j, CLI_TRANSPORT, "cannot connect to %s: %s", j->safe_dst,
                       j->pg ? PQerrorMessage(j->pg) : "out of memory");
    PQsetNoticeProcessor(j->pg, on_notice, j);
    /* The source's text is UTF-8, whatever PGCLIENTENCODING says. */
    int rc = sc_pg_cmd(j,
                       "SET client_encoding = 'UTF8'; SET client_min_messages = warning; SET bytea_output = 'hex'; "
                       "SET synchronous_commit = on; SET application_name = 'tokenctl store'",
                       "cannot set up the session");
    const char *enc = PQparameterStatus(j->pg, "server_encoding");
    if (rc == CLI_OK && (!enc || strcmp(enc, "UTF8")))
        rc = sc_fail(j, CLI_HTTP_ERROR,
                     "the target %s has the encoding %.32s: tokend's text is UTF-8; create the database with "
                     "ENCODING 'UTF8'",
                     j->safe_dst, enc ? enc : "(unknown)");
    return rc;
}

void sc_close_target(job *j)
{
    if (j->pg && j->in_tx) PQclear(PQexec(j->pg, "ROLLBACK"));
    if (j->pg) PQfinish(j->pg);
}

/* "<head>"members", "member_keys", ...<tail>": one statement over every table. */
static void all_tables_sql(const char *head, const char *tail, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "%s", head);
    for (size_t i = 0; i < N_TABLES; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s\"%s\"", i ? ", " : "", sc_tables[i].name);
    snprintf(out + n, cap - n, "%s", tail);
}

/* Locks the target's tables against writers for the copy and refuses rows. */
int sc_lock_and_check_empty(job *j)
{
    char sql[1024];
    all_tables_sql("LOCK TABLE ", " IN EXCLUSIVE MODE", sql, sizeof sql);
    int rc = sc_pg_cmd(j, "SET LOCAL lock_timeout = '10s'", "cannot set a lock timeout");
    if (rc == CLI_OK) rc = sc_pg_cmd(j, sql, "cannot lock the target's tables (is a tokend node running on it?)");
    char full[512] = "";
    size_t fn = 0;
    int nfull = 0;
    for (size_t i = 0; i < N_TABLES && rc == CLI_OK; i++) {
        char q[128];
        snprintf(q, sizeof q, "SELECT 1 FROM \"%s\" LIMIT 1", sc_tables[i].name);
        PGresult *r = sc_pg_exec(j, q, 0, NULL, PGRES_TUPLES_OK, "cannot read the target", &rc);
        if (r && PQntuples(r) > 0) {
            nfull++;
            if (fn < sizeof full)
                fn += (size_t)snprintf(full + fn, sizeof full - fn, "%s%s", fn ? ", " : "", sc_tables[i].name);
        }
        PQclear(r);
    }
    if (rc == CLI_OK && nfull)
        rc = sc_fail(j, CLI_HTTP_ERROR,
                     "refusing to copy into %s: it already holds rows in %d table%s (%s); copy into a new, empty "
                     "database (CREATE DATABASE ...); nothing was changed",
                     j->safe_dst, nfull, nfull > 1 ? "s" : "", full);
    return rc;
}

int sc_pg_put_copy(job *j, td_buf *b)
{
    if (!td_buf_ok(b)) return sc_fail(j, CLI_HTTP_ERROR, b->oom ? "out of memory" : "a row is too large to copy");
    if (b->len && PQputCopyData(j->pg, b->p, (int)b->len) != 1) {
        char m[512];
        return sc_fail(j, CLI_HTTP_ERROR, "sending rows failed: %s", pg_msg(j, NULL, m, sizeof m));
    }
    td_buf_clear(b); /* sent: the buffer is reused from its start */
    return CLI_OK;
}

/* One COPY FROM STDIN per table, fed by the source's scan. */
int sc_copy_table(job *j, table *t)
{
    char sql[4096];
    size_t n = (size_t)snprintf(sql, sizeof sql, "COPY \"%s\" (", t->def->name);
    for (int i = 0; i < t->ncols && n < sizeof sql; i++)
        n += (size_t)snprintf(sql + n, sizeof sql - n, "%s\"%s\"", i ? ", " : "", t->cols[i].name);
    if (n < sizeof sql) snprintf(sql + n, sizeof sql - n, ") FROM STDIN");
    int rc = CLI_OK;
    PGresult *r = sc_pg_exec(j, sql, 0, NULL, PGRES_COPY_IN, t->def->name, &rc);
    if (!r) return rc;
    PQclear(r);
    rc = sc_scan_source(j, t, true);
    /* A failed source read aborts the COPY: the server discards its rows. */
    if (PQputCopyEnd(j->pg, rc == CLI_OK ? NULL : "the source could not be read") != 1 && rc == CLI_OK) {
        char m[512];
        rc = sc_fail(j, CLI_HTTP_ERROR, "copying %s failed: %s", t->def->name, pg_msg(j, NULL, m, sizeof m));
    }
    while ((r = PQgetResult(j->pg))) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == CLI_OK) {
            char m[768];
            rc = sc_fail(j, CLI_HTTP_ERROR, "copying %s failed: %s", t->def->name, pg_msg(j, r, m, sizeof m));
        }
        PQclear(r);
    }
    return rc;
}

/* Row `row` of a FETCH into the digest, rendered as the source's would be. */
static int target_row(job *j, const table *t, const PGresult *r, int row, crypto_hash_sha256_state *h)
{
    sc_digest_row(h);
    for (int i = 0; i < t->ncols; i++) {
        if (PQgetisnull(r, row, i)) {
            sc_digest_null(h);
            continue;
        }
        const char *v = PQgetvalue(r, row, i);
        size_t len = (size_t)PQgetlength(r, row, i);
        int64_t iv;
        if (t->cols[i].kind == V_INT && td_parse_i64(v, &iv) == 0) {
            sc_digest_int(h, iv);
        } else if (t->cols[i].kind == V_TEXT) {
            sc_digest_text(h, v, len);
        } else if (t->cols[i].kind != V_BLOB || sc_digest_bytea_hex(h, v, len) != 0) {
            return sc_fail(j, CLI_HTTP_ERROR, "the target's %s.%s answered a value of an unexpected form", t->def->name,
                           t->cols[i].name);
        }
    }
    return CLI_OK;
}

/* Reads the table back from the target in key order: row count and digest.
 * A cursor keeps a large table out of memory. */
int sc_scan_target(job *j, table *t)
{
    char sql[4200] = "DECLARE td_scan NO SCROLL CURSOR FOR ";
    size_t n = strlen(sql);
    sc_select_sql(t, true, sql + n, sizeof sql - n);
    int rc = sc_pg_cmd(j, sql, "cannot read the target back");
    if (rc != CLI_OK) return rc;
    crypto_hash_sha256_state h;
    sc_digest_start(&h, t);
    t->dst_rows = 0;
    for (;;) {
        PGresult *r = sc_pg_exec(j, "FETCH 2000 FROM td_scan", 0, NULL, PGRES_TUPLES_OK, t->def->name, &rc);
        if (!r) break;
        int rows = PQntuples(r);
        for (int row = 0; row < rows && rc == CLI_OK; row++) {
            rc = target_row(j, t, r, row, &h);
            t->dst_rows++;
        }
        PQclear(r);
        if (rc != CLI_OK || rows == 0) break;
    }
    crypto_hash_sha256_final(&h, t->dst_sum);
    if (rc == CLI_OK) rc = sc_pg_cmd(j, "CLOSE td_scan", "cannot read the target back");
    return rc;
}

/* For an identity column: the value its sequence must have reached (the
 * largest copied id, or SQLite's AUTOINCREMENT high-water mark when rows at
 * the end were deleted: ids are never handed out twice). */
static int identity_floor(job *j, const table *t, const column *c, int64_t *floor)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT coalesce(max(\"%s\"), 0) FROM \"%s\"", c->name, t->def->name);
    int rc = CLI_OK;
    PGresult *r = sc_pg_exec(j, sql, 0, NULL, PGRES_TUPLES_OK, "cannot read the largest id", &rc);
    if (!r) return rc;
    if (td_parse_i64(PQgetvalue(r, 0, 0), floor) != 0) *floor = 0;
    PQclear(r);
    if (!c->rowid && t->sqlite_seq > *floor) *floor = t->sqlite_seq;
    return CLI_OK;
}

/* Moves an identity column's sequence past the copied ids (copy), or checks
 * that it is (verify: *behind set when it is not). */
int sc_fix_sequence(job *j, table *t, const column *c, bool set, bool *behind)
{
    int64_t floor;
    int rc = identity_floor(j, t, c, &floor);
    if (rc != CLI_OK || floor <= 0) return rc;
    char v[32];
    snprintf(v, sizeof v, "%lld", (long long)floor);
    const char *params[3] = {t->def->name, c->name, v};
    const char *sql = set ? "SELECT setval(pg_get_serial_sequence($1, $2), $3::bigint, true)"
                          : "SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence($1, $2)::regclass), 0) "
                            ">= $3::bigint";
    PGresult *r = sc_pg_exec(j, sql, 3, params, PGRES_TUPLES_OK, "cannot move an id sequence", &rc);
    if (!r) return rc;
    if (!set && PQgetvalue(r, 0, 0)[0] != 't') *behind = true;
    PQclear(r);
    return CLI_OK;
}

/* Fresh statistics for the first queries' plans (autovacuum would get there later). */
void sc_analyze(job *j)
{
    char sql[1024];
    all_tables_sql("ANALYZE ", "", sql, sizeof sql);
    sc_pg_cmd(j, sql, "ANALYZE failed (harmless: autovacuum will do it)");
}
