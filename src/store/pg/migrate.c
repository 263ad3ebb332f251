/* pg/migrate.c — applies the numbered migrations compiled in from
 * src/store/pg/migrations/, each once and in its own transaction, under an
 * advisory lock so that nodes starting together apply them once; refuses a
 * database already at a newer migration than this binary knows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/pgs.h"
#include "util/log.h"
#include "util/util.h"

extern const char *const td_pg_migrations[];
extern const int td_pg_migration_count;

/* The advisory lock's key: any constant of our own ("tokend" in ASCII). */
#define MIGRATION_LOCK "116111107101110100"

static int fail(td_conn *c, char *err, size_t cap, const char *what)
{
    snprintf(err, cap, "%s on %s: %s", what, c->owner->safe_url, PQerrorMessage(c->pg));
    err[strcspn(err, "\n")] = 0;
    return -1;
}

/* The newest migration applied, 0 for an empty database; -1 on failure. */
static int applied_version(td_conn *c)
{
    PGresult *r = PQexec(c->pg, "SELECT coalesce(max(version), 0) FROM schema_migrations");
    int64_t v = -1;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || td_parse_i64(PQgetvalue(r, 0, 0), &v) != 0 || v > INT32_MAX) v = -1;
    PQclear(r);
    return (int)v;
}

static int apply(td_conn *c, int version, char *err, size_t cap)
{
    char record[160];
    snprintf(record, sizeof record,
             "INSERT INTO schema_migrations(version, applied_ms) VALUES (%d, %lld)", version,
             (long long)td_now_ms());
    if (pg_simple(c, "BEGIN") != TD_ST_OK) return fail(c, err, cap, "cannot begin a migration");
    if (pg_simple(c, td_pg_migrations[version - 1]) != TD_ST_OK || pg_simple(c, record) != TD_ST_OK ||
        pg_simple(c, "COMMIT") != TD_ST_OK) {
        snprintf(err, cap, "migration %d failed on %s: %s", version, c->owner->safe_url, PQerrorMessage(c->pg));
        err[strcspn(err, "\n")] = 0;
        pg_simple(c, "ROLLBACK");
        return -1;
    }
    td_log(TD_LOG_INFO, "store_migrated", "applied migration %d", version);
    return 0;
}

int pg_migrate(td_conn *c, char *err, size_t cap)
{
    if (pg_simple(c, "SELECT pg_advisory_lock(" MIGRATION_LOCK ")") != TD_ST_OK)
        return fail(c, err, cap, "cannot take the migration lock");
    int rc = 0;
    if (pg_simple(c, "CREATE TABLE IF NOT EXISTS schema_migrations(version INTEGER PRIMARY KEY, "
                     "applied_ms BIGINT NOT NULL)") != TD_ST_OK) {
        rc = fail(c, err, cap, "cannot create schema_migrations");
        goto out;
    }
    int have = applied_version(c);
    if (have < 0) {
        rc = fail(c, err, cap, "cannot read schema_migrations");
    } else if (have > td_pg_migration_count) {
        snprintf(err, cap,
                 "the database %s is at migration %d, newer than this tokend knows (%d): run a tokend at least "
                 "as new as the one that migrated it",
                 c->owner->safe_url, have, td_pg_migration_count);
        rc = -1;
    } else {
        for (int v = have + 1; v <= td_pg_migration_count && rc == 0; v++)
            rc = apply(c, v, err, cap);
    }
out:
    pg_simple(c, "SELECT pg_advisory_unlock(" MIGRATION_LOCK ")");
    return rc;
}
