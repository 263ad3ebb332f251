/* test_store.c — unit tests for the store, SQLite or PostgreSQL as
 * TD_TEST_STORE says (test_db.h): migrations, every verb (writes through
 * run_sync, reads through the per-thread reader), group commit with per-job
 * savepoints, fault injection, job timeouts, durability. Each test gets a
 * fresh store: its own SQLite file under $TD_TEST_TMP, or the emptied
 * PostgreSQL database at $TD_TEST_PG_URL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "store/pg/pgs.h"
#include "store/store.h"
#include "util/util.h"

extern const int td_sqlite_migration_count;
extern const int td_pg_migration_count;

#define STORE_FIXTURE_TAG "store"
#include "store_fixture.h"

/* ---- write helpers: one run() per verb, called through run_sync ---- */

static td_st run_member(td_conn *c, void *a)
{
    return OPS->member_insert(c, a);
}
static td_st run_key(td_conn *c, void *a)
{
    return OPS->key_insert(c, a);
}
static td_st run_cred(td_conn *c, void *a)
{
    return OPS->cred_insert(c, a);
}
typedef struct {
    const char *hash, *owner_id, *cert_sha256;
    td_cred_kind kind;
} cred_binding;
static td_st run_cred_bind(td_conn *c, void *a)
{
    cred_binding *b = a;
    return OPS->cred_bind(c, b->hash, b->kind, b->owner_id, b->cert_sha256);
}
static td_st run_issuer(td_conn *c, void *a)
{
    return OPS->issuer_insert(c, a);
}
static td_st run_request(td_conn *c, void *a)
{
    return OPS->request_insert(c, a);
}
static td_st run_request_update(td_conn *c, void *a)
{
    return OPS->request_update(c, a);
}
static td_st run_token(td_conn *c, void *a)
{
    return OPS->token_insert(c, a);
}
static td_st run_event(td_conn *c, void *a)
{
    return OPS->event_append(c, a);
}

typedef struct {
    const td_token_rec *t;
    int64_t expect_seq;
    const td_event_rec *ev;
} token_update_arg;
static td_st run_token_update(td_conn *c, void *a)
{
    token_update_arg *u = a;
    return OPS->token_update(c, u->t, u->expect_seq, u->ev);
}

typedef struct {
    const char *member_id, *key_id;
} key_ref;
static td_st run_key_delete(td_conn *c, void *a)
{
    key_ref *k = a;
    return OPS->key_delete(c, k->member_id, k->key_id);
}

typedef struct {
    const char *scope, *key;
    td_idem_rec rec;
} idem_arg;
static td_st run_idem_put(td_conn *c, void *a)
{
    idem_arg *i = a;
    return OPS->idem_put(c, i->scope, i->key, &i->rec);
}

static td_st put_member(td_store *s, const char *id, int64_t created)
{
    td_member_rec m = {.created_ms = created};
    td_strlcpy(m.id, id, sizeof m.id);
    td_strlcpy(m.display_name, "Member", sizeof m.display_name);
    return s->run_sync(s, run_member, &m);
}

/* ---- open, migrations ---- */

static int64_t migration_applied_ms(const char *loc)
{
    return db_int(loc, "SELECT sum(applied_ms) FROM schema_migrations");
}

/* The migrations this binary knows for the store under test. */
static int migration_count(void)
{
    return test_pg ? td_pg_migration_count : td_sqlite_migration_count;
}

/* SQLite: its schema_migrations, its tables (sqlite_master), WAL. */
static void test_open_applies_migrations(void **state)
{
    SQLITE_ONLY();
    fixture *f = *state;
    assert_true(td_sqlite_migration_count >= 1);
    char q[200];
    snprintf(q, sizeof q, "SELECT count(*) FROM schema_migrations WHERE version BETWEEN 1 AND %d",
             td_sqlite_migration_count);
    assert_int_equal(count_rows(f->loc, q), td_sqlite_migration_count);
    static const char *const tables[] = {"members", "member_keys",  "credentials", "issuers",          "token_requests",
                                         "tokens",  "token_events", "idempotency", "schema_migrations"};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        snprintf(q, sizeof q, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '%s'", tables[i]);
        if (count_rows(f->loc, q) != 1) fail_msg("table %s missing", tables[i]);
    }
    /* WAL: readers do not block the writer. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(f->loc, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_int_equal(OPS->ping(rd(f->s)), TD_ST_OK);
}

/* PostgreSQL's twin: each migration recorded once, the tables there. */
static void test_pg_open_applies_migrations(void **state)
{
    PG_ONLY();
    fixture *f = *state;
    assert_true(td_pg_migration_count >= 1);
    char q[300];
    snprintf(q, sizeof q, "SELECT count(*) FROM schema_migrations WHERE version BETWEEN 1 AND %d",
             td_pg_migration_count);
    assert_int_equal(count_rows(f->loc, q), td_pg_migration_count);
    assert_int_equal(count_rows(f->loc, "SELECT count(*) FROM schema_migrations"), td_pg_migration_count);
    static const char *const tables[] = {"members",        "member_keys",     "credentials",  "issuers",
                                         "token_requests", "tokens",          "token_events", "idempotency",
                                         "cards",          "digital_cards",   "dcard_events", "operations",
                                         "outbox",         "issuer_delivery", "timers",       "schema_migrations"};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        snprintf(q, sizeof q,
                 "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() "
                 "AND table_name = '%s'",
                 tables[i]);
        if (count_rows(f->loc, q) != 1) fail_msg("table %s missing", tables[i]);
    }
    assert_int_equal(OPS->ping(rd(f->s)), TD_ST_OK);
}

/* Re-opening applies nothing twice and keeps the data (both engines). */
static void test_reopen_idempotent(void **state)
{
    fixture *f = *state;
    assert_int_equal(put_member(f->s, "m:keep", 1), TD_ST_OK);
    int64_t applied = migration_applied_ms(f->loc);
    for (int i = 0; i < 3; i++) {
        f->s->close(f->s);
        f->s = NULL;
        f->s = open_store(f->loc);
        assert_int_equal(count_rows(f->loc, "SELECT count(*) FROM schema_migrations"), migration_count());
        assert_true(migration_applied_ms(f->loc) == applied);
    }
    td_member_rec m;
    assert_int_equal(OPS->member_get(rd(f->s), "m:keep", &m), TD_ST_OK);
}

/* A database already at a newer migration than this binary knows (a newer
 * tokend migrated it) is refused, with a message that says so; nothing in it
 * is touched. */
static void test_pg_newer_schema_refused(void **state)
{
    PG_ONLY();
    fixture *f = *state;
    assert_int_equal(put_member(f->s, "m:keep", 1), TD_ST_OK);
    f->s->close(f->s);
    f->s = NULL;
    char sql[160];
    snprintf(sql, sizeof sql, "INSERT INTO schema_migrations(version, applied_ms) VALUES (%d, 1)",
             td_pg_migration_count + 1);
    db_exec(f->loc, sql);
    char err[512] = "";
    td_store *s = td_store_open(f->loc, err, sizeof err);
    if (s) {
        s->close(s);
        fail_msg("a database at migration %d opened (this binary knows %d)", td_pg_migration_count + 1,
                 td_pg_migration_count);
    }
    if (!strstr(err, "newer")) fail_msg("the refusal does not say the database is newer: \"%s\"", err);
    assert_int_equal(count_rows(f->loc, "SELECT count(*) FROM schema_migrations"), td_pg_migration_count + 1);
    assert_int_equal(count_rows(f->loc, "SELECT count(*) FROM members WHERE id = 'm:keep'"), 1);
}

/* Store URLs that name no store, and a PostgreSQL server that is not there:
 * NULL and a message, never the password. */
static void test_open_errors(void **state)
{
    (void)state;
    char err[512];
    err[0] = 0;
    assert_null(td_store_open("mysql://localhost/tokend", err, sizeof err));
    assert_non_null(strstr(err, "unsupported store URL"));
    err[0] = 0;
    assert_null(td_store_open("sqlite:", err, sizeof err));
    assert_non_null(strstr(err, "unsupported store URL"));
    err[0] = 0;
    assert_null(td_store_open("", err, sizeof err));
    assert_non_null(strstr(err, "unsupported store URL"));
    /* nothing listens on port 1 */
    err[0] = 0;
    assert_null(td_store_open("postgres://tokend:s3cr3t-pw@127.0.0.1:1/tokend?connect_timeout=5", err, sizeof err));
    assert_true(strlen(err) > 0);
    if (strstr(err, "s3cr3t-pw")) fail_msg("the error shows the password: %s", err);
}

