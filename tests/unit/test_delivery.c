/* test_delivery.c — the delivery worker (src/notify/) end to end in one
 * process: a real store (SQLite under $TD_TEST_TMP, or PostgreSQL at
 * $TD_TEST_PG_URL, as TD_TEST_STORE says: test_db.h), the real writer, the
 * worker's libcurl multi handle, and a real HTTP receiver (libmicrohttpd on an
 * ephemeral port of 127.0.0.1) that records every request and answers as a
 * test tells it (2xx, 500 N times, 400, 401 for one bearer, 429 with
 * Retry-After, too slow). Also the settings and replay use cases.
 * Waits poll the store with a generous deadline, and the retry back-off is
 * shortened with td_notify_set_backoff, so nothing depends on how fast the
 * machine is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "notify/notify.h"
#include "service/cards.h"
#include "service/delivery.h"
#include "util/util.h"

#define TEST_DB_TAG "delivery"
#include "test_db.h"

#define ISSUER "ISSUER0001"
#define WAIT_MS 30000 /* the longest any condition may take: generous, never a timing assumption */

static const td_store_ops *OPS;

/* ================= the receiver ================= */

#define RX_MAX 512

typedef struct {
    char url[256];
    char auth[256];
    char wh_id[128], wh_ts[32], wh_sig[256];
    char *body;
    int status; /* what was answered */
    int64_t at_ms;
} rx_req;

typedef struct {
    struct MHD_Daemon *d;
    uint16_t port;
    pthread_mutex_t mu;
    rx_req reqs[RX_MAX];
    int n;
    /* behaviour */
    int ok_status; /* answer when nothing else applies (204) */
    int fail_n;    /* the first fail_n matching requests get fail_status */
    int fail_status;
    char fail_match[80];    /* "" = every request; else only those whose body contains it */
    int retry_after_s;      /* sent with a 429 */
    int sleep_n, sleep_ms;  /* the first sleep_n requests are answered after sleep_ms */
    char reject_bearer[64]; /* "Bearer <this>" gets 401 */
    /* the OAuth2 token endpoint at /token */
    int token_calls;
    char token_auth[256];
    char token_body[256];
} receiver;

typedef struct {
    char *body;
    size_t len;
} rx_conn;

static void rx_completed(void *cls, struct MHD_Connection *c, void **ctx, enum MHD_RequestTerminationCode t)
{
    (void)cls;
    (void)c;
    (void)t;
    rx_conn *rc = *ctx;
    if (rc) {
        free(rc->body);
        free(rc);
    }
    *ctx = NULL;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void copy_hdr(struct MHD_Connection *c, const char *name, char *out, size_t cap)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    td_strlcpy(out, v ? v : "", cap);
}

static enum MHD_Result rx_answer(struct MHD_Connection *c, int status, const char *body, int retry_after)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    if (retry_after > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", retry_after);
        MHD_add_response_header(r, "Retry-After", v);
    }
    if (body[0]) MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result rx_handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **ctx)
{
    (void)method;
    (void)version;
    receiver *rx = cls;
    rx_conn *rc = *ctx;
    if (!rc) {
        rc = calloc(1, sizeof *rc);
        *ctx = rc;
        return rc ? MHD_YES : MHD_NO;
    }
    if (*upload_size) {
        char *nb = realloc(rc->body, rc->len + *upload_size + 1);
        if (!nb) return MHD_NO;
        memcpy(nb + rc->len, upload, *upload_size);
        rc->body = nb;
        rc->len += *upload_size;
        rc->body[rc->len] = 0;
        *upload_size = 0;
        return MHD_YES;
    }
    const char *body = rc->body ? rc->body : "";
    if (!strcmp(url, "/token")) {
        pthread_mutex_lock(&rx->mu);
        int n = ++rx->token_calls;
        copy_hdr(c, "Authorization", rx->token_auth, sizeof rx->token_auth);
        td_strlcpy(rx->token_body, body, sizeof rx->token_body);
        pthread_mutex_unlock(&rx->mu);
        char ans[128];
        snprintf(ans, sizeof ans, "{\"access_token\":\"tok-%d\",\"token_type\":\"Bearer\",\"expires_in\":3600}", n);
        return rx_answer(c, 200, ans, 0);
    }
    pthread_mutex_lock(&rx->mu);
    int status = rx->ok_status;
    int retry_after = 0, sleep_for = 0;
    char auth[256];
    copy_hdr(c, "Authorization", auth, sizeof auth);
    char rejected[80];
    snprintf(rejected, sizeof rejected, "Bearer %s", rx->reject_bearer);
    if (rx->reject_bearer[0] && !strcmp(auth, rejected)) {
        status = 401;
    } else if (rx->fail_n > 0 && (!rx->fail_match[0] || strstr(body, rx->fail_match))) {
        rx->fail_n--;
        status = rx->fail_status;
        if (status == 429) retry_after = rx->retry_after_s;
    }
    if (rx->sleep_n > 0) {
        rx->sleep_n--;
        sleep_for = rx->sleep_ms;
    }
    pthread_mutex_unlock(&rx->mu);
    if (sleep_for) sleep_ms(sleep_for);
    pthread_mutex_lock(&rx->mu);
    if (rx->n < RX_MAX) {
        rx_req *q = &rx->reqs[rx->n++];
        td_strlcpy(q->url, url, sizeof q->url);
        td_strlcpy(q->auth, auth, sizeof q->auth);
        copy_hdr(c, "webhook-id", q->wh_id, sizeof q->wh_id);
        copy_hdr(c, "webhook-timestamp", q->wh_ts, sizeof q->wh_ts);
        copy_hdr(c, "webhook-signature", q->wh_sig, sizeof q->wh_sig);
        q->body = strdup(body);
        q->status = status;
        q->at_ms = td_now_ms();
    }
    pthread_mutex_unlock(&rx->mu);
    return rx_answer(c, status, "", retry_after);
}

