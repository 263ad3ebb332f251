/* cmd_backup.c — backing up and restoring the embedded SQLite store, the safe
 * way to keep and bring back a store (never by copying or deleting its files,
 * which loses what is still in its -wal):
 *
 *   tokenctl store backup sqlite:PATH FILE     while tokend serves PATH
 *   tokenctl store restore FILE sqlite:PATH    tokend stopped
 *
 * backup uses SQLite's online backup in one step: one read transaction, so
 * one consistent snapshot, while tokend's writer goes on (WAL readers do not
 * block it). It writes FILE.partial, checks it, and renames it to FILE: a
 * FILE that exists is a whole backup. restore refuses while a tokend holds
 * PATH's lock (sqlite/guard.c) and holds that lock itself while it works;
 * it checks the backup (integrity, a tokend schema this tokenctl knows),
 * moves any store at PATH aside (with --replace) and renames the restored copy
 * into place. Neither reads or needs the master key: sealed values stay sealed. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/util.h"

extern const int td_sqlite_migration_count;

static const char BACKUP_USAGE[] =
    "usage: tokenctl store backup sqlite:PATH FILE\n"
    "  Writes a consistent copy of the SQLite store at PATH to FILE (a new file, mode\n"
    "  0600), while tokend serves it or not: one snapshot of every committed write,\n"
    "  integrity-checked before FILE appears. The master key is not in it: keep the\n"
    "  master key backed up separately, or the backup's sealed keys and PANs cannot\n"
    "  be read. Exit status: 0 done, 1 failed (FILE is then absent), 2 usage.\n";

static const char RESTORE_USAGE[] =
    "usage: tokenctl store restore FILE sqlite:PATH [--replace]\n"
    "  Puts the backup FILE in place as the SQLite store at PATH. tokend must be\n"
    "  stopped (a tokend serving PATH holds its lock: refused). FILE is checked\n"
    "  first (integrity, a tokend schema this tokenctl knows). If a store is at PATH,\n"
    "  --replace is needed, and it is moved aside, with its -wal and -shm, to\n"
    "  PATH.before-restore-<time>, never deleted. Start tokend with the master key the\n"
    "  backup was made with. Exit status: 0 done, 1 refused or failed (PATH\n"
    "  unchanged), 2 usage.\n";

/* Prints "tokenctl: <message>"; CLI_HTTP_ERROR (refused or failed). */
__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tokenctl: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_HTTP_ERROR;
}

/* Copies every page of src's main database into dst, in one step (one read
 * transaction on src: one snapshot). */
static int copy_database(sqlite3 *src, sqlite3 *dst)
{
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) return sqlite3_errcode(dst);
    int rc;
    do {
        rc = sqlite3_backup_step(b, -1);
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) sqlite3_sleep(50);
    } while (rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
    int fin = sqlite3_backup_finish(b);
    return rc == SQLITE_DONE ? fin : rc;
}

/* The first column of the first row of sql, as text, into out ("" if none);
 * false if the statement fails. */
static bool query_text(sqlite3 *db, const char *sql, char *out, size_t cap)
{
    sqlite3_stmt *st = NULL;
    out[0] = 0;
    bool ok = sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK;
    int rc = ok ? sqlite3_step(st) : SQLITE_ERROR;
    if (rc == SQLITE_ROW && sqlite3_column_text(st, 0)) td_strlcpy(out, (const char *)sqlite3_column_text(st, 0), cap);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE;
}

/* "ok", or what is wrong with a database that should be a tokend store. */
static void check_store(sqlite3 *db, char *why, size_t cap)
{
    char v[256];
    if (!query_text(db, "PRAGMA quick_check", v, sizeof v) || strcmp(v, "ok") != 0) {
        snprintf(why, cap, "damaged (quick_check: %s)", v[0] ? v : sqlite3_errmsg(db));
        return;
    }
    if (!query_text(db, "SELECT max(version) FROM schema_migrations", v, sizeof v) || !v[0]) {
        snprintf(why, cap, "not a tokend store (no schema_migrations)");
        return;
    }
    int64_t version = 0;
    if (td_parse_i64(v, &version) != 0 || version > td_sqlite_migration_count) {
        snprintf(why, cap, "made by a newer tokend (schema %s; this tokenctl knows up to %d)", v,
                 td_sqlite_migration_count);
        return;
    }
    snprintf(why, cap, "ok");
}