/* SQLite: a parent that is a regular file: the database cannot be created. */
static void test_open_sqlite_unwritable(void **state)
{
    (void)state;
    SQLITE_ONLY();
    char err[256] = "";
    char file[1024], url[1200];
    unique_path(file, sizeof file, "notadir");
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    snprintf(url, sizeof url, "sqlite:%s/inner.db", file);
    err[0] = 0;
    assert_null(td_store_open(url, err, sizeof err));
    assert_true(strlen(err) > 0);
    unlink(file);
}

/* SQLite: the parent directories of the database file are created (mkdir -p). */
static void test_open_creates_directories(void **state)
{
    (void)state;
    SQLITE_ONLY();
    char dir[1024], path[1100];
    unique_path(dir, sizeof dir, "dir");
    snprintf(path, sizeof path, "%s/a/b/tokend.db", dir);
    td_store *s = open_store(path);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    s->close(s);
    remove_db(path);
    char sub[1100];
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    rmdir(sub);
    snprintf(sub, sizeof sub, "%s/a", dir);
    rmdir(sub);
    rmdir(dir);
}

/* ---- members ---- */

static void test_members(void **state)
{
    fixture *f = *state;
    td_member_rec m = {.created_ms = 1234};
    td_strlcpy(m.id, "m:alice:1", sizeof m.id);
    td_strlcpy(m.display_name, "Alice \xc3\xa9", sizeof m.display_name);
    assert_int_equal(f->s->run_sync(f->s, run_member, &m), TD_ST_OK);
    td_member_rec got;
    memset(&got, 0xaa, sizeof got);
    assert_int_equal(OPS->member_get(rd(f->s), "m:alice:1", &got), TD_ST_OK);
    assert_string_equal(got.id, "m:alice:1");
    assert_string_equal(got.display_name, "Alice \xc3\xa9");
    assert_true(got.created_ms == 1234);
    assert_int_equal(OPS->member_get(rd(f->s), "m:bob:1", &got), TD_ST_NOT_FOUND);
    assert_int_equal(f->s->run_sync(f->s, run_member, &m), TD_ST_CONFLICT);
}

/* ---- keys ---- */

static td_key_rec make_key(const char *member, const char *key_id, td_level level, int64_t created, bool generated)
{
    td_key_rec k = {.level = level, .created_ms = created};
    td_strlcpy(k.member_id, member, sizeof k.member_id);
    td_strlcpy(k.key_id, key_id, sizeof k.key_id);
    td_strlcpy(k.algorithm, "ED25519", sizeof k.algorithm);
    for (size_t i = 0; i < sizeof k.public_key; i++)
        k.public_key[i] = (uint8_t)(i + (size_t)created);
    if (generated) {
        k.sealed_len = 88; /* nonce + 64-byte secret + tag */
        for (size_t i = 0; i < k.sealed_len; i++)
            k.sealed_secret[i] = (uint8_t)(0x80 ^ i);
    }
    return k;
}

typedef struct {
    char ids[16][24];
    int n;
} key_ids;
static void collect_key(const td_key_rec *k, void *arg)
{
    key_ids *l = arg;
    if (l->n < 16) td_strlcpy(l->ids[l->n++], k->key_id, sizeof l->ids[0]);
}

static void test_keys(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    assert_int_equal(put_member(s, "m:k", 1), TD_ST_OK);
    td_key_rec keys[] = {
        make_key("m:k", "low-old", TD_LEVEL_LOW, 100, true),
        make_key("m:k", "std", TD_LEVEL_STANDARD, 150, true),
        make_key("m:k", "low-new", TD_LEVEL_LOW, 200, true),
        make_key("m:k", "low-sub", TD_LEVEL_LOW, 300, false), /* newest LOW, but submitted */
        make_key("m:k", "priv-sub", TD_LEVEL_PRIVILEGED, 400, false),
    };
    keys[2].expires_ms = 999999;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        assert_int_equal(s->run_sync(s, run_key, &keys[i]), TD_ST_OK);
    /* same (member, keyId) twice */
    assert_int_equal(s->run_sync(s, run_key, &keys[0]), TD_ST_CONFLICT);
    /* a key for a member that does not exist is refused (foreign key) */
    td_key_rec ghost = make_key("m:ghost", "g", TD_LEVEL_LOW, 1, true);
    assert_int_not_equal(s->run_sync(s, run_key, &ghost), TD_ST_OK);

    td_conn *c = rd(s);
    td_key_rec got;
    assert_int_equal(OPS->key_get(c, "m:k", "low-new", &got), TD_ST_OK);
    assert_string_equal(got.member_id, "m:k");
    assert_string_equal(got.key_id, "low-new");
    assert_int_equal(got.level, TD_LEVEL_LOW);
    assert_string_equal(got.algorithm, "ED25519");
    assert_memory_equal(got.public_key, keys[2].public_key, sizeof got.public_key);
    assert_int_equal(got.sealed_len, 88);
    assert_memory_equal(got.sealed_secret, keys[2].sealed_secret, 88);
    assert_true(got.created_ms == 200 && got.expires_ms == 999999);

    /* a submitted key has no sealed secret */
    assert_int_equal(OPS->key_get(c, "m:k", "low-sub", &got), TD_ST_OK);
    assert_int_equal(got.sealed_len, 0);
    assert_int_equal(OPS->key_get(c, "m:k", "nope", &got), TD_ST_NOT_FOUND);
    assert_int_equal(OPS->key_get(c, "m:other", "low-new", &got), TD_ST_NOT_FOUND);

    /* key_for_level: the newest generated key of exactly that level */
    assert_int_equal(OPS->key_for_level(c, "m:k", TD_LEVEL_LOW, &got), TD_ST_OK);
    assert_string_equal(got.key_id, "low-new");
    assert_int_equal(got.sealed_len, 88);
    assert_int_equal(OPS->key_for_level(c, "m:k", TD_LEVEL_STANDARD, &got), TD_ST_OK);
    assert_string_equal(got.key_id, "std");
    /* only a submitted PRIVILEGED key: none to sign with */
    assert_int_equal(OPS->key_for_level(c, "m:k", TD_LEVEL_PRIVILEGED, &got), TD_ST_NOT_FOUND);
    assert_int_equal(OPS->key_for_level(c, "m:nobody", TD_LEVEL_LOW, &got), TD_ST_NOT_FOUND);

    /* key_list: oldest first, all kinds */
    key_ids l = {0};
    assert_int_equal(OPS->key_list(c, "m:k", collect_key, &l), TD_ST_OK);
    assert_int_equal(l.n, 5);
    static const char *const order[] = {"low-old", "std", "low-new", "low-sub", "priv-sub"};
    for (int i = 0; i < 5; i++)
        assert_string_equal(l.ids[i], order[i]);
    key_ids none = {0};
    assert_int_equal(OPS->key_list(c, "m:nobody", collect_key, &none), TD_ST_OK);
    assert_int_equal(none.n, 0);

    /* delete: once, then NOT_FOUND; key_for_level falls back to the older key */
    key_ref del = {"m:k", "low-new"};
    assert_int_equal(s->run_sync(s, run_key_delete, &del), TD_ST_OK);
    assert_int_equal(s->run_sync(s, run_key_delete, &del), TD_ST_NOT_FOUND);
    assert_int_equal(OPS->key_get(c, "m:k", "low-new", &got), TD_ST_NOT_FOUND);
    assert_int_equal(OPS->key_for_level(c, "m:k", TD_LEVEL_LOW, &got), TD_ST_OK);
    assert_string_equal(got.key_id, "low-old");
}

/* ---- credentials and issuers ---- */

