/* sqlite/migrate.c — applies the numbered migrations compiled in from
 * src/store/sqlite/migrations/, each once, in its own transaction. */
#include <stdio.h>

#include "store/sqlite/sq.h"
#include "util/log.h"
#include "util/util.h"

extern const char *const td_sqlite_migrations[];
extern const int td_sqlite_migration_count;

int sq_migrate(td_conn *c, char *err, size_t cap)
{
    if (sq_exec(c->db, "CREATE TABLE IF NOT EXISTS schema_migrations(version INTEGER PRIMARY KEY, "
                       "applied_ms INTEGER NOT NULL)") != SQLITE_OK)
        goto fail;
    for (int i = 0; i < td_sqlite_migration_count; i++) {
        sqlite3_stmt *st;
        sqlite3_prepare_v2(c->db, "SELECT 1 FROM schema_migrations WHERE version = ?1", -1, &st, NULL);
        sqlite3_bind_int(st, 1, i + 1);
        int have = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
        if (have) continue;
        if (sq_exec(c->db, "BEGIN IMMEDIATE") != SQLITE_OK) goto fail;
        if (sq_exec(c->db, td_sqlite_migrations[i]) != SQLITE_OK) {
            sq_exec(c->db, "ROLLBACK");
            goto fail;
        }
        sqlite3_prepare_v2(c->db, "INSERT INTO schema_migrations VALUES (?1, ?2)", -1, &st, NULL);
        sqlite3_bind_int(st, 1, i + 1);
        sqlite3_bind_int64(st, 2, td_now_ms());
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE || sq_exec(c->db, "COMMIT") != SQLITE_OK) {
            sq_exec(c->db, "ROLLBACK");
            goto fail;
        }
        td_log(TD_LOG_INFO, "store_migrated", "applied migration %d", i + 1);
    }
    return 0;
fail:
    snprintf(err, cap, "migration failed: %s", sqlite3_errmsg(c->db));
    return -1;
}
