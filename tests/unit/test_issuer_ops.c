/* test_issuer_ops.c — the Issuer API's use cases against a real store
 * (SQLite or PostgreSQL as TD_TEST_STORE says, test_db.h) and the simulated
 * TSP: registering cards (conflicts, the sealed PAN, no PAN
 * anywhere else), the reads and their tenancy, issuer operations on digital
 * cards (refusals without a TSP call, suspend/resume/delete, repeats, the
 * activation and cancellation of a pending card, TSP failures recorded as
 * FAILED operations), card operations (suspend/resume leave digital cards
 * alone; a delete cascades, and a partial failure is finished by a retry),
 * and the CARD token's JSON. Each test gets a fresh store: its own SQLite
 * file under $TD_TEST_TMP, or the emptied PostgreSQL database at
 * $TD_TEST_PG_URL. */
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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "service/cards.h"
#include "util/util.h"

#define TEST_DB_TAG "issuer-ops"
#include "test_db.h"

#define ISSUER "ISSUER0001"
#define OTHER "ISSUER0002"
#define PAN1 "4111111111111111"
#define PAN2 "5555555555554444"

typedef struct {
    td_store *s;
    td_config cfg;
    td_svc svc;
    char loc[TEST_LOC_MAX]; /* the SQLite file, or the PostgreSQL URL (test_db.h) */
} fixture;

static const td_store_ops *OPS; /* the store's verbs, set by setup */

/* ---- the simulated TSP (service/tsp.h) ---- */

/* Calls made, whatever their result. */
static uint64_t tsp_calls(fixture *f)
{
    uint64_t by[TD_TSP_N_STATUS], n = 0;
    td_tsp_stats(f->svc.tsp, by);
    for (int i = 0; i < TD_TSP_N_STATUS; i++)
        n += by[i];
    return n;
}

static void tsp_mode(fixture *f, const char *mode, int count)
{
    assert_int_equal(td_tsp_sim_set(f->svc.tsp, mode, count), 0);
}

/* ---- fixture ---- */

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    test_store_new(f->loc, sizeof f->loc, "t");
    f->s = test_store_open(f->loc);
    OPS = f->s->ops;
    td_random_bytes(f->cfg.master_key, sizeof f->cfg.master_key);
    f->svc.store = f->s;
    f->svc.cfg = &f->cfg;
    f->svc.tsp = td_tsp_new_simulated();
    assert_non_null(f->svc.tsp);
    td_tsp_sim_set_timeout_ms(f->svc.tsp, 0); /* a simulated timeout answers at once */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    td_tsp_free(f->svc.tsp);
    f->s->close(f->s);
    test_store_remove(f->loc);
    free(f);
    return 0;
}

/* ---- running a command and waiting for its answer ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} waiter;

static void wake(td_write *w)
{
    waiter *wt = w->face;
    pthread_mutex_lock(&wt->mu);
    wt->done = true;
    pthread_cond_signal(&wt->cv);
    pthread_mutex_unlock(&wt->mu);
}

/* The face's part, reduced to what the tests look at. */
static void render_ok(td_write *w)
{
    w->status = 200;
    w->body = strdup("{}");
}

/* Starts a use case (which answers through w->complete, at once or after the
 * commit) and waits for the answer. Returns the error code. */
static td_err wait_for(fixture *f, td_write *w, void (*start)(td_svc *, td_write *))
{
    waiter wt = {.done = false};
    pthread_mutex_init(&wt.mu, NULL);
    pthread_cond_init(&wt.cv, NULL);
    w->face = &wt;
    w->complete = wake;
    w->render = render_ok;
    start(&f->svc, w);
    pthread_mutex_lock(&wt.mu);
    while (!wt.done)
        pthread_cond_wait(&wt.cv, &wt.mu);
    pthread_mutex_unlock(&wt.mu);
    pthread_cond_destroy(&wt.cv);
    pthread_mutex_destroy(&wt.mu);
    free(w->body);
    w->body = NULL;
    return w->err.code;
}

/* wait_for, then the command's own cleanup. */
static td_err run_cmd(fixture *f, td_write *w, void (*start)(td_svc *, td_write *))
{
    td_err e = wait_for(f, w, start);
    if (w->dispose) w->dispose(w);
    return e;
}

static void start_register(td_svc *svc, td_write *w)
{
    td_svc_register_card(svc, (td_register_card *)w);
}
static void start_dcard_op(td_svc *svc, td_write *w)
{
    td_svc_dcard_op(svc, (td_dcard_op *)w);
}
static void start_card_op(td_svc *svc, td_write *w)
{
    td_svc_card_op(svc, (td_card_op_cmd *)w);
}
static void start_tokenize(td_svc *svc, td_write *w)
{
    td_svc_tokenize(svc, (td_tokenize *)w);
}

static td_err register_card_as(fixture *f, const char *issuer, const char *card_id, const char *pan,
                               td_register_card *out)
{
    td_register_card cmd;
    memset(&cmd, 0, sizeof cmd);
    td_strlcpy(cmd.issuer_id, issuer, sizeof cmd.issuer_id);
    td_strlcpy(cmd.card_id, card_id, sizeof cmd.card_id);
    td_strlcpy(cmd.consumer_id, "cons-42", sizeof cmd.consumer_id);
    td_strlcpy(cmd.pan, pan, sizeof cmd.pan);
    td_strlcpy(cmd.expiry, "1249", sizeof cmd.expiry);
    td_strlcpy(cmd.phone, "+33 6 12 34 56 78", sizeof cmd.phone);
    td_strlcpy(cmd.email, "jane@example.com", sizeof cmd.email);
    cmd.state = TD_CS_ACTIVE;
    td_err e = run_cmd(f, &cmd.w, start_register);
    if (out) *out = cmd;
    return e;
}

static void register_card(fixture *f, const char *card_id, const char *pan)
{
    assert_int_equal(register_card_as(f, ISSUER, card_id, pan, NULL), TD_OK);
}

/* A tokenization of the registered card: a wallet score of 5 is GREEN
 * (ACTIVE), 3 is YELLOW (PENDING_IDV). Returns the digital card id. */
static void tokenize(fixture *f, const char *card_id, int wallet_score, char out[65])
{
    static atomic_int n;
    td_tokenize cmd;
    memset(&cmd, 0, sizeof cmd);
    td_strlcpy(cmd.issuer_id, ISSUER, sizeof cmd.issuer_id);
    snprintf(cmd.correlation_id, sizeof cmd.correlation_id, "corr-%d", atomic_fetch_add(&n, 1));
    td_strlcpy(cmd.card_id, card_id, sizeof cmd.card_id);
    td_strlcpy(cmd.wallet_provider_id, "APPLE_PAY", sizeof cmd.wallet_provider_id);
    td_strlcpy(cmd.token_requestor_id, "40010030273", sizeof cmd.token_requestor_id);
    cmd.is_primary = true;
    cmd.wallet_score = wallet_score;
    cmd.device_json = strdup("{\"id\":\"dev-1\",\"type\":\"PHONE\"}");
    assert_int_equal(wait_for(f, &cmd.w, start_tokenize), TD_OK);
    json_t *v = json_loads(cmd.answer_json, 0, NULL);
    assert_non_null(v);
    td_strlcpy(out, json_string_value(json_object_get(v, "digitalCardId")), 65);
    json_decref(v);
    cmd.w.dispose(&cmd.w);
}