static void test_credentials(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    td_cred_rec m = {.kind = TD_CRED_MEMBER, .level = TD_LEVEL_STANDARD, .created_ms = 5};
    td_strlcpy(m.hash, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", sizeof m.hash);
    td_strlcpy(m.owner_id, "m:alice:1", sizeof m.owner_id);
    td_cred_rec i = {.kind = TD_CRED_ISSUER, .created_ms = 6};
    td_strlcpy(i.hash, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", sizeof i.hash);
    td_strlcpy(i.owner_id, "iss1", sizeof i.owner_id);
    td_strlcpy(i.role, "network", sizeof i.role);
    assert_int_equal(s->run_sync(s, run_cred, &m), TD_ST_OK);
    assert_int_equal(s->run_sync(s, run_cred, &i), TD_ST_OK);
    assert_int_equal(s->run_sync(s, run_cred, &m), TD_ST_CONFLICT);

    td_cred_rec got;
    assert_int_equal(OPS->cred_get(rd(s), m.hash, &got), TD_ST_OK);
    assert_string_equal(got.hash, m.hash);
    assert_int_equal(got.kind, TD_CRED_MEMBER);
    assert_string_equal(got.owner_id, "m:alice:1");
    assert_int_equal(got.level, TD_LEVEL_STANDARD);
    assert_string_equal(got.role, "");
    assert_true(got.created_ms == 5);
    assert_int_equal(OPS->cred_get(rd(s), i.hash, &got), TD_ST_OK);
    assert_int_equal(got.kind, TD_CRED_ISSUER);
    assert_string_equal(got.owner_id, "iss1");
    assert_string_equal(got.role, "network");
    assert_int_equal(OPS->cred_get(rd(s), "cccc", &got), TD_ST_NOT_FOUND);
}

/* A credential's certificate binding: inserted with one, set, changed and
 * cleared; only by its own kind and owner. */
static void test_credential_binding(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    static const char FP_A[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    static const char FP_B[] = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
    td_cred_rec i = {.kind = TD_CRED_ISSUER, .created_ms = 6};
    td_strlcpy(i.hash, "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd", sizeof i.hash);
    td_strlcpy(i.owner_id, "iss2", sizeof i.owner_id);
    td_strlcpy(i.role, "network", sizeof i.role);
    td_strlcpy(i.cert_sha256, FP_A, sizeof i.cert_sha256);
    assert_int_equal(s->run_sync(s, run_cred, &i), TD_ST_OK);
    td_cred_rec got;
    assert_int_equal(OPS->cred_get(rd(s), i.hash, &got), TD_ST_OK);
    assert_string_equal(got.cert_sha256, FP_A);

    cred_binding b = {i.hash, "iss2", FP_B, TD_CRED_ISSUER};
    assert_int_equal(s->run_sync(s, run_cred_bind, &b), TD_ST_OK);
    assert_int_equal(OPS->cred_get(rd(s), i.hash, &got), TD_ST_OK);
    assert_string_equal(got.cert_sha256, FP_B);
    assert_string_equal(got.role, "network");

    cred_binding other_owner = {i.hash, "iss3", FP_A, TD_CRED_ISSUER};
    cred_binding other_kind = {i.hash, "iss2", FP_A, TD_CRED_MEMBER};
    cred_binding unknown = {"eeee", "iss2", FP_A, TD_CRED_ISSUER};
    assert_int_equal(s->run_sync(s, run_cred_bind, &other_owner), TD_ST_NOT_FOUND);
    assert_int_equal(s->run_sync(s, run_cred_bind, &other_kind), TD_ST_NOT_FOUND);
    assert_int_equal(s->run_sync(s, run_cred_bind, &unknown), TD_ST_NOT_FOUND);
    assert_int_equal(OPS->cred_get(rd(s), i.hash, &got), TD_ST_OK);
    assert_string_equal(got.cert_sha256, FP_B);

    cred_binding clear = {i.hash, "iss2", "", TD_CRED_ISSUER};
    assert_int_equal(s->run_sync(s, run_cred_bind, &clear), TD_ST_OK);
    assert_int_equal(OPS->cred_get(rd(s), i.hash, &got), TD_ST_OK);
    assert_string_equal(got.cert_sha256, "");
}

/* Revocation: by owner and key id, once (a second revoke keeps the first
 * time), never another owner's key; the list shows revoked keys too. */
typedef struct {
    td_cred_kind kind;
    const char *owner, *key_id;
    int64_t now;
    td_cred_rec out;
} revoke_arg;

static td_st run_revoke(td_conn *c, void *a)
{
    revoke_arg *r = a;
    return OPS->cred_revoke(c, r->kind, r->owner, r->key_id, r->now, &r->out);
}

static void count_cred(const td_cred_rec *k, void *arg)
{
    int *n = arg;
    *n += k->revoked_ms ? 100 : 1;
}

static void test_credential_revoke(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    td_cred_rec a = {.kind = TD_CRED_MEMBER, .level = TD_LEVEL_LOW, .created_ms = 5};
    td_strlcpy(a.hash, "1111111111111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", sizeof a.hash);
    td_strlcpy(a.key_id, "1111111111111111", sizeof a.key_id);
    td_strlcpy(a.owner_id, "m:alice:1", sizeof a.owner_id);
    td_cred_rec b = a;
    td_strlcpy(b.hash, "2222222222222222aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", sizeof b.hash);
    td_strlcpy(b.key_id, "2222222222222222", sizeof b.key_id);
    b.created_ms = 6;
    assert_int_equal(s->run_sync(s, run_cred, &a), TD_ST_OK);
    assert_int_equal(s->run_sync(s, run_cred, &b), TD_ST_OK);

    revoke_arg r = {.kind = TD_CRED_MEMBER, .owner = "m:bob:1", .key_id = "1111111111111111", .now = 50};
    assert_int_equal(s->run_sync(s, run_revoke, &r), TD_ST_NOT_FOUND); /* not bob's */
    r.owner = "m:alice:1";
    r.kind = TD_CRED_ISSUER;
    assert_int_equal(s->run_sync(s, run_revoke, &r), TD_ST_NOT_FOUND); /* not an issuer's */
    r.kind = TD_CRED_MEMBER;
    assert_int_equal(s->run_sync(s, run_revoke, &r), TD_ST_OK);
    assert_true(r.out.revoked_ms == 50);
    assert_string_equal(r.out.hash, a.hash);
    r.now = 60;
    assert_int_equal(s->run_sync(s, run_revoke, &r), TD_ST_OK);
    assert_true(r.out.revoked_ms == 50); /* the first revocation's time */

    td_cred_rec got;
    assert_int_equal(OPS->cred_get(rd(s), a.hash, &got), TD_ST_OK);
    assert_true(got.revoked_ms == 50);
    assert_string_equal(got.key_id, "1111111111111111");
    assert_int_equal(OPS->cred_get(rd(s), b.hash, &got), TD_ST_OK);
    assert_true(got.revoked_ms == 0);
    int n = 0;
    assert_int_equal(OPS->cred_list(rd(s), TD_CRED_MEMBER, "m:alice:1", count_cred, &n), TD_ST_OK);
    assert_int_equal(n, 101);
}

/* The audit log: ids increase, listed after an id, bounded by limit. */
static td_st run_credevent(td_conn *c, void *a)
{
    return OPS->credevent_append(c, a);
}

static void collect_event(const td_credevent_rec *e, void *arg)
{
    char *out = arg;
    size_t n = strlen(out);
    snprintf(out + n, 200 - n, "%s:%s:%s;", e->type, e->owner_id, e->detail_json);
}

static void test_credential_events(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    td_credevent_rec e1 = {.time_ms = 1, .type = "API_KEY_CREATED", .owner_kind = "member", .owner_id = "m1",
                           .key_id = "k1", .detail_json = "{\"level\":\"LOW\"}"};
    td_credevent_rec e2 = {.time_ms = 2, .type = "API_KEY_REVOKED", .owner_kind = "member", .owner_id = "m1",
                           .key_id = "k1"};
    assert_int_equal(s->run_sync(s, run_credevent, &e1), TD_ST_OK);
    assert_int_equal(s->run_sync(s, run_credevent, &e2), TD_ST_OK);
    assert_true(e2.id > e1.id);
    char got[200] = "";
    assert_int_equal(OPS->credevent_list(rd(s), 0, 10, collect_event, got), TD_ST_OK);
    assert_string_equal(got, "API_KEY_CREATED:m1:{\"level\":\"LOW\"};API_KEY_REVOKED:m1:{};");
    got[0] = 0;
    assert_int_equal(OPS->credevent_list(rd(s), e1.id, 10, collect_event, got), TD_ST_OK);
    assert_string_equal(got, "API_KEY_REVOKED:m1:{};");
    got[0] = 0;
    assert_int_equal(OPS->credevent_list(rd(s), 0, 1, collect_event, got), TD_ST_OK);
    assert_string_equal(got, "API_KEY_CREATED:m1:{\"level\":\"LOW\"};");
}

static void test_issuers(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    td_issuer_rec i = {.created_ms = 77};
    td_strlcpy(i.id, "iss-1", sizeof i.id);
    td_strlcpy(i.display_name, "Issuer One", sizeof i.display_name);
    assert_int_equal(s->run_sync(s, run_issuer, &i), TD_ST_OK);
    td_strlcpy(i.display_name, "Another name", sizeof i.display_name);
    assert_int_equal(s->run_sync(s, run_issuer, &i), TD_ST_CONFLICT);
    td_issuer_rec got;
    assert_int_equal(OPS->issuer_get(rd(s), "iss-1", &got), TD_ST_OK);
    assert_string_equal(got.id, "iss-1");
    assert_string_equal(got.display_name, "Issuer One"); /* the duplicate changed nothing */
    assert_true(got.created_ms == 77);
    assert_int_equal(OPS->issuer_get(rd(s), "iss-2", &got), TD_ST_NOT_FOUND);
}

/* ---- token requests ---- */

static void test_requests(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    td_request_rec r = {.kind = TD_KIND_TRANSFER,
                        .state = TD_TRS_PENDING,
                        .created_ms = 10,
                        .expires_ms = 20,
                        .consent_expires_ms = 15};
    td_strlcpy(r.id, "rq:1", sizeof r.id);
    td_strlcpy(r.from_id, "m:user", sizeof r.from_id);
    td_strlcpy(r.to_id, "m:tpp", sizeof r.to_id);
    td_strlcpy(r.consent_hash, "hash-one", sizeof r.consent_hash);
    r.request_json = "{\"id\":\"rq:1\"}";
    assert_int_equal(s->run_sync(s, run_request, &r), TD_ST_OK);
    assert_int_equal(s->run_sync(s, run_request, &r), TD_ST_CONFLICT);

    td_request_rec other = r;
    td_strlcpy(other.id, "rq:2", sizeof other.id);
    td_strlcpy(other.consent_hash, "hash-two", sizeof other.consent_hash);
    other.request_json = "{\"id\":\"rq:2\"}";
    assert_int_equal(s->run_sync(s, run_request, &other), TD_ST_OK);

    td_request_rec got;
    assert_int_equal(OPS->request_get(rd(s), "rq:1", &got), TD_ST_OK);
    assert_string_equal(got.id, "rq:1");
    assert_int_equal(got.kind, TD_KIND_TRANSFER);
    assert_string_equal(got.from_id, "m:user");
    assert_string_equal(got.to_id, "m:tpp");
    assert_int_equal(got.state, TD_TRS_PENDING);
    assert_true(got.created_ms == 10 && got.expires_ms == 20 && got.consent_expires_ms == 15);
    assert_string_equal(got.request_json, "{\"id\":\"rq:1\"}");
    assert_null(got.signature_json);
    assert_string_equal(got.token_id, "");
    assert_string_equal(got.consent_hash, "hash-one");
    assert_false(got.consent_used);
    td_request_rec_free(&got);
    assert_null(got.request_json);

    /* each request keeps its own consent hash (a consent code names its request) */
    assert_int_equal(OPS->request_get(rd(s), "rq:2", &got), TD_ST_OK);
    assert_string_equal(got.consent_hash, "hash-two");
    td_request_rec_free(&got);
    assert_int_equal(OPS->request_get(rd(s), "rq:3", &got), TD_ST_NOT_FOUND);

    /* update: state, token, signature, consent */
    td_request_rec u = r;
    u.state = TD_TRS_PROCESSED;
    td_strlcpy(u.token_id, "tt:1", sizeof u.token_id);
    u.signature_json = "{\"keyId\":\"k\"}";
    td_strlcpy(u.consent_hash, "hash-new", sizeof u.consent_hash);
    u.consent_expires_ms = 99;
    u.consent_used = true;
    assert_int_equal(s->run_sync(s, run_request_update, &u), TD_ST_OK);
    assert_int_equal(OPS->request_get(rd(s), "rq:1", &got), TD_ST_OK);
    assert_int_equal(got.state, TD_TRS_PROCESSED);
    assert_string_equal(got.token_id, "tt:1");
    assert_string_equal(got.signature_json, "{\"keyId\":\"k\"}");
    assert_string_equal(got.consent_hash, "hash-new");
    assert_true(got.consent_expires_ms == 99);
    assert_true(got.consent_used);
    assert_string_equal(got.request_json, "{\"id\":\"rq:1\"}"); /* not an updated column */
    td_request_rec_free(&got);

    td_strlcpy(u.id, "rq:missing", sizeof u.id);
    assert_int_equal(s->run_sync(s, run_request_update, &u), TD_ST_NOT_FOUND);
}

/* ---- tokens ---- */

typedef struct {
    char id[TD_ID_MAX];
    char json[TD_ID_MAX + 16];
    td_token_rec rec;
} token_fixture;

static void make_token(token_fixture *tf, const char *id, td_kind kind, const char *from, const char *to,
                       const char *issuer, int64_t created, const char *src, const char *dst, const char *acting)
{
    memset(tf, 0, sizeof *tf);
    td_strlcpy(tf->id, id, sizeof tf->id);
    snprintf(tf->json, sizeof tf->json, "{\"id\":\"%s\"}", id);
    td_token_rec *t = &tf->rec;
    td_strlcpy(t->id, id, sizeof t->id);
    t->kind = kind;
    t->state = TD_TS_ACTIVE;
    td_strlcpy(t->from_id, from, sizeof t->from_id);
    td_strlcpy(t->to_id, to, sizeof t->to_id);
    td_strlcpy(t->issuer_id, issuer ? issuer : "", sizeof t->issuer_id);
    td_strlcpy(t->acting_as_ref_id, acting ? acting : "", sizeof t->acting_as_ref_id);
    t->created_ms = created;
    t->seq = 1;
    t->json = tf->json;
    t->payload_canonical = "{}";
    t->accounts_src = (char *)src;
    t->accounts_dst = (char *)dst;
}

static void test_tokens_insert_get_update(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    token_fixture tf;
    make_token(&tf, "ta:1", TD_KIND_ACCESS, "m:from", "m:to", "iss", 1000, "a:1 a:2", "", "shop-1");
    td_strlcpy(tf.rec.ref_id, "ref-1", sizeof tf.rec.ref_id);
    td_strlcpy(tf.rec.token_request_id, "rq:1", sizeof tf.rec.token_request_id);
    tf.rec.expires_ms = 5000;
    tf.rec.payload_canonical = "{\"refId\":\"ref-1\"}";
    assert_int_equal(s->run_sync(s, run_token, &tf.rec), TD_ST_OK);
    assert_int_equal(s->run_sync(s, run_token, &tf.rec), TD_ST_CONFLICT);

    td_token_rec got;
    assert_int_equal(OPS->token_get(rd(s), "ta:1", &got), TD_ST_OK);
    assert_string_equal(got.id, "ta:1");
    assert_int_equal(got.kind, TD_KIND_ACCESS);
    assert_int_equal(got.state, TD_TS_ACTIVE);
    assert_string_equal(got.from_id, "m:from");
    assert_string_equal(got.to_id, "m:to");
    assert_string_equal(got.issuer_id, "iss");
    assert_string_equal(got.ref_id, "ref-1");
    assert_string_equal(got.acting_as_ref_id, "shop-1");
    assert_string_equal(got.token_request_id, "rq:1");
    assert_string_equal(got.replaced_by, "");
    assert_string_equal(got.canceled_by, "");
    assert_true(got.created_ms == 1000 && got.expires_ms == 5000 && got.seq == 1);
    assert_string_equal(got.json, "{\"id\":\"ta:1\"}");
    assert_string_equal(got.payload_canonical, "{\"refId\":\"ref-1\"}");
    assert_string_equal(got.accounts_src, "a:1 a:2");
    assert_string_equal(got.accounts_dst, "");
    td_token_rec_free(&got);
    assert_null(got.json);
    assert_int_equal(OPS->token_get(rd(s), "ta:2", &got), TD_ST_NOT_FOUND);

    /* Update with the right expected seq: applied. */
    td_token_rec u = tf.rec;
    u.state = TD_TS_CANCELED;
    td_strlcpy(u.canceled_by, "m:to", sizeof u.canceled_by);
    u.seq = 2;
    u.json = "{\"id\":\"ta:1\",\"v\":2}";
    token_update_arg ua = {&u, 1, NULL};
    assert_int_equal(s->run_sync(s, run_token_update, &ua), TD_ST_OK);
    assert_int_equal(OPS->token_get(rd(s), "ta:1", &got), TD_ST_OK);
    assert_int_equal(got.state, TD_TS_CANCELED);
    assert_string_equal(got.canceled_by, "m:to");
    assert_true(got.seq == 2);
    assert_string_equal(got.json, "{\"id\":\"ta:1\",\"v\":2}");
    td_token_rec_free(&got);

    /* A stale expected seq: CONFLICT, and nothing changes. */
    td_token_rec stale = tf.rec;
    stale.state = TD_TS_REPLACED;
    td_strlcpy(stale.replaced_by, "ta:9", sizeof stale.replaced_by);
    stale.seq = 2;
    stale.json = "{\"id\":\"ta:1\",\"v\":\"stale\"}";
    token_update_arg sa = {&stale, 1, NULL};
    assert_int_equal(s->run_sync(s, run_token_update, &sa), TD_ST_CONFLICT);
    sa.expect_seq = 3; /* ahead of the store is as wrong as behind it */
    assert_int_equal(s->run_sync(s, run_token_update, &sa), TD_ST_CONFLICT);
    assert_int_equal(OPS->token_get(rd(s), "ta:1", &got), TD_ST_OK);
    assert_int_equal(got.state, TD_TS_CANCELED);
    assert_string_equal(got.replaced_by, "");
    assert_string_equal(got.canceled_by, "m:to");
    assert_true(got.seq == 2);
    assert_string_equal(got.json, "{\"id\":\"ta:1\",\"v\":2}");
    td_token_rec_free(&got);

    /* With its event: both, or (a stale seq) neither. */
    td_event_rec ev = {.seq = 3, .time_ms = 7};
    td_strlcpy(ev.token_id, "ta:1", sizeof ev.token_id);
    td_strlcpy(ev.type, "REPLACED", sizeof ev.type);
    td_strlcpy(ev.actor, "m:to", sizeof ev.actor);
    td_token_rec r3 = stale;
    r3.seq = 3;
    int64_t events = -1;
    token_update_arg ra = {&r3, 1, &ev};
    assert_int_equal(s->run_sync(s, run_token_update, &ra), TD_ST_CONFLICT);
    assert_int_equal(OPS->event_count(rd(s), "ta:1", &events), TD_ST_OK);
    assert_true(events == 0);
    ra.expect_seq = 2;
    assert_int_equal(s->run_sync(s, run_token_update, &ra), TD_ST_OK);
    assert_int_equal(OPS->event_count(rd(s), "ta:1", &events), TD_ST_OK);
    assert_true(events == 1);
    assert_int_equal(OPS->token_get(rd(s), "ta:1", &got), TD_ST_OK);
    assert_int_equal(got.state, TD_TS_REPLACED);
    assert_true(got.seq == 3);
    td_token_rec_free(&got);
}

typedef struct {
    char json[16][TD_ID_MAX + 16];
    int n;
} json_list;
static void collect_json(const td_token_rec *t, void *arg)
{
    json_list *l = arg;
    if (l->n < 16) td_strlcpy(l->json[l->n++], t->json, sizeof l->json[0]);
}

/* Runs the filter and checks the result is exactly `want` (ids, in order). */
static void expect_list(td_store *s, const td_token_filter *f, const char *const *want)
{
    json_list l = {0};
    assert_int_equal(OPS->token_list(rd(s), f, collect_json, &l), TD_ST_OK);
    int n = 0;
    while (want[n])
        n++;
    char got_ids[512] = "", want_ids[512] = "";
    for (int i = 0; i < l.n; i++) {
        size_t len = strlen(got_ids);
        snprintf(got_ids + len, sizeof got_ids - len, "%s ", l.json[i]);
    }
    for (int i = 0; i < n; i++) {
        size_t len = strlen(want_ids);
        snprintf(want_ids + len, sizeof want_ids - len, "{\"id\":\"%s\"} ", want[i]);
    }
    if (strcmp(got_ids, want_ids)) fail_msg("token_list: got [%s], want [%s]", got_ids, want_ids);
}

#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE ((const char *const[]){NULL})

/* Six tokens around member m:me (see each line), listed newest first. */
static void seed_list_tokens(td_store *s)
{
    static token_fixture tfs[6];
    make_token(&tfs[0], "t1", TD_KIND_ACCESS, "m:me", "m:a", NULL, 1000, "a:1 a:2", NULL, NULL);
    make_token(&tfs[1], "t2", TD_KIND_TRANSFER, "m:b", "m:me", NULL, 2000, "x:1", "d:1 d:2", NULL);
    make_token(&tfs[2], "t3", TD_KIND_STANDING_ORDER, "m:me", "m:c", NULL, 3000, "a:2", "d:2", "shop-1");
    make_token(&tfs[3], "t4", TD_KIND_TRANSFER, "m:x", "m:y", "m:me", 4000, NULL, NULL, NULL);
    make_token(&tfs[4], "t5", TD_KIND_ACCESS, "m:x", "m:y", NULL, 5000, "a:1", NULL, NULL);  /* not ours */
    make_token(&tfs[5], "t6", TD_KIND_ACCESS, "m:me", "m:a", NULL, 3000, "b:1", NULL, NULL); /* ties with t3 */
    for (int i = 0; i < 6; i++)
        assert_int_equal(s->run_sync(s, run_token, &tfs[i].rec), TD_ST_OK);
}

/* token_get_signing: the token with the member's newest generated key at
 * the level, as key_for_level reads it; no key reads as all zero. */
typedef struct {
    td_token_rec t;
    td_key_rec k;
} signing_arg;
static td_st run_token_signing(td_conn *c, void *a)
{
    signing_arg *g = a; /* inside a job: the row is read for update */
    td_st st = OPS->token_get_signing(c, "ts:1", "m:s", TD_LEVEL_LOW, &g->t, &g->k);
    if (st == TD_ST_OK) td_token_rec_free(&g->t);
    return st;
}

static void test_token_get_signing(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    assert_int_equal(put_member(s, "m:s", 1), TD_ST_OK);
    td_key_rec keys[] = {
        make_key("m:s", "low-old", TD_LEVEL_LOW, 100, true),
        make_key("m:s", "low-new", TD_LEVEL_LOW, 200, true),
        make_key("m:s", "low-sub", TD_LEVEL_LOW, 300, false),
        make_key("m:s", "priv-sub", TD_LEVEL_PRIVILEGED, 400, false),
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        assert_int_equal(s->run_sync(s, run_key, &keys[i]), TD_ST_OK);
    token_fixture tf;
    make_token(&tf, "ts:1", TD_KIND_ACCESS, "m:s", "m:to", NULL, 1000, "", "", NULL);
    assert_int_equal(s->run_sync(s, run_token, &tf.rec), TD_ST_OK);

    td_token_rec t;
    td_key_rec k;
    assert_int_equal(OPS->token_get_signing(rd(s), "ts:1", "m:s", TD_LEVEL_LOW, &t, &k), TD_ST_OK);
    assert_string_equal(t.id, "ts:1");
    assert_string_equal(t.from_id, "m:s");
    assert_string_equal(t.json, "{\"id\":\"ts:1\"}");
    assert_true(t.seq == 1 && t.created_ms == 1000);
    td_token_rec_free(&t);
    assert_string_equal(k.key_id, "low-new");
    assert_string_equal(k.member_id, "m:s");
    assert_int_equal(k.level, TD_LEVEL_LOW);
    assert_int_equal(k.sealed_len, 88);
    assert_memory_equal(k.sealed_secret, keys[1].sealed_secret, 88);
    assert_memory_equal(k.public_key, keys[1].public_key, sizeof k.public_key);
    assert_true(k.created_ms == 200);
    /* only a submitted key at that level, or another member: no key, the token still */
    assert_int_equal(OPS->token_get_signing(rd(s), "ts:1", "m:s", TD_LEVEL_PRIVILEGED, &t, &k), TD_ST_OK);
    td_token_rec_free(&t);
    assert_string_equal(k.key_id, "");
    assert_int_equal(k.sealed_len, 0);
    assert_int_equal(OPS->token_get_signing(rd(s), "ts:1", "m:nobody", TD_LEVEL_LOW, &t, &k), TD_ST_OK);
    td_token_rec_free(&t);
    assert_string_equal(k.key_id, "");
    assert_int_equal(OPS->token_get_signing(rd(s), "ts:none", "m:s", TD_LEVEL_LOW, &t, &k), TD_ST_NOT_FOUND);
    signing_arg g;
    assert_int_equal(s->run_sync(s, run_token_signing, &g), TD_ST_OK);
    assert_string_equal(g.k.key_id, "low-new");
}

static void test_token_list_filters(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    seed_list_tokens(s);
    td_token_filter base = {.member_id = "m:me", .kind = -1, .role = 0, .limit = 100};
    td_token_filter q;

    /* roles; equal created_ms is ordered by id */
    q = base;
    expect_list(s, &q, LIST("t4", "t3", "t6", "t2", "t1"));
    q.role = 1;
    expect_list(s, &q, LIST("t3", "t6", "t1"));
    q.role = 2;
    expect_list(s, &q, LIST("t2"));
    q.role = 3;
    expect_list(s, &q, LIST("t4"));
    q = base;
    q.member_id = "m:nobody";
    expect_list(s, &q, NONE);

    /* kind */
    q = base;
    q.kind = TD_KIND_ACCESS;
    expect_list(s, &q, LIST("t6", "t1"));
    q.kind = TD_KIND_TRANSFER;
    expect_list(s, &q, LIST("t4", "t2"));
    q.role = 1;
    expect_list(s, &q, NONE);
    q.kind = TD_KIND_CARD;
    q.role = 0;
    expect_list(s, &q, NONE);

    /* accounts: a whole account id of the space-separated list */
    q = base;
    q.source_account = "a:2";
    expect_list(s, &q, LIST("t3", "t1"));
    q.source_account = "a:1";
    expect_list(s, &q, LIST("t1"));
    q.source_account = "a";
    expect_list(s, &q, NONE);
    q.source_account = ":1";
    expect_list(s, &q, NONE);
    q = base;
    q.destination_account = "d:2";
    expect_list(s, &q, LIST("t3", "t2"));
    q.destination_account = "d:1";
    expect_list(s, &q, LIST("t2"));
    q.source_account = "x:1";
    expect_list(s, &q, LIST("t2"));
    q.source_account = "a:2";
    expect_list(s, &q, NONE);

    /* time range: created_ms in [start, end) */
    q = base;
    q.start_ms = 2000;
    q.end_ms = 3001;
    expect_list(s, &q, LIST("t3", "t6", "t2"));
    q.end_ms = 3000;
    expect_list(s, &q, LIST("t2"));
    q = base;
    q.start_ms = 3000;
    expect_list(s, &q, LIST("t4", "t3", "t6"));
    q = base;
    q.end_ms = 3000;
    expect_list(s, &q, LIST("t2", "t1"));

    /* actingAs refId */
    q = base;
    q.acting_as_ref_id = "shop-1";
    expect_list(s, &q, LIST("t3"));
    q.acting_as_ref_id = "shop";
    expect_list(s, &q, NONE);

    /* paging: offset/limit over the newest-first order */
    q = base;
    q.limit = 2;
    expect_list(s, &q, LIST("t4", "t3"));
    q.offset = 2;
    expect_list(s, &q, LIST("t6", "t2"));
    q.offset = 4;
    expect_list(s, &q, LIST("t1"));
    q.offset = 5;
    expect_list(s, &q, NONE);
    q.offset = 1;
    q.limit = 1;
    expect_list(s, &q, LIST("t3"));
}

/* The account filters compare whole account ids, exactly: characters that
 * are wildcards in SQL LIKE (% and _) and letter case must not widen them.
 * (filter.sourceAccountId is free text from the query string.) */
static void test_token_list_account_filter_exact(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    seed_list_tokens(s);
    td_token_filter q = {.member_id = "m:me", .kind = -1, .role = 0, .limit = 100};
    static const char *const wild[] = {"%", "a%", "%:1", "a_1", "_:_", "A:1", "A:2", "X:1"};
    for (size_t i = 0; i < sizeof wild / sizeof wild[0]; i++) {
        q.source_account = wild[i];
        q.destination_account = NULL;
        expect_list(s, &q, NONE);
        q.source_account = NULL;
        q.destination_account = wild[i];
        expect_list(s, &q, NONE);
    }
}

/* ---- events, idempotency ---- */

static void test_events(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    td_event_rec e = {.seq = 1, .time_ms = 10};
    td_strlcpy(e.token_id, "ta:1", sizeof e.token_id);
    td_strlcpy(e.type, "CREATED", sizeof e.type);
    td_strlcpy(e.actor, "m:from", sizeof e.actor);
    assert_int_equal(s->run_sync(s, run_event, &e), TD_ST_OK);
    e.seq = 2;
    td_strlcpy(e.type, "CANCELED", sizeof e.type);
    td_strlcpy(e.customer_ip, "192.0.2.1", sizeof e.customer_ip);
    td_strlcpy(e.customer_initiated, "true", sizeof e.customer_initiated);
    td_strlcpy(e.customer_device_id, "dev-1", sizeof e.customer_device_id);
    e.detail_json = "{\"why\":\"user\"}";
    assert_int_equal(s->run_sync(s, run_event, &e), TD_ST_OK);
    /* (token, seq) is unique: a second event 2 is refused */
    assert_int_equal(s->run_sync(s, run_event, &e), TD_ST_CONFLICT);
    int64_t n = -1;
    assert_int_equal(OPS->event_count(rd(s), "ta:1", &n), TD_ST_OK);
    assert_true(n == 2);
    assert_int_equal(OPS->event_count(rd(s), "ta:none", &n), TD_ST_OK);
    assert_true(n == 0);
    char q[200];
    snprintf(q, sizeof q,
             "SELECT count(*) FROM token_events WHERE token_id = 'ta:1' AND seq = 2 AND customer_ip = '192.0.2.1' "
             "AND customer_device_id = 'dev-1' AND detail_json = '{\"why\":\"user\"}'");
    assert_int_equal(count_rows(f->loc, q), 1);
    /* empty optional fields are stored as NULL */
    assert_int_equal(count_rows(f->loc, "SELECT count(*) FROM token_events WHERE seq = 1 AND customer_ip IS NULL "
                                        "AND customer_initiated IS NULL AND detail_json IS NULL"),
                     1);
}

static void test_idempotency(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    idem_arg a = {.scope = "cred-1", .key = "key-1", .rec = {.status = 201, .body = "{\"ok\":true}"}};
    td_strlcpy(a.rec.req_hash, "reqhash", sizeof a.rec.req_hash);
    assert_int_equal(s->run_sync(s, run_idem_put, &a), TD_ST_OK);
    assert_int_equal(s->run_sync(s, run_idem_put, &a), TD_ST_CONFLICT);
    /* the same key in another scope is another record */
    idem_arg b = {.scope = "cred-2", .key = "key-1", .rec = {.status = 400, .body = NULL}};
    td_strlcpy(b.rec.req_hash, "other", sizeof b.rec.req_hash);
    assert_int_equal(s->run_sync(s, run_idem_put, &b), TD_ST_OK);

    td_idem_rec got = {0};
    assert_int_equal(OPS->idem_get(rd(s), "cred-1", "key-1", &got), TD_ST_OK);
    assert_int_equal(got.status, 201);
    assert_string_equal(got.body, "{\"ok\":true}");
    assert_string_equal(got.req_hash, "reqhash");
    td_idem_rec_free(&got);
    assert_null(got.body);
    assert_int_equal(OPS->idem_get(rd(s), "cred-2", "key-1", &got), TD_ST_OK);
    assert_int_equal(got.status, 400);
    assert_string_equal(got.body, ""); /* a NULL body is stored empty */
    assert_string_equal(got.req_hash, "other");
    td_idem_rec_free(&got);
    assert_int_equal(OPS->idem_get(rd(s), "cred-1", "key-2", &got), TD_ST_NOT_FOUND);
    assert_int_equal(OPS->idem_get(rd(s), "cred-3", "key-1", &got), TD_ST_NOT_FOUND);
}

/* ---- group commit ---- */

/* Completion bookkeeping shared by the asynchronous tests. */
static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static int done_total;

typedef struct {
    td_job job;
    char member_id[TD_ID_MAX];
    bool fail;      /* run() inserts, then returns an error */
    bool sql_error; /* PostgreSQL: run() inserts, then runs a statement that fails */
    atomic_int runs;
    atomic_int done_calls;
    td_st status;
} test_job;

static td_st tj_run(td_conn *c, void *arg)
{
    test_job *j = arg;
    atomic_fetch_add(&j->runs, 1);
    td_member_rec m = {.created_ms = 1};
    td_strlcpy(m.id, j->member_id, sizeof m.id);
    td_strlcpy(m.display_name, "job", sizeof m.display_name);
    td_st st = OPS->member_insert(c, &m);
    if (st != TD_ST_OK) return st;
    if (j->sql_error) {
        PGresult *res;
        st = pg_rows_text(c, "SELECT 1 / 0", NULL, &res); /* aborts the transaction */
        return st == TD_ST_OK ? (PQclear(res), TD_ST_OK) : st;
    }
    return j->fail ? TD_ST_CONFLICT : TD_ST_OK;
}

static void tj_done(void *arg, td_st status)
{
    test_job *j = arg;
    j->status = status;
    atomic_fetch_add(&j->done_calls, 1);
    pthread_mutex_lock(&done_mu);
    done_total++;
    pthread_cond_broadcast(&done_cv);
    pthread_mutex_unlock(&done_mu);
}

static void tj_init(test_job *j, const char *member_id, bool fail)
{
    memset(j, 0, sizeof *j);
    j->job.run = tj_run;
    j->job.done = tj_done;
    j->job.arg = j;
    td_strlcpy(j->member_id, member_id, sizeof j->member_id);
    j->fail = fail;
}

static void reset_done(void)
{
    pthread_mutex_lock(&done_mu);
    done_total = 0;
    pthread_mutex_unlock(&done_mu);
}

/* Waits until `n` done() calls happened in all; fails after 30 s. */
static void wait_done(int n)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 30;
    pthread_mutex_lock(&done_mu);
    int rc = 0;
    while (done_total < n && rc == 0)
        rc = pthread_cond_timedwait(&done_cv, &done_mu, &deadline);
    int got = done_total;
    pthread_mutex_unlock(&done_mu);
    if (got < n) fail_msg("only %d of %d jobs completed", got, n);
}

typedef struct {
    td_store *s;
    test_job *jobs;
    int n;
} submitter;

static void *submit_all(void *arg)
{
    submitter *sb = arg;
    for (int i = 0; i < sb->n; i++)
        if (sb->s->submit(sb->s, &sb->jobs[i].job) != 0) return (void *)1;
    return NULL;
}

static void test_group_commit_threads(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    enum { THREADS = 4, PER = 200, N = THREADS * PER };
    test_job *jobs = calloc(N, sizeof *jobs);
    assert_non_null(jobs);
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "m:g:%d", i);
        tj_init(&jobs[i], id, false);
    }
    td_store_stats before, after;
    s->stats(s, &before);
    reset_done();
    pthread_t th[THREADS];
    submitter sb[THREADS];
    for (int t = 0; t < THREADS; t++) {
        sb[t] = (submitter){s, jobs + t * PER, PER};
        assert_int_equal(pthread_create(&th[t], NULL, submit_all, &sb[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        void *rv;
        pthread_join(th[t], &rv);
        assert_null(rv);
    }
    wait_done(N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&jobs[i].done_calls), 1);
        assert_int_equal(atomic_load(&jobs[i].runs), 1);
        assert_int_equal(jobs[i].status, TD_ST_OK);
        td_member_rec m;
        assert_int_equal(OPS->member_get(rd(s), jobs[i].member_id, &m), TD_ST_OK);
    }
    assert_int_equal(count_rows(f->loc, "SELECT count(*) FROM members WHERE id LIKE 'm:g:%'"), N);
    s->stats(s, &after);
    uint64_t commits = after.commits - before.commits;
    assert_true(after.jobs - before.jobs == N);
    assert_true(commits >= 1 && commits <= N);
    uint64_t hist = 0;
    for (int b = 0; b < 8; b++)
        hist += after.batch_hist[b] - before.batch_hist[b];
    assert_true(hist == commits);
    /* done() has run for every job, so none is touched after this */
    free(jobs);
}

/* A job that holds the writer until released: what queues meanwhile forms
 * the next batch, so tests can put chosen jobs in one transaction. */
typedef struct {
    td_job job;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool entered, released, finished;
    td_st status;
} gate;

static td_st gate_run(td_conn *c, void *arg)
{
    (void)c;
    gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->entered = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->released)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    return TD_ST_OK;
}

static void gate_done(void *arg, td_st st)
{
    gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->status = st;
    g->finished = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void gate_hold(td_store *s, gate *g)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->job = (td_job){.run = gate_run, .done = gate_done, .arg = g};
    assert_int_equal(s->submit(s, &g->job), 0);
    pthread_mutex_lock(&g->mu);
    while (!g->entered)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_release(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->released = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->finished)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    assert_int_equal(g->status, TD_ST_OK);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

/* Submits the n jobs while a gate holds the only writer, so that they
 * commit as one batch after the gate's; the store's counters around it. */
static void submit_as_one_batch(td_store *s, test_job *const *jobs, int n, td_store_stats *before,
                                td_store_stats *after)
{
    gate g;
    gate_hold(s, &g);
    s->stats(s, before);
    reset_done();
    for (int i = 0; i < n; i++)
        assert_int_equal(s->submit(s, &jobs[i]->job), 0);
    gate_release(&g);
    wait_done(n);
    s->stats(s, after);
}

/* In one batch: the failing job's own insert is rolled back (its
 * savepoint), the others commit; each done() gets its own status. */
static void test_group_commit_savepoint_rollback(void **state)
{
    fixture *f = *state;
    one_writer(f); /* the four jobs queue behind the gate's writer: one batch */
    td_store *s = f->s;
    test_job a, b, c, dup;
    tj_init(&a, "m:sp:a", false);
    tj_init(&b, "m:sp:b", true); /* inserts, then fails */
    tj_init(&c, "m:sp:c", false);
    tj_init(&dup, "m:sp:a", false); /* conflicts with a, in the same transaction */

    td_store_stats before, after;
    submit_as_one_batch(s, (test_job *const[]){&a, &b, &dup, &c}, 4, &before, &after);
    /* the gate's commit, then exactly one more for the four jobs together */
    assert_true(after.commits - before.commits == 2);
    assert_true(after.jobs - before.jobs == 5);
    assert_true(after.batch_hist[0] - before.batch_hist[0] == 1); /* the gate alone */
    assert_true(after.batch_hist[2] - before.batch_hist[2] == 1); /* a batch of 4-7 */

    assert_int_equal(a.status, TD_ST_OK);
    assert_int_equal(b.status, TD_ST_CONFLICT);
    assert_int_equal(dup.status, TD_ST_CONFLICT);
    assert_int_equal(c.status, TD_ST_OK);
    assert_int_equal(atomic_load(&b.runs), 1);
    td_member_rec m;
    assert_int_equal(OPS->member_get(rd(s), "m:sp:a", &m), TD_ST_OK);
    assert_int_equal(OPS->member_get(rd(s), "m:sp:b", &m), TD_ST_NOT_FOUND);
    assert_int_equal(OPS->member_get(rd(s), "m:sp:c", &m), TD_ST_OK);
}

static void test_stats(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    td_store_stats before, after;
    s->stats(s, &before);
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof id, "m:stat:%d", i);
        assert_int_equal(put_member(s, id, 1), TD_ST_OK);
    }
    assert_int_equal(put_member(s, "m:stat:0", 1), TD_ST_CONFLICT); /* a failed job still counts */
    s->stats(s, &after);
    assert_true(after.commits - before.commits == 4);
    assert_true(after.jobs - before.jobs == 4);
    assert_true(after.batch_hist[0] - before.batch_hist[0] == 4); /* each a batch of one */
}

