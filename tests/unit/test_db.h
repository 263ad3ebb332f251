/* test_db.h — the database files of unit tests that open a real SQLite store:
 * each under TD_TEST_TMP (CTest sets it), named by the test file's tag, removed
 * with its WAL afterwards. Included by one test file each (its definitions are
 * static); the file defines TEST_DB_TAG first and calls test_db_init() in main. */
#ifndef TD_TEST_DB_H
#define TD_TEST_DB_H

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef TEST_DB_TAG
#error "define TEST_DB_TAG before including test_db.h"
#endif

static char tmp_root[900];

static void test_db_init(void)
{
    const char *t = getenv("TD_TEST_TMP");
    snprintf(tmp_root, sizeof tmp_root, "%s", t && *t ? t : "/tmp");
    mkdir(tmp_root, 0700); /* CTest names it; it may not exist yet */
}

/* A file name no other test of this process uses. */
static void unique_path(char *out, size_t cap, const char *tag)
{
    static atomic_int counter;
    snprintf(out, cap, "%s/" TEST_DB_TAG "-%ld-%s-%d.db", tmp_root, (long)getpid(), tag,
             atomic_fetch_add(&counter, 1));
}

/* The database file and its WAL and shared-memory files. */
static void remove_db(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[1100];
        int n = snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        if (n > 0 && (size_t)n < sizeof p) unlink(p);
    }
}

#endif