/* A digital card written directly, in any state (DECLINED, DELETED,
 * suspended by another party), with its DIGITIZE operation. */
typedef struct {
    td_dcard_rec dc;
    td_operation_rec op;
} dc_seed;

static td_st run_seed(td_conn *c, void *arg)
{
    dc_seed *s = arg;
    td_st st = OPS->dcard_insert(c, &s->dc);
    if (st == TD_ST_OK) st = OPS->op_insert(c, &s->op);
    return st;
}

static void seed_dcard(fixture *f, const char *card_id, td_dcard_state state, td_suspenders by, char out[65])
{
    static atomic_int n;
    int64_t now = td_now_ms();
    dc_seed s;
    memset(&s, 0, sizeof s);
    td_new_dcard_id(s.dc.id);
    td_new_operation_id(s.dc.digitize_op_id);
    td_strlcpy(s.dc.issuer_id, ISSUER, sizeof s.dc.issuer_id);
    td_strlcpy(s.dc.card_id, card_id, sizeof s.dc.card_id);
    s.dc.d.state = state;
    s.dc.d.suspended_by = by;
    s.dc.d.seq = 2;
    s.dc.verdict = state == TD_DC_DECLINED ? TD_VERDICT_RED : TD_VERDICT_GREEN;
    td_strlcpy(s.dc.wallet_provider_id, "APPLE_PAY", sizeof s.dc.wallet_provider_id);
    snprintf(s.dc.correlation_id, sizeof s.dc.correlation_id, "seed-%d", atomic_fetch_add(&n, 1));
    td_strlcpy(s.dc.last4, "1111", sizeof s.dc.last4);
    s.dc.device_json = "{}";
    s.dc.idv_json = "[]";
    s.dc.answer_json = "{}";
    s.dc.created_ms = s.dc.updated_ms = now;
    td_strlcpy(s.op.id, s.dc.digitize_op_id, sizeof s.op.id);
    td_strlcpy(s.op.issuer_id, ISSUER, sizeof s.op.issuer_id);
    td_strlcpy(s.op.digital_card_id, s.dc.id, sizeof s.op.digital_card_id);
    td_strlcpy(s.op.card_id, card_id, sizeof s.op.card_id);
    td_strlcpy(s.op.operation, "DIGITIZE", sizeof s.op.operation);
    td_strlcpy(s.op.status, state == TD_DC_DECLINED ? "FAILED" : "SUCCESSFUL", sizeof s.op.status);
    td_strlcpy(s.op.requestor_type, "TSP", sizeof s.op.requestor_type);
    s.op.start_ms = s.op.end_ms = now;
    assert_int_equal(f->s->run_sync(f->s, run_seed, &s), TD_ST_OK);
    td_strlcpy(out, s.dc.id, 65);
}

/* ---- reading back ---- */

static td_dcard_rec get_dc(fixture *f, const char *id)
{
    td_dcard_rec dc;
    td_error e = {0};
    assert_int_equal(td_svc_get_dcard(&f->svc, ISSUER, id, &dc, &e), TD_OK);
    return dc;
}

static td_dcard_state dc_state(fixture *f, const char *id)
{
    td_dcard_rec dc = get_dc(f, id);
    td_dcard_state s = dc.d.state;
    td_dcard_rec_free(&dc);
    return s;
}

static td_operation_rec get_op(fixture *f, const char *id)
{
    td_operation_rec o;
    td_error e = {0};
    assert_int_equal(td_svc_get_operation(&f->svc, ISSUER, id, &o, &e), TD_OK);
    return o;
}

static td_card_state card_state(fixture *f, const char *card_id)
{
    td_card_rec c;
    td_error e = {0};
    assert_int_equal(td_svc_get_card(&f->svc, ISSUER, card_id, &c, &e), TD_OK);
    return c.state;
}

#define MAX_ROWS 64
typedef struct {
    td_outbox_rec rows[MAX_ROWS];
    int n;
} outbox;

static void collect_row(const td_outbox_rec *o, void *arg)
{
    outbox *b = arg;
    if (b->n < MAX_ROWS) b->rows[b->n++] = *o;
}

static outbox *read_outbox(fixture *f)
{
    static outbox b;
    memset(&b, 0, sizeof b);
    assert_int_equal(OPS->outbox_list(f->s->reader(f->s), ISSUER, NULL, 0, MAX_ROWS, collect_row, &b), TD_ST_OK);
    return &b;
}

/* The ISSUER rows about this digital card ("" = card-level rows) and operation. */
static int count_notices(fixture *f, const char *dcard_id, const char *operation)
{
    outbox *b = read_outbox(f);
    int n = 0;
    for (int i = 0; i < b->n; i++)
        n += !strcmp(b->rows[i].channel, "ISSUER") && !strcmp(b->rows[i].digital_card_id, dcard_id) &&
             !strcmp(b->rows[i].operation, operation);
    return n;
}

static const td_outbox_rec *last_notice(fixture *f, const char *dcard_id, const char *operation)
{
    outbox *b = read_outbox(f);
    const td_outbox_rec *r = NULL;
    for (int i = 0; i < b->n; i++)
        if (!strcmp(b->rows[i].channel, "ISSUER") && !strcmp(b->rows[i].digital_card_id, dcard_id) &&
            !strcmp(b->rows[i].operation, operation))
            r = &b->rows[i];
    assert_non_null(r);
    return r;
}

typedef struct {
    const char *id;
    int n;
} timer_count;

static void count_timer(const td_timer_rec *t, void *arg)
{
    timer_count *tc = arg;
    tc->n += !strcmp(t->digital_card_id, tc->id);
}

static int pending_timers(fixture *f, const char *dcard_id)
{
    timer_count tc = {dcard_id, 0};
    assert_int_equal(OPS->timer_due(f->s->reader(f->s), INT64_MAX, 1000, count_timer, &tc), TD_ST_OK);
    return tc.n;
}

/* ---- operations ---- */

static td_err dcard_op_as(fixture *f, const char *issuer, const char *id, td_dcard_ev type, td_dcard_op *cmd)
{
    memset(cmd, 0, sizeof *cmd);
    td_strlcpy(cmd->issuer_id, issuer, sizeof cmd->issuer_id);
    td_strlcpy(cmd->digital_card_id, id, sizeof cmd->digital_card_id);
    cmd->type = type;
    td_strlcpy(cmd->reason, "Lost phone", sizeof cmd->reason);
    td_strlcpy(cmd->reason_code, "DEVICE_LOST", sizeof cmd->reason_code);
    td_strlcpy(cmd->correlation_id, "x-corr-1", sizeof cmd->correlation_id);
    return run_cmd(f, &cmd->w, start_dcard_op);
}

/* An operation whose record the test does not look at. */
static td_err dcard_op(fixture *f, const char *id, td_dcard_ev type)
{
    td_dcard_op cmd;
    td_err e = dcard_op_as(f, ISSUER, id, type, &cmd);
    td_dcard_rec_free(&cmd.after);
    return e;
}