static receiver *rx_start(void)
{
    receiver *rx = calloc(1, sizeof *rx);
    assert_non_null(rx);
    pthread_mutex_init(&rx->mu, NULL);
    rx->ok_status = 204;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rx->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL, rx_handler,
                             rx, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin, MHD_OPTION_NOTIFY_COMPLETED,
                             rx_completed, NULL, MHD_OPTION_END);
    assert_non_null(rx->d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(rx->d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    rx->port = info->port;
    assert_true(rx->port > 0);
    return rx;
}

static void rx_stop(receiver *rx)
{
    MHD_stop_daemon(rx->d);
    for (int i = 0; i < rx->n; i++)
        free(rx->reqs[i].body);
    pthread_mutex_destroy(&rx->mu);
    free(rx);
}

static int rx_count(receiver *rx)
{
    pthread_mutex_lock(&rx->mu);
    int n = rx->n;
    pthread_mutex_unlock(&rx->mu);
    return n;
}

/* Requests whose body contains s. */
static int rx_count_body(receiver *rx, const char *s)
{
    pthread_mutex_lock(&rx->mu);
    int k = 0;
    for (int i = 0; i < rx->n; i++)
        if (strstr(rx->reqs[i].body, s)) k++;
    pthread_mutex_unlock(&rx->mu);
    return k;
}

/* ================= the fixture ================= */

typedef struct {
    td_store *s;
    char loc[TEST_LOC_MAX]; /* the SQLite file, or the PostgreSQL URL (test_db.h) */
    td_config cfg;
    td_svc svc;
    receiver *rx;
    td_notify *d;
} fixture;

static _Atomic(td_notify *) current; /* the worker the store's hook wakes (start_worker) */

static td_st run_issuer(td_conn *c, void *a)
{
    (void)a;
    td_issuer_rec i = {.created_ms = 1};
    td_strlcpy(i.id, ISSUER, sizeof i.id);
    td_strlcpy(i.display_name, "Test issuer", sizeof i.display_name);
    return OPS->issuer_insert(c, &i);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    test_store_new(f->loc, sizeof f->loc, "t");
    f->s = test_store_open(f->loc);
    OPS = f->s->ops;
    char err[256] = "";
    char *argv[] = {NULL};
    if (td_config_load(&f->cfg, 0, argv, err, sizeof err)) fail_msg("config: %s", err);
    td_random_bytes(f->cfg.master_key, sizeof f->cfg.master_key);
    f->cfg.delivery_concurrency = 8;
    f->cfg.delivery_poll_ms = 20;
    f->svc = (td_svc){.store = f->s, .cfg = &f->cfg};
    assert_int_equal(f->s->run_sync(f->s, run_issuer, &f->svc), TD_ST_OK);
    f->rx = rx_start();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    atomic_store(&current, NULL);
    td_notify_stop(f->d);
    if (f->s) f->s->close(f->s);
    if (f->rx) rx_stop(f->rx);
    test_store_remove(f->loc);
    free(f);
    return 0;
}

/* The worker, with a short back-off so retries come quickly. */
static void start_worker(fixture *f)
{
    f->d = td_notify_start(&f->svc);
    assert_non_null(f->d);
    atomic_store(&current, f->d);
    td_notify_set_backoff(f->d, 5, 40);
}

/* ---- synchronous use cases ---- */

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

static void render_empty(td_write *w)
{
    w->status = 200;
    w->body = strdup("{}");
}

/* Calls a write use case and waits for its completion. */
#define CALL_WRITE(svc, fn, cmd)                                                                                       \
    do {                                                                                                               \
        waiter wt_ = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};                                     \
        (cmd)->w.face = &wt_;                                                                                          \
        (cmd)->w.complete = wake;                                                                                      \
        (cmd)->w.render = render_empty;                                                                                \
        fn((svc), (cmd));                                                                                              \
        pthread_mutex_lock(&wt_.mu);                                                                                   \
        while (!wt_.done)                                                                                              \
            pthread_cond_wait(&wt_.cv, &wt_.mu);                                                                       \
        pthread_mutex_unlock(&wt_.mu);                                                                                 \
        free((cmd)->w.body);                                                                                           \
        (cmd)->w.body = NULL;                                                                                          \
    } while (0)

/* The issuer's settings: profile/auth, the receiver as base URL and
 * messaging endpoint (/msg); tweak() may change more before the write. */
static td_err configure(fixture *f, const char *profile, const char *auth, const char *secret,
                        void (*tweak)(td_delivery_rec *, fixture *))
{
    td_put_delivery *cmd = calloc(1, sizeof *cmd);
    assert_non_null(cmd);
    td_delivery_defaults(&cmd->rec);
    td_strlcpy(cmd->rec.issuer_id, ISSUER, sizeof cmd->rec.issuer_id);
    td_strlcpy(cmd->rec.profile, profile, sizeof cmd->rec.profile);
    td_strlcpy(cmd->rec.auth, auth, sizeof cmd->rec.auth);
    snprintf(cmd->rec.base_url, sizeof cmd->rec.base_url, "http://127.0.0.1:%u/hooks", f->rx->port);
    snprintf(cmd->rec.messaging_url, sizeof cmd->rec.messaging_url, "http://127.0.0.1:%u/msg", f->rx->port);
    cmd->rec.timeout_ms = 5000;
    if (secret) {
        cmd->secret_given = true;
        td_strlcpy(cmd->secret, secret, sizeof cmd->secret);
    }
    if (tweak) tweak(&cmd->rec, f);
    CALL_WRITE(&f->svc, td_svc_put_delivery, cmd);
    td_err e = cmd->w.err.code;
    /* the job wiped the secret */
    for (size_t i = 0; i < sizeof cmd->secret; i++)
        assert_int_equal(cmd->secret[i], 0);
    td_delivery_rec_free(&cmd->rec);
    free(cmd);
    return e;
}

/* ---- rows ---- */

static td_st run_dcard(td_conn *c, void *a)
{
    return OPS->dcard_insert(c, a);
}

static void add_dcard(fixture *f, const char *id)
{
    td_dcard_rec r = {.d = {.state = TD_DC_ACTIVE, .seq = 1}, .verdict = TD_VERDICT_GREEN, .is_primary = true};
    td_strlcpy(r.id, id, sizeof r.id);
    td_strlcpy(r.issuer_id, ISSUER, sizeof r.issuer_id);
    td_strlcpy(r.card_id, "card-0001", sizeof r.card_id);
    snprintf(r.correlation_id, sizeof r.correlation_id, "corr-%s", id);
    td_strlcpy(r.digitize_op_id, "op-digitize", sizeof r.digitize_op_id);
    td_strlcpy(r.wallet_provider_id, "APPLE_PAY", sizeof r.wallet_provider_id);
    td_strlcpy(r.token_storage_id, "SE-01", sizeof r.token_storage_id);
    td_strlcpy(r.last4, "1111", sizeof r.last4);
    r.created_ms = r.updated_ms = td_now_ms();
    assert_int_equal(f->s->run_sync(f->s, run_dcard, &r), TD_ST_OK);
}

static td_st run_outbox(td_conn *c, void *a)
{
    return OPS->outbox_insert(c, a);
}

