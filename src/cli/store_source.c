/* store_source.c — the source of `tokenctl store copy`: a stopped tokend's
 * SQLite store, opened read-only and read in one read transaction (one
 * snapshot), refused unless it is a complete store of this version. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/store_copy.h"

extern const int td_sqlite_migration_count;

static int sq_fail(const job *j, int rc, const char *what)
{
    return sc_fail(j, rc, "%s: %s (source %s)", what, sqlite3_errmsg(j->db), j->src_path);
}

/* One integer from a query, or -1 after a message (def if it has no row). */
static int sq_int(const job *j, const char *sql, const char *bind, int64_t def, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    if (bind) sqlite3_bind_text(st, 1, bind, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL ? sqlite3_column_int64(st, 0) : def;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static int check_source_file(const job *j)
{
    struct stat sb;
    if (stat(j->src_path, &sb) != 0)
        return sc_fail(j, CLI_USAGE, "cannot read the source %s: %s", j->src_path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return sc_fail(j, CLI_USAGE, "the source %s is not a file", j->src_path);
    /* tokend checkpoints its write-ahead log when it stops: a non-empty one
     * means it still runs (or did not stop cleanly). The copy is a consistent
     * snapshot either way, but rows written after it would be left behind. */
    char wal[4200];
    snprintf(wal, sizeof wal, "%s-wal", j->src_path);
    if (stat(wal, &sb) == 0 && sb.st_size > 0)
        sc_fail(j, 0,
                "warning: %s is not empty: is a tokend still running on the source? Stop it first; rows written "
                "after this snapshot are not copied",
                wal);
    return CLI_OK;
}

/* Only a store at this tokenctl's migration has the columns it plans for. */
static int check_source_version(const job *j)
{
    int64_t version;
    if (sq_int(j, "SELECT coalesce(max(version), 0) FROM schema_migrations", NULL, 0, &version) != 0)
        return sc_fail(j, CLI_USAGE, "%s is not a tokend SQLite store: %s", j->src_path, sqlite3_errmsg(j->db));
    if (version != td_sqlite_migration_count)
        return sc_fail(j, CLI_HTTP_ERROR,
                       "the source %s is at SQLite migration %lld, this tokenctl copies stores at migration %d: %s",
                       j->src_path, (long long)version, td_sqlite_migration_count,
                       version < td_sqlite_migration_count
                           ? "start this version's tokend on it once (it migrates the store), stop it, then copy"
                           : "use the tokenctl built with the tokend that last ran on it");
    return CLI_OK;
}

/* A table this tokenctl does not know would be left behind: refused. */
static int check_source_tables(const job *j)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db,
                           "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
                           "ESCAPE '\\' AND name <> 'schema_migrations' ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK)
        return sq_fail(j, CLI_USAGE, "cannot list the source's tables");
    int rc = CLI_OK, found = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (sc_known_table(name)) {
            found++;
        } else if (rc == CLI_OK) {
            rc = sc_fail(j, CLI_HTTP_ERROR,
                         "the source has a table %.64s that this tokenctl does not know how to copy: use the "
                         "tokenctl built with the tokend that wrote it",
                         name);
        }
    }
    sqlite3_finalize(st);
    if (rc == CLI_OK && found != (int)N_TABLES)
        rc = sc_fail(j, CLI_USAGE, "%s is not a complete tokend SQLite store (%d of its %zu tables)", j->src_path,
                     found, N_TABLES);
    return rc;
}

int sc_open_source(job *j)
{
    int rc = check_source_file(j);
    if (rc != CLI_OK) return rc;
    if (sqlite3_open_v2(j->src_path, &j->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        return sq_fail(j, CLI_USAGE, "cannot open the source");
    sqlite3_busy_timeout(j->db, 10000);
    /* The read transaction starts at the first read: every table comes from that one snapshot. */
    if (sqlite3_exec(j->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) return sq_fail(j, CLI_USAGE, "cannot read");
    rc = check_source_version(j);
    if (rc == CLI_OK) rc = check_source_tables(j);
    return rc;
}

void sc_close_source(job *j)
{
    if (!j->db) return;
    sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(j->db);
}

bool sc_source_has_column(const job *j, const char *table_name, const char *col)
{
    sqlite3_stmt *st;
    bool has = false;
    if (sqlite3_prepare_v2(j->db, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2", -1, &st, NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_text(st, 1, table_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, col, -1, SQLITE_STATIC);
    has = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return has;
}

/* Every source column must land somewhere, or the copy would lose it. */
int sc_source_columns_land(job *j, const table *t)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, "SELECT name FROM pragma_table_info(?1)", -1, &st, NULL) != SQLITE_OK)
        return sq_fail(j, CLI_HTTP_ERROR, t->def->name);
    sqlite3_bind_text(st, 1, t->def->name, -1, SQLITE_STATIC);
    int rc = CLI_OK;
    while (rc == CLI_OK && sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (!sc_find_col(t, name) && !sc_sqlite_only(t->def->name, name))
            rc = sc_fail(j, CLI_HTTP_ERROR,
                         "the source's %s.%.64s has no counterpart in the target: use the tokend and tokenctl of "
                         "the same version",
                         t->def->name, name);
    }
    sqlite3_finalize(st);
    return rc;
}

void sc_source_sequence(job *j, table *t)
{
    if (sq_int(j, "SELECT seq FROM sqlite_sequence WHERE name = ?1", t->def->name, 0, &t->sqlite_seq) != 0)
        t->sqlite_seq = 0; /* no AUTOINCREMENT table ever written: no sqlite_sequence */
}

/* Column i of the current row into the digest and, when b is not NULL, into
 * the COPY data; refuses what PostgreSQL's column could not hold. */
static int source_value(const job *j, const table *t, sqlite3_stmt *st, int i, crypto_hash_sha256_state *h, td_buf *b)
{
    const column *c = &t->cols[i];
    int type = sqlite3_column_type(st, i);
    if (type == SQLITE_NULL) {
        sc_digest_null(h);
        if (b) td_buf_add(b, "\\N", 2);
        return CLI_OK;
    }
    if (c->kind == V_INT) {
        if (type != SQLITE_INTEGER)
            return sc_fail(j, CLI_HTTP_ERROR, "the source's %s.%s holds a value that is not an integer", t->def->name,
                           c->name);
        int64_t v = sqlite3_column_int64(st, i);
        char num[32];
        sc_digest_int(h, v);
        if (b) td_buf_add(b, num, (size_t)snprintf(num, sizeof num, "%lld", (long long)v));
    } else if (c->kind == V_TEXT) {
        const char *p = type == SQLITE_BLOB ? sqlite3_column_blob(st, i) : (const char *)sqlite3_column_text(st, i);
        size_t n = (size_t)sqlite3_column_bytes(st, i);
        if (n && memchr(p, 0, n))
            return sc_fail(j, CLI_HTTP_ERROR, "the source's %s.%s holds a NUL byte, which PostgreSQL text cannot",
                           t->def->name, c->name);
        sc_digest_text(h, p, n);
        if (b) sc_buf_copy_text(b, p, n);
    } else {
        const uint8_t *p = sqlite3_column_blob(st, i);
        size_t n = (size_t)sqlite3_column_bytes(st, i);
        sc_digest_blob(h, p, n);
        if (b) sc_buf_copy_blob(b, p, n);
    }
    return CLI_OK;
}

/* Reads the table in key order; COPY data is sent in pieces of about 1 MiB. */
int sc_scan_source(job *j, table *t, bool copy)
{
    char sql[4096];
    sc_select_sql(t, false, sql, sizeof sql);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK) return sq_fail(j, CLI_HTTP_ERROR, t->def->name);
    crypto_hash_sha256_state h;
    sc_digest_start(&h, t);
    td_buf b = td_buf_bounded(SC_COPY_BUF_MAX);
    int rc = CLI_OK, step;
    t->src_rows = 0;
    while (rc == CLI_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        sc_digest_row(&h);
        for (int i = 0; i < t->ncols && rc == CLI_OK; i++) {
            if (copy && i) td_buf_add(&b, "\t", 1);
            rc = source_value(j, t, st, i, &h, copy ? &b : NULL);
        }
        if (copy) td_buf_add(&b, "\n", 1);
        t->src_rows++;
        if (copy && rc == CLI_OK && b.len >= (1u << 20)) rc = sc_pg_put_copy(j, &b);
    }
    if (rc == CLI_OK && step != SQLITE_DONE) rc = sq_fail(j, CLI_HTTP_ERROR, t->def->name);
    if (copy && rc == CLI_OK) rc = sc_pg_put_copy(j, &b);
    sqlite3_finalize(st);
    td_buf_reset(&b);
    crypto_hash_sha256_final(&h, t->src_sum);
    return rc;
}