static td_err card_op_as(fixture *f, const char *issuer, const char *card_id, td_card_cmd c, td_card_op_cmd *cmd)
{
    memset(cmd, 0, sizeof *cmd);
    td_strlcpy(cmd->issuer_id, issuer, sizeof cmd->issuer_id);
    td_strlcpy(cmd->card_id, card_id, sizeof cmd->card_id);
    cmd->cmd = c;
    td_strlcpy(cmd->reason, "Card lost", sizeof cmd->reason);
    td_strlcpy(cmd->reason_code, "CARD_LOST", sizeof cmd->reason_code);
    return run_cmd(f, &cmd->w, start_card_op);
}

/* ================= tests ================= */

static void test_reason_codes(void **state)
{
    (void)state;
    assert_true(td_dcard_reason_code_ok("DEVICE_LOST"));
    assert_true(td_dcard_reason_code_ok("ISSUER_DECISION"));
    assert_true(td_dcard_reason_code_ok("OTHER"));
    assert_false(td_dcard_reason_code_ok("CARD_LOST"));
    assert_false(td_dcard_reason_code_ok("device_lost"));
    assert_false(td_dcard_reason_code_ok(""));
    assert_false(td_dcard_reason_code_ok(NULL));
    assert_true(td_card_reason_code_ok("CARD_LOST"));
    assert_true(td_card_reason_code_ok("CLOSED_CARD"));
    assert_true(td_card_reason_code_ok("ISSUER_DECISION"));
    assert_false(td_card_reason_code_ok("DEVICE_LOST"));
    assert_false(td_card_reason_code_ok(NULL));
}

/* ---- registering ---- */

static bool blob_has(const void *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    return p && n >= k && memmem(p, n, needle, k) != NULL;
}

/* PostgreSQL: rows of any table the tokend role owns whose text form (every
 * column; bytea in hex) holds the needle, as text or as hex-encoded bytes. */
static int pg_rows_holding(const char *loc, const char *needle)
{
    char hex[256] = "";
    for (size_t i = 0; needle[i] && 2 * i + 2 < sizeof hex; i++)
        snprintf(hex + 2 * i, 3, "%02x", (unsigned char)needle[i]);
    PGresult *tables =
        test_pg_exec("SELECT quote_ident(tablename) FROM pg_tables WHERE tableowner = current_user", PGRES_TUPLES_OK);
    assert_true(PQntuples(tables) > 0);
    int hits = 0;
    for (int t = 0; t < PQntuples(tables); t++) {
        char q[600];
        snprintf(q, sizeof q,
                 "SELECT count(*) FROM %s AS x WHERE strpos(x::text, '%s') > 0 OR strpos(x::text, '%s') > 0",
                 PQgetvalue(tables, t, 0), needle, hex);
        hits += (int)db_int(loc, q);
    }
    PQclear(tables);
    return hits;
}

/* Every column of every table, as text and as bytes. */
static int columns_holding(const char *path, const char *needle)
{
    if (test_pg) return pg_rows_holding(path, needle);
    sqlite3 *db;
    sqlite3_stmt *tables, *st;
    int hits = 0;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'table'", -1, &tables, NULL),
                     SQLITE_OK);
    while (sqlite3_step(tables) == SQLITE_ROW) {
        char q[200];
        snprintf(q, sizeof q, "SELECT * FROM \"%s\"", (const char *)sqlite3_column_text(tables, 0));
        assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW)
            for (int i = 0; i < sqlite3_column_count(st); i++)
                hits += blob_has(sqlite3_column_blob(st, i), (size_t)sqlite3_column_bytes(st, i), needle);
        sqlite3_finalize(st);
    }
    sqlite3_finalize(tables);
    sqlite3_close(db);
    return hits;
}

static void test_register_card(void **state)
{
    fixture *f = *state;
    td_register_card cmd;
    assert_int_equal(register_card_as(f, ISSUER, "card-1", PAN1, &cmd), TD_OK);
    for (size_t i = 0; i < sizeof cmd.pan; i++)
        assert_int_equal(cmd.pan[i], 0); /* wiped */
    td_card_rec c;
    td_error e = {0};
    assert_int_equal(td_svc_get_card(&f->svc, ISSUER, "card-1", &c, &e), TD_OK);
    assert_string_equal(c.last4, "1111");
    assert_string_equal(c.expiry, "1249");
    assert_string_equal(c.consumer_id, "cons-42");
    assert_string_equal(c.phone, "+33 6 12 34 56 78");
    assert_int_equal(c.state, TD_CS_ACTIVE);
    assert_int_equal(strlen(c.pan_fp), 64);

    /* The sealed PAN opens under its own "issuerId/cardId" only. */
    char plain[20];
    assert_int_equal(
        td_pan_open(f->cfg.master_key, c.pan_sealed, c.pan_sealed_len, ISSUER "/card-1", plain, sizeof plain), 0);
    assert_string_equal(plain, PAN1);
    td_wipe(plain, sizeof plain);
    assert_int_not_equal(
        td_pan_open(f->cfg.master_key, c.pan_sealed, c.pan_sealed_len, ISSUER "/card-2", plain, sizeof plain), 0);
    assert_int_not_equal(
        td_pan_open(f->cfg.master_key, c.pan_sealed, c.pan_sealed_len, OTHER "/card-1", plain, sizeof plain), 0);

    /* The same id, or the same PAN under another id: one answer for both. */
    assert_int_equal(register_card_as(f, ISSUER, "card-1", PAN2, &cmd), TD_E_CONFLICT);
    assert_string_equal(cmd.w.err.detail, "card id or PAN already registered");
    assert_int_equal(register_card_as(f, ISSUER, "card-2", PAN1, &cmd), TD_E_CONFLICT);
    assert_string_equal(cmd.w.err.detail, "card id or PAN already registered");
    assert_null(strstr(cmd.w.err.detail, "1111"));
    /* Another issuer may register the same PAN. */
    assert_int_equal(register_card_as(f, OTHER, "card-1", PAN1, NULL), TD_OK);
    assert_int_equal(register_card_as(f, ISSUER, "card-2", PAN2, NULL), TD_OK);

    /* Refused before anything is prepared. */
    assert_int_equal(register_card_as(f, ISSUER, "card-3", "4111111111111112", &cmd), TD_E_INVALID_ARGUMENT);
    assert_null(strstr(cmd.w.err.detail, "4111"));
    assert_int_equal(register_card_as(f, ISSUER, "card-3", "4111-1111-1111-1111", NULL), TD_E_INVALID_ARGUMENT);
    td_register_card bad;
    memset(&bad, 0, sizeof bad);
    td_strlcpy(bad.issuer_id, ISSUER, sizeof bad.issuer_id);
    td_strlcpy(bad.card_id, "card-4", sizeof bad.card_id);
    td_strlcpy(bad.pan, "4012888888881881", sizeof bad.pan);
    td_strlcpy(bad.expiry, "1349", sizeof bad.expiry);
    assert_int_equal(run_cmd(f, &bad.w, start_register), TD_E_INVALID_ARGUMENT);
    assert_int_equal(bad.pan[0], 0);

    /* The PAN is in no column: not in clear, not in the sealed one. */
    assert_int_equal(columns_holding(f->loc, PAN1), 0);
    assert_int_equal(columns_holding(f->loc, PAN2), 0);
    assert_true(columns_holding(f->loc, "cons-42") > 0); /* the scan does see the rows */
}