/* Lax jobs (td_job.lax) alone commit without fsync; a group holding any
 * other job commits with it, and so does the next ordinary job after a lax
 * group (the connection goes back to FULL). */
static void test_lax_commits(void **state)
{
    fixture *f = *state;
    one_writer(f); /* c and d queue behind the gate's writer: one batch */
    td_store *s = f->s;
    td_store_stats before, after;
    s->stats(s, &before);
    reset_done();
    test_job a, b, c, d;
    tj_init(&a, "m:lax:a", false);
    a.job.lax = true;
    assert_int_equal(s->submit(s, &a.job), 0);
    wait_done(1);
    tj_init(&b, "m:lax:b", false);
    assert_int_equal(s->submit(s, &b.job), 0);
    wait_done(2);
    s->stats(s, &after);
    assert_true(after.commits - before.commits == 2);
    assert_true(after.lax_commits - before.lax_commits == 1); /* a's, not b's */

    /* a lax job grouped with an ordinary one: one durable commit */
    gate g;
    gate_hold(s, &g);
    s->stats(s, &before);
    tj_init(&c, "m:lax:c", false);
    c.job.lax = true;
    tj_init(&d, "m:lax:d", false);
    assert_int_equal(s->submit(s, &c.job), 0);
    assert_int_equal(s->submit(s, &d.job), 0);
    gate_release(&g);
    wait_done(4); /* a, b, c, d (the gate's done is not counted) */
    s->stats(s, &after);
    assert_true(after.commits - before.commits == 2); /* the gate's, then c and d together */
    assert_true(after.lax_commits == before.lax_commits);
    td_member_rec m;
    static const char *const IDS[] = {"m:lax:a", "m:lax:b", "m:lax:c", "m:lax:d"};
    for (int i = 0; i < 4; i++)
        assert_int_equal(OPS->member_get(rd(s), IDS[i], &m), TD_ST_OK);
}

