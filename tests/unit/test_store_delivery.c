/* test_store_delivery.c — unit tests for the delivery verbs of the store,
 * SQLite or PostgreSQL as TD_TEST_STORE says (test_db.h): claiming due outbox
 * rows in order per order key, leases, attempts, dead letters and their
 * replay, the counts, and issuers' delivery settings; and, on SQLite only,
 * its migrations 005 and 007 and the claim's query plan. Writes go through
 * run_sync (the writer's transaction), reads through the per-thread reader.
 * Each test gets a fresh store: its own SQLite file under $TD_TEST_TMP, or
 * the emptied PostgreSQL database at $TD_TEST_PG_URL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "store/store.h"
#include "util/util.h"

extern const char *const td_sqlite_migrations[];
extern const int td_sqlite_migration_count;

#define STORE_FIXTURE_TAG "store-delivery"
#include "store_fixture.h"

/* ---- write helpers: one run() per verb, called through run_sync ---- */

static td_st run_issuer(td_conn *c, void *a)
{
    return OPS->issuer_insert(c, a);
}

static void put_issuer(td_store *s, const char *id)
{
    td_issuer_rec i = {.created_ms = 1};
    td_strlcpy(i.id, id, sizeof i.id);
    td_strlcpy(i.display_name, id, sizeof i.display_name);
    assert_int_equal(s->run_sync(s, run_issuer, &i), TD_ST_OK);
}

static td_st run_delivery_put(td_conn *c, void *a)
{
    return OPS->delivery_put(c, a);
}

static td_delivery_rec make_delivery(const char *issuer)
{
    td_delivery_rec d = {.d1_batch_max = 1, .max_age_ms = 86400000, .timeout_ms = 5000, .updated_ms = 10};
    td_strlcpy(d.issuer_id, issuer, sizeof d.issuer_id);
    td_strlcpy(d.profile, "d1", sizeof d.profile);
    td_strlcpy(d.base_url, "http://127.0.0.1:9/base", sizeof d.base_url);
    td_strlcpy(d.auth, "none", sizeof d.auth);
    return d;
}

/* An issuer whose backend is configured: its rows can be claimed. */
static void put_configured_issuer(td_store *s, const char *id)
{
    put_issuer(s, id);
    td_delivery_rec d = make_delivery(id);
    assert_int_equal(s->run_sync(s, run_delivery_put, &d), TD_ST_OK);
}

static td_st run_outbox(td_conn *c, void *a)
{
    return OPS->outbox_insert(c, a);
}

static td_outbox_rec make_row(const char *issuer, const char *dcard, const char *card, int64_t created)
{
    td_outbox_rec o = {.created_ms = created, .due_ms = created, .event_ms = created, .dcard_seq = 1};
    td_strlcpy(o.issuer_id, issuer, sizeof o.issuer_id);
    td_strlcpy(o.channel, "ISSUER", sizeof o.channel);
    td_strlcpy(o.digital_card_id, dcard, sizeof o.digital_card_id);
    td_strlcpy(o.card_id, card, sizeof o.card_id);
    td_strlcpy(o.operation, "SUSPEND", sizeof o.operation);
    td_strlcpy(o.status, "SUCCESSFUL", sizeof o.status);
    return o;
}

static int64_t add_row(td_store *s, td_outbox_rec o)
{
    assert_int_equal(s->run_sync(s, run_outbox, &o), TD_ST_OK);
    assert_true(o.id > 0);
    return o.id;
}

#define MAX_IDS 64
typedef struct {
    int64_t now, lease;
    int limit;
    int n; /* rows claimed */
    int64_t ids[MAX_IDS];
    td_outbox_rec rows[8]; /* the first few, whole */
} claim_arg;

static void collect_claim(const td_outbox_rec *o, void *arg)
{
    claim_arg *a = arg;
    if (a->n < MAX_IDS) a->ids[a->n] = o->id;
    if (a->n < 8) a->rows[a->n] = *o;
    a->n++;
}

static td_st run_claim(td_conn *c, void *a)
{
    claim_arg *x = a;
    x->n = 0;
    return OPS->outbox_claim(c, x->now, x->lease, x->limit, collect_claim, x);
}

/* Claims at now (lease now + 30 s, up to 100 rows); returns how many. */
static int claim(td_store *s, int64_t now, claim_arg *out)
{
    *out = (claim_arg){.now = now, .lease = now + 30000, .limit = 100};
    assert_int_equal(s->run_sync(s, run_claim, out), TD_ST_OK);
    return out->n;
}

typedef struct {
    char issuer[16];
    int64_t id, lease;
    const char *state;
    int status;
    const char *error;
    int64_t now, retry_at;
} attempt_arg;

static td_st run_attempt(td_conn *c, void *a)
{
    attempt_arg *x = a;
    return OPS->outbox_attempt(c, x->issuer, x->id, x->lease, x->state, x->status, x->error, x->now, x->retry_at);
}

/* An outcome recorded under the row's own issuer and current lease, as the
 * worker records the outcome of its claim (a claimed row carries both); ""
 * and 0 for a row that does not exist. */
static td_st attempt(fixture *f, int64_t id, const char *state, int status, const char *error, int64_t now,
                     int64_t retry_at)
{
    attempt_arg a = {.id = id, .state = state, .status = status, .error = error, .now = now, .retry_at = retry_at};
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT issuer_id FROM outbox WHERE id = %lld", (long long)id);
    db_text(f->loc, a.issuer, sizeof a.issuer, sql);
    snprintf(sql, sizeof sql, "SELECT coalesce(max(lease_until_ms), 0) FROM outbox WHERE id = %lld", (long long)id);
    a.lease = db_int(f->loc, sql);
    return f->s->run_sync(f->s, run_attempt, &a);
}

/* An outcome under a lease the caller names (a worker's claim that may have run out). */
static td_st attempt_leased(fixture *f, int64_t id, int64_t lease, const char *state, int64_t now)
{
    attempt_arg a = {.id = id, .lease = lease, .state = state, .status = 200, .now = now};
    td_strlcpy(a.issuer, "iss1", sizeof a.issuer);
    return f->s->run_sync(f->s, run_attempt, &a);
}

typedef struct {
    const char *issuer;
    int64_t id, now;
    int n;
} replay_arg;

static td_st run_replay(td_conn *c, void *a)
{
    replay_arg *x = a;
    return OPS->outbox_replay(c, x->issuer, x->id, x->now, &x->n);
}

typedef struct {
    td_outbox_rec rows[32];
    int n;
} outbox_rows;

static void collect_outbox(const td_outbox_rec *o, void *arg)
{
    outbox_rows *l = arg;
    if (l->n < 32) l->rows[l->n++] = *o;
}

/* One row as stored, read through outbox_list. */
static td_outbox_rec get_row(td_store *s, const char *issuer, int64_t id)
{
    outbox_rows l = {.n = 0};
    assert_int_equal(OPS->outbox_list(rd(s), issuer, NULL, id - 1, 1, collect_outbox, &l), TD_ST_OK);
    assert_int_equal(l.n, 1);
    assert_true(l.rows[0].id == id);
    return l.rows[0];
}

/* Rows whose head flag (migration 005, kept by triggers) is not what it
 * means: open, and no earlier open row of the same issuer and order key.
 * SQLite's own bookkeeping: the PostgreSQL outbox has no head column (a claim
 * finds each key's first open row itself), so there is nothing to check. */