/* ---- refusals ---- */

static void expect_refused(fixture *f, const char *id, td_dcard_ev type, const char *state_name, td_dcard_why why)
{
    td_dcard_op cmd;
    assert_int_equal(dcard_op_as(f, ISSUER, id, type, &cmd), TD_E_NOT_ALLOWED_IN_STATE);
    assert_int_equal(cmd.outcome, TD_DC_REFUSED);
    assert_int_equal(cmd.why, why);
    assert_non_null(strstr(cmd.w.err.detail, state_name));
    assert_non_null(strstr(cmd.w.err.detail, id));
    td_dcard_rec_free(&cmd.after);
}

static void test_refusals_call_no_tsp(void **state)
{
    fixture *f = *state;
    char pending[65], deleted[65], declined[65], wallet[65];
    register_card(f, "card-1", PAN1);
    tokenize(f, "card-1", 3, pending);
    assert_int_equal(dc_state(f, pending), TD_DC_PENDING_IDV);
    seed_dcard(f, "card-1", TD_DC_DELETED, 0, deleted);
    seed_dcard(f, "card-1", TD_DC_DECLINED, 0, declined);
    seed_dcard(f, "card-1", TD_DC_SUSPENDED, TD_PARTY_WALLET, wallet);
    uint64_t calls = tsp_calls(f);
    int rows = read_outbox(f)->n;

    expect_refused(f, pending, TD_EV_SUSPEND, "PENDING_IDV", TD_DCW_PENDING_IDV);
    expect_refused(f, deleted, TD_EV_SUSPEND, "DELETED", TD_DCW_DELETED);
    expect_refused(f, deleted, TD_EV_RESUME, "DELETED", TD_DCW_DELETED);
    expect_refused(f, declined, TD_EV_SUSPEND, "DECLINED", TD_DCW_DECLINED);
    expect_refused(f, declined, TD_EV_RESUME, "DECLINED", TD_DCW_DECLINED);
    expect_refused(f, declined, TD_EV_DELETE, "DECLINED", TD_DCW_DECLINED);
    expect_refused(f, wallet, TD_EV_RESUME, "SUSPENDED", TD_DCW_OTHER_PARTY);
    assert_true(tsp_calls(f) == calls);
    assert_int_equal(read_outbox(f)->n, rows);
    assert_int_equal(dc_state(f, wallet), TD_DC_SUSPENDED);

    /* A delete of a deleted card has reached its target: a success that
     * calls nobody and owes nothing. */
    td_dcard_op cmd;
    assert_int_equal(dcard_op_as(f, ISSUER, deleted, TD_EV_DELETE, &cmd), TD_OK);
    assert_int_equal(cmd.outcome, TD_DC_NO_OP_ALREADY);
    td_operation_rec o = get_op(f, cmd.operation_id);
    assert_string_equal(o.operation, "DELETE");
    assert_string_equal(o.status, "SUCCESSFUL");
    td_dcard_rec_free(&cmd.after);
    assert_true(tsp_calls(f) == calls);
    assert_int_equal(read_outbox(f)->n, rows);

    /* Unknown digital card. */
    assert_int_equal(dcard_op(f, "dc_nope", TD_EV_SUSPEND), TD_E_NOT_FOUND);
}

/* ---- suspend, repeat, resume ---- */

static void test_suspend_repeat_resume(void **state)
{
    fixture *f = *state;
    char id[65];
    register_card(f, "card-1", PAN1);
    tokenize(f, "card-1", 5, id);
    td_dcard_rec before = get_dc(f, id);
    assert_int_equal(before.d.state, TD_DC_ACTIVE);
    uint64_t calls = tsp_calls(f);

    td_dcard_op cmd;
    assert_int_equal(dcard_op_as(f, ISSUER, id, TD_EV_SUSPEND, &cmd), TD_OK);
    assert_int_equal(cmd.outcome, TD_DC_APPLIED);
    assert_true(tsp_calls(f) == calls + 1);
    assert_int_equal(cmd.after.d.state, TD_DC_SUSPENDED);
    assert_int_equal(cmd.after.d.suspended_by, TD_PARTY_ISSUER);
    assert_true(cmd.after.d.seq == before.d.seq + 1);
    td_dcard_rec now = get_dc(f, id);
    assert_int_equal(now.d.state, TD_DC_SUSPENDED);
    assert_true(now.d.seq == cmd.after.d.seq);
    td_dcard_rec_free(&now);

    td_operation_rec o = get_op(f, cmd.operation_id);
    assert_string_equal(o.operation, "SUSPEND");
    assert_string_equal(o.status, "SUCCESSFUL");
    assert_string_equal(o.requestor_type, "ISSUER");
    assert_string_equal(o.reason, "Lost phone");
    assert_string_equal(o.reason_code, "DEVICE_LOST");
    assert_string_equal(o.digital_card_id, id);
    assert_string_equal(o.card_id, "card-1");
    assert_string_equal(o.correlation_id, "x-corr-1");
    assert_true(o.end_ms >= o.start_ms && o.end_ms > 0);

    const td_outbox_rec *r = last_notice(f, id, "SUSPEND");
    assert_string_equal(r->status, "SUCCESSFUL");
    assert_string_equal(r->source, "ISSUER");
    assert_string_equal(r->operation_id, cmd.operation_id);
    assert_true(r->dcard_seq == cmd.after.d.seq);
    char first_op[65];
    td_strlcpy(first_op, cmd.operation_id, sizeof first_op);
    int64_t seq = cmd.after.d.seq;
    td_dcard_rec_free(&cmd.after);

    /* A repeat: a new operation, SUCCESSFUL, and nothing else. */
    assert_int_equal(dcard_op_as(f, ISSUER, id, TD_EV_SUSPEND, &cmd), TD_OK);
    assert_int_equal(cmd.outcome, TD_DC_NO_OP_ALREADY);
    assert_string_not_equal(cmd.operation_id, first_op);
    assert_true(cmd.after.d.seq == seq);
    o = get_op(f, cmd.operation_id);
    assert_string_equal(o.operation, "SUSPEND");
    assert_string_equal(o.status, "SUCCESSFUL");
    assert_string_equal(o.requestor_type, "ISSUER");
    assert_int_equal(count_notices(f, id, "SUSPEND"), 1);
    assert_true(tsp_calls(f) == calls + 1);
    td_dcard_rec_free(&cmd.after);

    assert_int_equal(dcard_op_as(f, ISSUER, id, TD_EV_RESUME, &cmd), TD_OK);
    assert_int_equal(cmd.outcome, TD_DC_APPLIED);
    assert_int_equal(cmd.after.d.state, TD_DC_ACTIVE);
    assert_int_equal(cmd.after.d.suspended_by, 0);
    assert_true(cmd.after.d.seq == seq + 1);
    assert_true(tsp_calls(f) == calls + 2);
    r = last_notice(f, id, "RESUME");
    assert_string_equal(r->status, "SUCCESSFUL");
    assert_string_equal(r->source, "ISSUER");
    assert_string_equal(get_op(f, cmd.operation_id).operation, "RESUME");
    td_dcard_rec_free(&cmd.after);
    td_dcard_rec_free(&before);
}

