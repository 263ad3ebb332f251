/* test_cards_service.c — unit tests for the network tokenization use cases
 * (service/network.c, apply.c, timers.c, policy.c, card_util.c) against a
 * real store, SQLite or PostgreSQL as TD_TEST_STORE says (test_db.h), and the
 * simulated TSP: the tokenization decision and every row it writes, OTP
 * deliveries, lifecycle events and the step-up timers. Use cases run as in
 * production (the writer thread, group commit); a small waiter makes each
 * call synchronous, and the rows are checked with read-only SQL, the same on
 * both engines, from outside the store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "sched/sched.h"
#include "service/cards.h"
#include "util/util.h"

#define TEST_DB_TAG "cards-svc"
#include "test_db.h"

#define ISSUER "ISSUER0001"
#define OTHER "ISSUER0002"
#define PAN_JANE "4111111111111111"
#define PAN_SUSP "5555555555554444"
#define PAN_OLD "4012888888881881"
#define PAN_NOMAIL "6011111111111117"
#define PAN_NONE "4242424242424242" /* registered nowhere */
#define REG_PHONE "+33 6 12 34 56 78"
#define REG_EMAIL "jane@example.com"

typedef struct {
    td_store *s;
    char loc[TEST_LOC_MAX]; /* the SQLite file, or the PostgreSQL URL (test_db.h) */
    td_config cfg;
    td_svc svc;
} fixture;

/* ================= the harness ================= */

static td_conn *rd(fixture *f)
{
    td_conn *c = f->s->reader(f->s);
    assert_non_null(c);
    return c;
}

/* ---- rows, read with SQL from outside the store (test_db.h) ---- */