static int bad_heads(const char *path)
{
    if (test_pg) return 0;
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM outbox AS o WHERE o.head <> "
                           "(o.state IN ('PENDING', 'IN_FLIGHT') AND NOT EXISTS (SELECT 1 FROM outbox AS p "
                           "WHERE p.issuer_id = o.issuer_id AND p.order_key = o.order_key AND p.id < o.id "
                           "AND p.state IN ('PENDING', 'IN_FLIGHT')))",
                           -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* ---- order per order key ---- */

static void test_claim_order(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    put_configured_issuer(s, "iss1");
    int64_t r1 = add_row(s, make_row("iss1", "dc-A", "card-1", 100));
    int64_t r2 = add_row(s, make_row("iss1", "dc-A", "card-1", 110));
    int64_t r3 = add_row(s, make_row("iss1", "dc-B", "card-1", 120));
    assert_string_equal(get_row(s, "iss1", r1).order_key, "dc-A"); /* computed on insert */

    /* the first row of each key: 1 and 3, in id order, now IN_FLIGHT */
    claim_arg c;
    assert_int_equal(claim(s, 1000, &c), 2);
    assert_true(c.ids[0] == r1 && c.ids[1] == r3);
    assert_string_equal(c.rows[0].state, "IN_FLIGHT");
    assert_true(c.rows[0].lease_until_ms == 31000 && c.rows[0].first_attempt_ms == 1000);
    assert_int_equal(c.rows[0].attempts, 0);
    td_outbox_rec g = get_row(s, "iss1", r1);
    assert_string_equal(g.state, "IN_FLIGHT");
    assert_true(g.lease_until_ms == 31000 && g.first_attempt_ms == 1000);
    /* 1 and 3 are held, 2 waits behind 1 */
    assert_int_equal(claim(s, 1001, &c), 0);

    /* 1 failed: retried at 5000; meanwhile nothing of dc-A goes. The rows
     * waiting behind it keep their own due time (PostgreSQL notes apart that
     * they wait: outbox.wait_ms) */
    td_outbox_rec late = make_row("iss1", "dc-A", "card-1", 1050);
    late.due_ms = 7000;
    int64_t r2b = add_row(s, late);
    assert_int_equal(attempt(f, r1, "PENDING", 503, "unavailable", 1100, 5000), TD_ST_OK);
    assert_true(get_row(s, "iss1", r2).due_ms == 110);
    assert_true(get_row(s, "iss1", r2b).due_ms == 7000);
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT wait_ms FROM outbox WHERE id = %lld", (long long)r2);
    if (test_pg) assert_true(db_int(f->loc, sql) == 5000);
    assert_int_equal(claim(s, 2000, &c), 0);
    assert_int_equal(claim(s, 4999, &c), 0);
    /* 1 is due again: claimed again (first attempt kept), 2 still waits */
    assert_int_equal(claim(s, 5000, &c), 1);
    assert_true(c.ids[0] == r1);
    assert_int_equal(c.rows[0].attempts, 1);
    assert_true(c.rows[0].first_attempt_ms == 1000 && c.rows[0].lease_until_ms == 35000);
    /* 1 delivered: 2 goes */
    assert_int_equal(attempt(f, r1, "DELIVERED", 200, NULL, 5100, 0), TD_ST_OK);
    if (test_pg) assert_true(db_int(f->loc, sql) <= 5100); /* its wait is over */
    assert_int_equal(claim(s, 5200, &c), 1);
    assert_true(c.ids[0] == r2);
    /* 2 fails in turn: what waits behind it waits for its retry */
    assert_int_equal(attempt(f, r2, "PENDING", 503, "unavailable", 5210, 8000), TD_ST_OK);
    assert_int_equal(claim(s, 7999, &c), 0);
    assert_int_equal(claim(s, 8000, &c), 1);
    assert_true(c.ids[0] == r2);
    /* 2 dead: the next rows of dc-A go, in order; so does a new row of dc-B once 3 is done */
    int64_t r4 = add_row(s, make_row("iss1", "dc-A", "card-1", 8100));
    int64_t r5 = add_row(s, make_row("iss1", "dc-B", "card-1", 8100));
    assert_int_equal(claim(s, 8200, &c), 0);
    assert_int_equal(attempt(f, r2, "DEAD", 400, "bad request", 8300, 0), TD_ST_OK);
    assert_int_equal(claim(s, 8400, &c), 1);
    assert_true(c.ids[0] == r2b);
    assert_int_equal(attempt(f, r2b, "DELIVERED", 200, NULL, 8450, 0), TD_ST_OK);
    assert_int_equal(claim(s, 8500, &c), 1);
    assert_true(c.ids[0] == r4);
    assert_int_equal(attempt(f, r3, "DELIVERED", 204, NULL, 8600, 0), TD_ST_OK);
    assert_int_equal(claim(s, 8700, &c), 1);
    assert_true(c.ids[0] == r5);
    assert_int_equal(bad_heads(f->loc), 0);
}

static void test_order_keys(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    put_configured_issuer(s, "iss1");
    put_configured_issuer(s, "iss2");
    /* card-level rows: "card:<cardId>", ordered with each other */
    int64_t k1 = add_row(s, make_row("iss1", "", "card-9", 100));
    int64_t k2 = add_row(s, make_row("iss1", "", "card-9", 101));
    assert_string_equal(get_row(s, "iss1", k1).order_key, "card:card-9");
    /* another issuer's card with the same id is not ordered with it */
    int64_t k3 = add_row(s, make_row("iss2", "", "card-9", 102));
    /* a digital card's rows are keyed by the digital card, not its card */
    int64_t k4 = add_row(s, make_row("iss1", "dc-1", "card-9", 103));
    /* a key given by the caller is kept */
    td_outbox_rec o = make_row("iss1", "dc-2", "card-9", 104);
    td_strlcpy(o.order_key, "custom", sizeof o.order_key);
    int64_t k5 = add_row(s, o);
    int64_t k6 = add_row(s, make_row("iss1", "dc-2", "card-9", 105)); /* key dc-2: not behind k5 */
    assert_string_equal(get_row(s, "iss1", k5).order_key, "custom");
    /* USER rows keep their own order per digital card ("msg:" + its key) */
    td_outbox_rec m = make_row("iss1", "dc-1", "card-9", 106);
    td_strlcpy(m.channel, "USER", sizeof m.channel);
    td_strlcpy(m.message, "OTP", sizeof m.message);
    int64_t k7 = add_row(s, m);

    claim_arg c;
    assert_string_equal(get_row(s, "iss1", k7).order_key, "msg:dc-1");
    /* an end-user message does not wait behind its digital card's notification */
    assert_int_equal(claim(s, 1000, &c), 6);
    assert_true(c.ids[0] == k1 && c.ids[1] == k3 && c.ids[2] == k4 && c.ids[3] == k5 && c.ids[4] == k6 &&
                c.ids[5] == k7);
    assert_int_equal(attempt(f, k1, "DELIVERED", 200, NULL, 1100, 0), TD_ST_OK);
    assert_int_equal(attempt(f, k4, "DELIVERED", 200, NULL, 1100, 0), TD_ST_OK);
    assert_int_equal(claim(s, 1200, &c), 1);
    assert_true(c.ids[0] == k2);
    assert_int_equal(bad_heads(f->loc), 0);
}

/* ---- what is claimed ---- */

typedef struct {
    const char *issuer, *dcard, *messages;
    int n;
} cancel_arg;

static td_st run_cancel(td_conn *c, void *a)
{
    cancel_arg *x = a;
    return OPS->outbox_cancel(c, x->issuer, x->dcard, x->messages, &x->n);
}

static void test_claim_filters(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    put_configured_issuer(s, "iss1");
    put_issuer(s, "iss2"); /* no delivery settings */
    int64_t other = add_row(s, make_row("iss2", "dc-9", "card-9", 100));
    /* CANCELLED, DELIVERED and DEAD rows are never claimed, and hold nothing back */
    td_outbox_rec x = make_row("iss1", "dc-1", "card-1", 100);
    td_strlcpy(x.state, "CANCELLED", sizeof x.state);
    int64_t cancelled = add_row(s, x);
    td_strlcpy(x.state, "DELIVERED", sizeof x.state);
    add_row(s, x);
    td_strlcpy(x.state, "DEAD", sizeof x.state);
    add_row(s, x);
    /* a USER row: cancelled while it waits for a retry, the row behind it goes */
    td_outbox_rec m = make_row("iss1", "dc-2", "card-1", 100);
    td_strlcpy(m.channel, "USER", sizeof m.channel);
    td_strlcpy(m.message, "REMINDER", sizeof m.message);
    int64_t reminder = add_row(s, m);
    td_strlcpy(m.message, "DELETION", sizeof m.message);
    int64_t behind = add_row(s, m);
    /* not due yet */
    td_outbox_rec later = make_row("iss1", "dc-3", "card-1", 100);
    later.due_ms = 2000;
    int64_t r_later = add_row(s, later);
    int64_t r1 = add_row(s, make_row("iss1", "dc-1", "card-1", 100));

    claim_arg c;
    assert_int_equal(claim(s, 1000, &c), 2); /* not iss2's, not the closed rows, not dc-3's yet */
    assert_true(c.ids[0] == reminder && c.ids[1] == r1);
    assert_int_equal(attempt(f, reminder, "PENDING", 0, "timeout", 1000, 1500), TD_ST_OK);
    cancel_arg ca = {"iss1", "dc-2", "REMINDER", 0};
    assert_int_equal(s->run_sync(s, run_cancel, &ca), TD_ST_OK);
    assert_int_equal(ca.n, 1);
    assert_int_equal(claim(s, 1100, &c), 1);
    assert_true(c.ids[0] == behind);
    /* the cancelled reminder never comes back, even once "due" */
    assert_int_equal(claim(s, 1600, &c), 0);
    /* due now */
    assert_int_equal(claim(s, 2000, &c), 1);
    assert_true(c.ids[0] == r_later);
    assert_string_equal(get_row(s, "iss1", cancelled).state, "CANCELLED");

    /* iss2 configures its backend: its row goes */
    td_delivery_rec d = make_delivery("iss2");
    assert_int_equal(s->run_sync(s, run_delivery_put, &d), TD_ST_OK);
    assert_int_equal(claim(s, 2100, &c), 1);
    assert_true(c.ids[0] == other);

    /* the limit, in id order */
    int64_t ids[5];
    for (int i = 0; i < 5; i++) {
        char dc[16];
        snprintf(dc, sizeof dc, "dc-l%d", i);
        ids[i] = add_row(s, make_row("iss1", dc, "card-1", 3000));
    }
    c = (claim_arg){.now = 3000, .lease = 9000, .limit = 3};
    assert_int_equal(s->run_sync(s, run_claim, &c), TD_ST_OK);
    assert_int_equal(c.n, 3);
    assert_true(c.ids[0] == ids[0] && c.ids[1] == ids[1] && c.ids[2] == ids[2]);
    c = (claim_arg){.now = 3000, .lease = 9000, .limit = 0};
    assert_int_equal(s->run_sync(s, run_claim, &c), TD_ST_OK);
    assert_int_equal(c.n, 0);
    assert_int_equal(claim(s, 3000, &c), 2);
    assert_true(c.ids[0] == ids[3] && c.ids[1] == ids[4]);
    assert_int_equal(bad_heads(f->loc), 0);
}

/* ---- leases: a worker that crashed mid-delivery ---- */

static void test_lease_expiry(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    put_configured_issuer(s, "iss1");
    int64_t r1 = add_row(s, make_row("iss1", "dc-1", "card-1", 100));
    int64_t r2 = add_row(s, make_row("iss1", "dc-1", "card-1", 101));
    claim_arg c = {.now = 1000, .lease = 2000, .limit = 10};
    assert_int_equal(s->run_sync(s, run_claim, &c), TD_ST_OK);
    assert_int_equal(c.n, 1);
    /* the worker dies holding r1; tokend restarts */
    s->close(s);
    f->s = s = open_store(f->loc);
    assert_string_equal(get_row(s, "iss1", r1).state, "IN_FLIGHT");
    /* leased until 2000: neither r1 nor r2 before then */
    assert_int_equal(claim(s, 1999, &c), 0);
    assert_int_equal(claim(s, 2000, &c), 0); /* lease_until_ms < now */
    assert_int_equal(claim(s, 2001, &c), 1);
    assert_true(c.ids[0] == r1);
    assert_string_equal(c.rows[0].state, "IN_FLIGHT");
    assert_true(c.rows[0].lease_until_ms == 32001 && c.rows[0].first_attempt_ms == 1000);
    assert_int_equal(c.rows[0].attempts, 0); /* a lost attempt is not counted */
    /* that lease runs out too: r1 again, r2 still waits behind it */
    assert_int_equal(claim(s, 40000, &c), 1);
    assert_true(c.ids[0] == r1);
    assert_int_equal(attempt(f, r1, "DELIVERED", 200, NULL, 40001, 0), TD_ST_OK);
    assert_int_equal(claim(s, 40002, &c), 1);
    assert_true(c.ids[0] == r2);
    assert_int_equal(bad_heads(f->loc), 0);
}

/* A runner whose lease ran out (a node that stalled, or died and whose
 * outcome job is late) cannot overwrite what the row's current claim decides:
 * its outcome is fenced by the lease it was given. */
static void test_lease_fences_late_outcome(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    put_configured_issuer(s, "iss1");
    int64_t r1 = add_row(s, make_row("iss1", "dc-1", "card-1", 100));
    claim_arg first = {.now = 1000, .lease = 2000, .limit = 10};
    assert_int_equal(s->run_sync(s, run_claim, &first), TD_ST_OK);
    assert_true(first.n == 1 && first.rows[0].lease_until_ms == 2000);
    /* the lease runs out; another runner claims the row */
    claim_arg second;
    assert_int_equal(claim(s, 2500, &second), 1);
    assert_true(second.ids[0] == r1 && second.rows[0].lease_until_ms == 32500);
    /* the first runner's outcome arrives late: nothing changes */
    assert_int_equal(attempt_leased(f, r1, 2000, "DEAD", 2600), TD_ST_NOT_FOUND);
    td_outbox_rec g = get_row(s, "iss1", r1);
    assert_string_equal(g.state, "IN_FLIGHT");
    assert_true(g.lease_until_ms == 32500 && g.attempts == 0);
    /* the current claim's outcome counts, once */
    assert_int_equal(attempt_leased(f, r1, 32500, "DELIVERED", 2700), TD_ST_OK);
    g = get_row(s, "iss1", r1);
    assert_string_equal(g.state, "DELIVERED");
    assert_int_equal(g.attempts, 1);
    assert_int_equal(attempt_leased(f, r1, 32500, "PENDING", 2800), TD_ST_NOT_FOUND); /* a repeat: closed now */
    assert_string_equal(get_row(s, "iss1", r1).state, "DELIVERED");
    assert_int_equal(bad_heads(f->loc), 0);
}

/* ---- the record of attempts ---- */

static void test_attempts(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    put_configured_issuer(s, "iss1");
    int64_t r1 = add_row(s, make_row("iss1", "dc-1", "card-1", 100));
    int64_t r2 = add_row(s, make_row("iss1", "dc-2", "card-1", 100));
    claim_arg c;
    assert_int_equal(claim(s, 1000, &c), 2);

    assert_int_equal(attempt(f, r1, "PENDING", 500, "HTTP 500", 1100, 3100), TD_ST_OK);
    td_outbox_rec g = get_row(s, "iss1", r1);
    assert_string_equal(g.state, "PENDING");
    assert_int_equal(g.attempts, 1);
    assert_int_equal(g.last_status, 500);
    assert_string_equal(g.last_error, "HTTP 500");
    assert_true(g.due_ms == 3100 && g.done_ms == 0 && g.lease_until_ms == 0 && g.first_attempt_ms == 1000);
    assert_true(g.created_ms == 100);

    /* a long error is cut to 159 bytes, never inside a UTF-8 character */
    char longerr[400];
    memset(longerr, 'x', sizeof longerr - 1);
    longerr[sizeof longerr - 1] = '\0';
    assert_int_equal(claim(s, 3100, &c), 1);
    assert_int_equal(attempt(f, r1, "PENDING", 0, longerr, 3200, 9000), TD_ST_OK);
    g = get_row(s, "iss1", r1);
    assert_int_equal(g.attempts, 2);
    assert_int_equal(g.last_status, 0);
    assert_int_equal(strlen(g.last_error), 159);
    char utf8err[200];
    memset(utf8err, 'y', 158);
    memcpy(utf8err + 158, "\xc3\xa9\xc3\xa9", 5); /* "éé": the first é spans bytes 158-159 */
    assert_int_equal(attempt(f, r1, "PENDING", 0, utf8err, 3300, 9000), TD_ST_OK);
    g = get_row(s, "iss1", r1);
    assert_int_equal(strlen(g.last_error), 158);
    assert_int_equal(g.attempts, 3);

    /* delivered: done now; the last error is the attempt's (none) */
    assert_int_equal(attempt(f, r2, "DELIVERED", 202, NULL, 1500, 0), TD_ST_OK);
    g = get_row(s, "iss1", r2);
    assert_string_equal(g.state, "DELIVERED");
    assert_int_equal(g.attempts, 1);
    assert_int_equal(g.last_status, 202);
    assert_string_equal(g.last_error, "");
    assert_true(g.done_ms == 1500 && g.due_ms == 100 && g.lease_until_ms == 0);
    /* dead */
    assert_int_equal(attempt(f, r1, "DEAD", 404, "not found", 9500, 0), TD_ST_OK);
    g = get_row(s, "iss1", r1);
    assert_string_equal(g.state, "DEAD");
    assert_int_equal(g.attempts, 4);
    assert_int_equal(g.last_status, 404);
    assert_string_equal(g.last_error, "not found");
    assert_true(g.done_ms == 9500);

    /* an unknown row; a state that is not an outcome */
    assert_int_equal(attempt(f, 999999, "DELIVERED", 200, NULL, 1, 0), TD_ST_NOT_FOUND);
    assert_int_equal(attempt(f, r2, "IN_FLIGHT", 200, NULL, 1, 0), TD_ST_INTERNAL);
    assert_int_equal(attempt(f, r2, "CANCELLED", 200, NULL, 1, 0), TD_ST_INTERNAL);
    assert_int_equal(attempt(f, r2, NULL, 200, NULL, 1, 0), TD_ST_INTERNAL);
}

/* outbox_attempts: several outcomes in one call, each with its own status;
 * a late one (its lease gone) changes nothing, the others are recorded. */
typedef struct {
    td_outbox_outcome v[3];
    td_st st[3];
} attempts_arg;

static td_st run_attempts(td_conn *c, void *a)
{
    attempts_arg *x = a;
    return OPS->outbox_attempts(c, x->v, 3, 2000, x->st);
}

static void test_attempts_many(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    put_configured_issuer(s, "iss1");
    int64_t r1 = add_row(s, make_row("iss1", "dc-1", "card-1", 100));
    int64_t r2 = add_row(s, make_row("iss1", "dc-2", "card-1", 100));
    int64_t r3 = add_row(s, make_row("iss1", "dc-3", "card-1", 100));
    int64_t behind = add_row(s, make_row("iss1", "dc-2", "card-1", 100));
    claim_arg c;
    assert_int_equal(claim(s, 1000, &c), 3);
    attempts_arg a = {0};
    int64_t ids[3] = {r1, r2, r3};
    const char *states[3] = {"DELIVERED", "PENDING", "DELIVERED"};
    for (int i = 0; i < 3; i++) {
        a.v[i].id = ids[i];
        td_strlcpy(a.v[i].issuer_id, "iss1", sizeof a.v[i].issuer_id);
        a.v[i].lease_until_ms = 31000;
        td_strlcpy(a.v[i].state, states[i], sizeof a.v[i].state);
        a.v[i].http_status = i == 1 ? 503 : 200;
        td_strlcpy(a.v[i].error, i == 1 ? "HTTP 503" : "", sizeof a.v[i].error);
        a.v[i].retry_at_ms = i == 1 ? 4000 : 0;
    }
    a.v[2].lease_until_ms = 99; /* not the claim's lease: too late */
    assert_int_equal(s->run_sync(s, run_attempts, &a), TD_ST_OK);
    assert_int_equal(a.st[0], TD_ST_OK);
    assert_int_equal(a.st[1], TD_ST_OK);
    assert_int_equal(a.st[2], TD_ST_NOT_FOUND);
    td_outbox_rec g = get_row(s, "iss1", r1);
    assert_string_equal(g.state, "DELIVERED");
    assert_true(g.done_ms == 2000 && g.attempts == 1 && g.last_status == 200);
    g = get_row(s, "iss1", r2);
    assert_string_equal(g.state, "PENDING");
    assert_true(g.due_ms == 4000 && g.attempts == 1 && g.last_status == 503);
    assert_string_equal(g.last_error, "HTTP 503");
    g = get_row(s, "iss1", r3);
    assert_string_equal(g.state, "IN_FLIGHT"); /* the late outcome changed nothing */
    assert_int_equal(g.attempts, 0);
    /* the row behind r2 waits for r2's retry; then r2 goes again, not it */
    assert_int_equal(claim(s, 3999, &c), 0);
    assert_int_equal(claim(s, 4000, &c), 1);
    assert_true(c.ids[0] == r2);
    assert_int_equal(attempt(f, r2, "DELIVERED", 200, NULL, 4100, 0), TD_ST_OK);
    assert_int_equal(claim(s, 4200, &c), 1);
    assert_true(c.ids[0] == behind);
    assert_int_equal(bad_heads(f->loc), 0);
}

/* outbox_next_due: when the next claimable row waiting for its back-off comes
 * due — heads of configured issuers only, strictly after now. */
static void test_next_due(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    int64_t nd = -1;
    assert_int_equal(OPS->outbox_next_due(rd(s), 1000, &nd), TD_ST_OK);
    assert_true(nd == 0); /* no issuer, no row */
    put_configured_issuer(s, "iss1");
    int64_t r1 = add_row(s, make_row("iss1", "dc-1", "card-1", 100));
    int64_t r2 = add_row(s, make_row("iss1", "dc-2", "card-1", 100));
    td_outbox_rec later = make_row("iss1", "dc-2", "card-1", 100);
    later.due_ms = 1500; /* behind r2: not a head, so not claimable when due */
    add_row(s, later);
    td_outbox_rec other = make_row("iss2", "dc-9", "card-9", 100);
    other.due_ms = 1200; /* an issuer without delivery settings */
    add_row(s, other);
    assert_int_equal(OPS->outbox_next_due(rd(s), 1000, &nd), TD_ST_OK);
    assert_true(nd == 0); /* the heads are due already */

    claim_arg c;
    assert_int_equal(claim(s, 1000, &c), 2);
    assert_int_equal(attempt(f, r1, "PENDING", 500, "HTTP 500", 1100, 3100), TD_ST_OK);
    assert_int_equal(attempt(f, r2, "PENDING", 500, "HTTP 500", 1100, 2500), TD_ST_OK);
    assert_int_equal(OPS->outbox_next_due(rd(s), 1100, &nd), TD_ST_OK);
    assert_true(nd == 2500);
    assert_int_equal(OPS->outbox_next_due(rd(s), 2500, &nd), TD_ST_OK);
    assert_true(nd == 3100); /* strictly after now */
    assert_int_equal(attempt(f, r1, "DELIVERED", 200, NULL, 1200, 0), TD_ST_OK);
    assert_int_equal(OPS->outbox_next_due(rd(s), 2500, &nd), TD_ST_OK);
    assert_true(nd == 0);
}

/* ---- dead letters replayed ---- */

static void test_replay(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    put_configured_issuer(s, "iss1");
    put_configured_issuer(s, "iss2");
    int64_t a1 = add_row(s, make_row("iss1", "dc-1", "card-1", 100));
    int64_t a2 = add_row(s, make_row("iss1", "dc-2", "card-1", 100));
    int64_t b1 = add_row(s, make_row("iss2", "dc-9", "card-1", 100));
    int64_t a3 = add_row(s, make_row("iss1", "dc-3", "card-1", 100));
    claim_arg c;
    assert_int_equal(claim(s, 1000, &c), 4);
    assert_int_equal(attempt(f, a1, "DEAD", 400, "bad", 1100, 0), TD_ST_OK);
    assert_int_equal(attempt(f, a2, "DEAD", 404, "gone", 1100, 0), TD_ST_OK);
    assert_int_equal(attempt(f, b1, "DEAD", 400, "bad", 1100, 0), TD_ST_OK);
    assert_int_equal(attempt(f, a3, "DELIVERED", 200, NULL, 1100, 0), TD_ST_OK);
    /* a row behind the dead a1 went meanwhile */
    int64_t a1_next = add_row(s, make_row("iss1", "dc-1", "card-1", 1200));
    assert_int_equal(claim(s, 1300, &c), 1);
    assert_true(c.ids[0] == a1_next);
    assert_int_equal(attempt(f, a1_next, "DELIVERED", 200, NULL, 1400, 0), TD_ST_OK);

    /* one: not another issuer's, not a row that is not dead, not an unknown one */
    replay_arg r = {"iss1", b1, 2000, -1};
    assert_int_equal(s->run_sync(s, run_replay, &r), TD_ST_NOT_FOUND);
    assert_int_equal(r.n, 0);
    assert_string_equal(get_row(s, "iss2", b1).state, "DEAD");
    r = (replay_arg){"iss1", a3, 2000, -1};
    assert_int_equal(s->run_sync(s, run_replay, &r), TD_ST_NOT_FOUND);
    r = (replay_arg){"iss1", 999999, 2000, -1};
    assert_int_equal(s->run_sync(s, run_replay, &r), TD_ST_NOT_FOUND);
    r = (replay_arg){"iss1", -1, 2000, -1}; /* not "all" */
    assert_int_equal(s->run_sync(s, run_replay, &r), TD_ST_NOT_FOUND);
    assert_int_equal(r.n, 0);
    r = (replay_arg){"iss1", a1, 2000, -1};
    assert_int_equal(s->run_sync(s, run_replay, &r), TD_ST_OK);
    assert_int_equal(r.n, 1);
    td_outbox_rec g = get_row(s, "iss1", a1);
    assert_string_equal(g.state, "PENDING");
    assert_true(g.due_ms == 2000 && g.lease_until_ms == 0 && g.done_ms == 0);
    assert_int_equal(g.attempts, 1); /* kept, as the last answer */
    assert_int_equal(g.last_status, 400);
    assert_string_equal(g.last_error, "bad");
    assert_true(g.first_attempt_ms == 1000);
    assert_true(g.replayed_ms == 2000); /* its maximum age starts again here */
    /* again: no longer dead */
    assert_int_equal(s->run_sync(s, run_replay, &r), TD_ST_NOT_FOUND);

    /* the replayed row goes under its id, and ahead of a later row of its key */
    int64_t a1_later = add_row(s, make_row("iss1", "dc-1", "card-1", 2100));
    assert_int_equal(claim(s, 2200, &c), 1);
    assert_true(c.ids[0] == a1);
    assert_int_equal(attempt(f, a1, "DELIVERED", 200, NULL, 2300, 0), TD_ST_OK);
    assert_int_equal(claim(s, 2400, &c), 1);
    assert_true(c.ids[0] == a1_later);

    /* all of an issuer's dead rows: only that issuer's */
    r = (replay_arg){"iss1", 0, 3000, -1};
    assert_int_equal(s->run_sync(s, run_replay, &r), TD_ST_OK);
    assert_int_equal(r.n, 1); /* a2 */
    assert_string_equal(get_row(s, "iss1", a2).state, "PENDING");
    assert_string_equal(get_row(s, "iss2", b1).state, "DEAD");
    r = (replay_arg){"iss1", 0, 3000, -1};
    assert_int_equal(s->run_sync(s, run_replay, &r), TD_ST_OK);
    assert_int_equal(r.n, 0);
    r = (replay_arg){"nobody", 0, 3000, -1};
    assert_int_equal(s->run_sync(s, run_replay, &r), TD_ST_OK);
    assert_int_equal(r.n, 0);
    r = (replay_arg){"iss2", 0, 3000, -1};
    assert_int_equal(s->run_sync(s, run_replay, &r), TD_ST_OK);
    assert_int_equal(r.n, 1);
    assert_int_equal(claim(s, 3000, &c), 2);
    assert_true(c.ids[0] == a2 && c.ids[1] == b1);
    assert_int_equal(bad_heads(f->loc), 0);
}

/* A replayed row that is older than a row of its key already in flight goes
 * first once that one is done; the heads follow the rows' ids. */
static void test_replay_reorders(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    put_configured_issuer(s, "iss1");
    int64_t r1 = add_row(s, make_row("iss1", "dc-1", "card-1", 100));
    int64_t r2 = add_row(s, make_row("iss1", "dc-1", "card-1", 101));
    int64_t r3 = add_row(s, make_row("iss1", "dc-1", "card-1", 102));
    claim_arg c;
    assert_int_equal(claim(s, 1000, &c), 1);
    assert_int_equal(attempt(f, r1, "DEAD", 400, "bad", 1000, 0), TD_ST_OK);
    assert_int_equal(claim(s, 1100, &c), 1);
    assert_true(c.ids[0] == r2);
    assert_int_equal(attempt(f, r2, "PENDING", 503, "busy", 1100, 5000), TD_ST_OK);
    /* r1 replayed: it is the first open row of dc-1 again */
    replay_arg r = {"iss1", r1, 1200, -1};
    assert_int_equal(s->run_sync(s, run_replay, &r), TD_ST_OK);
    assert_int_equal(claim(s, 6000, &c), 1);
    assert_true(c.ids[0] == r1);
    assert_int_equal(attempt(f, r1, "DELIVERED", 200, NULL, 6000, 0), TD_ST_OK);
    assert_int_equal(claim(s, 6100, &c), 1);
    assert_true(c.ids[0] == r2);
    assert_int_equal(attempt(f, r2, "DELIVERED", 200, NULL, 6100, 0), TD_ST_OK);
    assert_int_equal(claim(s, 6200, &c), 1);
    assert_true(c.ids[0] == r3);
    assert_int_equal(bad_heads(f->loc), 0);
    /* a row deleted while open (no verb does; an operator might): the next one leads */
    int64_t r4 = add_row(s, make_row("iss1", "dc-1", "card-1", 103));
    int64_t r5 = add_row(s, make_row("iss1", "dc-1", "card-1", 104));
    char sql[96];
    snprintf(sql, sizeof sql, "DELETE FROM outbox WHERE id IN (%lld, %lld)", (long long)r3, (long long)r4);
    db_exec(f->loc, sql);
    assert_int_equal(bad_heads(f->loc), 0);
    assert_int_equal(claim(s, 90000, &c), 1);
    assert_true(c.ids[0] == r5);
}

/* ---- counts ---- */

static void test_stats(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    int64_t p = -1, fl = -1, d = -1, oldest = -1;
    assert_int_equal(OPS->outbox_stats(rd(s), &p, &fl, &d, &oldest), TD_ST_OK);
    assert_true(p == 0 && fl == 0 && d == 0 && oldest == 0);

    put_configured_issuer(s, "iss1");
    put_issuer(s, "iss2");
    int64_t r1 = add_row(s, make_row("iss1", "dc-1", "card-1", 500));
    add_row(s, make_row("iss1", "dc-1", "card-1", 600)); /* waits behind r1 */
    int64_t r3 = add_row(s, make_row("iss1", "dc-2", "card-1", 700));
    int64_t r4 = add_row(s, make_row("iss1", "dc-3", "card-1", 800));
    add_row(s, make_row("iss2", "dc-9", "card-1", 900)); /* pending; not claimable */
    td_outbox_rec x = make_row("iss1", "dc-4", "card-1", 50);
    td_strlcpy(x.state, "CANCELLED", sizeof x.state);
    add_row(s, x);
    assert_int_equal(OPS->outbox_stats(rd(s), &p, &fl, &d, &oldest), TD_ST_OK);
    assert_true(p == 5 && fl == 0 && d == 0 && oldest == 500);

    claim_arg c;
    assert_int_equal(claim(s, 1000, &c), 3);
    assert_int_equal(attempt(f, r1, "DELIVERED", 200, NULL, 1100, 0), TD_ST_OK);
    assert_int_equal(attempt(f, r4, "DEAD", 400, "bad", 1100, 0), TD_ST_OK);
    assert_int_equal(OPS->outbox_stats(rd(s), &p, &fl, &d, &oldest), TD_ST_OK);
    assert_true(p == 2 && fl == 1 && d == 1 && oldest == 600);
    (void)r3;
    /* NULL outputs are allowed */
    assert_int_equal(OPS->outbox_stats(rd(s), NULL, NULL, NULL, NULL), TD_ST_OK);
    assert_int_equal(bad_heads(f->loc), 0);
}

/* ---- delivery settings ---- */

static td_st get_delivery_in_job(td_conn *c, void *a)
{
    return OPS->delivery_get(c, "iss1", a);
}

static void test_delivery_settings(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    td_delivery_rec d = make_delivery("iss1");
    assert_int_equal(s->run_sync(s, run_delivery_put, &d), TD_ST_NOT_FOUND); /* no such issuer */
    td_delivery_rec g;
    assert_int_equal(OPS->delivery_get(rd(s), "iss1", &g), TD_ST_NOT_FOUND);
    put_issuer(s, "iss1");
    assert_int_equal(OPS->delivery_get(rd(s), "iss1", &g), TD_ST_NOT_FOUND); /* none yet */

    td_strlcpy(d.profile, "webhook", sizeof d.profile);
    td_strlcpy(d.base_url, "https://issuer.example/hooks", sizeof d.base_url);
    td_strlcpy(d.auth, "oauth2", sizeof d.auth);
    d.secret_len = sizeof d.secret_sealed; /* the whole buffer */
    for (size_t i = 0; i < d.secret_len; i++)
        d.secret_sealed[i] = (uint8_t)(i * 13 + 1);
    d.secret_sealed[5] = 0; /* bytes, not a string */
    td_strlcpy(d.oauth_token_url, "https://issuer.example/oauth/token", sizeof d.oauth_token_url);
    td_strlcpy(d.oauth_client_id, "client-1", sizeof d.oauth_client_id);
    td_strlcpy(d.oauth_scope, "notify", sizeof d.oauth_scope);
    td_strlcpy(d.tls_cert_file, "/etc/tokend/client.pem", sizeof d.tls_cert_file);
    td_strlcpy(d.tls_key_file, "/etc/tokend/client.key", sizeof d.tls_key_file);
    td_strlcpy(d.tls_ca_file, "/etc/tokend/ca.pem", sizeof d.tls_ca_file);
    td_strlcpy(d.tls_pinned_key, "sha256//AAAA", sizeof d.tls_pinned_key);
    d.d1_batch_max = 64;
    d.max_age_ms = 3600000;
    d.timeout_ms = 2500;
    td_strlcpy(d.messaging_url, "https://issuer.example/messages", sizeof d.messaging_url);
    d.templates_json = "{\"ACTIVATION\":\"Card \\u2022{last4} is ready in {wallet}\",\"OTP\":\"Code {otp}\"}";
    d.updated_ms = 1234;
    assert_int_equal(s->run_sync(s, run_delivery_put, &d), TD_ST_OK);

    memset(&g, 0x7f, sizeof g);
    assert_int_equal(OPS->delivery_get(rd(s), "iss1", &g), TD_ST_OK);
    assert_string_equal(g.issuer_id, "iss1");
    assert_string_equal(g.profile, "webhook");
    assert_string_equal(g.base_url, d.base_url);
    assert_string_equal(g.auth, "oauth2");
    assert_int_equal(g.secret_len, sizeof d.secret_sealed);
    assert_memory_equal(g.secret_sealed, d.secret_sealed, d.secret_len);
    assert_string_equal(g.oauth_token_url, d.oauth_token_url);
    assert_string_equal(g.oauth_client_id, "client-1");
    assert_string_equal(g.oauth_scope, "notify");
    assert_string_equal(g.tls_cert_file, d.tls_cert_file);
    assert_string_equal(g.tls_key_file, d.tls_key_file);
    assert_string_equal(g.tls_ca_file, d.tls_ca_file);
    assert_string_equal(g.tls_pinned_key, "sha256//AAAA");
    assert_int_equal(g.d1_batch_max, 64);
    assert_true(g.max_age_ms == 3600000);
    assert_int_equal(g.timeout_ms, 2500);
    assert_string_equal(g.messaging_url, d.messaging_url);
    assert_non_null(g.templates_json);
    assert_string_equal(g.templates_json, d.templates_json);
    assert_true(g.updated_ms == 1234);
    td_delivery_rec_free(&g);
    assert_null(g.templates_json);
    td_delivery_rec_free(&g); /* twice is harmless */

    /* replaced whole: no secret, no templates */
    td_delivery_rec d2 = make_delivery("iss1");
    td_strlcpy(d2.profile, "classic", sizeof d2.profile);
    d2.updated_ms = 2000;
    assert_int_equal(s->run_sync(s, run_delivery_put, &d2), TD_ST_OK);
    /* read inside the writer too */
    td_delivery_rec w;
    assert_int_equal(s->run_sync(s, get_delivery_in_job, &w), TD_ST_OK);
    assert_string_equal(w.profile, "classic");
    td_delivery_rec_free(&w);
    assert_int_equal(OPS->delivery_get(rd(s), "iss1", &g), TD_ST_OK);
    assert_string_equal(g.profile, "classic");
    assert_int_equal(g.secret_len, 0);
    assert_string_equal(g.oauth_client_id, "");
    assert_string_equal(g.templates_json, ""); /* NULL stored as "": the defaults */
    assert_true(g.updated_ms == 2000);
    td_delivery_rec_free(&g);
    /* a secret larger than the record holds is a bug in the caller */
    d2.secret_len = sizeof d2.secret_sealed + 1;
    assert_int_equal(s->run_sync(s, run_delivery_put, &d2), TD_ST_INTERNAL);
}

/* ---- durability ---- */

static void test_reopen(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    put_configured_issuer(s, "iss1");
    td_delivery_rec d = make_delivery("iss1");
    d.secret_len = 40;
    memset(d.secret_sealed, 0xa5, d.secret_len);
    d.templates_json = "{\"OTP\":\"{otp}\"}";
    assert_int_equal(s->run_sync(s, run_delivery_put, &d), TD_ST_OK);
    int64_t r1 = add_row(s, make_row("iss1", "dc-1", "card-1", 100));
    int64_t r2 = add_row(s, make_row("iss1", "dc-1", "card-1", 101));
    int64_t r3 = add_row(s, make_row("iss1", "dc-2", "card-1", 102));
    claim_arg c;
    assert_int_equal(claim(s, 1000, &c), 2);
    assert_int_equal(attempt(f, r1, "PENDING", 429, "slow down", 1100, 7000), TD_ST_OK);
    assert_int_equal(attempt(f, r3, "DEAD", 400, "bad", 1100, 0), TD_ST_OK);

    s->close(s);
    f->s = s = open_store(f->loc);
    td_outbox_rec g = get_row(s, "iss1", r1);
    assert_string_equal(g.state, "PENDING");
    assert_string_equal(g.order_key, "dc-1");
    assert_int_equal(g.attempts, 1);
    assert_int_equal(g.last_status, 429);
    assert_string_equal(g.last_error, "slow down");
    assert_true(g.due_ms == 7000 && g.first_attempt_ms == 1000);
    g = get_row(s, "iss1", r3);
    assert_string_equal(g.state, "DEAD");
    assert_true(g.done_ms == 1100);
    td_delivery_rec gd;
    assert_int_equal(OPS->delivery_get(rd(s), "iss1", &gd), TD_ST_OK);
    assert_int_equal(gd.secret_len, 40);
    assert_memory_equal(gd.secret_sealed, d.secret_sealed, 40);
    assert_string_equal(gd.templates_json, d.templates_json);
    td_delivery_rec_free(&gd);
    int64_t p, fl, dd, oldest;
    assert_int_equal(OPS->outbox_stats(rd(s), &p, &fl, &dd, &oldest), TD_ST_OK);
    assert_true(p == 2 && fl == 0 && dd == 1 && oldest == 100);
    /* the order survives: r2 still waits for r1 */
    assert_int_equal(claim(s, 6999, &c), 0);
    assert_int_equal(claim(s, 7000, &c), 1);
    assert_true(c.ids[0] == r1);
    assert_int_equal(attempt(f, r1, "DELIVERED", 200, NULL, 7100, 0), TD_ST_OK);
    assert_int_equal(claim(s, 7200, &c), 1);
    assert_true(c.ids[0] == r2);
    assert_int_equal(bad_heads(f->loc), 0);
}

/* ---- migration 005 on a database written before it ---- */

static void exec_sql(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s: %s", sql, msg ? msg : "?");
}

/* The fixture's store closed and its file replaced by one with the first n
 * migrations applied, as an older tokend left it. */
static sqlite3 *db_at_migration(fixture *f, int n)
{
    f->s->close(f->s);
    f->s = NULL;
    remove_db(f->loc);
    assert_true(td_sqlite_migration_count > n);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->loc, &db), SQLITE_OK);
    exec_sql(db, "CREATE TABLE schema_migrations(version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)");
    for (int i = 0; i < n; i++) {
        exec_sql(db, td_sqlite_migrations[i]);
        char sql[128];
        snprintf(sql, sizeof sql, "INSERT INTO schema_migrations VALUES (%d, 1)", i + 1);
        exec_sql(db, sql);
    }
    return db;
}