static td_outbox_rec issuer_row(const char *dcard, const char *operation, const char *status, const char *op_id)
{
    int64_t now = td_now_ms();
    td_outbox_rec o = {.created_ms = now, .due_ms = now, .event_ms = now, .dcard_seq = 1};
    td_strlcpy(o.issuer_id, ISSUER, sizeof o.issuer_id);
    td_strlcpy(o.channel, "ISSUER", sizeof o.channel);
    td_strlcpy(o.digital_card_id, dcard, sizeof o.digital_card_id);
    td_strlcpy(o.card_id, "card-0001", sizeof o.card_id);
    td_strlcpy(o.operation, operation, sizeof o.operation);
    td_strlcpy(o.status, status, sizeof o.status);
    td_strlcpy(o.operation_id, op_id, sizeof o.operation_id);
    td_strlcpy(o.source, "ISSUER", sizeof o.source);
    td_strlcpy(o.wallet_provider_id, "APPLE_PAY", sizeof o.wallet_provider_id);
    td_strlcpy(o.state, "PENDING", sizeof o.state);
    return o;
}

static int64_t add_row(fixture *f, td_outbox_rec o)
{
    assert_int_equal(f->s->run_sync(f->s, run_outbox, &o), TD_ST_OK);
    assert_true(o.id > 0);
    return o.id;
}

typedef struct {
    int64_t id;
    td_outbox_rec row;
    bool found;
} one_row;

static void pick_row(const td_outbox_rec *o, void *arg)
{
    one_row *r = arg;
    if (o->id == r->id) {
        r->row = *o;
        r->found = true;
    }
}

static td_outbox_rec get_row(fixture *f, int64_t id)
{
    one_row r = {.id = id};
    td_error e = {0};
    assert_int_equal(td_svc_list_outbox(&f->svc, ISSUER, NULL, id - 1, 1, pick_row, &r, &e), TD_OK);
    assert_true(r.found);
    return r.row;
}

static bool row_in(fixture *f, int64_t id, const char *state)
{
    return !strcmp(get_row(f, id).state, state);
}

/* Polls until the row is in state (fails the test after WAIT_MS). */
static td_outbox_rec wait_state(fixture *f, int64_t id, const char *state)
{
    int64_t until = td_now_ms() + WAIT_MS;
    while (!row_in(f, id, state)) {
        if (td_now_ms() > until) {
            td_outbox_rec r = get_row(f, id);
            fail_msg("row %lld: still %s (attempts %d, last error '%s') instead of %s", (long long)id, r.state,
                     r.attempts, r.last_error, state);
        }
        sleep_ms(5);
    }
    return get_row(f, id);
}

/* The worker's counters once it counted n deliveries: it counts a row when it
 * sees the write job that recorded it done, a moment after the row's new state
 * is visible in the store. */
static td_notify_counters wait_delivered(fixture *f, uint64_t n)
{
    int64_t until = td_now_ms() + WAIT_MS;
    td_notify_counters c;
    td_notify_stats(f->d, &c);
    while (c.delivered < n && td_now_ms() < until) {
        sleep_ms(2);
        td_notify_stats(f->d, &c);
    }
    return c;
}

/* ================= tests ================= */

static void webhook_secret(char *out, size_t cap)
{
    uint8_t key[24];
    td_random_bytes(key, sizeof key);
    char b64[64];
    sodium_bin2base64(b64, sizeof b64, key, sizeof key, sodium_base64_VARIANT_ORIGINAL);
    snprintf(out, cap, "whsec_%s", b64);
}

/* Standard Webhooks, recomputed with libsodium alone: "v1," + base64(HMAC-SHA256(
 * base64-decoded secret after "whsec_", id.timestamp.body)). */
static const char *independent_sig(const char *secret, const char *id, const char *ts, const char *body)
{
    static char out[128];
    uint8_t key[64];
    size_t klen = 0;
    assert_int_equal(sodium_base642bin(key, sizeof key, secret + 6, strlen(secret + 6), NULL, &klen, NULL,
                                       sodium_base64_VARIANT_ORIGINAL),
                     0);
    crypto_auth_hmacsha256_state st;
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init(&st, key, klen);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)id, strlen(id));
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)ts, strlen(ts));
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)body, strlen(body));
    crypto_auth_hmacsha256_final(&st, mac);
    memcpy(out, "v1,", 3);
    sodium_bin2base64(out + 3, sizeof out - 3, mac, sizeof mac, sodium_base64_VARIANT_ORIGINAL);
    return out;
}

/* Rows of several digital cards are all delivered, each once, signed. */
static void test_webhook_delivered_once_signed(void **state)
{
    fixture *f = *state;
    char secret[80];
    webhook_secret(secret, sizeof secret);
    assert_int_equal(configure(f, "webhook", "webhook", secret, NULL), TD_OK);
    int64_t ids[20];
    for (int i = 0; i < 20; i++) {
        char dc[32], op[32];
        snprintf(dc, sizeof dc, "dc_%d", i % 5);
        snprintf(op, sizeof op, "op_%02d", i);
        if (i < 5) add_dcard(f, dc);
        ids[i] = add_row(f, issuer_row(dc, i < 5 ? "DIGITIZE" : "SUSPEND", "SUCCESSFUL", op));
    }
    start_worker(f);
    for (int i = 0; i < 20; i++) {
        td_outbox_rec r = wait_state(f, ids[i], "DELIVERED");
        assert_int_equal(r.attempts, 1);
        assert_int_equal(r.last_status, 204);
    }
    assert_int_equal(rx_count(f->rx), 20);
    /* each webhook id once, each signature valid for its own timestamp */
    for (int i = 0; i < 20; i++) {
        char want[64];
        snprintf(want, sizeof want, "msg_%s_%lld", ISSUER, (long long)ids[i]);
        int seen = 0;
        for (int k = 0; k < f->rx->n; k++) {
            rx_req *q = &f->rx->reqs[k];
            if (strcmp(q->wh_id, want) != 0) continue;
            seen++;
            int64_t ts = 0;
            assert_int_equal(td_parse_i64(q->wh_ts, &ts), 0);
            assert_true(llabs(ts - td_now_ms() / 1000) < 600);
            char sig[256];
            assert_int_equal(td_webhook_sign(secret, q->wh_id, ts, q->body, strlen(q->body), sig, sizeof sig), 0);
            assert_string_equal(q->wh_sig, sig);
            assert_string_equal(q->wh_sig, independent_sig(secret, q->wh_id, q->wh_ts, q->body));
            assert_string_equal(q->url, "/hooks");
            assert_string_equal(q->auth, "");
        }
        assert_int_equal(seen, 1);
    }
    td_notify_counters c = wait_delivered(f, 20);
    assert_int_equal(c.delivered, 20);
    assert_int_equal(c.retried, 0);
    assert_int_equal(c.dead, 0);
    assert_int_equal(c.requests, 20);
    td_notify_stop(f->d);
    f->d = NULL;
}