static int64_t q_int(fixture *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int64_t q_int(fixture *f, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return db_int(f->loc, sql);
}

/* The first column of the first row as a string ("" if none). */
static void q_text(fixture *f, char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void q_text(fixture *f, char *out, size_t cap, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    db_text(f->loc, out, cap, sql);
}

/* Everything a use case can write, as one number per table. */
typedef struct {
    int64_t dcards, events, ops, outbox, outbox_pending, timers_pending, seq_sum;
} snapshot;

static snapshot snap(fixture *f)
{
    snapshot s = {
        .dcards = q_int(f, "SELECT count(*) FROM digital_cards"),
        .events = q_int(f, "SELECT count(*) FROM dcard_events"),
        .ops = q_int(f, "SELECT count(*) FROM operations"),
        .outbox = q_int(f, "SELECT count(*) FROM outbox"),
        .outbox_pending = q_int(f, "SELECT count(*) FROM outbox WHERE state = 'PENDING'"),
        .timers_pending = q_int(f, "SELECT count(*) FROM timers WHERE state = 'PENDING'"),
        .seq_sum = q_int(f, "SELECT coalesce(sum(seq), 0) FROM digital_cards"),
    };
    return s;
}

static void assert_same_snapshot(snapshot a, snapshot b)
{
    assert_true(a.dcards == b.dcards);
    assert_true(a.events == b.events);
    assert_true(a.ops == b.ops);
    assert_true(a.outbox == b.outbox);
    assert_true(a.outbox_pending == b.outbox_pending);
    assert_true(a.timers_pending == b.timers_pending);
    assert_true(a.seq_sum == b.seq_sum);
}

/* ---- store set-up through the writer ---- */

typedef struct {
    fixture *f;
    const void *rec;
    const char *issuer, *json;
} setup_arg;

static td_st run_put_issuer(td_conn *c, void *a)
{
    setup_arg *s = a;
    return s->f->s->ops->issuer_insert(c, s->rec);
}

static td_st run_put_card(td_conn *c, void *a)
{
    setup_arg *s = a;
    return s->f->s->ops->card_insert(c, s->rec);
}

static td_st run_put_policy(td_conn *c, void *a)
{
    setup_arg *s = a;
    return s->f->s->ops->issuer_policy_put(c, s->issuer, s->json);
}

static void put_issuer(fixture *f, const char *id)
{
    td_issuer_rec i = {.created_ms = td_now_ms()};
    td_strlcpy(i.id, id, sizeof i.id);
    td_strlcpy(i.display_name, id, sizeof i.display_name);
    setup_arg a = {.f = f, .rec = &i};
    assert_int_equal(f->s->run_sync(f->s, run_put_issuer, &a), TD_ST_OK);
}

static void put_card(fixture *f, const char *issuer, const char *card_id, const char *pan, const char *expiry,
                     const char *phone, const char *email, td_card_state state)
{
    td_card_rec r = {.state = state, .seq = 1, .created_ms = td_now_ms(), .updated_ms = td_now_ms()};
    td_strlcpy(r.issuer_id, issuer, sizeof r.issuer_id);
    td_strlcpy(r.card_id, card_id, sizeof r.card_id);
    td_strlcpy(r.consumer_id, "cons-42", sizeof r.consumer_id);
    td_pan_fingerprint(f->cfg.master_key, pan, r.pan_fp);
    memcpy(r.pan_sealed, "not-a-real-seal!", 16); /* the use cases never open it */
    r.pan_sealed_len = 16;
    td_strlcpy(r.last4, pan + strlen(pan) - 4, sizeof r.last4);
    td_strlcpy(r.expiry, expiry, sizeof r.expiry);
    td_strlcpy(r.phone, phone, sizeof r.phone);
    td_strlcpy(r.email, email, sizeof r.email);
    assert_int_equal(td_card_seal_contact(f->cfg.master_key, &r), 0); /* as registration does */
    setup_arg a = {.f = f, .rec = &r};
    assert_int_equal(f->s->run_sync(f->s, run_put_card, &a), TD_ST_OK);
}

/* Stores the policy the admin API would: the full effective JSON. */
static void put_policy(fixture *f, const char *issuer, const char *json)
{
    td_card_policy p;
    td_error e = {0};
    json_t *v = json_loads(json, 0, NULL);
    assert_non_null(v);
    assert_int_equal(td_card_policy_from_json(v, &p, &e), TD_OK);
    json_decref(v);
    json_t *full = td_card_policy_to_json(&p);
    char *text = json_dumps(full, JSON_COMPACT);
    json_decref(full);
    setup_arg a = {.f = f, .issuer = issuer, .json = text};
    assert_int_equal(f->s->run_sync(f->s, run_put_policy, &a), TD_ST_OK);
    free(text);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    test_store_new(f->loc, sizeof f->loc, "t");
    f->s = test_store_open(f->loc);
    td_random_bytes(f->cfg.master_key, sizeof f->cfg.master_key);
    f->svc.store = f->s;
    f->svc.cfg = &f->cfg;
    f->svc.tsp = td_tsp_new_simulated();
    assert_non_null(f->svc.tsp);
    put_issuer(f, ISSUER);
    put_issuer(f, OTHER);
    put_card(f, ISSUER, "card-jane", PAN_JANE, "1299", REG_PHONE, REG_EMAIL, TD_CS_ACTIVE);
    put_card(f, ISSUER, "card-susp", PAN_SUSP, "1299", REG_PHONE, REG_EMAIL, TD_CS_SUSPENDED);
    put_card(f, ISSUER, "card-old", PAN_OLD, "0120", REG_PHONE, REG_EMAIL, TD_CS_ACTIVE);
    put_card(f, ISSUER, "card-nomail", PAN_NOMAIL, "1299", REG_PHONE, "", TD_CS_ACTIVE);
    put_card(f, OTHER, "card-other", PAN_JANE, "1299", REG_PHONE, REG_EMAIL, TD_CS_ACTIVE);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->s) f->s->close(f->s);
    td_tsp_free(f->svc.tsp);
    test_store_remove(f->loc);
    free(f);
    return 0;
}

/* ---- running a use case synchronously ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} waiter;

static void on_complete(td_write *w)
{
    waiter *wt = w->face;
    pthread_mutex_lock(&wt->mu);
    wt->done = true;
    pthread_cond_signal(&wt->cv);
    pthread_mutex_unlock(&wt->mu);
}

static void render_ok(td_write *w)
{
    w->status = 200;
    w->body = strdup("{}");
}

static void begin(td_write *w)
{
    waiter *wt = calloc(1, sizeof *wt);
    assert_non_null(wt);
    pthread_mutex_init(&wt->mu, NULL);
    pthread_cond_init(&wt->cv, NULL);
    w->face = wt;
    w->complete = on_complete;
    w->render = render_ok;
}

static void finish(td_write *w)
{
    waiter *wt = w->face;
    pthread_mutex_lock(&wt->mu);
    while (!wt->done)
        pthread_cond_wait(&wt->cv, &wt->mu);
    pthread_mutex_unlock(&wt->mu);
    pthread_cond_destroy(&wt->cv);
    pthread_mutex_destroy(&wt->mu);
    free(wt);
    w->face = NULL;
    free(w->body);
    w->body = NULL;
}

#define RUN(f, fn, cmd)                                                                                                \
    do {                                                                                                               \
        begin(&(cmd)->w);                                                                                              \
        fn(&(f)->svc, (cmd));                                                                                          \
        finish(&(cmd)->w);                                                                                             \
    } while (0)

static void dispose(td_write *w)
{
    if (w->dispose) w->dispose(w);
    free(w);
}

/* ---- tokenization ---- */

typedef struct {
    const char *issuer, *corr, *pan, *card_id, *expiry, *phone, *email;
    int wallet_score, device_score;
} tok_req;

static td_tokenize *tokenize(fixture *f, tok_req r)
{
    td_tokenize *cmd = calloc(1, sizeof *cmd);
    assert_non_null(cmd);
    td_strlcpy(cmd->issuer_id, r.issuer ? r.issuer : ISSUER, sizeof cmd->issuer_id);
    td_strlcpy(cmd->correlation_id, r.corr, sizeof cmd->correlation_id);
    if (r.pan) td_strlcpy(cmd->pan, r.pan, sizeof cmd->pan);
    if (r.card_id) td_strlcpy(cmd->card_id, r.card_id, sizeof cmd->card_id);
    if (r.expiry) td_strlcpy(cmd->expiry, r.expiry, sizeof cmd->expiry);
    td_strlcpy(cmd->wallet_provider_id, "APPLE_PAY", sizeof cmd->wallet_provider_id);
    td_strlcpy(cmd->token_requestor_id, "40010030273", sizeof cmd->token_requestor_id);
    td_strlcpy(cmd->token_storage_id, "SE-01", sizeof cmd->token_storage_id);
    cmd->is_primary = true;
    cmd->device_json = strdup("{\"id\":\"dev-1\",\"type\":\"PHONE\"}");
    cmd->wallet_score = r.wallet_score;
    cmd->device_score = r.device_score;
    if (r.phone) td_strlcpy(cmd->phone, r.phone, sizeof cmd->phone);
    if (r.email) td_strlcpy(cmd->email, r.email, sizeof cmd->email);
    RUN(f, td_svc_tokenize, cmd);
    if (cmd->w.err.code) fail_msg("tokenize %s: %s", r.corr, cmd->w.err.detail);
    assert_non_null(cmd->answer_json);
    /* The PAN is gone once the job ran. */
    for (size_t i = 0; i < sizeof cmd->pan; i++)
        assert_int_equal(cmd->pan[i], 0);
    return cmd;
}

/* The answer's field as a string ("" if absent). */
static const char *field(json_t *v, const char *key)
{
    const char *s = json_string_value(json_object_get(v, key));
    return s ? s : "";
}

typedef struct {
    json_t *ans;
    char dc[65], op[65];
} tok_out;

static tok_out tok(fixture *f, tok_req r)
{
    td_tokenize *cmd = tokenize(f, r);
    tok_out o;
    o.ans = json_loads(cmd->answer_json, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(o.ans);
    td_strlcpy(o.dc, field(o.ans, "digitalCardId"), sizeof o.dc);
    td_strlcpy(o.op, field(o.ans, "operationId"), sizeof o.op);
    dispose(&cmd->w);
    return o;
}

static tok_out tok_green(fixture *f, const char *corr)
{
    return tok(f, (tok_req){.corr = corr, .pan = PAN_JANE, .expiry = "1299", .phone = REG_PHONE, .email = REG_EMAIL});
}

/* YELLOW: the wallet knows another phone number than the bank. */
static tok_out tok_yellow(fixture *f, const char *corr)
{
    return tok(f, (tok_req){.corr = corr, .pan = PAN_JANE, .expiry = "1299", .phone = "+44 7700 900123"});
}

static int64_t op_count(fixture *f, const char *id, const char *operation, const char *status, const char *error,
                        const char *requestor)
{
    return q_int(f,
                 "SELECT count(*) FROM operations WHERE id = '%s' AND operation = '%s' AND status = '%s' AND "
                 "error_code = '%s' AND requestor_type = '%s'",
                 id, operation, status, error, requestor);
}

static int64_t issuer_rows(fixture *f, const char *dc, const char *operation, const char *status, const char *error,
                           const char *source)
{
    return q_int(f,
                 "SELECT count(*) FROM outbox WHERE digital_card_id = '%s' AND channel = 'ISSUER' AND operation = "
                 "'%s' AND status = '%s' AND error_code = '%s' AND source = '%s' AND state = 'PENDING'",
                 dc, operation, status, error, source);
}

static int64_t user_rows(fixture *f, const char *dc, const char *message, const char *state)
{
    return q_int(f,
                 "SELECT count(*) FROM outbox WHERE digital_card_id = '%s' AND channel = 'USER' AND message = '%s' "
                 "AND state = '%s'",
                 dc, message, state);
}

static td_dcard_rec get_dcard(fixture *f, const char *id)
{
    td_dcard_rec r;
    assert_int_equal(f->s->ops->dcard_get(rd(f), ISSUER, id, &r), TD_ST_OK);
    return r;
}

static td_dcard_state dcard_state(fixture *f, const char *id)
{
    td_dcard_rec r = get_dcard(f, id);
    td_dcard_state s = r.d.state;
    td_dcard_rec_free(&r);
    return s;
}

/* ================= ids, times, policy ================= */

static void test_ids_and_times(void **state)
{
    (void)state;
    char a[65], b[65], t[40];
    td_new_dcard_id(a);
    td_new_dcard_id(b);
    assert_int_equal(strlen(a), 25);
    assert_memory_equal(a, "dc_", 3);
    assert_string_not_equal(a, b);
    assert_true(td_is_id_chars(a, 1, 64, "_-"));
    td_new_operation_id(a);
    assert_memory_equal(a, "op_", 3);
    assert_int_equal(strlen(a), 25);
    for (size_t i = 3; i < 25; i++)
        assert_true((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'A' && a[i] <= 'Z') || (a[i] >= 'a' && a[i] <= 'z'));

    td_iso8601_ms(1795333347123LL, t, sizeof t);
    assert_string_equal(t, "2026-11-22T07:42:27.123Z");
    td_iso8601_ms(-1, t, sizeof t);
    assert_string_equal(t, "1969-12-31T23:59:59.999Z");
    int64_t ms;
    assert_int_equal(td_parse_iso8601_ms("2026-11-22T07:42:27.123Z", &ms), 0);
    assert_true(ms == 1795333347123LL);
    assert_int_equal(td_parse_iso8601_ms("2026-11-22T07:42:27Z", &ms), 0);
    assert_true(ms == 1795333347000LL);
    assert_int_equal(td_parse_iso8601_ms("2026-11-22T09:42:27.5+02:00", &ms), 0);
    assert_true(ms == 1795333347500LL);
    assert_int_equal(td_parse_iso8601_ms("2026-11-22T02:12:27-05:30", &ms), 0);
    assert_true(ms == 1795333347000LL);
    assert_int_equal(td_parse_iso8601_ms("2024-02-29T00:00:00Z", &ms), 0);
    static const char *const bad[] = {"",
                                      "2026-11-22",
                                      "2026-11-22T07:42:27",
                                      "2026-13-01T00:00:00Z",
                                      "2025-02-29T00:00:00Z",
                                      "2026-11-22T24:00:00Z",
                                      "2026-11-22T07:42:27.Z",
                                      "2026-11-22T07:42:27Z ",
                                      "2026-11-22T07:42:27+0200",
                                      "2026-11-22 07:42:27Z",
                                      "2026-11-22T07:42:27.1234567890Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (td_parse_iso8601_ms(bad[i], &ms) == 0) fail_msg("accepted %s", bad[i]);
}

static void test_policy_json(void **state)
{
    (void)state;
    td_card_policy p, q;
    td_error e = {0};
    td_card_policy_default(&p);
    assert_true(p.first_reminder_ms == 86400000LL && p.reminder_every_ms == 86400000LL);
    assert_int_equal(p.max_reminders, 2);
    assert_true(p.session_ms == 7 * 86400000LL);
    assert_int_equal(p.otp.max, 3);
    assert_true(p.otp.window_ms == 600000);
    assert_true(p.notify_cancellation);
    assert_string_equal(p.idv.service_phone, "");

    /* Rendering the defaults and parsing them back gives the defaults. */
    json_t *v = td_card_policy_to_json(&p);
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    assert_int_equal(td_card_policy_from_json(v, &q, &e), TD_OK);
    json_decref(v);
    v = td_card_policy_to_json(&q);
    char *again = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(v);
    assert_string_equal(text, again);
    assert_non_null(strstr(text, "\"firstReminderAfterSeconds\":86400"));
    free(text);
    free(again);

    /* A partial body keeps the defaults elsewhere. */
    v = json_loads(
        "{\"decision\":{\"maxActiveTokens\":3,\"phoneMismatch\":\"RED\"},\"idv\":{\"methods\":[\"OTP_EMAIL\","
        "\"CUSTOMER_SERVICE\"],\"serviceNumber\":\"+33 1 00\"},\"notifyCancellation\":false}",
        0, NULL);
    assert_int_equal(td_card_policy_from_json(v, &q, &e), TD_OK);
    json_decref(v);
    assert_int_equal(q.decision.max_active_tokens, 3);
    assert_int_equal(q.decision.phone_mismatch, TD_VERDICT_RED);
    assert_int_equal(q.decision.max_attempts_per_hour, 10);
    assert_int_equal(q.idv.n_offered, 2);
    assert_int_equal(q.idv.offered[0], TD_IDV_OTP_EMAIL);
    assert_string_equal(q.idv.service_phone, "+33 1 00");
    assert_false(q.notify_cancellation);
    assert_int_equal(q.max_reminders, 2);

    static const struct {
        const char *json, *names;
    } bad[] = {
        {"{\"colour\":1}", "colour"},
        {"{\"decision\":{\"maxActiveTokens\":0}}", "maxActiveTokens"},
        {"{\"decision\":{\"redBelow\":5,\"yellowBelow\":3}}", "redBelow"},
        {"{\"decision\":{\"phoneMismatch\":\"BLUE\"}}", "phoneMismatch"},
        {"{\"decision\":{\"maxAttemptsPerHour\":1.5}}", "maxAttemptsPerHour"},
        {"{\"idv\":{\"methods\":[\"OTP_SMS\",\"OTP_SMS\"]}}", "methods"},
        {"{\"idv\":{\"methods\":[\"FAX\"]}}", "methods"},
        {"{\"idv\":{\"appLabel\":7}}", "appLabel"},
        {"{\"stepUp\":{\"sessionSeconds\":0}}", "sessionSeconds"},
        {"{\"stepUp\":{\"maxReminders\":-1}}", "maxReminders"},
        {"{\"otp\":{\"windowSeconds\":\"600\"}}", "windowSeconds"},
        {"{\"otp\":{\"burst\":1}}", "burst"},
        {"{\"notifyCancellation\":1}", "notifyCancellation"},
        {"{\"stepUp\":[]}", "stepUp"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&e, 0, sizeof e);
        v = json_loads(bad[i].json, 0, NULL);
        assert_non_null(v);
        assert_int_equal(td_card_policy_from_json(v, &q, &e), TD_E_INVALID_ARGUMENT);
        if (!strstr(e.detail, bad[i].names)) fail_msg("%s: detail '%s' does not name the field", bad[i].json, e.detail);
        json_decref(v);
    }
}

/* The stored policy is read back; an issuer without one has the defaults. */
static void test_policy_load(void **state)
{
    fixture *f = *state;
    td_card_policy p;
    assert_int_equal(td_card_policy_load(&f->svc, rd(f), ISSUER, &p), TD_ST_OK);
    assert_int_equal(p.decision.max_active_tokens, 10);
    put_policy(f, ISSUER, "{\"otp\":{\"max\":5,\"windowSeconds\":60}}");
    assert_int_equal(td_card_policy_load(&f->svc, rd(f), ISSUER, &p), TD_ST_OK);
    assert_int_equal(p.otp.max, 5);
    assert_true(p.otp.window_ms == 60000);
    assert_int_equal(td_card_policy_load(&f->svc, rd(f), OTHER, &p), TD_ST_OK);
    assert_int_equal(p.otp.max, 3);
}

/* ================= tokenization ================= */

static void test_tokenize_green(void **state)
{
    fixture *f = *state;
    tok_out o = tok_green(f, "corr-green");
    assert_string_equal(field(o.ans, "decision"), "GREEN");
    assert_int_equal(json_object_size(o.ans), 3); /* no reason, no idvMethods, no stepUpExpiresAt */
    assert_memory_equal(o.dc, "dc_", 3);
    assert_memory_equal(o.op, "op_", 3);

    td_dcard_rec r = get_dcard(f, o.dc);
    assert_int_equal(r.d.state, TD_DC_ACTIVE);
    assert_true(r.d.seq == 1);
    assert_int_equal(r.verdict, TD_VERDICT_GREEN);
    assert_string_equal(r.decision_reason, "");
    assert_string_equal(r.card_id, "card-jane");
    assert_string_equal(r.last4, "1111");
    assert_string_equal(r.issuer_id, ISSUER);
    assert_string_equal(r.correlation_id, "corr-green");
    assert_string_equal(r.digitize_op_id, o.op);
    assert_string_equal(r.wallet_provider_id, "APPLE_PAY");
    assert_string_equal(r.token_storage_id, "SE-01");
    assert_true(r.is_primary);
    assert_non_null(strstr(r.device_json, "dev-1"));
    assert_string_equal(r.idv_json, "[]");
    assert_true(r.stepup_deadline_ms == 0);
    td_dcard_rec_free(&r);

    assert_int_equal(q_int(f,
                           "SELECT count(*) FROM dcard_events WHERE digital_card_id = '%s' AND seq = 1 AND type = "
                           "'TOKENIZE' AND source = 'TSP' AND outcome = 'APPLIED'",
                           o.dc),
                     1);
    char detail[256];
    q_text(f, detail, sizeof detail, "SELECT detail_json FROM dcard_events WHERE digital_card_id = '%s'", o.dc);
    assert_non_null(strstr(detail, "\"decision\":\"GREEN\""));
    assert_int_equal(op_count(f, o.op, "DIGITIZE", "SUCCESSFUL", "", "TSP"), 1);
    assert_int_equal(q_int(f,
                           "SELECT count(*) FROM operations WHERE id = '%s' AND end_ms > 0 AND "
                           "correlation_id = 'corr-green' AND digital_card_id = '%s'",
                           o.op, o.dc),
                     1);
    assert_int_equal(issuer_rows(f, o.dc, "DIGITIZE", "SUCCESSFUL", "", "TSP"), 1);
    assert_int_equal(q_int(f,
                           "SELECT count(*) FROM outbox WHERE digital_card_id = '%s' AND channel = 'ISSUER' AND "
                           "dcard_seq = 1 AND operation_id = '%s' AND correlation_id = 'corr-green' AND "
                           "wallet_provider_id = 'APPLE_PAY' AND card_id = 'card-jane'",
                           o.dc, o.op),
                     1);
    assert_int_equal(user_rows(f, o.dc, "ACTIVATION", "PENDING"), 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM outbox"), 2);
    assert_int_equal(q_int(f, "SELECT count(*) FROM timers"), 0);
    json_decref(o.ans);
}

static void test_tokenize_yellow(void **state)
{
    fixture *f = *state;
    put_policy(f, ISSUER, "{\"idv\":{\"serviceNumber\":\"+33 1 00 00 00 00\",\"appLabel\":\"MyBank app\"}}");
    int64_t before = td_now_ms();
    tok_out o = tok_yellow(f, "corr-yellow");
    assert_string_equal(field(o.ans, "decision"), "YELLOW");
    assert_string_equal(field(o.ans, "reason"), "PHONE_MISMATCH");
    /* The methods mask what the bank registered, not what the wallet sent. */
    json_t *m = json_object_get(o.ans, "idvMethods");
    char *methods = json_dumps(m, JSON_COMPACT);
    assert_string_equal(methods, "[{\"id\":\"otp-sms\",\"type\":\"OTP_SMS\",\"value\":\"*******5678\"},"
                                 "{\"id\":\"otp-email\",\"type\":\"OTP_EMAIL\",\"value\":\"j***@example.com\"},"
                                 "{\"id\":\"issuer-app\",\"type\":\"ISSUER_APP\",\"value\":\"MyBank app\"},"
                                 "{\"id\":\"customer-service\",\"type\":\"CUSTOMER_SERVICE\",\"value\":\"+33 1 00 00 "
                                 "00 00\"}]");
    int64_t expires;
    assert_int_equal(td_parse_iso8601_ms(field(o.ans, "stepUpExpiresAt"), &expires), 0);
    assert_true(expires >= before + 7 * 86400000LL && expires <= td_now_ms() + 7 * 86400000LL);

    td_dcard_rec r = get_dcard(f, o.dc);
    assert_int_equal(r.d.state, TD_DC_PENDING_IDV);
    assert_true(r.d.stepup_open);
    assert_string_equal(r.decision_reason, "PHONE_MISMATCH");
    assert_string_equal(r.idv_json, methods);
    assert_true(r.stepup_deadline_ms == expires);
    td_dcard_rec_free(&r);
    free(methods);

    assert_int_equal(op_count(f, o.op, "DIGITIZE", "PENDING", "", "TSP"), 1);
    assert_int_equal(q_int(f, "SELECT end_ms FROM operations WHERE id = '%s'", o.op), 0);
    assert_int_equal(issuer_rows(f, o.dc, "DIGITIZE", "PENDING", "", "TSP"), 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM outbox WHERE channel = 'USER'"), 0);
    /* Two reminders a day apart, then the expiry at the session's end. */
    assert_int_equal(q_int(f,
                           "SELECT count(*) FROM timers WHERE digital_card_id = '%s' AND kind = 'REMINDER' AND "
                           "state = 'PENDING'",
                           o.dc),
                     2);
    int64_t r1 = q_int(f, "SELECT due_ms FROM timers WHERE kind = 'REMINDER' AND n = 1");
    int64_t r2 = q_int(f, "SELECT due_ms FROM timers WHERE kind = 'REMINDER' AND n = 2");
    assert_true(r2 - r1 == 86400000LL);
    assert_true(r1 == expires - 6 * 86400000LL);
    assert_true(q_int(f, "SELECT due_ms FROM timers WHERE kind = 'STEPUP_EXPIRE'") == expires);
    json_decref(o.ans);
}

/* Without a service number, customer service is not offered (issue 12: it was,
 * with an empty value), and a card without an email offers no email OTP. */
static void test_tokenize_yellow_defaults(void **state)
{
    fixture *f = *state;
    tok_out o = tok(f, (tok_req){.corr = "corr-nomail", .pan = PAN_NOMAIL, .wallet_score = 3});
    assert_string_equal(field(o.ans, "decision"), "YELLOW");
    assert_string_equal(field(o.ans, "reason"), "LOW_WALLET_SCORE");
    char *methods = json_dumps(json_object_get(o.ans, "idvMethods"), JSON_COMPACT);
    assert_string_equal(methods, "[{\"id\":\"otp-sms\",\"type\":\"OTP_SMS\",\"value\":\"*******5678\"}]");
    free(methods);
    json_decref(o.ans);
}

static void check_red(fixture *f, tok_out o, const char *reason, bool card_known)
{
    assert_string_equal(field(o.ans, "decision"), "RED");
    assert_string_equal(field(o.ans, "reason"), reason);
    assert_null(json_object_get(o.ans, "idvMethods"));
    assert_null(json_object_get(o.ans, "stepUpExpiresAt"));
    assert_int_equal(json_object_size(o.ans), 4);
    td_dcard_rec r = get_dcard(f, o.dc);
    assert_int_equal(r.d.state, TD_DC_DECLINED);
    assert_int_equal(r.verdict, TD_VERDICT_RED);
    assert_string_equal(r.decision_reason, reason);
    td_dcard_rec_free(&r);
    assert_int_equal(op_count(f, o.op, "DIGITIZE", "FAILED", "DECLINED", "TSP"), 1);
    assert_int_equal(issuer_rows(f, o.dc, "DIGITIZE", "FAILED", "DECLINED", "TSP"), card_known ? 1 : 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM outbox WHERE digital_card_id = '%s' AND channel = 'USER'", o.dc),
                     0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM timers WHERE digital_card_id = '%s'", o.dc), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM dcard_events WHERE digital_card_id = '%s' AND seq = 1", o.dc), 1);
    json_decref(o.ans);
}

static void test_tokenize_red_rules(void **state)
{
    fixture *f = *state;
    check_red(f, tok(f, (tok_req){.corr = "r-unknown", .pan = PAN_NONE, .expiry = "1299"}), "CARD_UNKNOWN", false);
    check_red(f, tok(f, (tok_req){.corr = "r-unknown-ref", .card_id = "card-nope"}), "CARD_UNKNOWN", false);
    check_red(f, tok(f, (tok_req){.corr = "r-susp", .pan = PAN_SUSP}), "CARD_SUSPENDED", true);
    check_red(f, tok(f, (tok_req){.corr = "r-old", .card_id = "card-old"}), "CARD_EXPIRED", true);
    check_red(f, tok(f, (tok_req){.corr = "r-score", .pan = PAN_JANE, .wallet_score = 1}), "LOW_WALLET_SCORE", true);
    check_red(f, tok(f, (tok_req){.corr = "r-dev", .pan = PAN_JANE, .device_score = 1}), "LOW_DEVICE_SCORE", true);
    /* A wrong expiry is as good as no card, but the record names the card. */
    tok_out o = tok(f, (tok_req){.corr = "r-exp", .pan = PAN_JANE, .expiry = "1298"});
    char card[64];
    q_text(f, card, sizeof card, "SELECT card_id FROM digital_cards WHERE id = '%s'", o.dc);
    assert_string_equal(card, "card-jane");
    check_red(f, o, "CARD_UNKNOWN", true);
    check_red(f, tok(f, (tok_req){.corr = "r-exp-ref", .card_id = "card-jane", .expiry = "0130"}), "CARD_UNKNOWN",
              true);
    /* The unknown PAN's record keeps only its last four digits. */
    assert_int_equal(q_int(f, "SELECT count(*) FROM digital_cards WHERE card_id = '' AND last4 = '4242'"), 1);
    /* Another issuer's card is unknown here. */
    check_red(f, tok(f, (tok_req){.corr = "r-other", .issuer = ISSUER, .card_id = "card-other"}), "CARD_UNKNOWN",
              false);
}

static void test_tokenize_red_counters(void **state)
{
    fixture *f = *state;
    /* Live digital cards, pending ones included, up to the limit. */
    put_policy(f, ISSUER, "{\"decision\":{\"maxActiveTokens\":2}}");
    tok_out a = tok_green(f, "c-1");
    tok_out b = tok_yellow(f, "c-2");
    check_red(f, tok_green(f, "c-3"), "TOO_MANY_TOKENS", true);
    /* The counters are per card: another card is not held back. */
    tok_out e = tok(f, (tok_req){.corr = "c-4", .pan = PAN_NOMAIL});
    assert_string_equal(field(e.ans, "decision"), "GREEN");
    /* Attempts in the last hour, whatever their outcome. */
    put_policy(f, ISSUER, "{\"decision\":{\"maxAttemptsPerHour\":2}}");
    check_red(f, tok(f, (tok_req){.corr = "c-5", .pan = PAN_NOMAIL, .wallet_score = 1}), "LOW_WALLET_SCORE", true);
    check_red(f, tok(f, (tok_req){.corr = "c-6", .pan = PAN_NOMAIL}), "TOO_MANY_ATTEMPTS", true);
    json_decref(a.ans);
    json_decref(b.ans);
    json_decref(e.ans);
}

/* A retried correlation id gets the first answer, byte for byte, and nothing
 * is written, whatever the retry carries. */
static void test_tokenize_replay(void **state)
{
    fixture *f = *state;
    td_tokenize *first = tokenize(f, (tok_req){.corr = "corr-r", .pan = PAN_JANE, .phone = "+44 7700 900123"});
    assert_false(first->replayed_request);
    snapshot s = snap(f);
    td_tokenize *again = tokenize(f, (tok_req){.corr = "corr-r", .pan = PAN_JANE, .phone = "+44 7700 900123"});
    assert_true(again->replayed_request);
    assert_string_equal(again->answer_json, first->answer_json);
    td_tokenize *other = tokenize(f, (tok_req){.corr = "corr-r", .pan = PAN_SUSP, .wallet_score = 1});
    assert_true(other->replayed_request);
    assert_string_equal(other->answer_json, first->answer_json);
    assert_same_snapshot(s, snap(f));
    /* The same correlation id at another issuer is another request. */
    td_tokenize *elsewhere = tokenize(f, (tok_req){.issuer = OTHER, .corr = "corr-r", .pan = PAN_JANE});
    assert_false(elsewhere->replayed_request);
    assert_string_not_equal(elsewhere->answer_json, first->answer_json);
    dispose(&first->w);
    dispose(&again->w);
    dispose(&other->w);
    dispose(&elsewhere->w);
}

/* Two requests with one correlation id in the same commit batch: one card. */
static void test_tokenize_concurrent_duplicates(void **state)
{
    fixture *f = *state;
    enum { N = 8 };
    td_tokenize *cmds[N];
    for (int i = 0; i < N; i++) {
        cmds[i] = calloc(1, sizeof *cmds[i]);
        td_strlcpy(cmds[i]->issuer_id, ISSUER, sizeof cmds[i]->issuer_id);
        td_strlcpy(cmds[i]->correlation_id, "corr-race", sizeof cmds[i]->correlation_id);
        td_strlcpy(cmds[i]->pan, PAN_JANE, sizeof cmds[i]->pan);
        td_strlcpy(cmds[i]->wallet_provider_id, "APPLE_PAY", sizeof cmds[i]->wallet_provider_id);
        begin(&cmds[i]->w);
    }
    for (int i = 0; i < N; i++)
        td_svc_tokenize(&f->svc, cmds[i]);
    int replays = 0;
    for (int i = 0; i < N; i++) {
        finish(&cmds[i]->w);
        assert_int_equal(cmds[i]->w.err.code, TD_OK);
        assert_string_equal(cmds[i]->answer_json, cmds[0]->answer_json);
        replays += cmds[i]->replayed_request;
    }
    assert_int_equal(replays, N - 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM digital_cards"), 1);
    for (int i = 0; i < N; i++)
        dispose(&cmds[i]->w);
}

/* ================= OTP ================= */

static td_send_otp *otp(fixture *f, const char *issuer, const char *dc, const char *method, const char *code)
{
    td_send_otp *cmd = calloc(1, sizeof *cmd);
    assert_non_null(cmd);
    td_strlcpy(cmd->issuer_id, issuer, sizeof cmd->issuer_id);
    td_strlcpy(cmd->digital_card_id, dc, sizeof cmd->digital_card_id);
    td_strlcpy(cmd->method_id, method, sizeof cmd->method_id);
    td_strlcpy(cmd->otp, code, sizeof cmd->otp);
    RUN(f, td_svc_send_otp, cmd);
    for (size_t i = 0; i < sizeof cmd->otp; i++)
        assert_int_equal(cmd->otp[i], 0);
    return cmd;
}

static td_err otp_code(fixture *f, const char *issuer, const char *dc, const char *method)
{
    td_send_otp *cmd = otp(f, issuer, dc, method, "123456");
    td_err e = cmd->w.err.code;
    dispose(&cmd->w);
    return e;
}

/* The OTP rows of an outbox listing: how many, and the last. */
typedef struct {
    int n;
    td_outbox_rec row;
} otp_rows;

static void collect_otp(const td_outbox_rec *o, void *arg)
{
    otp_rows *l = arg;
    if (strcmp(o->message, "OTP")) return;
    l->n++;
    l->row = *o;
}

static void test_otp_queued_and_sealed(void **state)
{
    fixture *f = *state;
    tok_out o = tok_yellow(f, "corr-otp");
    td_send_otp *cmd = otp(f, ISSUER, o.dc, "otp-sms", "A1b2C3");
    assert_int_equal(cmd->w.err.code, TD_OK);
    assert_string_equal(cmd->masked_target, "*******5678");
    dispose(&cmd->w);
    assert_int_equal(q_int(f,
                           "SELECT count(*) FROM outbox WHERE digital_card_id = '%s' AND channel = 'USER' AND "
                           "message = 'OTP' AND method_id = 'otp-sms' AND state = 'PENDING'",
                           o.dc),
                     1);

    /* The row holds the OTP sealed, never in clear; the master key opens it. */
    otp_rows l = {0};
    assert_int_equal(f->s->ops->outbox_list(rd(f), ISSUER, NULL, 0, 100, collect_otp, &l), TD_ST_OK);
    assert_int_equal(l.n, 1);
    const uint8_t *blob = l.row.secret_sealed;
    size_t n = l.row.secret_len;
    assert_true(n > 6);
    assert_null(memmem(blob, n, "A1b2C3", 6));
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    assert_int_equal(td_open(f->cfg.master_key, blob, n, &plain, &plain_len), 0);
    assert_int_equal(plain_len, 6);
    assert_memory_equal(plain, "A1b2C3", 6);
    free(plain);

    cmd = otp(f, ISSUER, o.dc, "otp-email", "999999");
    assert_int_equal(cmd->w.err.code, TD_OK);
    assert_string_equal(cmd->masked_target, "j***@example.com");
    dispose(&cmd->w);
    json_decref(o.ans);
}

static void test_otp_rate_limited(void **state)
{
    fixture *f = *state;
    tok_out o = tok_yellow(f, "corr-rate");
    for (int i = 0; i < 3; i++)
        assert_int_equal(otp_code(f, ISSUER, o.dc, "otp-sms"), TD_OK);
    snapshot s = snap(f);
    td_send_otp *cmd = otp(f, ISSUER, o.dc, "otp-email", "123456");
    assert_int_equal(cmd->w.err.code, TD_E_RATE_LIMITED);
    assert_true(cmd->retry_after_s >= 1 && cmd->retry_after_s <= 600);
    dispose(&cmd->w);
    assert_same_snapshot(s, snap(f));
    /* Per digital card: another one is not limited. */
    tok_out p = tok_yellow(f, "corr-rate-2");
    assert_int_equal(otp_code(f, ISSUER, p.dc, "otp-sms"), TD_OK);
    json_decref(o.ans);
    json_decref(p.ans);
}

static void test_otp_refusals(void **state)
{
    fixture *f = *state;
    tok_out g = tok_green(f, "corr-otp-green");
    tok_out y = tok(f, (tok_req){.corr = "corr-otp-nomail", .pan = PAN_NOMAIL, .wallet_score = 3});
    snapshot s = snap(f);
    assert_int_equal(otp_code(f, ISSUER, g.dc, "otp-sms"), TD_E_NOT_ALLOWED_IN_STATE);
    assert_int_equal(otp_code(f, ISSUER, y.dc, "otp-email"), TD_E_INVALID_ARGUMENT); /* not offered */
    assert_int_equal(otp_code(f, ISSUER, y.dc, "customer-service"), TD_E_INVALID_ARGUMENT);
    assert_int_equal(otp_code(f, ISSUER, y.dc, "otp-fax"), TD_E_INVALID_ARGUMENT);
    assert_int_equal(otp_code(f, OTHER, y.dc, "otp-sms"), TD_E_NOT_FOUND);
    assert_int_equal(otp_code(f, ISSUER, "dc_nope", "otp-sms"), TD_E_NOT_FOUND);
    assert_same_snapshot(s, snap(f));
    json_decref(g.ans);
    json_decref(y.ans);
}

/* ================= events ================= */

typedef struct {
    const char *issuer, *id, *dc, *type, *suspended_by;
    td_source source;
    int64_t event_ms;
} ev_req;

static td_ingest_event *event(fixture *f, ev_req r)
{
    td_ingest_event *cmd = calloc(1, sizeof *cmd);
    assert_non_null(cmd);
    td_strlcpy(cmd->issuer_id, r.issuer ? r.issuer : ISSUER, sizeof cmd->issuer_id);
    td_strlcpy(cmd->event_id, r.id, sizeof cmd->event_id);
    td_strlcpy(cmd->digital_card_id, r.dc, sizeof cmd->digital_card_id);
    td_strlcpy(cmd->type, r.type, sizeof cmd->type);
    cmd->source = r.source;
    cmd->event_ms = r.event_ms;
    if (r.suspended_by) td_strlcpy(cmd->suspended_by, r.suspended_by, sizeof cmd->suspended_by);
    td_strlcpy(cmd->reason_code, "DEVICE_LOST", sizeof cmd->reason_code);
    cmd->detail_json = strdup("{\"note\":\"x\"}");
    RUN(f, td_svc_ingest_event, cmd);
    return cmd;
}

/* Sends an event that must be acknowledged; returns its parsed answer. */
static json_t *ev_ok(fixture *f, ev_req r)
{
    td_ingest_event *cmd = event(f, r);
    if (cmd->w.err.code) fail_msg("event %s: %s", r.id, cmd->w.err.detail);
    json_t *v = json_loads(cmd->answer_json, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(v);
    assert_string_equal(field(v, "eventId"), r.id);
    assert_string_equal(field(v, "digitalCardId"), r.dc);
    dispose(&cmd->w);
    return v;
}

static void test_event_activate_pending(void **state)
{
    fixture *f = *state;
    tok_out o = tok_yellow(f, "corr-act");
    /* An OTP and a reminder are owed before the activation... */
    assert_int_equal(otp_code(f, ISSUER, o.dc, "otp-sms"), TD_OK);
    assert_int_equal(td_sched_run_at(&f->svc, td_now_ms() + 86400000LL + 1000), 1);
    assert_int_equal(user_rows(f, o.dc, "REMINDER", "PENDING"), 1);

    json_t *v = ev_ok(f, (ev_req){.id = "ev-act", .dc = o.dc, .type = "ACTIVATE", .source = TD_SRC_TSP});
    assert_string_equal(field(v, "result"), "APPLIED");
    assert_string_equal(field(v, "state"), "ACTIVE");
    assert_int_equal(json_integer_value(json_object_get(v, "sequence")), 2);
    /* ... the DIGITIZE operation the tokenization answered completes ... */
    assert_string_equal(field(v, "operationId"), o.op);
    assert_null(json_object_get(v, "reason"));
    assert_int_equal(op_count(f, o.op, "DIGITIZE", "SUCCESSFUL", "", "TSP"), 1);
    assert_true(q_int(f, "SELECT end_ms FROM operations WHERE id = '%s'", o.op) > 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM operations"), 1);
    assert_int_equal(issuer_rows(f, o.dc, "DIGITIZE", "SUCCESSFUL", "", "TSP"), 1);
    assert_int_equal(q_int(f,
                           "SELECT count(*) FROM outbox WHERE digital_card_id = '%s' AND channel = 'ISSUER' AND "
                           "status = 'SUCCESSFUL' AND dcard_seq = 2 AND operation_id = '%s'",
                           o.dc, o.op),
                     1);
    assert_int_equal(user_rows(f, o.dc, "ACTIVATION", "PENDING"), 1);
    /* ... and the step-up session stops: OTP and reminder rows, timers. */
    assert_int_equal(user_rows(f, o.dc, "OTP", "CANCELLED"), 1);
    assert_int_equal(user_rows(f, o.dc, "REMINDER", "CANCELLED"), 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM timers WHERE state = 'PENDING'"), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM timers WHERE state = 'CANCELLED'"), 2);
    td_dcard_rec r = get_dcard(f, o.dc);
    assert_int_equal(r.d.state, TD_DC_ACTIVE);
    assert_false(r.d.stepup_open);
    assert_true(r.d.seq == 2);
    td_dcard_rec_free(&r);
    char detail[256];
    q_text(f, detail, sizeof detail, "SELECT detail_json FROM dcard_events WHERE digital_card_id = '%s' AND seq = 2",
           o.dc);
    assert_non_null(strstr(detail, "DEVICE_LOST"));
    assert_non_null(strstr(detail, "\"note\""));
    json_decref(v);
    json_decref(o.ans);
}

static void delete_pending(fixture *f, bool notify)
{
    tok_out o = tok_yellow(f, notify ? "corr-del" : "corr-del-quiet");
    json_t *v = ev_ok(f, (ev_req){.id = "ev-del", .dc = o.dc, .type = "DELETE", .source = TD_SRC_WALLET});
    assert_string_equal(field(v, "result"), "APPLIED");
    assert_string_equal(field(v, "state"), "DELETED");
    assert_string_equal(field(v, "operationId"), o.op);
    assert_int_equal(op_count(f, o.op, "DIGITIZE", "FAILED", "CANCELED_BY_USER", "TSP"), 1);
    assert_int_equal(issuer_rows(f, o.dc, "DIGITIZE", "FAILED", "CANCELED_BY_USER", "WALLET"), 1);
    assert_int_equal(user_rows(f, o.dc, "CANCELLATION", "PENDING"), notify ? 1 : 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM timers WHERE digital_card_id = '%s' AND state = 'PENDING'", o.dc),
                     0);
    json_decref(v);
    json_decref(o.ans);
    /* The card may be tokenized again. */
    tok_out again = tok_green(f, notify ? "corr-del-2" : "corr-del-quiet-2");
    assert_string_equal(field(again.ans, "decision"), "GREEN");
    json_decref(again.ans);
}

static void test_event_delete_pending(void **state)
{
    delete_pending(*state, true);
}

static void test_event_delete_pending_quiet(void **state)
{
    fixture *f = *state;
    put_policy(f, ISSUER, "{\"notifyCancellation\":false}");
    delete_pending(f, false);
}

static void test_event_duplicate(void **state)
{
    fixture *f = *state;
    tok_out o = tok_green(f, "corr-dup");
    td_ingest_event *first =
        event(f, (ev_req){.id = "ev-dup", .dc = o.dc, .type = "SUSPEND", .source = TD_SRC_WALLET, .event_ms = 1000});
    assert_int_equal(first->w.err.code, TD_OK);
    assert_false(first->duplicate);
    snapshot s = snap(f);
    /* Replayed byte for byte, whatever the duplicate carries. */
    td_ingest_event *again =
        event(f, (ev_req){.id = "ev-dup", .dc = o.dc, .type = "RESUME", .source = TD_SRC_WALLET, .event_ms = 2000});
    assert_int_equal(again->w.err.code, TD_OK);
    assert_true(again->duplicate);
    assert_string_equal(again->answer_json, first->answer_json);
    assert_same_snapshot(s, snap(f));
    assert_int_equal(dcard_state(f, o.dc), TD_DC_SUSPENDED);
    /* The same id from another source is another event. */
    td_ingest_event *tsp =
        event(f, (ev_req){.id = "ev-dup", .dc = o.dc, .type = "SUSPEND", .source = TD_SRC_TSP, .event_ms = 3000});
    assert_false(tsp->duplicate);
    assert_int_equal(tsp->w.err.code, TD_OK);
    dispose(&first->w);
    dispose(&again->w);
    dispose(&tsp->w);
    json_decref(o.ans);
}

static void test_event_late_and_unknown(void **state)
{
    fixture *f = *state;
    tok_out o = tok_green(f, "corr-late");
    json_t *v = ev_ok(f, (ev_req){.id = "ev-1", .dc = o.dc, .type = "DELETE", .source = TD_SRC_TSP});
    assert_string_equal(field(v, "result"), "APPLIED");
    const char *del_op = field(v, "operationId");
    assert_memory_equal(del_op, "op_", 3);
    assert_string_not_equal(del_op, o.op);
    assert_int_equal(op_count(f, del_op, "DELETE", "SUCCESSFUL", "", "TSP"), 1);
    assert_int_equal(user_rows(f, o.dc, "DELETION", "PENDING"), 1);
    json_decref(v);

    v = ev_ok(f, (ev_req){.id = "ev-2", .dc = o.dc, .type = "RESUME", .source = TD_SRC_TSP});
    assert_string_equal(field(v, "result"), "IGNORED");
    assert_string_equal(field(v, "reason"), "DELETED");
    assert_string_equal(field(v, "state"), "DELETED");
    assert_int_equal(json_integer_value(json_object_get(v, "sequence")), 3);
    assert_null(json_object_get(v, "operationId"));
    json_decref(v);
    assert_int_equal(q_int(f,
                           "SELECT count(*) FROM dcard_events WHERE digital_card_id = '%s' AND seq = 3 AND outcome = "
                           "'IGNORED_LATE' AND why = 'DELETED'",
                           o.dc),
                     1);

    v = ev_ok(f, (ev_req){.id = "ev-3", .dc = o.dc, .type = "DEVICE_BOUND", .source = TD_SRC_WALLET});
    assert_string_equal(field(v, "result"), "STORED");
    assert_int_equal(json_integer_value(json_object_get(v, "sequence")), 4);
    json_decref(v);
    assert_int_equal(
        q_int(f, "SELECT count(*) FROM dcard_events WHERE digital_card_id = '%s' AND type = 'DEVICE_BOUND'", o.dc), 1);
    td_dcard_rec r = get_dcard(f, o.dc);
    assert_true(r.d.seq == 4);
    assert_int_equal(r.d.state, TD_DC_DELETED);
    td_dcard_rec_free(&r);
    /* Nothing more is owed for ignored or stored events. */
    assert_int_equal(q_int(f, "SELECT count(*) FROM outbox WHERE digital_card_id = '%s'", o.dc), 4);
    json_decref(o.ans);
}

/* The issuer's suspension holds until the issuer lifts it. */
static void test_event_suspenders(void **state)
{
    fixture *f = *state;
    tok_out o = tok_green(f, "corr-susp");
    json_t *v = ev_ok(f, (ev_req){.id = "s-1", .dc = o.dc, .type = "SUSPEND", .source = TD_SRC_WALLET});
    assert_string_equal(field(v, "result"), "APPLIED");
    assert_string_equal(field(v, "state"), "SUSPENDED");
    assert_int_equal(op_count(f, field(v, "operationId"), "SUSPEND", "SUCCESSFUL", "", "USER"), 1);
    json_decref(v);
    v = ev_ok(f, (ev_req){.id = "s-2", .dc = o.dc, .type = "SUSPEND", .source = TD_SRC_ISSUER});
    assert_string_equal(field(v, "result"), "APPLIED");
    assert_int_equal(op_count(f, field(v, "operationId"), "SUSPEND", "SUCCESSFUL", "", "ISSUER"), 1);
    json_decref(v);
    v = ev_ok(f, (ev_req){.id = "s-3", .dc = o.dc, .type = "RESUME", .source = TD_SRC_WALLET});
    assert_string_equal(field(v, "result"), "APPLIED");
    assert_string_equal(field(v, "state"), "SUSPENDED");
    json_decref(v);
    td_dcard_rec r = get_dcard(f, o.dc);
    assert_int_equal(r.d.state, TD_DC_SUSPENDED);
    assert_int_equal(r.d.suspended_by, TD_PARTY_ISSUER);
    td_dcard_rec_free(&r);
    assert_int_equal(issuer_rows(f, o.dc, "SUSPEND", "SUCCESSFUL", "", "WALLET"), 1);
    assert_int_equal(issuer_rows(f, o.dc, "SUSPEND", "SUCCESSFUL", "", "ISSUER"), 1);
    assert_int_equal(issuer_rows(f, o.dc, "RESUME", "SUCCESSFUL", "", "WALLET"), 1);
    /* An MDES suspendedBy names the party: ISSUER from the wallet is not permitted. */
    v = ev_ok(f,
              (ev_req){.id = "s-4", .dc = o.dc, .type = "RESUME", .source = TD_SRC_WALLET, .suspended_by = "ISSUER"});
    assert_string_equal(field(v, "result"), "IGNORED");
    assert_string_equal(field(v, "reason"), "NOT_PERMITTED");
    json_decref(v);
    json_decref(o.ans);
}

static void test_event_tenancy(void **state)
{
    fixture *f = *state;
    tok_out o = tok_green(f, "corr-ten");
    snapshot s = snap(f);
    td_ingest_event *cmd =
        event(f, (ev_req){.issuer = OTHER, .id = "t-1", .dc = o.dc, .type = "SUSPEND", .source = TD_SRC_TSP});
    assert_int_equal(cmd->w.err.code, TD_E_NOT_FOUND);
    dispose(&cmd->w);
    cmd = event(f, (ev_req){.id = "t-2", .dc = "dc_unknown", .type = "SUSPEND", .source = TD_SRC_TSP});
    assert_int_equal(cmd->w.err.code, TD_E_NOT_FOUND);
    dispose(&cmd->w);
    assert_same_snapshot(s, snap(f));
    assert_int_equal(dcard_state(f, o.dc), TD_DC_ACTIVE);
    json_decref(o.ans);
}

/* One delivery of an event id sent many times at once: one is applied, the
 * others replay its answer. */
static void test_event_concurrent_duplicates(void **state)
{
    fixture *f = *state;
    tok_out o = tok_green(f, "corr-evrace");
    enum { N = 8 };
    td_ingest_event *cmds[N];
    for (int i = 0; i < N; i++) {
        cmds[i] = calloc(1, sizeof *cmds[i]);
        td_strlcpy(cmds[i]->issuer_id, ISSUER, sizeof cmds[i]->issuer_id);
        td_strlcpy(cmds[i]->event_id, "ev-race", sizeof cmds[i]->event_id);
        td_strlcpy(cmds[i]->digital_card_id, o.dc, sizeof cmds[i]->digital_card_id);
        td_strlcpy(cmds[i]->type, "SUSPEND", sizeof cmds[i]->type);
        cmds[i]->source = TD_SRC_WALLET;
        begin(&cmds[i]->w);
    }
    for (int i = 0; i < N; i++)
        td_svc_ingest_event(&f->svc, cmds[i]);
    int dups = 0;
    for (int i = 0; i < N; i++) {
        finish(&cmds[i]->w);
        assert_int_equal(cmds[i]->w.err.code, TD_OK);
        dups += cmds[i]->duplicate;
    }
    for (int i = 0; i < N; i++)
        assert_string_equal(cmds[i]->answer_json, cmds[0]->answer_json);
    assert_int_equal(dups, N - 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM dcard_events WHERE digital_card_id = '%s'", o.dc), 2);
    assert_int_equal(q_int(f, "SELECT count(*) FROM operations WHERE operation = 'SUSPEND'"), 1);
    for (int i = 0; i < N; i++)
        dispose(&cmds[i]->w);
    json_decref(o.ans);
}

/* ================= commands through td_dcard_apply_write ================= */

typedef struct {
    td_write w;
    const char *dc;
    td_dcard_ev type;
    const char *op_id;
    const char *event_id; /* set: an event from the wallet, not a command */
    td_dcard_outcome outcome;
    td_st st; /* td_dcard_apply_write's answer (the job itself commits anyway) */
    char op_out[65];
} cmd_job;

/* An issuer command as issuer_ops.c writes it, inside the writer. */
static td_st run_command(td_conn *c, td_write *w)
{
    cmd_job *j = (cmd_job *)w;
    td_dcard_rec dc;
    td_st st = w->svc->store->ops->dcard_get(c, ISSUER, j->dc, &dc);
    if (st != TD_ST_OK) return st;
    int64_t now = td_now_ms();
    td_dcard_input in = {.type = j->type,
                         .source = j->event_id ? TD_SRC_WALLET : TD_SRC_ISSUER,
                         .origin = j->event_id ? TD_ORIGIN_EVENT : TD_ORIGIN_COMMAND,
                         .event_ms = now,
                         .now_ms = now};
    td_dcard_result res = td_dcard_apply(&dc.d, &in);
    td_card_policy p;
    td_card_policy_default(&p);
    td_apply_ctx a = {.dc = &dc,
                      .in = &in,
                      .res = &res,
                      .event_type = td_dcard_ev_name(j->type),
                      .event_id = j->event_id,
                      .operation_id = j->op_id,
                      .requestor_type = "ISSUER",
                      .reason = "Lost phone",
                      .reason_code = "DEVICE_LOST",
                      .policy = &p,
                      .correlation_id = "x-corr"};
    j->outcome = res.outcome;
    j->st = td_dcard_apply_write(w->svc, c, &a, j->op_out);
    td_dcard_rec_free(&dc);
    return TD_ST_OK;
}

static cmd_job apply_job(fixture *f, const char *dc, td_dcard_ev type, const char *op_id, const char *event_id)
{
    cmd_job j;
    memset(&j, 0, sizeof j);
    j.dc = dc;
    j.type = type;
    j.op_id = op_id;
    j.event_id = event_id;
    j.w.run = run_command;
    assert_int_equal(td_svc_submit_wait(&f->svc, &j.w), TD_OK);
    free(j.w.body);
    return j;
}

static cmd_job command(fixture *f, const char *dc, td_dcard_ev type, const char *op_id)
{
    cmd_job j = apply_job(f, dc, type, op_id, NULL);
    assert_int_equal(j.st, TD_ST_OK);
    return j;
}

static void test_apply_write_commands(void **state)
{
    fixture *f = *state;
    tok_out g = tok_green(f, "corr-cmd");
    cmd_job j = command(f, g.dc, TD_EV_SUSPEND, "op_cmd1");
    assert_int_equal(j.outcome, TD_DC_APPLIED);
    assert_string_equal(j.op_out, "op_cmd1");
    assert_int_equal(op_count(f, "op_cmd1", "SUSPEND", "SUCCESSFUL", "", "ISSUER"), 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM operations WHERE id = 'op_cmd1' AND reason = 'Lost phone' AND "
                              "reason_code = 'DEVICE_LOST' AND correlation_id = 'x-corr'"),
                     1);
    assert_int_equal(issuer_rows(f, g.dc, "SUSPEND", "SUCCESSFUL", "", "ISSUER"), 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM outbox WHERE operation_id = 'op_cmd1' AND dcard_seq = 2 AND "
                              "correlation_id = 'x-corr'"),
                     1);
    td_dcard_rec r = get_dcard(f, g.dc);
    assert_int_equal(r.d.state, TD_DC_SUSPENDED);
    assert_true(r.d.seq == 2);
    td_dcard_rec_free(&r);

    /* A repeat: the operation is recorded SUCCESSFUL, nothing else. */
    snapshot s = snap(f);
    j = command(f, g.dc, TD_EV_SUSPEND, "op_cmd2");
    assert_int_equal(j.outcome, TD_DC_NO_OP_ALREADY);
    assert_string_equal(j.op_out, "op_cmd2");
    assert_int_equal(op_count(f, "op_cmd2", "SUSPEND", "SUCCESSFUL", "", "ISSUER"), 1);
    s.ops++;
    assert_same_snapshot(s, snap(f));

    /* A refusal writes nothing at all. */
    tok_out y = tok_yellow(f, "corr-cmd-y");
    s = snap(f);
    j = command(f, y.dc, TD_EV_SUSPEND, "op_cmd3");
    assert_int_equal(j.outcome, TD_DC_REFUSED);
    assert_string_equal(j.op_out, "");
    assert_same_snapshot(s, snap(f));

    /* The issuer's delete of a pending card: CANCELED_BY_ISSUER on the
     * enrolment's operation, no end-user message. */
    j = command(f, y.dc, TD_EV_DELETE, "op_cmd4");
    assert_int_equal(j.outcome, TD_DC_APPLIED);
    assert_string_equal(j.op_out, y.op);
    assert_int_equal(op_count(f, y.op, "DIGITIZE", "FAILED", "CANCELED_BY_ISSUER", "TSP"), 1);
    assert_int_equal(issuer_rows(f, y.dc, "DIGITIZE", "FAILED", "CANCELED_BY_ISSUER", "ISSUER"), 1);
    assert_int_equal(q_int(f, "SELECT count(*) FROM outbox WHERE digital_card_id = '%s' AND channel = 'USER'", y.dc),
                     0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM timers WHERE digital_card_id = '%s' AND state = 'PENDING'", y.dc),
                     0);
    json_decref(g.ans);
    json_decref(y.ans);
}

/* A duplicate event id is a CONFLICT before anything is written: the caller
 * may keep its transaction and replay the stored answer. */
static void test_apply_write_duplicate_event(void **state)
{
    fixture *f = *state;
    tok_out g = tok_green(f, "corr-dupw");
    cmd_job j = apply_job(f, g.dc, TD_EV_SUSPEND, NULL, "ev-w");
    assert_int_equal(j.st, TD_ST_OK);
    assert_int_equal(j.outcome, TD_DC_APPLIED);
    assert_memory_equal(j.op_out, "op_", 3);
    snapshot s = snap(f);
    j = apply_job(f, g.dc, TD_EV_RESUME, NULL, "ev-w");
    assert_int_equal(j.st, TD_ST_CONFLICT);
    assert_same_snapshot(s, snap(f));
    assert_int_equal(dcard_state(f, g.dc), TD_DC_SUSPENDED);
    json_decref(g.ans);
}

/* ================= timers ================= */

#define FAST_STEPUP                                                                                                    \
    "{\"stepUp\":{\"firstReminderAfterSeconds\":1,\"reminderEverySeconds\":1,\"maxReminders\":2,\"sessionSeconds\":3}" \
    "}"

static void test_timers_fire_once(void **state)
{
    fixture *f = *state;
    put_policy(f, ISSUER, FAST_STEPUP);
    tok_out o = tok_yellow(f, "corr-timer");
    int64_t t0 = td_now_ms();
    assert_int_equal(q_int(f, "SELECT count(*) FROM timers WHERE state = 'PENDING'"), 3);
    assert_int_equal(td_sched_run_at(&f->svc, t0 - 1000), 0);
    assert_int_equal(td_sched_run_at(&f->svc, t0 + 1000), 1);
    assert_int_equal(td_sched_run_at(&f->svc, t0 + 1000), 0);
    assert_int_equal(user_rows(f, o.dc, "REMINDER", "PENDING"), 1);
    assert_int_equal(td_sched_run_at(&f->svc, t0 + 2000), 1);
    assert_int_equal(user_rows(f, o.dc, "REMINDER", "PENDING"), 2);
    assert_int_equal(dcard_state(f, o.dc), TD_DC_PENDING_IDV);

    /* The session ends: deleted through the simulated TSP, DIGITIZE FAILED. */
    assert_int_equal(td_sched_run_at(&f->svc, t0 + 3000), 1);
    assert_int_equal(td_sched_run_at(&f->svc, t0 + 9000), 0);
    td_dcard_rec r = get_dcard(f, o.dc);
    assert_int_equal(r.d.state, TD_DC_DELETED);
    assert_false(r.d.stepup_open);
    assert_true(r.d.seq == 2);
    td_dcard_rec_free(&r);
    assert_int_equal(op_count(f, o.op, "DIGITIZE", "FAILED", "STEP_UP_EXPIRED", "TSP"), 1);
    assert_int_equal(issuer_rows(f, o.dc, "DIGITIZE", "FAILED", "STEP_UP_EXPIRED", "TSP"), 1);
    assert_int_equal(q_int(f,
                           "SELECT count(*) FROM operations WHERE operation = 'DELETE' AND requestor_type = 'D1' "
                           "AND status = 'SUCCESSFUL' AND digital_card_id = '%s'",
                           o.dc),
                     1);
    assert_int_equal(q_int(f,
                           "SELECT count(*) FROM dcard_events WHERE digital_card_id = '%s' AND seq = 2 AND type = "
                           "'STEPUP_EXPIRE' AND outcome = 'APPLIED'",
                           o.dc),
                     1);
    /* The reminders owed before the end are cancelled with the session. */
    assert_int_equal(user_rows(f, o.dc, "REMINDER", "CANCELLED"), 2);
    assert_int_equal(q_int(f, "SELECT count(*) FROM timers WHERE state = 'FIRED'"), 3);
    assert_int_equal(q_int(f, "SELECT count(*) FROM timers WHERE state = 'PENDING'"), 0);
    json_decref(o.ans);
}

/* After an ID&V failure the session's end is IDV_FAILED; a card activated
 * before its timers come due hears nothing more. */
static void test_timers_idv_failed_and_activated(void **state)
{
    fixture *f = *state;
    put_policy(f, ISSUER, FAST_STEPUP);
    tok_out a = tok_yellow(f, "corr-idv-a");
    tok_out b = tok_yellow(f, "corr-idv-b");
    int64_t t0 = td_now_ms();
    json_t *v = ev_ok(f, (ev_req){.id = "i-1", .dc = a.dc, .type = "IDV_FAILED", .source = TD_SRC_TSP});
    assert_string_equal(field(v, "result"), "APPLIED");
    assert_null(json_object_get(v, "operationId"));
    json_decref(v);
    v = ev_ok(f, (ev_req){.id = "i-2", .dc = b.dc, .type = "IDV_SUCCEEDED", .source = TD_SRC_TSP});
    assert_string_equal(field(v, "state"), "ACTIVE");
    json_decref(v);
    assert_int_equal(td_sched_run_at(&f->svc, t0 + 5000), 3); /* a's two reminders and its expiry */
    assert_int_equal(op_count(f, a.op, "DIGITIZE", "FAILED", "IDV_FAILED", "TSP"), 1);
    assert_int_equal(dcard_state(f, b.dc), TD_DC_ACTIVE);
    assert_int_equal(user_rows(f, b.dc, "REMINDER", "PENDING"), 0);
    json_decref(a.ans);
    json_decref(b.ans);
}

static void test_timers_tsp_failure_reschedules(void **state)
{
    fixture *f = *state;
    put_policy(f, ISSUER, "{\"stepUp\":{\"maxReminders\":0,\"sessionSeconds\":3}}");
    tok_out o = tok_yellow(f, "corr-tspfail");
    int64_t t0 = td_now_ms();
    td_tsp_sim_set(f->svc.tsp, "fail", 0);
    snapshot s = snap(f);
    assert_int_equal(td_sched_run_at(&f->svc, t0 + 3000), 0);
    assert_int_equal(dcard_state(f, o.dc), TD_DC_PENDING_IDV);
    assert_same_snapshot(s, snap(f));
    assert_true(q_int(f, "SELECT due_ms FROM timers WHERE kind = 'STEPUP_EXPIRE' AND state = 'PENDING'") ==
                t0 + 3000 + 60000);
    /* Not due again before the retry time. */
    td_tsp_sim_set(f->svc.tsp, "accept", 0);
    assert_int_equal(td_sched_run_at(&f->svc, t0 + 30000), 0);
    assert_int_equal(td_sched_run_at(&f->svc, t0 + 63000), 1);
    assert_int_equal(dcard_state(f, o.dc), TD_DC_DELETED);
    assert_int_equal(op_count(f, o.op, "DIGITIZE", "FAILED", "STEP_UP_EXPIRED", "TSP"), 1);
    json_decref(o.ans);
}

/* Timers are rows: a restart keeps them, and each still fires once. */
static void test_timers_survive_restart(void **state)
{
    fixture *f = *state;
    put_policy(f, ISSUER, FAST_STEPUP);
    tok_out o = tok_yellow(f, "corr-restart");
    int64_t t0 = td_now_ms();
    assert_int_equal(td_sched_run_at(&f->svc, t0 + 1000), 1);
    f->s->close(f->s);
    f->s = NULL;
    f->s = test_store_open(f->loc);
    f->svc.store = f->s;
    assert_int_equal(td_sched_run_at(&f->svc, t0 + 1000), 0);
    assert_int_equal(td_sched_run_at(&f->svc, t0 + 5000), 2);
    assert_int_equal(td_sched_run_at(&f->svc, t0 + 5000), 0);
    assert_int_equal(q_int(f, "SELECT count(*) FROM outbox WHERE message = 'REMINDER'"), 2);
    assert_int_equal(dcard_state(f, o.dc), TD_DC_DELETED);
    json_decref(o.ans);
}

/* The runner thread fires what is due on its own, and stops. */
static void test_timers_thread(void **state)
{
    fixture *f = *state;
    put_policy(f, ISSUER, "{\"stepUp\":{\"firstReminderAfterSeconds\":1,\"maxReminders\":1,\"sessionSeconds\":60}}");
    tok_out o = tok_yellow(f, "corr-thread");
    td_sched *t = td_sched_start(&f->svc);
    assert_non_null(t);
    for (int i = 0; i < 60 && user_rows(f, o.dc, "REMINDER", "PENDING") == 0; i++)
        usleep(100 * 1000);
    td_sched_stop(t);
    assert_int_equal(user_rows(f, o.dc, "REMINDER", "PENDING"), 1);
    json_decref(o.ans);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    if (td_crypto_init() != 0) return 1;
    test_db_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_and_times),
        cmocka_unit_test(test_policy_json),
        T(test_policy_load),
        T(test_tokenize_green),
        T(test_tokenize_yellow),
        T(test_tokenize_yellow_defaults),
        T(test_tokenize_red_rules),
        T(test_tokenize_red_counters),
        T(test_tokenize_replay),
        T(test_tokenize_concurrent_duplicates),
        T(test_otp_queued_and_sealed),
        T(test_otp_rate_limited),
        T(test_otp_refusals),
        T(test_event_activate_pending),
        T(test_event_delete_pending),
        T(test_event_delete_pending_quiet),
        T(test_event_duplicate),
        T(test_event_late_and_unknown),
        T(test_event_suspenders),
        T(test_event_tenancy),
        T(test_event_concurrent_duplicates),
        T(test_apply_write_commands),
        T(test_apply_write_duplicate_event),
        T(test_timers_fire_once),
        T(test_timers_idv_failed_and_activated),
        T(test_timers_tsp_failure_reschedules),
        T(test_timers_survive_restart),
        T(test_timers_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