/* SQLite's migration 005 (the PostgreSQL schema starts after it). */
static void test_migration_backfill(void **state)
{
    SQLITE_ONLY();
    fixture *f = *state;
    /* a database at migration 4, as tokend left it before this issue */
    sqlite3 *db = db_at_migration(f, 4);
    exec_sql(db, "INSERT INTO issuers(id, display_name, created_ms) VALUES ('iss1', 'iss1', 1), "
                 "('iss2', 'iss2', 1)");
    exec_sql(db, "INSERT INTO outbox(id, issuer_id, channel, digital_card_id, card_id, created_ms, due_ms, state) "
                 "VALUES (1, 'iss1', 'ISSUER', 'dc-1', 'card-1', 10, 10, 'PENDING'), "
                 "(2, 'iss1', 'ISSUER', '', 'card-1', 11, 11, 'PENDING'), "
                 "(3, 'iss1', 'USER', 'dc-1', 'card-1', 12, 12, 'PENDING'), "
                 "(4, 'iss1', 'ISSUER', '', 'card-1', 13, 13, 'PENDING'), "
                 "(5, 'iss1', 'USER', 'dc-2', 'card-1', 14, 14, 'CANCELLED'), "
                 "(6, 'iss1', 'USER', 'dc-2', 'card-1', 15, 15, 'PENDING'), "
                 "(7, 'iss2', 'ISSUER', '', 'card-1', 16, 16, 'PENDING')");
    sqlite3_close(db);

    f->s = open_store(f->loc); /* applies 005 */
    td_store *s = f->s;
    outbox_rows l = {.n = 0};
    assert_int_equal(OPS->outbox_list(rd(s), "iss1", NULL, 0, 100, collect_outbox, &l), TD_ST_OK);
    assert_int_equal(l.n, 6);
    static const char *const keys[] = {"dc-1", "card:card-1", "msg:dc-1", "card:card-1", "msg:dc-2", "msg:dc-2"};
    for (int i = 0; i < 6; i++) {
        assert_string_equal(l.rows[i].order_key, keys[i]);
        assert_int_equal(l.rows[i].attempts, 0);
        assert_int_equal(l.rows[i].last_status, 0);
        assert_string_equal(l.rows[i].last_error, "");
        assert_true(l.rows[i].first_attempt_ms == 0 && l.rows[i].lease_until_ms == 0 && l.rows[i].done_ms == 0);
    }
    /* the old rows go in order like new ones: the first of each key */
    td_delivery_rec d = make_delivery("iss1");
    assert_int_equal(s->run_sync(s, run_delivery_put, &d), TD_ST_OK);
    d = make_delivery("iss2");
    assert_int_equal(s->run_sync(s, run_delivery_put, &d), TD_ST_OK);
    int64_t r8 = add_row(s, make_row("iss1", "dc-1", "card-1", 20)); /* behind 1 (3 is a message: its own key) */
    claim_arg c;
    assert_int_equal(claim(s, 1000, &c), 5);
    assert_true(c.ids[0] == 1 && c.ids[1] == 2 && c.ids[2] == 3 && c.ids[3] == 6 && c.ids[4] == 7);
    assert_int_equal(attempt(f, 1, "DELIVERED", 200, NULL, 1100, 0), TD_ST_OK);
    assert_int_equal(attempt(f, 2, "DELIVERED", 200, NULL, 1100, 0), TD_ST_OK);
    assert_int_equal(claim(s, 1200, &c), 2);
    assert_true(c.ids[0] == 4 && c.ids[1] == r8);
    assert_int_equal(bad_heads(f->loc), 0);
}