/* ---- faults and timeouts ---- */

static void noop_token(const td_token_rec *t, void *arg)
{
    (void)t;
    (void)arg;
}

static void test_fault_unreachable(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    assert_int_equal(put_member(s, "m:before", 1), TD_ST_OK);
    s->inject_fault(s, 1);
    td_conn *c = rd(s);
    td_member_rec m;
    td_token_rec t;
    assert_int_equal(OPS->ping(c), TD_ST_ERROR);
    assert_int_equal(OPS->member_get(c, "m:before", &m), TD_ST_ERROR);
    assert_int_equal(OPS->token_get(c, "ta:1", &t), TD_ST_ERROR);
    td_token_filter q = {.member_id = "m:before", .kind = -1, .limit = 10};
    assert_int_equal(OPS->token_list(c, &q, noop_token, NULL), TD_ST_ERROR);
    assert_int_equal(put_member(s, "m:during", 1), TD_ST_ERROR);
    s->inject_fault(s, 0);
    /* recovered: reads and writes work, and the failed write left nothing */
    assert_int_equal(OPS->ping(c), TD_ST_OK);
    assert_int_equal(OPS->member_get(c, "m:before", &m), TD_ST_OK);
    assert_int_equal(OPS->member_get(c, "m:during", &m), TD_ST_NOT_FOUND);
    assert_int_equal(put_member(s, "m:during", 1), TD_ST_OK);
    assert_int_equal(OPS->member_get(c, "m:during", &m), TD_ST_OK);
}