/* Makes a renamed file's new name durable. */
static void sync_dir_of(const char *path)
{
    char dir[1024];
    td_strlcpy(dir, path, sizeof dir);
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = 0;
    else if (slash) *slash = 0;
    else td_strlcpy(dir, ".", sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static int sync_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Copies the database at from into a new single file at to (rollback
 * journal mode, checked, synced). 0, or -1 with why. */
static int write_copy(sqlite3 *from, const char *to, char *why, size_t cap)
{
    sqlite3 *dst = NULL;
    int rc = sqlite3_open_v2(to, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK) rc = copy_database(from, dst);
    /* A backup is one self-contained file; tokend puts it back in WAL mode. */
    if (rc == SQLITE_OK) rc = sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(why, cap, "cannot write %s: %s", to, dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
        sqlite3_close(dst);
        return -1;
    }
    check_store(dst, why, cap);
    sqlite3_close(dst);
    if (strcmp(why, "ok") != 0) return -1;
    if (sync_file(to) != 0) {
        snprintf(why, cap, "cannot sync %s: %s", to, strerror(errno));
        return -1;
    }
    return 0;
}

static int open_existing(const char *path, int flags, sqlite3 **db)
{
    int rc = sqlite3_open_v2(path, db, flags, NULL);
    if (rc == SQLITE_OK) sqlite3_busy_timeout(*db, 5000);
    return rc;
}

int cmd_store_backup(cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[2];
    cli_spec spec = {BACKUP_USAGE, NULL, 2, 2, pos};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc != CLI_OK) return rc;
    if (strncmp(pos[0], "sqlite:", 7) || !pos[0][7]) return cli_usage_error(BACKUP_USAGE, "the store must be sqlite:PATH");
    const char *src_path = pos[0] + 7, *file = pos[1];
    struct stat st;
    if (stat(file, &st) == 0) return fail("%s exists: a backup never overwrites a file", file);
    char partial[1100];
    snprintf(partial, sizeof partial, "%s.partial", file);
    unlink(partial); /* what an interrupted backup left */
    umask(umask(0) | 077);
    int64_t t0 = td_mono_us();
    sqlite3 *src = NULL;
    /* Read-write without CREATE: a WAL database's reader needs its -shm. */
    if (stat(src_path, &st) != 0 || open_existing(src_path, SQLITE_OPEN_READWRITE, &src) != SQLITE_OK) {
        sqlite3_close(src);
        return fail("cannot open the store %s: %s", src_path, strerror(errno ? errno : ENOENT));
    }
    char why[2600];
    int bad = write_copy(src, partial, why, sizeof why);
    sqlite3_close(src);
    if (bad || rename(partial, file) != 0) {
        if (!bad) snprintf(why, sizeof why, "cannot rename %s: %s", partial, strerror(errno));
        unlink(partial);
        return fail("backup of %s failed: %s", src_path, why);
    }
    sync_dir_of(file);
    stat(file, &st);
    if (!ctx->quiet)
        printf("backed up sqlite:%s to %s (%lld bytes, one snapshot, integrity checked) in %.2f s; the master key "
               "is not in it: keep it backed up separately\n",
               src_path, file, (long long)st.st_size, (double)(td_mono_us() - t0) / 1e6);
    return CLI_OK;
}

/* Moves PATH, PATH-wal and PATH-shm aside under one suffix. */
static int move_aside(const char *path, char *aside, size_t cap)
{
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", gmtime_r(&now, &tm));
    snprintf(aside, cap, "%s.before-restore-%s", path, stamp);
    static const char *const SUFFIX[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char from[1100], to[1200];
        snprintf(from, sizeof from, "%s%s", path, SUFFIX[i]);
        snprintf(to, sizeof to, "%s%s", aside, SUFFIX[i]);
        if (rename(from, to) != 0 && errno != ENOENT) return -1;
    }
    return 0;
}

int cmd_store_restore(cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[2], *replace = NULL;
    cli_opt opts[] = {{"--replace", 0, &replace}, {NULL, 0, NULL}};
    cli_spec spec = {RESTORE_USAGE, opts, 2, 2, pos};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc != CLI_OK) return rc;
    if (strncmp(pos[1], "sqlite:", 7) || !pos[1][7])
        return cli_usage_error(RESTORE_USAGE, "the store must be sqlite:PATH");
    const char *file = pos[0], *path = pos[1] + 7;
    umask(umask(0) | 077);
    struct stat st;
    bool exists = stat(path, &st) == 0;
    if (exists && !replace)
        return fail("a store is at %s: pass --replace to move it aside (to %s.before-restore-<time>) and restore",
                    path, path);
    /* Held until the end: a tokend started meanwhile is refused by the lock. */
    int lock_fd = exists ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (lock_fd >= 0 && flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        close(lock_fd);
        return fail("a tokend is serving %s (it holds the store's lock): stop it first", path);
    }
    sqlite3 *backup = NULL;
    char why[2600] = "";
    if (stat(file, &st) != 0 || open_existing(file, SQLITE_OPEN_READONLY, &backup) != SQLITE_OK) {
        snprintf(why, sizeof why, "cannot open %s", file);
    } else {
        check_store(backup, why, sizeof why);
    }
    char restoring[1100], aside[1100] = "";
    snprintf(restoring, sizeof restoring, "%s.restoring", path);
    unlink(restoring);
    td_make_parent_dirs(path);
    if (!strcmp(why, "ok") && write_copy(backup, restoring, why, sizeof why) == 0) {
        if (exists && move_aside(path, aside, sizeof aside) != 0)
            snprintf(why, sizeof why, "cannot move the current store aside: %s", strerror(errno));
        else if (rename(restoring, path) != 0)
            snprintf(why, sizeof why, "cannot rename %s: %s", restoring, strerror(errno));
        else
            sync_dir_of(path);
    } else if (!strcmp(why, "ok")) {
        snprintf(why, sizeof why, "the backup could not be copied");
    }
    sqlite3_close(backup);
    unlink(restoring);
    if (lock_fd >= 0) close(lock_fd);
    if (strcmp(why, "ok") != 0) return fail("restore of %s refused, nothing changed: %s", file, why);
    if (!ctx->quiet) {
        printf("restored %s to sqlite:%s", file, path);
        if (aside[0]) printf("; the store that was there is in %s", aside);
        printf(". Start tokend with the master key the backup was made with.\n");
    }
    return CLI_OK;
}