/* The issuer joins a suspension another party holds; its resume lifts its
 * own, and the card stays suspended by the other. */
static void test_suspend_joins_other_party(void **state)
{
    fixture *f = *state;
    char id[65];
    seed_dcard(f, "card-1", TD_DC_SUSPENDED, TD_PARTY_WALLET, id);
    td_dcard_op cmd;
    assert_int_equal(dcard_op_as(f, ISSUER, id, TD_EV_SUSPEND, &cmd), TD_OK);
    assert_int_equal(cmd.outcome, TD_DC_APPLIED);
    assert_int_equal(cmd.after.d.suspended_by, TD_PARTY_WALLET | TD_PARTY_ISSUER);
    td_dcard_rec_free(&cmd.after);
    assert_int_equal(dcard_op_as(f, ISSUER, id, TD_EV_RESUME, &cmd), TD_OK);
    assert_int_equal(cmd.after.d.state, TD_DC_SUSPENDED);
    assert_int_equal(cmd.after.d.suspended_by, TD_PARTY_WALLET);
    td_dcard_rec_free(&cmd.after);
}

/* ---- a pending card: activation and cancellation by the issuer ---- */

static void test_resume_pending_activates(void **state)
{
    fixture *f = *state;
    char id[65];
    register_card(f, "card-1", PAN1);
    tokenize(f, "card-1", 3, id);
    td_dcard_rec dc = get_dc(f, id);
    assert_int_equal(dc.d.state, TD_DC_PENDING_IDV);
    assert_true(pending_timers(f, id) > 0);
    uint64_t calls = tsp_calls(f);

    td_dcard_op cmd;
    assert_int_equal(dcard_op_as(f, ISSUER, id, TD_EV_RESUME, &cmd), TD_OK);
    assert_true(tsp_calls(f) == calls + 1);
    assert_int_equal(cmd.outcome, TD_DC_APPLIED);
    assert_int_equal(cmd.after.d.state, TD_DC_ACTIVE);
    assert_false(cmd.after.d.stepup_open);
    assert_string_equal(cmd.operation_id, dc.digitize_op_id);
    td_operation_rec o = get_op(f, dc.digitize_op_id);
    assert_string_equal(o.operation, "DIGITIZE");
    assert_string_equal(o.status, "SUCCESSFUL");
    assert_true(o.end_ms > 0);
    assert_int_equal(pending_timers(f, id), 0);
    const td_outbox_rec *r = last_notice(f, id, "DIGITIZE");
    assert_string_equal(r->status, "SUCCESSFUL");
    td_dcard_rec_free(&cmd.after);
    td_dcard_rec_free(&dc);
}

static void test_delete_pending_cancels(void **state)
{
    fixture *f = *state;
    char id[65];
    register_card(f, "card-1", PAN1);
    tokenize(f, "card-1", 3, id);
    td_dcard_rec dc = get_dc(f, id);
    td_dcard_op cmd;
    assert_int_equal(dcard_op_as(f, ISSUER, id, TD_EV_DELETE, &cmd), TD_OK);
    assert_int_equal(cmd.after.d.state, TD_DC_DELETED);
    assert_string_equal(cmd.operation_id, dc.digitize_op_id);
    td_operation_rec o = get_op(f, dc.digitize_op_id);
    assert_string_equal(o.operation, "DIGITIZE");
    assert_string_equal(o.status, "FAILED");
    assert_string_equal(o.error_code, "CANCELED_BY_ISSUER");
    const td_outbox_rec *r = last_notice(f, id, "DIGITIZE");
    assert_string_equal(r->status, "FAILED");
    assert_string_equal(r->error_code, "CANCELED_BY_ISSUER");
    assert_int_equal(pending_timers(f, id), 0);
    td_dcard_rec_free(&cmd.after);
    td_dcard_rec_free(&dc);
}

/* ---- the TSP says no ---- */

static void expect_tsp_failure(fixture *f, const char *id, const char *mode, td_err err, const char *code)
{
    td_dcard_rec before = get_dc(f, id);
    int notices = count_notices(f, id, "SUSPEND");
    td_dcard_op cmd;
    tsp_mode(f, mode, 1);
    assert_int_equal(dcard_op_as(f, ISSUER, id, TD_EV_SUSPEND, &cmd), err);
    assert_true(cmd.operation_id[0] != '\0');
    td_dcard_rec after = get_dc(f, id);
    assert_int_equal(after.d.state, before.d.state);
    assert_true(after.d.seq == before.d.seq);
    td_operation_rec o = get_op(f, cmd.operation_id);
    assert_string_equal(o.operation, "SUSPEND");
    assert_string_equal(o.status, "FAILED");
    assert_string_equal(o.error_code, code);
    assert_string_equal(o.requestor_type, "ISSUER");
    assert_int_equal(count_notices(f, id, "SUSPEND"), notices);
    td_dcard_rec_free(&cmd.after);
    td_dcard_rec_free(&before);
    td_dcard_rec_free(&after);
}

static void test_tsp_failures(void **state)
{
    fixture *f = *state;
    char id[65];
    register_card(f, "card-1", PAN1);
    tokenize(f, "card-1", 5, id);
    expect_tsp_failure(f, id, "fail", TD_E_TSP_FAILED, "TSP_FAILED");
    expect_tsp_failure(f, id, "refuse", TD_E_TSP_FAILED, "TSP_REFUSED");
    expect_tsp_failure(f, id, "timeout", TD_E_TSP_TIMEOUT, "TSP_TIMEOUT");
    /* The modes were for one call each: the next one goes through. */
    assert_int_equal(dcard_op(f, id, TD_EV_SUSPEND), TD_OK);
    assert_int_equal(dc_state(f, id), TD_DC_SUSPENDED);
}

/* A replayed request (the same Idempotency-Key) gets its first answer and
 * never reaches the TSP again, even after the card moved on. */
static td_err suspend_with_key(fixture *f, const char *id, td_dcard_op *cmd)
{
    memset(cmd, 0, sizeof *cmd);
    td_strlcpy(cmd->issuer_id, ISSUER, sizeof cmd->issuer_id);
    td_strlcpy(cmd->digital_card_id, id, sizeof cmd->digital_card_id);
    cmd->type = TD_EV_SUSPEND;
    cmd->w.idem = true;
    td_strlcpy(cmd->w.idem_scope, "cred-hash", sizeof cmd->w.idem_scope);
    td_strlcpy(cmd->w.idem_key, "key-1", sizeof cmd->w.idem_key);
    td_request_hash(&f->svc, "POST", id, "{}", 2, cmd->w.req_hash);
    return run_cmd(f, &cmd->w, start_dcard_op);
}