/* A digital card's later rows wait while its first is retried (500 three
 * times); another card's rows are not held up. */
/* The store's after-commit hook wakes the worker: a row written while the
 * worker sleeps between polls (here 10 s apart) goes well before the next poll. */
static void wake_current(void)
{
    td_notify_kick(atomic_load(&current));
}

static void test_commit_wakes_worker(void **state)
{
    fixture *f = *state;
    assert_int_equal(configure(f, "webhook", "none", NULL, NULL), TD_OK);
    add_dcard(f, "dc_A");
    f->cfg.delivery_poll_ms = 10000;
    f->s->on_outbox = wake_current;
    start_worker(f);
    sleep_ms(200); /* its first claim (at start) found nothing: it now waits for its next poll */
    int64_t t0 = td_now_ms();
    int64_t id = add_row(f, issuer_row("dc_A", "SUSPEND", "SUCCESSFUL", "op_wake"));
    while (!row_in(f, id, "DELIVERED") && td_now_ms() - t0 < 5000)
        sleep_ms(5);
    assert_true(row_in(f, id, "DELIVERED")); /* within half a poll interval: it was woken */
    f->s->on_outbox = NULL;
}

/* A failed attempt's retry goes when its back-off ends, not at the next poll:
 * the worker knows when the next waiting row comes due. */
static void test_retry_claimed_when_due(void **state)
{
    fixture *f = *state;
    assert_int_equal(configure(f, "webhook", "none", NULL, NULL), TD_OK);
    add_dcard(f, "dc_A");
    f->cfg.delivery_poll_ms = 10000;
    f->s->on_outbox = wake_current;
    f->rx->fail_n = 2;
    f->rx->fail_status = 500;
    start_worker(f); /* back-off 5..40 ms */
    int64_t t0 = td_now_ms();
    int64_t id = add_row(f, issuer_row("dc_A", "SUSPEND", "SUCCESSFUL", "op_due"));
    while (!row_in(f, id, "DELIVERED") && td_now_ms() - t0 < 8000)
        sleep_ms(5);
    assert_true(row_in(f, id, "DELIVERED")); /* two retries, each long before a 10 s poll */
    assert_int_equal(wait_state(f, id, "DELIVERED").attempts, 3);
    f->s->on_outbox = NULL;
}

static void test_order_kept_while_retried(void **state)
{
    fixture *f = *state;
    assert_int_equal(configure(f, "webhook", "none", NULL, NULL), TD_OK);
    add_dcard(f, "dc_A");
    add_dcard(f, "dc_B");
    f->rx->fail_n = 3;
    f->rx->fail_status = 500;
    td_strlcpy(f->rx->fail_match, "\"dc_A\"", sizeof f->rx->fail_match);
    start_worker(f);
    int64_t a1 = add_row(f, issuer_row("dc_A", "SUSPEND", "SUCCESSFUL", "op_a1"));
    int64_t b1 = add_row(f, issuer_row("dc_B", "SUSPEND", "SUCCESSFUL", "op_b1"));
    int64_t a2 = add_row(f, issuer_row("dc_A", "RESUME", "SUCCESSFUL", "op_a2"));
    int64_t a3 = add_row(f, issuer_row("dc_A", "DELETE", "SUCCESSFUL", "op_a3"));
    int64_t b2 = add_row(f, issuer_row("dc_B", "RESUME", "SUCCESSFUL", "op_b2"));
    td_outbox_rec r = wait_state(f, a3, "DELIVERED");
    assert_int_equal(r.attempts, 1);
    r = wait_state(f, a1, "DELIVERED");
    assert_int_equal(r.attempts, 4);
    assert_int_equal(wait_state(f, a2, "DELIVERED").attempts, 1);
    wait_state(f, b1, "DELIVERED");
    wait_state(f, b2, "DELIVERED");
    /* in the receiver's log: op_a1 four times (three 500s, then 204), then op_a2, then op_a3 */
    int last_a1 = -1, first_a2 = -1, first_a3 = -1, n_a1 = 0;
    for (int k = 0; k < f->rx->n; k++) {
        const char *b = f->rx->reqs[k].body;
        if (strstr(b, "\"op_a1\"")) {
            last_a1 = k;
            n_a1++;
        }
        if (strstr(b, "\"op_a2\"") && first_a2 < 0) first_a2 = k;
        if (strstr(b, "\"op_a3\"") && first_a3 < 0) first_a3 = k;
    }
    assert_int_equal(n_a1, 4);
    assert_int_equal(f->rx->reqs[last_a1].status, 204);
    assert_true(last_a1 < first_a2);
    assert_true(first_a2 < first_a3);
    assert_int_equal(rx_count_body(f->rx, "\"op_a2\""), 1);
    assert_int_equal(rx_count_body(f->rx, "\"op_b1\""), 1);
    td_notify_counters c = wait_delivered(f, 5);
    assert_int_equal(c.retried, 3);
    assert_int_equal(c.delivered, 5);
}

/* 400 is a dead letter at once, visible with its attempts and error; a
 * replay delivers it under the same id. */
static void test_400_dead_then_replay(void **state)
{
    fixture *f = *state;
    assert_int_equal(configure(f, "webhook", "none", NULL, NULL), TD_OK);
    add_dcard(f, "dc_A");
    f->rx->fail_n = 1;
    f->rx->fail_status = 400;
    start_worker(f);
    int64_t id = add_row(f, issuer_row("dc_A", "SUSPEND", "SUCCESSFUL", "op_dead"));
    td_outbox_rec r = wait_state(f, id, "DEAD");
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.last_status, 400);
    assert_non_null(strstr(r.last_error, "400"));
    /* listed among the dead */
    one_row l = {.id = id};
    td_error e = {0};
    assert_int_equal(td_svc_list_outbox(&f->svc, ISSUER, "DEAD", 0, 10, pick_row, &l, &e), TD_OK);
    assert_true(l.found);

    td_replay rp = {.id = id};
    td_strlcpy(rp.issuer_id, ISSUER, sizeof rp.issuer_id);
    CALL_WRITE(&f->svc, td_svc_replay_dead, &rp);
    assert_int_equal(rp.w.err.code, TD_OK);
    assert_int_equal(rp.n_replayed, 1);
    r = wait_state(f, id, "DELIVERED");
    assert_int_equal(r.attempts, 2);
    assert_int_equal(rx_count(f->rx), 2);
    assert_string_equal(f->rx->reqs[0].wh_id, f->rx->reqs[1].wh_id);
    assert_int_equal(rx_count_body(f->rx, "\"op_dead\""), 2);

    /* a row that is not dead, an unknown id, an unknown issuer */
    td_replay again = {.id = id};
    td_strlcpy(again.issuer_id, ISSUER, sizeof again.issuer_id);
    CALL_WRITE(&f->svc, td_svc_replay_dead, &again);
    assert_int_equal(again.w.err.code, TD_E_NOT_ALLOWED_IN_STATE);
    td_replay unknown = {.id = id + 1000};
    td_strlcpy(unknown.issuer_id, ISSUER, sizeof unknown.issuer_id);
    CALL_WRITE(&f->svc, td_svc_replay_dead, &unknown);
    assert_int_equal(unknown.w.err.code, TD_E_NOT_FOUND);
    td_replay nobody = {.id = 0};
    td_strlcpy(nobody.issuer_id, "ISSUER9999", sizeof nobody.issuer_id);
    CALL_WRITE(&f->svc, td_svc_replay_dead, &nobody);
    assert_int_equal(nobody.w.err.code, TD_E_NOT_FOUND);
    td_replay none = {.id = 0};
    td_strlcpy(none.issuer_id, ISSUER, sizeof none.issuer_id);
    CALL_WRITE(&f->svc, td_svc_replay_dead, &none);
    assert_int_equal(none.w.err.code, TD_OK);
    assert_int_equal(none.n_replayed, 0);
}

