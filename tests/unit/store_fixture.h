/* store_fixture.h — the store unit tests' shared fixture: each test gets a
 * fresh store of the kind TD_TEST_STORE names (test_db.h): a SQLite file of
 * its own under TD_TEST_TMP, removed with its WAL after the test, or the
 * emptied PostgreSQL database at TD_TEST_PG_URL. Included by one test file
 * each (its definitions are static); the file defines STORE_FIXTURE_TAG
 * first, which names its database files, and calls test_db_init() in main. */
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
    char loc[TEST_LOC_MAX]; /* the SQLite file, or the PostgreSQL URL (test_db.h) */
} fixture;

/* Opens the store at loc as it is (a reopen keeps its data). */
static TEST_DB_UNUSED td_store *open_store(const char *loc)
{
    td_store *s = test_store_open(loc);
    OPS = s->ops;
    return s;
}

static TEST_DB_UNUSED int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    test_store_new(f->loc, sizeof f->loc, "t");
    f->s = open_store(f->loc);
    *state = f;
    return 0;
}

static TEST_DB_UNUSED int teardown(void **state)
{
    fixture *f = *state;
    if (f->s) f->s->close(f->s);
    test_store_remove(f->loc);
    free(f);
    return 0;
}

/* The calling thread's read connection. */
static TEST_DB_UNUSED td_conn *rd(td_store *s)
{
    td_conn *c = s->reader(s);
    assert_non_null(c);
    return c;
}

/* A count (or any integer) read with SQL that both engines understand. */
static TEST_DB_UNUSED int count_rows(const char *loc, const char *sql)
{
    return (int)db_int(loc, sql);
}

/* For tests of how one writer groups jobs into transactions: the PostgreSQL
 * store runs several writers (TD_PG_WRITERS, 2 by default), each taking its
 * own batches, so the fixture's store is reopened with one. SQLite has one
 * writer: nothing to do. */
static TEST_DB_UNUSED void one_writer(fixture *f)
{
    if (!test_pg) return;
    const char *was = getenv("TD_PG_WRITERS");
    char saved[32] = "";
    if (was) td_strlcpy(saved, was, sizeof saved);
    f->s->close(f->s);
    f->s = NULL;
    setenv("TD_PG_WRITERS", "1", 1);
    f->s = open_store(f->loc);
    if (was)
        setenv("TD_PG_WRITERS", saved, 1);
    else
        unsetenv("TD_PG_WRITERS");
}

#endif