static void test_idempotent_replay_skips_tsp(void **state)
{
    fixture *f = *state;
    char id[65];
    register_card(f, "card-1", PAN1);
    tokenize(f, "card-1", 5, id);
    td_dcard_op cmd;
    assert_int_equal(suspend_with_key(f, id, &cmd), TD_OK);
    assert_false(cmd.w.replayed);
    td_dcard_rec_free(&cmd.after);
    assert_int_equal(dcard_op(f, id, TD_EV_RESUME), TD_OK);
    uint64_t calls = tsp_calls(f);
    assert_int_equal(suspend_with_key(f, id, &cmd), TD_OK);
    assert_true(cmd.w.replayed);
    td_dcard_rec_free(&cmd.after);
    assert_true(tsp_calls(f) == calls);
    assert_int_equal(dc_state(f, id), TD_DC_ACTIVE);
}

/* ---- the record moves while the TSP is being called ---- */

/* A TSP over HTTP that answers one call with 200, after running a hook: the
 * hook changes the digital card as a concurrent request would, between the
 * decision and the commit. */
typedef struct {
    int fd;
    pthread_t th;
    void (*hook)(void *);
    void *arg;
} fake_tsp;

/* Reads the headers and the Content-Length body of one request. */
static void read_request(int c)
{
    char buf[8192];
    size_t n = 0;
    long want = -1;
    while (n < sizeof buf - 1) {
        ssize_t k = read(c, buf + n, sizeof buf - 1 - n);
        if (k <= 0) return;
        n += (size_t)k;
        buf[n] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end) continue;
        if (want < 0) {
            char *cl = strcasestr(buf, "content-length:");
            want = cl ? strtol(cl + 15, NULL, 10) : 0;
        }
        if ((long)(n - (size_t)(end + 4 - buf)) >= want) return;
    }
}

static void *fake_main(void *arg)
{
    fake_tsp *t = arg;
    int c = accept(t->fd, NULL, NULL);
    if (c < 0) return NULL;
    read_request(c);
    t->hook(t->arg);
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    ssize_t w = write(c, answer, sizeof answer - 1);
    (void)w;
    close(c);
    return NULL;
}

/* Listens on a free port of 127.0.0.1 and puts an HTTP connector to it in
 * place of the simulated TSP. */