/* A stalled writer and a short job timeout: the reaper answers the queued job
 * BUSY while the writer is still stalled, without running it; after the stall,
 * a new job runs normally. */
static void test_job_timeout(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    int64_t saved = s->job_timeout_us;
    s->job_timeout_us = 2000;
    s->inject_fault(s, 2);
    reset_done();
    test_job j;
    tj_init(&j, "m:late", false);
    assert_int_equal(s->submit(s, &j.job), 0);
    wait_done(1); /* answered during the stall */
    assert_int_equal(j.status, TD_ST_BUSY);
    s->inject_fault(s, 0);
    assert_int_equal(atomic_load(&j.runs), 0);
    assert_int_equal(atomic_load(&j.done_calls), 1);
    td_member_rec m;
    assert_int_equal(OPS->member_get(rd(s), "m:late", &m), TD_ST_NOT_FOUND);

    s->job_timeout_us = saved;
    assert_int_equal(put_member(s, "m:late", 1), TD_ST_OK);
    assert_int_equal(OPS->member_get(rd(s), "m:late", &m), TD_ST_OK);
}

/* ---- durability ---- */

static void test_durable_across_reopen(void **state)
{
    fixture *f = *state;
    assert_int_equal(put_member(f->s, "m:dur", 42), TD_ST_OK);
    token_fixture tf;
    make_token(&tf, "tt:dur", TD_KIND_TRANSFER, "m:dur", "m:x", NULL, 7, "s:1", "d:1", NULL);
    assert_int_equal(f->s->run_sync(f->s, run_token, &tf.rec), TD_ST_OK);
    idem_arg ia = {.scope = "sc", .key = "k", .rec = {.status = 200, .body = "{}"}};
    assert_int_equal(f->s->run_sync(f->s, run_idem_put, &ia), TD_ST_OK);
    f->s->close(f->s);
    f->s = NULL;

    /* what a committed write reported is in the database, with no store running */
    assert_int_equal(count_rows(f->loc, "SELECT count(*) FROM members WHERE id = 'm:dur'"), 1);

    f->s = open_store(f->loc);
    td_member_rec m;
    assert_int_equal(OPS->member_get(rd(f->s), "m:dur", &m), TD_ST_OK);
    assert_true(m.created_ms == 42);
    td_token_rec t;
    assert_int_equal(OPS->token_get(rd(f->s), "tt:dur", &t), TD_ST_OK);
    assert_int_equal(t.kind, TD_KIND_TRANSFER);
    assert_string_equal(t.accounts_dst, "d:1");
    td_token_rec_free(&t);
    td_idem_rec ir = {0};
    assert_int_equal(OPS->idem_get(rd(f->s), "sc", "k", &ir), TD_ST_OK);
    assert_int_equal(ir.status, 200);
    td_idem_rec_free(&ir);
}