/* ---- migration 007: what a row says about its digital card ---- */

/* SQLite's migration 007 on a v6 database (the PostgreSQL schema starts after it). */
static void test_migration_snapshot(void **state)
{
    SQLITE_ONLY();
    fixture *f = *state;
    sqlite3 *db = db_at_migration(f, 6);
    exec_sql(db, "INSERT INTO issuers(id, display_name, created_ms) VALUES ('iss1', 'iss1', 1)");
    /* dc-1 SUSPENDED (state 2) at seq 5, dc-2 ACTIVE (1) at seq 3 */
    exec_sql(db, "INSERT INTO digital_cards(id, issuer_id, card_id, state, seq, verdict, wallet_provider_id, "
                 "token_storage_id, is_primary, correlation_id, digitize_op_id, last4, created_ms, updated_ms) VALUES "
                 "('dc-1', 'iss1', 'card-1', 2, 5, 0, 'APPLE_PAY', 'SE-1', 1, 'c1', 'op1', '1111', 1, 1), "
                 "('dc-2', 'iss1', 'card-1', 1, 3, 0, 'GOOGLE_PAY', '', 0, 'c2', 'op2', '2222', 1, 1)");
    exec_sql(db, "INSERT INTO outbox(id, issuer_id, channel, digital_card_id, card_id, dcard_seq, created_ms, due_ms, "
                 "state, order_key) VALUES "
                 "(1, 'iss1', 'ISSUER', 'dc-1', 'card-1', 5, 10, 10, 'PENDING', 'dc-1'), " /* card as the row left it */
                 "(2, 'iss1', 'ISSUER', 'dc-1', 'card-1', 4, 11, 11, 'DEAD', 'dc-1'), "    /* card changed since */
                 "(3, 'iss1', 'ISSUER', 'dc-2', 'card-1', 3, 12, 12, 'DELIVERED', 'dc-2'), " /* never sent again */
                 "(4, 'iss1', 'ISSUER', '', 'card-1', 1, 13, 13, 'PENDING', 'card:card-1'), "
                 "(5, 'iss1', 'ISSUER', 'dc-9', 'card-1', 1, 14, 14, 'PENDING', 'dc-9')"); /* card gone */
    sqlite3_close(db);

    f->s = open_store(f->loc); /* applies 007 */
    outbox_rows l = {.n = 0};
    assert_int_equal(OPS->outbox_list(rd(f->s), "iss1", NULL, 0, 100, collect_outbox, &l), TD_ST_OK);
    assert_int_equal(l.n, 5);
    assert_string_equal(l.rows[0].token_storage_id, "SE-1");
    assert_string_equal(l.rows[0].last4, "1111");
    assert_true(l.rows[0].is_primary);
    assert_int_equal(l.rows[0].dcard_state, TD_DC_SUSPENDED);
    assert_string_equal(l.rows[1].last4, "1111");
    assert_int_equal(l.rows[1].dcard_state, -1);
    assert_string_equal(l.rows[2].last4, ""); /* delivered rows are left as they are */
    assert_int_equal(l.rows[2].dcard_state, -1);
    assert_int_equal(l.rows[3].dcard_state, -1);
    assert_string_equal(l.rows[3].last4, "");
    assert_false(l.rows[4].is_primary);
    assert_int_equal(l.rows[4].dcard_state, -1);

    /* new rows keep what they are given; card-level rows say nothing of a state */
    td_outbox_rec o = make_row("iss1", "dc-2", "card-1", 20);
    td_strlcpy(o.token_storage_id, "SE-2", sizeof o.token_storage_id);
    td_strlcpy(o.last4, "2222", sizeof o.last4);
    o.is_primary = true;
    o.dcard_state = TD_DC_ACTIVE;
    int64_t id = add_row(f->s, o);
    td_outbox_rec c = make_row("iss1", "", "card-1", 21);
    c.dcard_state = TD_DC_ACTIVE;
    int64_t cid = add_row(f->s, c);
    l.n = 0;
    assert_int_equal(OPS->outbox_list(rd(f->s), "iss1", NULL, id - 1, 100, collect_outbox, &l), TD_ST_OK);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.rows[0].id, id);
    assert_string_equal(l.rows[0].token_storage_id, "SE-2");
    assert_string_equal(l.rows[0].last4, "2222");
    assert_true(l.rows[0].is_primary);
    assert_int_equal(l.rows[0].dcard_state, TD_DC_ACTIVE);
    assert_int_equal(l.rows[1].id, cid);
    assert_int_equal(l.rows[1].dcard_state, -1);
}

