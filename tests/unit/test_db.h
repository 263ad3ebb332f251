/* test_db.h — the store that unit tests run against, chosen by the
 * environment, and read-only SQL on it for checks no verb can make.
 *
 *   TD_TEST_STORE=sqlite (the default): each test gets a fresh SQLite file
 *     under TD_TEST_TMP (CTest sets it), named by the test file's tag and
 *     removed with its WAL afterwards.
 *   TD_TEST_STORE=pg: each test gets the PostgreSQL database at
 *     TD_TEST_PG_URL (the password from PGPASSFILE), emptied first: DROP OWNED
 *     BY CURRENT_USER drops every table the role owns, schema_migrations
 *     included, so td_store_open migrates it from nothing. The tests of one
 *     database run one at a time (CTest: RUN_SERIAL).
 *
 * A store is named by its location (`loc`): the SQLite file's path, or the
 * PostgreSQL URL. Included by one test file each (its definitions are
 * static); the file includes cmocka first, defines TEST_DB_TAG, and calls
 * test_db_init() in main. */
#ifndef TD_TEST_DB_H
#define TD_TEST_DB_H

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"
#include "util/util.h"

#ifndef TEST_DB_TAG
#error "define TEST_DB_TAG before including test_db.h"
#endif

#define TEST_LOC_MAX 1024
/* Not every test file uses every helper. */
#define TEST_DB_UNUSED __attribute__((unused))

static char tmp_root[900];
static bool test_pg; /* TD_TEST_STORE=pg */
static char test_pg_url[TEST_LOC_MAX];

/* Reads the environment; a store that cannot be chosen ends the program with
 * the reason (a suite that silently ran nothing could never fail). */
static TEST_DB_UNUSED void test_db_init(void)
{
    const char *t = getenv("TD_TEST_TMP");
    snprintf(tmp_root, sizeof tmp_root, "%s", t && *t ? t : "/tmp");
    mkdir(tmp_root, 0700); /* CTest names it; it may not exist yet */

    const char *kind = getenv("TD_TEST_STORE");
    if (!kind || !*kind || !strcmp(kind, "sqlite")) {
        test_pg = false;
    } else if (!strcmp(kind, "pg")) {
        const char *url = getenv("TD_TEST_PG_URL");
        if (!url || !*url) {
            fprintf(stderr, "TD_TEST_STORE=pg but TD_TEST_PG_URL is not set: these tests need a PostgreSQL database "
                            "they may empty (scripts/test.sh starts one; by hand: scripts/pg.sh start DIR, then "
                            "TD_TEST_PG_URL=$(cat DIR/url) PGPASSFILE=DIR/pgpass)\n");
            exit(1);
        }
        if (strncmp(url, "postgres://", 11) && strncmp(url, "postgresql://", 13)) {
            fprintf(stderr, "TD_TEST_PG_URL must be a postgres:// URL\n");
            exit(1);
        }
        if (td_strlcpy(test_pg_url, url, sizeof test_pg_url)) {
            fprintf(stderr, "TD_TEST_PG_URL is too long\n");
            exit(1);
        }
        test_pg = true;
    } else {
        fprintf(stderr, "TD_TEST_STORE=%s: expected sqlite or pg\n", kind);
        exit(1);
    }
    printf("[ STORE    ] %s\n", test_pg ? "PostgreSQL (TD_TEST_PG_URL)" : "SQLite (TD_TEST_TMP)");
}

/* A test about SQLite itself (its file, pragmas, query plans, its own
 * migrations): skipped when the suite runs against PostgreSQL. */
#define SQLITE_ONLY()                                                                                                  \
    do {                                                                                                               \
        if (test_pg) {                                                                                                 \
            skip();                                                                                                    \
            return;                                                                                                    \
        }                                                                                                              \
    } while (0)

/* The PostgreSQL twin of a SQLite-only test: skipped on SQLite. */
#define PG_ONLY()                                                                                                      \
    do {                                                                                                               \
        if (!test_pg) {                                                                                                \
            skip();                                                                                                    \
            return;                                                                                                    \
        }                                                                                                              \
    } while (0)

/* A file name no other test of this process uses. */
static TEST_DB_UNUSED void unique_path(char *out, size_t cap, const char *tag)
{
    static atomic_int counter;
    snprintf(out, cap, "%s/" TEST_DB_TAG "-%ld-%s-%d.db", tmp_root, (long)getpid(), tag, atomic_fetch_add(&counter, 1));
}

/* The database file and its WAL and shared-memory files. */
static TEST_DB_UNUSED void remove_db(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[1100];
        int n = snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        if (n > 0 && (size_t)n < sizeof p) unlink(p);
    }
}

/* ---- PostgreSQL: the test's own connection (libpq), kept for the process ---- */

static TEST_DB_UNUSED void pg_quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg; /* "drop cascades to ...": not the test's business */
}

