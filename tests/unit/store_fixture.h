/* store_fixture.h — the store unit tests' shared fixture: each test gets a
 * fresh SQLite store in its own file under TD_TEST_TMP (CTest sets it),
 * removed with its WAL after the test. Included by one test file each (its
 * definitions are static); the file defines STORE_FIXTURE_TAG first, which
 * names its database files (test_db.h), and calls test_db_init() in main. */
#ifndef TD_STORE_FIXTURE_H
#define TD_STORE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "store/store.h"

#ifndef STORE_FIXTURE_TAG
#error "define STORE_FIXTURE_TAG before including store_fixture.h"
#endif
#define TEST_DB_TAG STORE_FIXTURE_TAG
#include "test_db.h"

static const td_store_ops *OPS;

typedef struct {
    td_store *s;
    char path[1024];
} fixture;

static td_store *open_store(const char *path)
{
    char url[1200], err[256] = "";
    snprintf(url, sizeof url, "sqlite:%s", path);
    td_store *s = td_store_open(url, err, sizeof err);
    if (!s) fail_msg("td_store_open(%s): %s", url, err);
    OPS = s->ops;
    return s;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    unique_path(f->path, sizeof f->path, "t");
    f->s = open_store(f->path);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->s) f->s->close(f->s);
    remove_db(f->path);
    free(f);
    return 0;
}

/* The calling thread's read connection. */
static td_conn *rd(td_store *s)
{
    td_conn *c = s->reader(s);
    assert_non_null(c);
    return c;
}

#endif