static void oauth_tweak(td_delivery_rec *r, fixture *f)
{
    snprintf(r->oauth_token_url, sizeof r->oauth_token_url, "http://127.0.0.1:%u/token", f->rx->port);
    td_strlcpy(r->oauth_client_id, "client-1", sizeof r->oauth_client_id);
    td_strlcpy(r->oauth_scope, "notify write", sizeof r->oauth_scope);
}

/* OAuth2: a token is fetched with Basic auth; a 401 drops it, a new one is
 * fetched once, and the notification then goes through. */
static void test_oauth2_401_refetches_once(void **state)
{
    fixture *f = *state;
    assert_int_equal(configure(f, "d1", "oauth2", "s3cret", oauth_tweak), TD_OK);
    add_dcard(f, "dc_A");
    td_strlcpy(f->rx->reject_bearer, "tok-1", sizeof f->rx->reject_bearer);
    start_worker(f);
    int64_t id = add_row(f, issuer_row("dc_A", "SUSPEND", "SUCCESSFUL", "op_oauth"));
    td_outbox_rec r = wait_state(f, id, "DELIVERED");
    assert_int_equal(r.attempts, 1);
    assert_int_equal(f->rx->token_calls, 2);
    char basic[128], want[160];
    uint8_t cred[] = "client-1:s3cret";
    sodium_bin2base64(basic, sizeof basic, cred, sizeof cred - 1, sodium_base64_VARIANT_ORIGINAL);
    snprintf(want, sizeof want, "Basic %s", basic);
    assert_string_equal(f->rx->token_auth, want);
    assert_string_equal(f->rx->token_body, "grant_type=client_credentials&scope=notify%20write");
    assert_int_equal(rx_count(f->rx), 2);
    assert_string_equal(f->rx->reqs[0].auth, "Bearer tok-1");
    assert_int_equal(f->rx->reqs[0].status, 401);
    assert_string_equal(f->rx->reqs[1].auth, "Bearer tok-2");
    assert_int_equal(f->rx->reqs[1].status, 204);
    assert_string_equal(f->rx->reqs[1].url,
                        "/hooks/notifications/d1/v1/issuers/" ISSUER "/digitalCards/dc_A/notifications");
    /* the token is cached: the next row needs no new one */
    int64_t id2 = add_row(f, issuer_row("dc_A", "RESUME", "SUCCESSFUL", "op_oauth2"));
    wait_state(f, id2, "DELIVERED");
    assert_int_equal(f->rx->token_calls, 2);
    td_notify_counters c;
    td_notify_stats(f->d, &c);
    assert_int_equal(c.reauth, 1);
    assert_int_equal(c.token_fetches, 2);
}

/* A 401 that persists after the refetch is retried with back-off, not dead. */
static void test_oauth2_401_twice_retries(void **state)
{
    fixture *f = *state;
    assert_int_equal(configure(f, "d1", "oauth2", "s3cret", oauth_tweak), TD_OK);
    add_dcard(f, "dc_A");
    f->rx->fail_n = 2;
    f->rx->fail_status = 401;
    start_worker(f);
    int64_t id = add_row(f, issuer_row("dc_A", "SUSPEND", "SUCCESSFUL", "op_401"));
    td_outbox_rec r = wait_state(f, id, "DELIVERED");
    assert_int_equal(r.attempts, 2); /* 401, (refetch) 401 → retry; then 204 */
    assert_int_equal(rx_count(f->rx), 3);
}

static void batch_tweak(td_delivery_rec *r, fixture *f)
{
    (void)f;
    r->d1_batch_max = 5;
}

/* d1: DIGITIZE outcomes of several digital cards share Notify Card Operation calls. */
/* Rows retried after a failed batch go again as that batch: not mixed with
 * another failed batch due at about the same time, nor with fresh rows, even
 * when one claim returns them all. */
static void test_d1_batch_retried_whole(void **state)
{
    fixture *f = *state;
    assert_int_equal(configure(f, "d1", "bearer", "static-token", batch_tweak), TD_OK);
    int64_t due = td_now_ms() - 1000;
    const char *group[] = {"a", "a", "a", "b", "b", "b", "n", "n"};
    for (int i = 0; i < 8; i++) {
        char dc[32], op[32];
        snprintf(dc, sizeof dc, "dc_%d", i);
        snprintf(op, sizeof op, "op_%s%d", group[i], i);
        add_dcard(f, dc);
        td_outbox_rec o = issuer_row(dc, "DIGITIZE", "SUCCESSFUL", op);
        if (group[i][0] != 'n') {
            o.attempts = 1; /* a: failed together, due together; b: another batch, due 1 ms later */
            o.due_ms = due + (group[i][0] == 'b');
        }
        add_row(f, o);
    }
    start_worker(f); /* one claim: all eight are due */
    int64_t t0 = td_now_ms();
    while (rx_count(f->rx) < 3 && td_now_ms() - t0 < 5000)
        sleep_ms(5);
    sleep_ms(100);
    assert_int_equal(rx_count(f->rx), 3);
    for (int k = 0; k < 3; k++) {
        const char *b = f->rx->reqs[k].body;
        int a = !!strstr(b, "\"op_a0\"") + !!strstr(b, "\"op_a1\"") + !!strstr(b, "\"op_a2\"");
        int bb = !!strstr(b, "\"op_b3\"") + !!strstr(b, "\"op_b4\"") + !!strstr(b, "\"op_b5\"");
        int n = !!strstr(b, "\"op_n6\"") + !!strstr(b, "\"op_n7\"");
        assert_true((a == 3 && bb == 0 && n == 0) || (a == 0 && bb == 3 && n == 0) || (a == 0 && bb == 0 && n == 2));
    }
}