static TEST_DB_UNUSED PGconn *test_pg_conn(void)
{
    static PGconn *conn;
    if (conn && PQstatus(conn) == CONNECTION_OK) return conn;
    PQfinish(conn);
    conn = PQconnectdb(test_pg_url);
    if (PQstatus(conn) != CONNECTION_OK) {
        char msg[512];
        td_strlcpy(msg, PQerrorMessage(conn), sizeof msg);
        PQfinish(conn);
        conn = NULL;
        fail_msg("cannot connect to TD_TEST_PG_URL (is the cluster running, PGPASSFILE set?): %s", msg);
    }
    PQsetNoticeProcessor(conn, pg_quiet, NULL);
    return conn;
}

/* Runs sql; the result, which must have the given status, to PQclear. */
static TEST_DB_UNUSED PGresult *test_pg_exec(const char *sql, ExecStatusType want)
{
    PGresult *r = PQexec(test_pg_conn(), sql);
    if (PQresultStatus(r) != want) {
        char msg[512];
        td_strlcpy(msg, PQerrorMessage(test_pg_conn()), sizeof msg);
        PQclear(r);
        fail_msg("%s: %s", sql, msg);
    }
    return r;
}

/* Empties the test database: every object the tokend role owns. */
static TEST_DB_UNUSED void test_pg_empty(void)
{
    PQclear(test_pg_exec("DROP OWNED BY CURRENT_USER", PGRES_COMMAND_OK));
}

/* ---- opening stores ---- */

/* The store URL of a location. */
static TEST_DB_UNUSED void test_store_url(const char *loc, char *url, size_t cap)
{
    if (test_pg)
        td_strlcpy(url, loc, cap);
    else
        snprintf(url, cap, "sqlite:%s", loc);
}

/* A new, empty store for one test (tag names the SQLite file): its location in
 * loc (capacity TEST_LOC_MAX). On PostgreSQL the database is emptied. */
static TEST_DB_UNUSED void test_store_new(char *loc, size_t cap, const char *tag)
{
    if (test_pg) {
        test_pg_empty();
        td_strlcpy(loc, test_pg_url, cap);
    } else {
        unique_path(loc, cap, tag);
    }
}

/* Opens the store at loc as it is (migrating it); fails the test if it cannot. */
static TEST_DB_UNUSED td_store *test_store_open(const char *loc)
{
    char url[TEST_LOC_MAX + 16], err[512] = "";
    test_store_url(loc, url, sizeof url);
    td_store *s = td_store_open(url, err, sizeof err);
    if (!s) fail_msg("td_store_open(%s): %s", test_pg ? "TD_TEST_PG_URL" : url, err);
    return s;
}

/* After the test: the SQLite file goes; the PostgreSQL database is left as it
 * is (the next test empties it; meanwhile it can be looked at). */
static TEST_DB_UNUSED void test_store_remove(const char *loc)
{
    if (!test_pg) remove_db(loc);
}

/* ---- SQL on the store, outside it: checks that no verb can make ----
 * The statement must mean the same in both engines (plain SQL over the tables
 * both schemas share). */

/* The first column of the first row, as text ("" for NULL); false if no row. */
static TEST_DB_UNUSED bool db_text_row(const char *loc, const char *sql, char *out, size_t cap)
{
    out[0] = '\0';
    if (test_pg) {
        PGresult *r = test_pg_exec(sql, PGRES_TUPLES_OK);
        bool row = PQntuples(r) > 0;
        if (row && !PQgetisnull(r, 0, 0)) td_strlcpy(out, PQgetvalue(r, 0, 0), cap);
        PQclear(r);
        return row;
    }
    sqlite3 *db;
    if (sqlite3_open_v2(loc, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) fail_msg("cannot open %s", loc);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        char msg[256];
        td_strlcpy(msg, sqlite3_errmsg(db), sizeof msg);
        sqlite3_close(db);
        fail_msg("%s: %s", sql, msg);
    }
    bool row = sqlite3_step(st) == SQLITE_ROW;
    if (row && sqlite3_column_text(st, 0)) td_strlcpy(out, (const char *)sqlite3_column_text(st, 0), cap);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return row;
}

/* The first column of the first row as an integer; the row must exist. */
static TEST_DB_UNUSED int64_t db_int(const char *loc, const char *sql)
{
    char v[64];
    if (!db_text_row(loc, sql, v, sizeof v)) fail_msg("no row: %s", sql);
    return strtoll(v, NULL, 10);
}

/* The first column of the first row as text ("" if no row or NULL). */
static TEST_DB_UNUSED void db_text(const char *loc, char *out, size_t cap, const char *sql)
{
    db_text_row(loc, sql, out, cap);
}

/* A statement that changes the database, as an operator might with a SQL
 * client (no verb does it), while the store runs. */
static TEST_DB_UNUSED void db_exec(const char *loc, const char *sql)
{
    if (test_pg) {
        PQclear(test_pg_exec(sql, PGRES_COMMAND_OK));
        return;
    }
    sqlite3 *db;
    if (sqlite3_open(loc, &db) != SQLITE_OK) fail_msg("cannot open %s", loc);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        char m[256];
        td_strlcpy(m, msg ? msg : "?", sizeof m);
        sqlite3_free(msg);
        sqlite3_close(db);
        fail_msg("%s: %s", sql, m);
    }
    sqlite3_close(db);
}

#endif