/* ---- the claim at scale (printed, not gated) ---- */

typedef struct {
    int n;
} perf_arg;

static td_st run_fill(td_conn *c, void *a)
{
    perf_arg *p = a;
    for (int i = 0; i < p->n; i++) {
        char dc[32];
        snprintf(dc, sizeof dc, "dc-%05d", i % 20000); /* interleaved: many cards active at once */
        td_outbox_rec o = make_row("iss1", dc, "card-1", 1000 + i / 1000);
        td_st st = OPS->outbox_insert(c, &o);
        if (st != TD_ST_OK) return st;
    }
    return TD_ST_OK;
}

typedef struct {
    claim_arg claim;
    int64_t *ids;
    int n;
    int cap;
    int64_t verb_us; /* the verb alone, without the commit */
} big_claim;

static void collect_big(const td_outbox_rec *o, void *arg)
{
    big_claim *b = arg;
    if (b->n < b->cap) b->ids[b->n] = o->id;
    b->n++;
}

static td_st run_big_claim(td_conn *c, void *a)
{
    big_claim *b = a;
    b->n = 0;
    int64_t t0 = td_mono_us();
    td_st st = OPS->outbox_claim(c, b->claim.now, b->claim.lease, b->claim.limit, collect_big, b);
    b->verb_us = td_mono_us() - t0;
    return st;
}