static void test_d1_batches(void **state)
{
    fixture *f = *state;
    assert_int_equal(configure(f, "d1", "bearer", "static-token", batch_tweak), TD_OK);
    int64_t ids[12];
    for (int i = 0; i < 12; i++) {
        char dc[32], op[32];
        snprintf(dc, sizeof dc, "dc_%d", i);
        snprintf(op, sizeof op, "op_b%02d", i);
        add_dcard(f, dc);
        ids[i] = add_row(f, issuer_row(dc, "DIGITIZE", "SUCCESSFUL", op));
    }
    start_worker(f);
    for (int i = 0; i < 12; i++)
        wait_state(f, ids[i], "DELIVERED");
    int n = rx_count(f->rx);
    assert_true(n >= 3 && n < 12);
    for (int k = 0; k < n; k++) {
        assert_string_equal(f->rx->reqs[k].url, "/hooks/notifications/d1/v2/issuers/" ISSUER "/cards");
        assert_string_equal(f->rx->reqs[k].auth, "Bearer static-token");
    }
    for (int i = 0; i < 12; i++) {
        char op[40];
        snprintf(op, sizeof op, "\"op_b%02d\"", i);
        assert_int_equal(rx_count_body(f->rx, op), 1);
    }
}

/* 429 with Retry-After: the next attempt is not due before it. */
static void test_429_retry_after(void **state)
{
    fixture *f = *state;
    assert_int_equal(configure(f, "webhook", "none", NULL, NULL), TD_OK);
    add_dcard(f, "dc_A");
    f->rx->fail_n = 1;
    f->rx->fail_status = 429;
    f->rx->retry_after_s = 2;
    start_worker(f);
    int64_t before = td_now_ms();
    int64_t id = add_row(f, issuer_row("dc_A", "SUSPEND", "SUCCESSFUL", "op_429"));
    /* the first attempt is recorded as a retry due no sooner than Retry-After */
    int64_t until = td_now_ms() + WAIT_MS;
    td_outbox_rec r;
    do {
        r = get_row(f, id);
        if (r.attempts >= 1) break;
        sleep_ms(2);
    } while (td_now_ms() < until);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.last_status, 429);
    pthread_mutex_lock(&f->rx->mu);
    int64_t answered = f->rx->reqs[0].at_ms;
    pthread_mutex_unlock(&f->rx->mu);
    assert_true(answered >= before);
    assert_true(r.due_ms >= answered + 2000);
    r = wait_state(f, id, "DELIVERED");
    assert_int_equal(r.attempts, 2);
    assert_true(f->rx->reqs[1].at_ms >= answered + 2000 - 5);
}

static void short_age_tweak(td_delivery_rec *r, fixture *f)
{
    (void)f;
    r->max_age_ms = 60000;
}

/* A row older than the issuer's max age that fails is dead, not retried. */
static void test_max_age_dead(void **state)
{
    fixture *f = *state;
    assert_int_equal(configure(f, "webhook", "none", NULL, short_age_tweak), TD_OK);
    add_dcard(f, "dc_A");
    f->rx->fail_n = 1000;
    f->rx->fail_status = 503;
    start_worker(f);
    td_outbox_rec o = issuer_row("dc_A", "SUSPEND", "SUCCESSFUL", "op_old");
    o.created_ms -= 60000; /* written a minute ago: any retry would be past the max age */
    int64_t id = add_row(f, o);
    td_outbox_rec r = wait_state(f, id, "DEAD");
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.last_status, 503);
    assert_non_null(strstr(r.last_error, "max age"));
    /* a young row on the same failing receiver is retried instead */
    add_dcard(f, "dc_B");
    int64_t young = add_row(f, issuer_row("dc_B", "SUSPEND", "SUCCESSFUL", "op_young"));
    int64_t until = td_now_ms() + WAIT_MS;
    while (get_row(f, young).attempts < 2 && td_now_ms() < until)
        sleep_ms(5);
    r = get_row(f, young);
    assert_true(r.attempts >= 2);
    assert_true(!strcmp(r.state, "PENDING") || !strcmp(r.state, "IN_FLIGHT"));
}

/* OTP rows: the OTP is in the body the messaging endpoint gets, and nowhere
 * else: not in last_error, not in the log. */