static td_tsp *fake_tsp_start(fake_tsp *t)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    t->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(t->fd >= 0);
    assert_int_equal(bind(t->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(t->fd, 4), 0);
    assert_int_equal(getsockname(t->fd, (struct sockaddr *)&a, &len), 0);
    assert_int_equal(pthread_create(&t->th, NULL, fake_main, t), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/tsp", ntohs(a.sin_port));
    td_tsp *http = td_tsp_new_http(url, 5000, 0, NULL);
    assert_non_null(http);
    return http;
}

static void fake_tsp_stop(fake_tsp *t, td_tsp *http)
{
    pthread_join(t->th, NULL);
    close(t->fd);
    td_tsp_free(http);
}

typedef struct {
    fixture *f;
    char id[65];
    td_dcard_state state;
    td_suspenders by;
    td_st st; /* the move's result: checked on the test's thread (cmocka asserts only there) */
} move_arg;

static td_st run_move(td_conn *c, void *arg)
{
    move_arg *m = arg;
    td_dcard_rec dc;
    td_st st = OPS->dcard_get(c, ISSUER, m->id, &dc);
    if (st != TD_ST_OK) return st;
    int64_t expect = dc.d.seq;
    dc.d.state = m->state;
    dc.d.suspended_by = m->by;
    dc.d.seq++;
    st = OPS->dcard_update(c, &dc, expect);
    td_dcard_rec_free(&dc);
    return st;
}

static void move_hook(void *arg)
{
    move_arg *m = arg;
    m->st = m->f->s->run_sync(m->f->s, run_move, m);
}

/* Runs one operation while the hook moves the record to (state, by). */
static td_err op_while_moving(fixture *f, const char *id, td_dcard_ev type, td_dcard_state state, td_suspenders by,
                              td_dcard_op *cmd)
{
    move_arg m = {.f = f, .state = state, .by = by, .st = TD_ST_ERROR};
    fake_tsp t = {.hook = move_hook, .arg = &m};
    td_strlcpy(m.id, id, sizeof m.id);
    td_tsp *sim = f->svc.tsp;
    td_tsp *http = fake_tsp_start(&t);
    f->svc.tsp = http;
    td_err e = dcard_op_as(f, ISSUER, id, type, cmd);
    f->svc.tsp = sim;
    fake_tsp_stop(&t, http);
    assert_int_equal(m.st, TD_ST_OK);
    return e;
}

/* Suspend decided on ACTIVE; the wallet suspended meanwhile: the issuer
 * joins the wallet's suspension, with its notice. */
static void test_moved_then_decided_again(void **state)
{
    fixture *f = *state;
    char id[65];
    register_card(f, "card-1", PAN1);
    tokenize(f, "card-1", 5, id);
    td_dcard_rec before = get_dc(f, id);
    td_dcard_op cmd;
    assert_int_equal(op_while_moving(f, id, TD_EV_SUSPEND, TD_DC_SUSPENDED, TD_PARTY_WALLET, &cmd), TD_OK);
    assert_int_equal(cmd.outcome, TD_DC_APPLIED);
    assert_int_equal(cmd.after.d.state, TD_DC_SUSPENDED);
    assert_int_equal(cmd.after.d.suspended_by, TD_PARTY_WALLET | TD_PARTY_ISSUER);
    assert_true(cmd.after.d.seq == before.d.seq + 2);
    assert_string_equal(get_op(f, cmd.operation_id).status, "SUCCESSFUL");
    assert_string_equal(last_notice(f, id, "SUSPEND")->operation_id, cmd.operation_id);
    td_dcard_rec_free(&cmd.after);
    td_dcard_rec_free(&before);
}

/* Resume decided on SUSPENDED; the card was deleted meanwhile: the TSP did
 * what was asked, the operation is SUCCESSFUL, and nothing moves the
 * deleted record. */
static void test_moved_to_refused_records_success(void **state)
{
    fixture *f = *state;
    char id[65];
    register_card(f, "card-1", PAN1);
    tokenize(f, "card-1", 5, id);
    assert_int_equal(dcard_op(f, id, TD_EV_SUSPEND), TD_OK);
    td_dcard_rec before = get_dc(f, id);
    td_dcard_op cmd;
    assert_int_equal(op_while_moving(f, id, TD_EV_RESUME, TD_DC_DELETED, 0, &cmd), TD_OK);
    assert_int_equal(cmd.outcome, TD_DC_NO_OP_ALREADY);
    assert_int_equal(cmd.after.d.state, TD_DC_DELETED);
    assert_true(cmd.after.d.seq == before.d.seq + 1);
    td_operation_rec o = get_op(f, cmd.operation_id);
    assert_string_equal(o.operation, "RESUME");
    assert_string_equal(o.status, "SUCCESSFUL");
    assert_int_equal(count_notices(f, id, "RESUME"), 0);
    td_dcard_rec_free(&cmd.after);
    td_dcard_rec_free(&before);
}

/* ---- cards ---- */

static void test_card_suspend_resume(void **state)
{
    fixture *f = *state;
    char a[65], b[65];
    register_card(f, "card-1", PAN1);
    tokenize(f, "card-1", 5, a);
    tokenize(f, "card-1", 5, b);
    td_dcard_rec a0 = get_dc(f, a);
    uint64_t calls = tsp_calls(f);

    td_card_op_cmd cmd;
    assert_int_equal(card_op_as(f, ISSUER, "card-1", TD_CARD_SUSPEND, &cmd), TD_OK);
    assert_int_equal(cmd.outcome, TD_DC_APPLIED);
    assert_int_equal(card_state(f, "card-1"), TD_CS_SUSPENDED);
    td_operation_rec o = get_op(f, cmd.operation_id);
    assert_string_equal(o.operation, "SUSPEND");
    assert_string_equal(o.status, "SUCCESSFUL");
    assert_string_equal(o.requestor_type, "ISSUER");
    assert_string_equal(o.card_id, "card-1");
    assert_string_equal(o.digital_card_id, "");
    assert_string_equal(o.reason_code, "CARD_LOST");
    const td_outbox_rec *r = last_notice(f, "", "SUSPEND");
    assert_string_equal(r->status, "SUCCESSFUL");
    assert_string_equal(r->source, "ISSUER");
    assert_string_equal(r->card_id, "card-1");
    assert_string_equal(r->operation_id, cmd.operation_id);
    /* The digital cards are left as they are, and the TSP is not told. */
    td_dcard_rec a1 = get_dc(f, a);
    assert_int_equal(a1.d.state, TD_DC_ACTIVE);
    assert_true(a1.d.seq == a0.d.seq);
    assert_int_equal(dc_state(f, b), TD_DC_ACTIVE);
    assert_true(tsp_calls(f) == calls);

    /* A repeat: a new operation, no notice. */
    char first[65];
    td_strlcpy(first, cmd.operation_id, sizeof first);
    assert_int_equal(card_op_as(f, ISSUER, "card-1", TD_CARD_SUSPEND, &cmd), TD_OK);
    assert_int_equal(cmd.outcome, TD_DC_NO_OP_ALREADY);
    assert_string_not_equal(cmd.operation_id, first);
    assert_string_equal(get_op(f, cmd.operation_id).status, "SUCCESSFUL");
    assert_int_equal(count_notices(f, "", "SUSPEND"), 1);

    assert_int_equal(card_op_as(f, ISSUER, "card-1", TD_CARD_RESUME, &cmd), TD_OK);
    assert_int_equal(cmd.outcome, TD_DC_APPLIED);
    assert_int_equal(card_state(f, "card-1"), TD_CS_ACTIVE);
    assert_int_equal(count_notices(f, "", "RESUME"), 1);
    assert_int_equal(dc_state(f, a), TD_DC_ACTIVE);
    assert_true(tsp_calls(f) == calls);
    td_dcard_rec_free(&a0);
    td_dcard_rec_free(&a1);
}

static void test_card_delete_cascades(void **state)
{
    fixture *f = *state;
    char a[65], b[65], gone[65], pending[65];
    register_card(f, "card-1", PAN1);
    tokenize(f, "card-1", 5, a);
    tokenize(f, "card-1", 5, b);
    tokenize(f, "card-1", 5, gone);
    assert_int_equal(dcard_op(f, gone, TD_EV_DELETE), TD_OK);
    uint64_t calls = tsp_calls(f);
    int deletes = count_notices(f, gone, "DELETE");

    td_card_op_cmd cmd;
    assert_int_equal(card_op_as(f, ISSUER, "card-1", TD_CARD_DELETE, &cmd), TD_OK);
    assert_int_equal(cmd.n_deleted, 2);
    assert_int_equal(cmd.n_failed, 0);
    assert_true(tsp_calls(f) == calls + 2);
    assert_int_equal(card_state(f, "card-1"), TD_CS_DELETED);
    assert_int_equal(dc_state(f, a), TD_DC_DELETED);
    assert_int_equal(dc_state(f, b), TD_DC_DELETED);
    assert_int_equal(count_notices(f, a, "DELETE"), 1);
    assert_int_equal(count_notices(f, b, "DELETE"), 1);
    assert_int_equal(count_notices(f, gone, "DELETE"), deletes);
    assert_int_equal(count_notices(f, "", "DELETE"), 1);
    /* Each digital card got its own operation, apart from the card's. */
    const td_outbox_rec *ra = last_notice(f, a, "DELETE");
    char op_a[65];
    td_strlcpy(op_a, ra->operation_id, sizeof op_a);
    const td_outbox_rec *rb = last_notice(f, b, "DELETE");
    assert_string_not_equal(op_a, rb->operation_id);
    assert_string_not_equal(op_a, cmd.operation_id);
    assert_string_equal(get_op(f, op_a).digital_card_id, a);
    td_operation_rec o = get_op(f, cmd.operation_id);
    assert_string_equal(o.operation, "DELETE");
    assert_string_equal(o.digital_card_id, "");

    /* A deleted card: suspend and resume are refused, a delete is a repeat. */
    assert_int_equal(card_op_as(f, ISSUER, "card-1", TD_CARD_SUSPEND, &cmd), TD_E_NOT_ALLOWED_IN_STATE);
    assert_non_null(strstr(cmd.w.err.detail, "DELETED"));
    assert_int_equal(card_op_as(f, ISSUER, "card-1", TD_CARD_RESUME, &cmd), TD_E_NOT_ALLOWED_IN_STATE);
    assert_int_equal(card_op_as(f, ISSUER, "card-1", TD_CARD_DELETE, &cmd), TD_OK);
    assert_int_equal(cmd.outcome, TD_DC_NO_OP_ALREADY);
    assert_true(tsp_calls(f) == calls + 2);

    /* A pending digital card is canceled by the cascade. */
    register_card(f, "card-2", PAN2);
    tokenize(f, "card-2", 3, pending);
    assert_int_equal(card_op_as(f, ISSUER, "card-2", TD_CARD_DELETE, &cmd), TD_OK);
    td_dcard_rec p = get_dc(f, pending);
    assert_int_equal(p.d.state, TD_DC_DELETED);
    o = get_op(f, p.digitize_op_id);
    assert_string_equal(o.status, "FAILED");
    assert_string_equal(o.error_code, "CANCELED_BY_ISSUER");
    td_dcard_rec_free(&p);
}

static int live_dcards(fixture *f, const char *a, const char *b)
{
    return (dc_state(f, a) != TD_DC_DELETED) + (dc_state(f, b) != TD_DC_DELETED);
}

static void test_card_delete_partial_failure(void **state)
{
    fixture *f = *state;
    char a[65], b[65];
    register_card(f, "card-1", PAN1);
    tokenize(f, "card-1", 5, a);
    tokenize(f, "card-1", 5, b);
    uint64_t calls = tsp_calls(f);
    int rows = count_notices(f, "", "DELETE");

    tsp_mode(f, "fail", 1);
    td_card_op_cmd cmd;
    assert_int_equal(card_op_as(f, ISSUER, "card-1", TD_CARD_DELETE, &cmd), TD_E_TSP_FAILED);
    assert_int_equal(cmd.n_failed, 1);
    assert_int_equal(cmd.n_deleted, 1);
    assert_non_null(strstr(cmd.w.err.detail, "1 of 2"));
    assert_true(tsp_calls(f) == calls + 2);
    assert_int_equal(card_state(f, "card-1"), TD_CS_ACTIVE);
    assert_int_equal(live_dcards(f, a, b), 1);
    assert_int_equal(count_notices(f, "", "DELETE"), rows);

    /* The retry deletes the rest, then the card. */
    assert_int_equal(card_op_as(f, ISSUER, "card-1", TD_CARD_DELETE, &cmd), TD_OK);
    assert_int_equal(cmd.n_deleted, 1);
    assert_int_equal(cmd.n_failed, 0);
    assert_true(tsp_calls(f) == calls + 3);
    assert_int_equal(live_dcards(f, a, b), 0);
    assert_int_equal(card_state(f, "card-1"), TD_CS_DELETED);
    assert_int_equal(count_notices(f, "", "DELETE"), rows + 1);
}

/* ---- tenancy ---- */

static void count_dcard(const td_dcard_rec *dc, void *arg)
{
    (void)dc;
    (*(int *)arg)++;
}

static void test_tenancy(void **state)
{
    fixture *f = *state;
    char id[65];
    register_card(f, "card-1", PAN1);
    tokenize(f, "card-1", 5, id);
    td_dcard_op op;
    assert_int_equal(dcard_op_as(f, ISSUER, id, TD_EV_SUSPEND, &op), TD_OK);
    td_dcard_rec_free(&op.after);
    uint64_t calls = tsp_calls(f);

    td_error e = {0};
    td_card_rec c;
    td_dcard_rec dc;
    td_operation_rec o;
    int n = 0;
    assert_int_equal(td_svc_get_card(&f->svc, OTHER, "card-1", &c, &e), TD_E_NOT_FOUND);
    assert_int_equal(td_svc_list_dcards(&f->svc, OTHER, "card-1", count_dcard, &n, &e), TD_E_NOT_FOUND);
    assert_int_equal(n, 0);
    assert_int_equal(td_svc_get_dcard(&f->svc, OTHER, id, &dc, &e), TD_E_NOT_FOUND);
    assert_int_equal(td_svc_get_operation(&f->svc, OTHER, op.operation_id, &o, &e), TD_E_NOT_FOUND);
    td_dcard_op cmd;
    assert_int_equal(dcard_op_as(f, OTHER, id, TD_EV_RESUME, &cmd), TD_E_NOT_FOUND);
    td_dcard_rec_free(&cmd.after);
    td_card_op_cmd cop;
    assert_int_equal(card_op_as(f, OTHER, "card-1", TD_CARD_DELETE, &cop), TD_E_NOT_FOUND);
    assert_true(tsp_calls(f) == calls);
    assert_int_equal(dc_state(f, id), TD_DC_SUSPENDED);

    /* The owner sees them all. */
    assert_int_equal(td_svc_list_dcards(&f->svc, ISSUER, "card-1", count_dcard, &n, &e), TD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(td_svc_get_operation(&f->svc, ISSUER, op.operation_id, &o, &e), TD_OK);
}

/* ---- the CARD token ---- */

static const char *str_at(json_t *v, const char *path)
{
    char buf[128];
    td_strlcpy(buf, path, sizeof buf);
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
        v = json_object_get(v, k);
    assert_non_null(v);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static void test_card_token_json(void **state)
{
    fixture *f = *state;
    char id[65];
    register_card(f, "card-1", PAN1);
    tokenize(f, "card-1", 5, id);
    assert_int_equal(dcard_op(f, id, TD_EV_SUSPEND), TD_OK);
    td_dcard_rec dc = get_dc(f, id);
    char *s = td_card_token_json(&dc);
    assert_non_null(s);
    assert_null(strstr(s, PAN1));
    json_error_t err;
    json_t *v = json_loads(s, JSON_REJECT_DUPLICATES, &err);
    assert_non_null(v);
    assert_string_equal(str_at(v, "id"), id);
    assert_string_equal(str_at(v, "payload.version"), "1.0");
    assert_string_equal(str_at(v, "payload.refId"), dc.correlation_id);
    assert_string_equal(str_at(v, "payload.issuer.id"), ISSUER);
    assert_string_equal(str_at(v, "payload.from.id"), "card-1");
    assert_string_equal(str_at(v, "payload.card.cardId"), "card-1");
    assert_string_equal(str_at(v, "payload.card.digitalCardId"), id);
    assert_string_equal(str_at(v, "payload.card.walletProviderId"), "APPLE_PAY");
    assert_string_equal(str_at(v, "payload.card.tokenRequestorId"), "40010030273");
    assert_string_equal(str_at(v, "payload.card.last4"), "1111");
    assert_string_equal(str_at(v, "payload.card.state"), "SUSPENDED");
    assert_string_equal(str_at(v, "payload.card.deviceInformation.id"), "dev-1");
    assert_null(json_object_get(v, "tokenRequestId")); /* not "": no token request made it */
    json_t *card = json_object_get(json_object_get(v, "payload"), "card");
    assert_true(json_is_true(json_object_get(card, "isPrimary")));
    json_t *by = json_object_get(card, "suspendedBy");
    assert_true(json_is_array(by));
    assert_int_equal(json_array_size(by), 1);
    assert_string_equal(json_string_value(json_array_get(by, 0)), "ISSUER");
    json_t *sigs = json_object_get(v, "payloadSignatures");
    assert_true(json_is_array(sigs));
    assert_int_equal(json_array_size(sigs), 0);
    assert_int_equal(json_object_size(card), 9);
    json_decref(v);
    free(s);

    /* An active card: no suspenders; a damaged device document shows as {}. */
    dc.d.state = TD_DC_ACTIVE;
    dc.d.suspended_by = 0;
    free(dc.device_json);
    dc.device_json = strdup("not json");
    s = td_card_token_json(&dc);
    v = json_loads(s, 0, NULL);
    assert_non_null(v);
    card = json_object_get(json_object_get(v, "payload"), "card");
    assert_int_equal(json_array_size(json_object_get(card, "suspendedBy")), 0);
    assert_int_equal(json_object_size(json_object_get(card, "deviceInformation")), 0);
    assert_string_equal(str_at(v, "payload.card.state"), "ACTIVE");
    json_decref(v);
    free(s);
    td_dcard_rec_free(&dc);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    if (td_crypto_init() != 0) return 1;
    test_db_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reason_codes),
        T(test_register_card),
        T(test_refusals_call_no_tsp),
        T(test_suspend_repeat_resume),
        T(test_suspend_joins_other_party),
        T(test_resume_pending_activates),
        T(test_delete_pending_cancels),
        T(test_tsp_failures),
        T(test_idempotent_replay_skips_tsp),
        T(test_moved_then_decided_again),
        T(test_moved_to_refused_records_success),
        T(test_card_suspend_resume),
        T(test_card_delete_cascades),
        T(test_card_delete_partial_failure),
        T(test_tenancy),
        T(test_card_token_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