/* Records a failed attempt (retry in an hour) for ids [from, from + n),
 * claimed with lease until `lease`. */
typedef struct {
    const char *issuer;
    int64_t from;
    int n;
    int64_t now, lease;
} fail_arg;

static td_st run_fail(td_conn *c, void *a)
{
    fail_arg *x = a;
    for (int i = 0; i < x->n; i++) {
        td_st st = OPS->outbox_attempt(c, x->issuer, x->from + i, x->lease, "PENDING", 503, "down", x->now,
                                       x->now + 3600000);
        if (st != TD_ST_OK) return st;
    }
    return TD_ST_OK;
}

static td_st run_deliver(td_conn *c, void *a)
{
    fail_arg *x = a;
    for (int i = 0; i < x->n; i++) {
        td_st st = OPS->outbox_attempt(c, x->issuer, x->from + i, x->lease, "DELIVERED", 200, NULL, x->now, 0);
        if (st != TD_ST_OK) return st;
    }
    return TD_ST_OK;
}

static double ms_since(int64_t t0)
{
    return (double)(td_mono_us() - t0) / 1000.0;
}

static void print_plan(const char *path)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    /* the claim statement of src/store/sqlite/outbox.c */
    const char *sql = "EXPLAIN QUERY PLAN UPDATE outbox SET state = 'IN_FLIGHT', lease_until_ms = ?3, "
                      "first_attempt_ms = CASE WHEN first_attempt_ms = 0 THEN ?1 ELSE first_attempt_ms END "
                      "WHERE id IN (SELECT o.id FROM outbox AS o INDEXED BY outbox_heads_due "
                      "WHERE o.issuer_id = ?4 AND o.head = 1 AND o.due_ms <= ?1 "
                      "AND (o.state = 'PENDING' OR (o.state = 'IN_FLIGHT' AND o.lease_until_ms < ?1)) "
                      "ORDER BY o.due_ms, o.id LIMIT ?2) RETURNING id";
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    printf("claim plan:\n");
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *detail = (const char *)sqlite3_column_text(st, 3);
        printf("  %s\n", detail);
        assert_null(strstr(detail, "TEMP B-TREE")); /* no sort */
        assert_null(strstr(detail, "SCAN outbox")); /* never the whole table */
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_claim_scale(void **state)
{
    fixture *f = *state;
    td_store *s = f->s;
    put_configured_issuer(s, "iss1");
    enum { ROWS = 200000, KEYS = 20000 };
    perf_arg p = {.n = ROWS};
    int64_t t0 = td_mono_us();
    assert_int_equal(s->run_sync(s, run_fill, &p), TD_ST_OK);
    printf("insert %d rows over %d keys: %.0f ms (%.1f us/row)\n", ROWS, KEYS, ms_since(t0),
           ms_since(t0) * 1000.0 / ROWS);
    if (!test_pg) print_plan(f->loc); /* SQLite's EXPLAIN QUERY PLAN of its claim statement */

    big_claim b = {.claim = {.now = 5000, .lease = 60000, .limit = 500}, .cap = KEYS};
    b.ids = calloc(KEYS, sizeof *b.ids);
    assert_non_null(b.ids);
    t0 = td_mono_us();
    assert_int_equal(s->run_sync(s, run_big_claim, &b), TD_ST_OK);
    printf("claim 500 of %d pending: %.2f ms (verb %.2f ms, the rest is the commit)\n", ROWS, ms_since(t0),
           (double)b.verb_us / 1000.0);
    assert_int_equal(b.n, 500);
    for (int i = 0; i < 500; i++)
        assert_true(b.ids[i] == i + 1); /* the first row of each of the first 500 keys */
    /* delivered: each key's next row becomes its head (the triggers) */
    fail_arg fa = {.issuer = "iss1", .from = 1, .n = 500, .now = 5000, .lease = b.claim.lease};
    t0 = td_mono_us();
    assert_int_equal(s->run_sync(s, run_deliver, &fa), TD_ST_OK);
    printf("record 500 deliveries in one job: %.2f ms\n", ms_since(t0));
    /* the next 500, past the 500 in flight */
    t0 = td_mono_us();
    assert_int_equal(s->run_sync(s, run_big_claim, &b), TD_ST_OK);
    printf("claim the next 500 (500 in flight): %.2f ms (verb %.2f ms)\n", ms_since(t0), (double)b.verb_us / 1000.0);
    assert_int_equal(b.n, 500);
    assert_true(b.ids[0] == 501 && b.ids[499] == 1000);

    int64_t pend, fl, dead, oldest;
    t0 = td_mono_us();
    assert_int_equal(OPS->outbox_stats(rd(s), &pend, &fl, &dead, &oldest), TD_ST_OK);
    printf("stats: %.2f ms\n", ms_since(t0));
    assert_true(pend == ROWS - 1000 && fl == 500 && dead == 0 && oldest == 1000);

    /* the receiver is down: every key's first row waits for a retry an hour
     * away, 180,000 rows wait behind them. A claim finds nothing, quickly. */
    b.claim.limit = KEYS;
    t0 = td_mono_us();
    assert_int_equal(s->run_sync(s, run_big_claim, &b), TD_ST_OK);
    printf("claim the other %d heads at once: %.0f ms (verb %.0f ms)\n", KEYS - 500, ms_since(t0),
           (double)b.verb_us / 1000.0);
    assert_int_equal(b.n, KEYS - 500); /* 1001..20000 and the new heads 20001..20500 */
    b.claim.limit = 500;
    assert_int_equal(s->run_sync(s, run_big_claim, &b), TD_ST_OK); /* all held */
    assert_int_equal(b.n, 0);
    /* every head (ids 501..20500) failed, recorded 500 per job as a worker would */
    t0 = td_mono_us();
    for (int64_t from = 501; from <= KEYS + 500; from += 500) {
        fa = (fail_arg){.issuer = "iss1", .from = from, .n = 500, .now = 5000, .lease = b.claim.lease};
        assert_int_equal(s->run_sync(s, run_fail, &fa), TD_ST_OK);
    }
    printf("record %d failed attempts, 500 per job: %.2f ms per job\n", KEYS, ms_since(t0) / (KEYS / 500));
    b.claim.now = 70000; /* past every lease, before every retry */
    t0 = td_mono_us();
    assert_int_equal(s->run_sync(s, run_big_claim, &b), TD_ST_OK);
    printf("claim with every head waiting for a retry (%d heads, %d rows behind): %.2f ms (verb %.2f ms)\n", KEYS,
           ROWS - KEYS, ms_since(t0), (double)b.verb_us / 1000.0);
    assert_int_equal(b.n, 0);
    /* one key delivered: its next row is the only one that goes */
    b.claim.now = 70001;
    assert_int_equal(attempt(f, 507, "DELIVERED", 200, NULL, 70001, 0), TD_ST_OK);
    t0 = td_mono_us();
    assert_int_equal(s->run_sync(s, run_big_claim, &b), TD_ST_OK);
    printf("claim 1 among the waiting: %.2f ms (verb %.2f ms)\n", ms_since(t0), (double)b.verb_us / 1000.0);
    assert_int_equal(b.n, 1);
    assert_true(b.ids[0] == 507 + KEYS);
    assert_int_equal(bad_heads(f->loc), 0);
    free(b.ids);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    if (td_crypto_init() != 0) return 1;
    test_db_init();
    const struct CMUnitTest tests[] = {
        T(test_claim_order),
        T(test_order_keys),
        T(test_claim_filters),
        T(test_lease_expiry),
        T(test_lease_fences_late_outcome),
        T(test_attempts),
        T(test_attempts_many),
        T(test_next_due),
        T(test_replay),
        T(test_replay_reorders),
        T(test_stats),
        T(test_delivery_settings),
        T(test_reopen),
        T(test_migration_backfill),
        T(test_migration_snapshot),
        T(test_claim_scale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