static void test_otp_message(void **state)
{
    fixture *f = *state;
    assert_int_equal(configure(f, "webhook", "none", NULL, NULL), TD_OK);
    add_dcard(f, "dc_A");
    f->rx->fail_n = 1;
    f->rx->fail_status = 500;
    /* the log goes to a file while the worker runs */
    char logpath[1100];
    unique_path(logpath, sizeof logpath, "log");
    fflush(stderr);
    int saved = dup(2);
    int lf = open(logpath, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    assert_true(saved >= 0 && lf >= 0);
    dup2(lf, 2);
    close(lf);

    start_worker(f);
    td_outbox_rec o = issuer_row("dc_A", "", "", "op_digitize");
    td_strlcpy(o.channel, "USER", sizeof o.channel);
    td_strlcpy(o.message, "OTP", sizeof o.message);
    td_strlcpy(o.method_id, "otp-sms", sizeof o.method_id);
    const char *otp = "493817";
    uint8_t *sealed = NULL;
    size_t n = 0;
    assert_int_equal(td_seal(f->cfg.master_key, (const uint8_t *)otp, strlen(otp), &sealed, &n), 0);
    assert_true(n <= sizeof o.secret_sealed);
    memcpy(o.secret_sealed, sealed, n);
    o.secret_len = n;
    free(sealed);
    int64_t id = add_row(f, o);
    /* and one message that cannot be sent: dead with its reason in the log */
    td_outbox_rec bad = o;
    td_strlcpy(bad.digital_card_id, "dc_B", sizeof bad.digital_card_id);
    bad.secret_len = 3; /* does not open */
    int64_t bad_id = add_row(f, bad);

    int64_t until = td_now_ms() + WAIT_MS;
    td_outbox_rec r;
    do {
        r = get_row(f, id);
        sleep_ms(2);
    } while (r.attempts < 1 && td_now_ms() < until);
    assert_null(strstr(r.last_error, otp));
    r = wait_state(f, id, "DELIVERED");
    assert_null(strstr(r.last_error, otp));
    td_outbox_rec rb = wait_state(f, bad_id, "DEAD");
    assert_null(strstr(rb.last_error, otp));
    td_notify_stop(f->d);
    f->d = NULL;

    fflush(stderr);
    dup2(saved, 2);
    close(saved);

    assert_int_equal(rx_count(f->rx), 2);
    for (int k = 0; k < 2; k++) {
        assert_string_equal(f->rx->reqs[k].url, "/msg");
        assert_non_null(strstr(f->rx->reqs[k].body, otp));
        assert_non_null(strstr(f->rx->reqs[k].body, "\"OTP\""));
    }
    FILE *lg = fopen(logpath, "r");
    assert_non_null(lg);
    char line[4096];
    bool saw_dead = false;
    while (fgets(line, sizeof line, lg)) {
        assert_null(strstr(line, otp));
        if (strstr(line, "notification_dead")) saw_dead = true;
    }
    fclose(lg);
    unlink(logpath);
    assert_true(saw_dead);
}

static void slow_tweak(td_delivery_rec *r, fixture *f)
{
    (void)f;
    r->timeout_ms = 300;
}

/* A receiver slower than the timeout: retried, then delivered. */
static void test_timeout_retried(void **state)
{
    fixture *f = *state;
    assert_int_equal(configure(f, "webhook", "none", NULL, slow_tweak), TD_OK);
    add_dcard(f, "dc_A");
    f->rx->sleep_n = 1;
    f->rx->sleep_ms = 1500;
    start_worker(f);
    int64_t id = add_row(f, issuer_row("dc_A", "SUSPEND", "SUCCESSFUL", "op_slow"));
    td_outbox_rec r = wait_state(f, id, "DELIVERED");
    assert_true(r.attempts >= 2);
    assert_int_equal(r.last_status, 204);
    td_notify_counters c;
    td_notify_stats(f->d, &c);
    assert_true(c.retried >= 1);
}

/* What a crash leaves: rows IN_FLIGHT whose lease ran out. A restarted worker
 * delivers them; one still under a live lease is left alone. */
static void nop_claim(const td_outbox_rec *o, void *arg)
{
    (void)o;
    (void)arg;
}

typedef struct {
    int64_t now, lease_until;
} fake_claim;

/* Claims what is claimable at a->now, as a worker elsewhere would. */
static td_st run_claim(td_conn *c, void *a)
{
    fake_claim *x = a;
    return OPS->outbox_claim(c, x->now, x->lease_until, 100, nop_claim, NULL);
}

static void test_crash_recovery(void **state)
{
    fixture *f = *state;
    assert_int_equal(configure(f, "webhook", "none", NULL, NULL), TD_OK);
    add_dcard(f, "dc_A");
    add_dcard(f, "dc_B");
    add_dcard(f, "dc_C");
    int64_t a1 = add_row(f, issuer_row("dc_A", "SUSPEND", "SUCCESSFUL", "op_a1"));
    int64_t a2 = add_row(f, issuer_row("dc_A", "RESUME", "SUCCESSFUL", "op_a2"));
    int64_t b1 = add_row(f, issuer_row("dc_B", "SUSPEND", "SUCCESSFUL", "op_b1"));
    /* a crashed worker held dc_A's first row (lease over) and dc_B's (lease over) */
    int64_t t0 = td_now_ms();
    fake_claim expired = {.now = t0, .lease_until = t0 - 1};
    assert_int_equal(f->s->run_sync(f->s, run_claim, &expired), TD_ST_OK);
    assert_true(row_in(f, a1, "IN_FLIGHT"));
    assert_true(row_in(f, b1, "IN_FLIGHT"));
    assert_true(row_in(f, a2, "PENDING"));
    /* another worker, alive, holds dc_C's row under a live lease (claimed at
     * t0 - 1, when the crashed worker's leases had not yet run out) */
    td_outbox_rec c = issuer_row("dc_C", "SUSPEND", "SUCCESSFUL", "op_c1");
    c.due_ms = t0 - 10;
    int64_t c1 = add_row(f, c);
    fake_claim live = {.now = t0 - 1, .lease_until = t0 + 3600000};
    assert_int_equal(f->s->run_sync(f->s, run_claim, &live), TD_ST_OK);
    assert_true(row_in(f, c1, "IN_FLIGHT"));
    assert_int_equal(get_row(f, a1).lease_until_ms, t0 - 1);

    start_worker(f);
    wait_state(f, a1, "DELIVERED");
    wait_state(f, a2, "DELIVERED");
    wait_state(f, b1, "DELIVERED");
    assert_int_equal(rx_count_body(f->rx, "\"op_a1\""), 1);
    assert_int_equal(rx_count_body(f->rx, "\"op_c1\""), 0);
    assert_true(row_in(f, c1, "IN_FLIGHT"));

    /* stopping while a transfer is in flight lets it finish and records it;
     * a new worker goes on with the rest */
    f->rx->sleep_n = 1;
    f->rx->sleep_ms = 500;
    int64_t a3 = add_row(f, issuer_row("dc_A", "DELETE", "SUCCESSFUL", "op_a3"));
    int64_t until = td_now_ms() + WAIT_MS;
    while (!row_in(f, a3, "IN_FLIGHT") && !row_in(f, a3, "DELIVERED") && td_now_ms() < until)
        sleep_ms(1);
    td_notify_stop(f->d);
    f->d = NULL;
    td_outbox_rec r = get_row(f, a3);
    assert_string_equal(r.state, "DELIVERED");
    int64_t b2 = add_row(f, issuer_row("dc_B", "DELETE", "SUCCESSFUL", "op_b2"));
    start_worker(f);
    wait_state(f, b2, "DELIVERED");
    assert_int_equal(rx_count_body(f->rx, "\"op_a3\""), 1);
}

/* The store fails while answers come in: the outcomes are kept and recorded
 * once it is back; nothing is sent twice meanwhile. */
static void test_store_outage_keeps_outcomes(void **state)
{
    fixture *f = *state;
    assert_int_equal(configure(f, "webhook", "none", NULL, NULL), TD_OK);
    int64_t ids[5];
    for (int i = 0; i < 5; i++) {
        char dc[16], op[16];
        snprintf(dc, sizeof dc, "dc_%d", i);
        snprintf(op, sizeof op, "op_s%d", i);
        add_dcard(f, dc);
        ids[i] = add_row(f, issuer_row(dc, "SUSPEND", "SUCCESSFUL", op));
    }
    f->rx->sleep_n = 5;
    f->rx->sleep_ms = 300;
    start_worker(f);
    for (int i = 0; i < 5; i++)
        wait_state(f, ids[i], "IN_FLIGHT");
    /* claimed is not yet sent: the worker builds each request (reading the
     * digital card) when it starts the transfer; wait for all five transfers */
    int64_t until = td_now_ms() + WAIT_MS;
    td_notify_counters c;
    do {
        sleep_ms(2);
        td_notify_stats(f->d, &c);
    } while (c.in_flight < 5 && td_now_ms() < until);
    assert_int_equal(c.in_flight, 5);
    f->s->inject_fault(f->s, 1);
    until = td_now_ms() + WAIT_MS;
    while (rx_count(f->rx) < 5 && td_now_ms() < until)
        sleep_ms(5);
    assert_int_equal(rx_count(f->rx), 5);
    sleep_ms(500); /* a few failed write jobs */
    f->s->inject_fault(f->s, 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(wait_state(f, ids[i], "DELIVERED").attempts, 1);
    assert_int_equal(rx_count(f->rx), 5);
    c = wait_delivered(f, 5);
    assert_int_equal(c.delivered, 5);
}

/* The settings use cases: validation, the secret kept and never shown. */
static void test_settings(void **state)
{
    fixture *f = *state;
    td_delivery_rec got;
    td_error e = {0};
    assert_int_equal(td_svc_get_delivery(&f->svc, ISSUER, &got, &e), TD_E_NOT_FOUND);
    assert_int_equal(td_svc_get_delivery(&f->svc, "ISSUER9999", &got, &e), TD_E_NOT_FOUND);

    assert_int_equal(configure(f, "bogus", "none", NULL, NULL), TD_E_INVALID_ARGUMENT);
    assert_int_equal(configure(f, "d1", "bearer", NULL, NULL), TD_E_INVALID_ARGUMENT); /* no secret */
    assert_int_equal(configure(f, "d1", "webhook", "x", NULL), TD_E_INVALID_ARGUMENT);
    assert_int_equal(configure(f, "d1", "oauth2", "x", NULL), TD_E_INVALID_ARGUMENT); /* no token URL */

    assert_int_equal(configure(f, "d1", "bearer", "tok-secret", batch_tweak), TD_OK);
    memset(&e, 0, sizeof e);
    assert_int_equal(td_svc_get_delivery(&f->svc, ISSUER, &got, &e), TD_OK);
    assert_string_equal(got.profile, "d1");
    assert_int_equal(got.d1_batch_max, 5);
    assert_true(got.secret_len > 0);
    for (size_t i = 0; i < sizeof got.secret_sealed; i++)
        assert_int_equal(got.secret_sealed[i], 0);
    td_delivery_rec_free(&got);

    /* settings changed without the secret keep it */
    assert_int_equal(configure(f, "classic", "bearer", NULL, NULL), TD_OK);
    assert_int_equal(td_svc_get_delivery(&f->svc, ISSUER, &got, &e), TD_OK);
    assert_string_equal(got.profile, "classic");
    assert_true(got.secret_len > 0);
    td_delivery_rec_free(&got);

    /* and it is the secret sent */
    add_dcard(f, "dc_A");
    start_worker(f);
    int64_t id = add_row(f, issuer_row("dc_A", "SUSPEND", "SUCCESSFUL", "op_cl"));
    wait_state(f, id, "DELIVERED");
    assert_string_equal(f->rx->reqs[0].auth, "Bearer tok-secret");
    assert_string_equal(f->rx->reqs[0].url, "/hooks/notifyVirtualCardChange");

    /* an unknown issuer */
    td_put_delivery *cmd = calloc(1, sizeof *cmd);
    td_delivery_defaults(&cmd->rec);
    td_strlcpy(cmd->rec.issuer_id, "ISSUER9999", sizeof cmd->rec.issuer_id);
    td_strlcpy(cmd->rec.base_url, "http://127.0.0.1:9/x", sizeof cmd->rec.base_url);
    CALL_WRITE(&f->svc, td_svc_put_delivery, cmd);
    assert_int_equal(cmd->w.err.code, TD_E_NOT_FOUND);
    free(cmd);

    td_delivery_rec v;
    td_delivery_defaults(&v);
    td_strlcpy(v.base_url, "ftp://x", sizeof v.base_url);
    assert_int_equal(td_delivery_validate(&v, false, &e), TD_E_INVALID_ARGUMENT);
    td_strlcpy(v.base_url, "https://x.example/n", sizeof v.base_url);
    assert_int_equal(td_delivery_validate(&v, false, &e), TD_OK);
    v.templates_json = "{\"OTP\": 3}";
    assert_int_equal(td_delivery_validate(&v, false, &e), TD_E_INVALID_ARGUMENT);
    v.templates_json = "{\"OTP\": \"code {otp}\"}";
    assert_int_equal(td_delivery_validate(&v, false, &e), TD_OK);
    v.templates_json = NULL;
    td_strlcpy(v.tls_pinned_key, "md5//abc", sizeof v.tls_pinned_key);
    assert_int_equal(td_delivery_validate(&v, false, &e), TD_E_INVALID_ARGUMENT);
}

/* Nothing to send in the profile (classic DIGITIZE PENDING) is delivered
 * without a request; a USER row without a messaging endpoint is dead. */
static void no_messaging_tweak(td_delivery_rec *r, fixture *f)
{
    (void)f;
    r->messaging_url[0] = 0;
}

static void test_nothing_to_send_and_build_errors(void **state)
{
    fixture *f = *state;
    assert_int_equal(configure(f, "classic", "none", NULL, no_messaging_tweak), TD_OK);
    add_dcard(f, "dc_A");
    add_dcard(f, "dc_B");
    start_worker(f);
    int64_t p = add_row(f, issuer_row("dc_A", "DIGITIZE", "PENDING", "op_p"));
    td_outbox_rec u = issuer_row("dc_B", "", "", "op_u");
    td_strlcpy(u.channel, "USER", sizeof u.channel);
    td_strlcpy(u.message, "ACTIVATION", sizeof u.message);
    int64_t uid = add_row(f, u);
    td_outbox_rec r = wait_state(f, p, "DELIVERED");
    assert_string_equal(r.last_error, "not sent in this profile");
    r = wait_state(f, uid, "DEAD");
    assert_string_equal(r.last_error, "no messaging endpoint");
    assert_int_equal(rx_count(f->rx), 0);
}

int main(void)
{
    if (td_crypto_init()) return 1;
    test_db_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_webhook_delivered_once_signed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_kept_while_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_400_dead_then_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oauth2_401_refetches_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oauth2_401_twice_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_d1_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_d1_batch_retried_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_429_retry_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_age_dead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_wakes_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_claimed_when_due, setup, teardown),
        cmocka_unit_test_setup_teardown(test_otp_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_outage_keeps_outcomes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_to_send_and_build_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