/* Close commits what is queued: every job submitted before it is answered,
 * and applied. */
static void test_close_drains_queue(void **state)
{
    (void)state;
    char loc[TEST_LOC_MAX];
    test_store_new(loc, sizeof loc, "drain");
    td_store *s = open_store(loc);
    test_job jobs[20];
    reset_done();
    for (int i = 0; i < 20; i++) {
        char id[32];
        snprintf(id, sizeof id, "m:q:%d", i);
        tj_init(&jobs[i], id, false);
        assert_int_equal(s->submit(s, &jobs[i].job), 0);
    }
    s->close(s);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(atomic_load(&jobs[i].done_calls), 1);
        assert_int_equal(jobs[i].status, TD_ST_OK);
    }
    assert_int_equal(count_rows(loc, "SELECT count(*) FROM members WHERE id LIKE 'm:q:%'"), 20);
    test_store_remove(loc);
}

/* PostgreSQL: a statement that fails aborts the whole transaction; its job
 * rolls back to its savepoint (sent with the next job's first statement, or
 * with the COMMIT when it is the last) and the batch's other jobs commit. */
static void test_pg_failed_statement_in_batch(void **state)
{
    PG_ONLY();
    fixture *f = *state;
    one_writer(f);
    td_store *s = f->s;
    test_job a, e1, c, e2;
    tj_init(&a, "m:se:a", false);
    tj_init(&e1, "m:se:e1", false);
    e1.sql_error = true;
    tj_init(&c, "m:se:c", false);
    tj_init(&e2, "m:se:e2", false);
    e2.sql_error = true; /* the last: its rollback travels with the COMMIT */
    td_store_stats before, after;
    submit_as_one_batch(s, (test_job *const[]){&a, &e1, &c, &e2}, 4, &before, &after);
    assert_true(after.commits - before.commits == 2); /* the gate's, then the four jobs' */
    assert_int_equal(a.status, TD_ST_OK);
    assert_int_equal(e1.status, TD_ST_ERROR);
    assert_int_equal(c.status, TD_ST_OK);
    assert_int_equal(e2.status, TD_ST_ERROR);
    td_member_rec m;
    assert_int_equal(OPS->member_get(rd(s), "m:se:a", &m), TD_ST_OK);
    assert_int_equal(OPS->member_get(rd(s), "m:se:c", &m), TD_ST_OK);
    assert_int_equal(OPS->member_get(rd(s), "m:se:e1", &m), TD_ST_NOT_FOUND);
    assert_int_equal(OPS->member_get(rd(s), "m:se:e2", &m), TD_ST_NOT_FOUND);
    /* the writer's connection is usable for the next batch */
    test_job d;
    tj_init(&d, "m:se:d", false);
    reset_done();
    assert_int_equal(s->submit(s, &d.job), 0);
    wait_done(1);
    assert_int_equal(d.status, TD_ST_OK);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    if (td_crypto_init() != 0) return 1;
    test_db_init();
    const struct CMUnitTest tests[] = {
        T(test_open_applies_migrations),
        T(test_pg_open_applies_migrations),
        T(test_reopen_idempotent),
        T(test_pg_newer_schema_refused),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_open_sqlite_unwritable),
        cmocka_unit_test(test_open_creates_directories),
        T(test_members),
        T(test_keys),
        T(test_credentials),
        T(test_credential_binding),
        T(test_credential_revoke),
        T(test_credential_events),
        T(test_issuers),
        T(test_requests),
        T(test_tokens_insert_get_update),
        T(test_token_get_signing),
        T(test_token_list_filters),
        T(test_token_list_account_filter_exact),
        T(test_events),
        T(test_idempotency),
        T(test_group_commit_threads),
        T(test_group_commit_savepoint_rollback),
        T(test_pg_failed_statement_in_batch),
        T(test_stats),
        T(test_lax_commits),
        T(test_fault_unreachable),
        T(test_job_timeout),
        T(test_durable_across_reopen),
        cmocka_unit_test(test_close_drains_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
