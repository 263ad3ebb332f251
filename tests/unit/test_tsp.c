/* test_tsp.c — unit tests for the TSP connector (service/tsp.c): the simulated
 * TSP's modes and counts, the HTTP connector against a real receiver on
 * 127.0.0.1 (body, headers, retries, refusals, timeouts, refused connections,
 * concurrent calls); the PAN helpers (crypto.c: fingerprint, seal/open with
 * the card as associated data); and the TSP settings in util/config.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "service/tsp.h"
#include "util/config.h"
#include "util/util.h"

#define BEARER "s3cret-bearer-value"
#define PAN1 "4111111111111111"
#define PAN2 "5555555555554444"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fill_request(td_tsp_request *rq, td_tsp_op op, const char *op_id)
{
    memset(rq, 0, sizeof *rq);
    rq->op = op;
    td_strlcpy(rq->issuer_id, "ISSUER0001", sizeof rq->issuer_id);
    td_strlcpy(rq->digital_card_id, "dc_abc", sizeof rq->digital_card_id);
    td_strlcpy(rq->card_id, "card-1", sizeof rq->card_id);
    td_strlcpy(rq->operation_id, op_id, sizeof rq->operation_id);
    td_strlcpy(rq->reason, "Lost \"phone\"", sizeof rq->reason);
    td_strlcpy(rq->reason_code, "DEVICE_LOST", sizeof rq->reason_code);
    td_strlcpy(rq->requestor, "ISSUER", sizeof rq->requestor);
}

static uint64_t stat_total(td_tsp *t)
{
    uint64_t s[TD_TSP_N_STATUS];
    td_tsp_stats(t, s);
    return s[0] + s[1] + s[2] + s[3];
}

/* ================= a real HTTP receiver on 127.0.0.1 ================= */

/* It serves one connection at a time and closes each (Connection: close), so
 * every attempt the connector makes is one accepted request it can count. */
typedef struct {
    int lfd;
    int port;
    pthread_t th;
    atomic_bool stop;
    /* behaviour, set before the calls */
    int status;              /* the answer */
    int fail_first;          /* this many attempts get 500 first */
    int sleep_ms;            /* delay before answering */
    const char *expect_auth; /* the whole Authorization value, or NULL = header must be absent */
    /* observations */
    atomic_int attempts;
    atomic_int bad; /* requests that broke a rule checked on every request */
    pthread_mutex_t mu;
    char method[16], path[256], ctype[128], auth[512], corr[128], body[4096];
} receiver;

static bool stopping(receiver *r)
{
    return atomic_load(&r->stop);
}

/* Reads one request: headers, then Content-Length bytes of body. */
static int read_request(receiver *r, int fd)
{
    char buf[16384];
    size_t n = 0;
    char *end = NULL;
    while (!end) {
        if (n + 1 >= sizeof buf) return -1;
        ssize_t k = recv(fd, buf + n, sizeof buf - 1 - n, 0);
        if (k <= 0) return -1;
        n += (size_t)k;
        buf[n] = 0;
        end = strstr(buf, "\r\n\r\n");
    }
    size_t head_len = (size_t)(end - buf) + 4;
    char method[16] = "", path[256] = "", ctype[128] = "", auth[512] = "", corr[128] = "";
    long clen = -1;
    bool has_auth = false;
    *end = 0;
    char *save = NULL;
    char *line = strtok_r(buf, "\r\n", &save);
    if (!line || sscanf(line, "%15s %255s", method, path) != 2) return -1;
    while ((line = strtok_r(NULL, "\r\n", &save))) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        *colon = 0;
        char *v = colon + 1;
        while (*v == ' ')
            v++;
        if (!strcasecmp(line, "content-type")) td_strlcpy(ctype, v, sizeof ctype);
        if (!strcasecmp(line, "authorization")) {
            has_auth = true;
            td_strlcpy(auth, v, sizeof auth);
        }
        if (!strcasecmp(line, "x-correlation-id")) td_strlcpy(corr, v, sizeof corr);
        if (!strcasecmp(line, "content-length")) clen = strtol(v, NULL, 10);
    }
    if (clen < 0 || clen >= 4096) return -1;
    char body[4096];
    size_t have = n - head_len;
    if (have > (size_t)clen) return -1;
    memcpy(body, end + 4, have);
    while (have < (size_t)clen) {
        ssize_t k = recv(fd, body + have, (size_t)clen - have, 0);
        if (k <= 0) return -1;
        have += (size_t)k;
    }
    body[have] = 0;

    /* Rules every request must follow. */
    bool ok = !strcmp(method, "POST") && !strcmp(ctype, "application/json");
    ok = ok && (r->expect_auth ? has_auth && !strcmp(auth, r->expect_auth) : !has_auth);
    json_error_t je;
    json_t *j = json_loads(body, JSON_REJECT_DUPLICATES, &je);
    const char *op_id = j ? json_string_value(json_object_get(j, "operationId")) : NULL;
    ok = ok && op_id && !strcmp(op_id, corr);
    json_decref(j);
    if (!ok) atomic_fetch_add(&r->bad, 1);

    pthread_mutex_lock(&r->mu);
    td_strlcpy(r->method, method, sizeof r->method);
    td_strlcpy(r->path, path, sizeof r->path);
    td_strlcpy(r->ctype, ctype, sizeof r->ctype);
    td_strlcpy(r->auth, auth, sizeof r->auth);
    td_strlcpy(r->corr, corr, sizeof r->corr);
    td_strlcpy(r->body, body, sizeof r->body);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static void serve_one(receiver *r, int fd)
{
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (read_request(r, fd) != 0) return;
    int nth = atomic_fetch_add(&r->attempts, 1) + 1;
    for (int slept = 0; slept < r->sleep_ms && !stopping(r); slept += 10)
        usleep(10000);
    int status = nth <= r->fail_first ? 500 : r->status;
    char resp[256];
    int len = snprintf(resp, sizeof resp,
                       "HTTP/1.1 %d Whatever\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
                       "Connection: close\r\n\r\n{\"ok\":true}",
                       status);
    /* MSG_NOSIGNAL: the connector may have given up (timeout) and closed. */
    if (send(fd, resp, (size_t)len, MSG_NOSIGNAL) < 0) return;
}

static void *receiver_main(void *arg)
{
    receiver *r = arg;
    while (!stopping(r)) {
        struct pollfd p = {.fd = r->lfd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0) continue;
        int fd = accept(r->lfd, NULL, NULL);
        if (fd < 0) continue;
        serve_one(r, fd);
        close(fd);
    }
    return NULL;
}

/* Binds 127.0.0.1 on an ephemeral port; returns the fd and sets *port. */
static int listen_ephemeral(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 256), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static receiver *receiver_start(int status, int fail_first, int sleep_ms, const char *expect_auth)
{
    receiver *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->status = status;
    r->fail_first = fail_first;
    r->sleep_ms = sleep_ms;
    r->expect_auth = expect_auth;
    pthread_mutex_init(&r->mu, NULL);
    r->lfd = listen_ephemeral(&r->port);
    assert_int_equal(pthread_create(&r->th, NULL, receiver_main, r), 0);
    return r;
}

static void receiver_stop(receiver *r)
{
    atomic_store(&r->stop, true);
    pthread_join(r->th, NULL);
    close(r->lfd);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static td_tsp *http_to(receiver *r, int timeout_ms, int retries, const char *bearer)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/tsp/v1/operations", r->port);
    td_tsp *t = td_tsp_new_http(url, timeout_ms, retries, bearer);
    assert_non_null(t);
    return t;
}

/* ================= names ================= */

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(td_tsp_status_name(TD_TSP_OK), "OK");
    assert_string_equal(td_tsp_status_name(TD_TSP_REFUSED), "REFUSED");
    assert_string_equal(td_tsp_status_name(TD_TSP_FAILED), "FAILED");
    assert_string_equal(td_tsp_status_name(TD_TSP_TIMEOUT), "TIMEOUT");
    assert_string_equal(td_tsp_op_name(TD_TSP_SUSPEND), "SUSPEND");
    assert_string_equal(td_tsp_op_name(TD_TSP_RESUME), "RESUME");
    assert_string_equal(td_tsp_op_name(TD_TSP_DELETE), "DELETE");
}

/* ================= simulated ================= */

static td_tsp_status sim_once(td_tsp *t)
{
    td_tsp_request rq;
    td_tsp_result res;
    fill_request(&rq, TD_TSP_SUSPEND, "op_sim");
    td_tsp_call(t, &rq, &res);
    return res.status;
}

static void test_sim_modes(void **state)
{
    (void)state;
    td_tsp *t = td_tsp_new_simulated();
    assert_non_null(t);
    td_tsp_request rq;
    td_tsp_result res;
    fill_request(&rq, TD_TSP_DELETE, "op_1");
    td_tsp_call(t, &rq, &res);
    assert_int_equal(res.status, TD_TSP_OK);
    assert_int_equal(res.http_status, 200);

    /* counted: fail the next two, then back to accept */
    assert_int_equal(td_tsp_sim_set(t, "fail", 2), 0);
    td_tsp_call(t, &rq, &res);
    assert_int_equal(res.status, TD_TSP_FAILED);
    assert_int_equal(res.http_status, 500);
    assert_int_equal(sim_once(t), TD_TSP_FAILED);
    assert_int_equal(sim_once(t), TD_TSP_OK);
    assert_int_equal(sim_once(t), TD_TSP_OK);

    /* 0 = until changed */
    assert_int_equal(td_tsp_sim_set(t, "refuse", 0), 0);
    for (int i = 0; i < 5; i++) {
        td_tsp_call(t, &rq, &res);
        assert_int_equal(res.status, TD_TSP_REFUSED);
        assert_int_equal(res.http_status, 400);
    }
    assert_int_equal(td_tsp_sim_set(t, "accept", 0), 0);
    assert_int_equal(sim_once(t), TD_TSP_OK);

    /* a new setting replaces a counted one that was not used up */
    assert_int_equal(td_tsp_sim_set(t, "fail", 5), 0);
    assert_int_equal(sim_once(t), TD_TSP_FAILED);
    assert_int_equal(td_tsp_sim_set(t, "refuse", 1), 0);
    assert_int_equal(sim_once(t), TD_TSP_REFUSED);
    assert_int_equal(sim_once(t), TD_TSP_OK);

    /* a timeout sleeps, then answers TIMEOUT */
    assert_int_equal(td_tsp_sim_set_timeout_ms(t, 40), 0);
    assert_int_equal(td_tsp_sim_set(t, "timeout", 1), 0);
    int64_t t0 = now_ms();
    td_tsp_call(t, &rq, &res);
    int64_t took = now_ms() - t0;
    assert_int_equal(res.status, TD_TSP_TIMEOUT);
    assert_int_equal(res.http_status, 0);
    assert_true(took >= 35 && took < 2000);
    assert_int_equal(sim_once(t), TD_TSP_OK);

    /* refused settings change nothing */
    assert_int_equal(td_tsp_sim_set(t, "explode", 0), -1);
    assert_int_equal(td_tsp_sim_set(t, NULL, 0), -1);
    assert_int_equal(td_tsp_sim_set(t, "fail", -1), -1);
    assert_int_equal(td_tsp_sim_set_timeout_ms(t, -1), -1);
    assert_int_equal(td_tsp_sim_set_timeout_ms(t, 60001), -1);
    assert_int_equal(sim_once(t), TD_TSP_OK);

    uint64_t s[TD_TSP_N_STATUS];
    td_tsp_stats(t, s);
    assert_int_equal(s[TD_TSP_OK], 7);
    assert_int_equal(s[TD_TSP_FAILED], 3);
    assert_int_equal(s[TD_TSP_REFUSED], 6);
    assert_int_equal(s[TD_TSP_TIMEOUT], 1);
    td_tsp_free(t);
}

static void test_sim_default_timeout(void **state)
{
    (void)state;
    td_tsp *t = td_tsp_new_simulated();
    assert_non_null(t);
    assert_int_equal(td_tsp_sim_set(t, "timeout", 1), 0);
    int64_t t0 = now_ms();
    assert_int_equal(sim_once(t), TD_TSP_TIMEOUT);
    int64_t took = now_ms() - t0;
    assert_true(took >= 190 && took < 3000); /* default 200 ms */
    td_tsp_free(t);
}

static void test_null_arguments(void **state)
{
    (void)state;
    td_tsp_request rq;
    td_tsp_result res;
    fill_request(&rq, TD_TSP_SUSPEND, "op_x");
    td_tsp_call(NULL, &rq, &res);
    assert_int_equal(res.status, TD_TSP_FAILED);
    td_tsp *t = td_tsp_new_simulated();
    td_tsp_call(t, NULL, &res);
    assert_int_equal(res.status, TD_TSP_FAILED);
    td_tsp_call(t, &rq, NULL); /* nowhere to answer: nothing happens */
    assert_int_equal(td_tsp_sim_set(NULL, "fail", 0), -1);
    td_tsp_free(t);
    td_tsp_free(NULL);
}

typedef struct {
    td_tsp *t;
    int calls;
    int base; /* distinct operation ids per thread */
    int by_status[TD_TSP_N_STATUS];
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < w->calls; i++) {
        char id[64];
        snprintf(id, sizeof id, "op_%d_%d", w->base, i);
        td_tsp_request rq;
        td_tsp_result res;
        fill_request(&rq, (td_tsp_op)(i % 3), id);
        td_tsp_call(w->t, &rq, &res);
        w->by_status[res.status]++;
    }
    return NULL;
}

static void run_workers(td_tsp *t, int threads, int calls, int totals[TD_TSP_N_STATUS])
{
    pthread_t th[8];
    worker w[8];
    memset(totals, 0, sizeof(int) * TD_TSP_N_STATUS);
    for (int i = 0; i < threads; i++) {
        w[i] = (worker){.t = t, .calls = calls, .base = i};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        for (int s = 0; s < TD_TSP_N_STATUS; s++)
            totals[s] += w[i].by_status[s];
    }
}

/* A counted mode is used up exactly, however many threads race for it. */
static void test_sim_concurrency(void **state)
{
    (void)state;
    td_tsp *t = td_tsp_new_simulated();
    assert_non_null(t);
    assert_int_equal(td_tsp_sim_set(t, "fail", 37), 0);
    int totals[TD_TSP_N_STATUS];
    run_workers(t, 4, 50, totals);
    assert_int_equal(totals[TD_TSP_FAILED], 37);
    assert_int_equal(totals[TD_TSP_OK], 200 - 37);
    uint64_t s[TD_TSP_N_STATUS];
    td_tsp_stats(t, s);
    assert_int_equal(s[TD_TSP_FAILED], 37);
    assert_int_equal(s[TD_TSP_OK], 163);
    td_tsp_free(t);
}

/* ================= HTTP ================= */

static void test_http_bad_arguments(void **state)
{
    (void)state;
    assert_null(td_tsp_new_http(NULL, 1000, 0, NULL));
    assert_null(td_tsp_new_http("", 1000, 0, NULL));
    assert_null(td_tsp_new_http("ftp://127.0.0.1/x", 1000, 0, NULL));
    assert_null(td_tsp_new_http("file:///etc/passwd", 1000, 0, NULL));
    assert_null(td_tsp_new_http("http://127.0.0.1/x\r\nX-Evil: 1", 1000, 0, NULL));
    assert_null(td_tsp_new_http("http://127.0.0.1/x", 0, 0, NULL));
    assert_null(td_tsp_new_http("http://127.0.0.1/x", 120001, 0, NULL));
    assert_null(td_tsp_new_http("http://127.0.0.1/x", 1000, -1, NULL));
    assert_null(td_tsp_new_http("http://127.0.0.1/x", 1000, 11, NULL));
    assert_null(td_tsp_new_http("http://127.0.0.1/x", 1000, 0, "abc\r\nX-Evil: 1"));
    td_tsp *t = td_tsp_new_http("https://127.0.0.1/x", 1000, 10, "");
    assert_non_null(t);
    /* the simulator's controls are not the HTTP connector's */
    assert_int_equal(td_tsp_sim_set(t, "fail", 0), -1);
    assert_int_equal(td_tsp_sim_set_timeout_ms(t, 10), -1);
    td_tsp_free(t);
}

static void test_http_ok_body_and_headers(void **state)
{
    (void)state;
    receiver *r = receiver_start(200, 0, 0, "Bearer " BEARER);
    td_tsp *t = http_to(r, 2000, 2, BEARER);
    td_tsp_request rq;
    td_tsp_result res;
    fill_request(&rq, TD_TSP_SUSPEND, "op_2xyz");
    td_tsp_call(t, &rq, &res);
    assert_int_equal(res.status, TD_TSP_OK);
    assert_int_equal(res.http_status, 200);
    assert_null(strstr(res.detail, BEARER));
    assert_int_equal(atomic_load(&r->attempts), 1);
    assert_int_equal(atomic_load(&r->bad), 0);

    pthread_mutex_lock(&r->mu);
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->path, "/tsp/v1/operations");
    assert_string_equal(r->ctype, "application/json");
    assert_string_equal(r->auth, "Bearer " BEARER);
    assert_string_equal(r->corr, "op_2xyz");
    json_error_t je;
    json_t *j = json_loads(r->body, JSON_REJECT_DUPLICATES, &je);
    pthread_mutex_unlock(&r->mu);
    assert_non_null(j);
    assert_int_equal(json_object_size(j), 8);
    assert_string_equal(json_string_value(json_object_get(j, "operation")), "SUSPEND");
    assert_string_equal(json_string_value(json_object_get(j, "issuerId")), "ISSUER0001");
    assert_string_equal(json_string_value(json_object_get(j, "digitalCardId")), "dc_abc");
    assert_string_equal(json_string_value(json_object_get(j, "cardId")), "card-1");
    assert_string_equal(json_string_value(json_object_get(j, "operationId")), "op_2xyz");
    assert_string_equal(json_string_value(json_object_get(j, "reason")), "Lost \"phone\"");
    assert_string_equal(json_string_value(json_object_get(j, "reasonCode")), "DEVICE_LOST");
    assert_string_equal(json_string_value(json_object_get(j, "requestor")), "ISSUER");
    json_decref(j);

    /* the other operations, and a timer's request with no reason */
    fill_request(&rq, TD_TSP_RESUME, "op_r");
    td_tsp_call(t, &rq, &res);
    assert_int_equal(res.status, TD_TSP_OK);
    pthread_mutex_lock(&r->mu);
    assert_non_null(strstr(r->body, "\"operation\":\"RESUME\""));
    pthread_mutex_unlock(&r->mu);
    fill_request(&rq, TD_TSP_DELETE, "op_d");
    rq.reason[0] = rq.reason_code[0] = 0;
    td_strlcpy(rq.requestor, "D1", sizeof rq.requestor);
    td_tsp_call(t, &rq, &res);
    assert_int_equal(res.status, TD_TSP_OK);
    pthread_mutex_lock(&r->mu);
    j = json_loads(r->body, JSON_REJECT_DUPLICATES, &je);
    pthread_mutex_unlock(&r->mu);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "operation")), "DELETE");
    assert_string_equal(json_string_value(json_object_get(j, "reason")), "");
    assert_string_equal(json_string_value(json_object_get(j, "reasonCode")), "");
    assert_string_equal(json_string_value(json_object_get(j, "requestor")), "D1");
    json_decref(j);
    assert_int_equal(atomic_load(&r->attempts), 3);
    assert_int_equal(atomic_load(&r->bad), 0);

    uint64_t s[TD_TSP_N_STATUS];
    td_tsp_stats(t, s);
    assert_int_equal(s[TD_TSP_OK], 3);
    assert_int_equal(stat_total(t), 3);
    td_tsp_free(t);
    receiver_stop(r);
}

static void test_http_no_bearer(void **state)
{
    (void)state;
    receiver *r = receiver_start(204, 0, 0, NULL);
    td_tsp *t = http_to(r, 2000, 0, NULL);
    td_tsp_request rq;
    td_tsp_result res;
    fill_request(&rq, TD_TSP_SUSPEND, "op_nb");
    td_tsp_call(t, &rq, &res);
    assert_int_equal(res.status, TD_TSP_OK);
    assert_int_equal(res.http_status, 204);
    assert_int_equal(atomic_load(&r->bad), 0); /* no Authorization header at all */
    td_tsp_free(t);
    receiver_stop(r);
}

static void test_http_retry_then_ok(void **state)
{
    (void)state;
    receiver *r = receiver_start(200, 1, 0, "Bearer " BEARER);
    td_tsp *t = http_to(r, 2000, 2, BEARER);
    td_tsp_request rq;
    td_tsp_result res;
    fill_request(&rq, TD_TSP_SUSPEND, "op_retry");
    int64_t t0 = now_ms();
    td_tsp_call(t, &rq, &res);
    int64_t took = now_ms() - t0;
    assert_int_equal(res.status, TD_TSP_OK);
    assert_int_equal(res.http_status, 200);
    assert_int_equal(atomic_load(&r->attempts), 2);
    assert_int_equal(atomic_load(&r->bad), 0); /* the retry repeats body, headers and operation id */
    assert_true(took >= 90);                   /* the first back-off is 100 ms */
    td_tsp_free(t);
    receiver_stop(r);
}

static void test_http_500_always(void **state)
{
    (void)state;
    receiver *r = receiver_start(503, 0, 0, "Bearer " BEARER);
    td_tsp *t = http_to(r, 2000, 2, BEARER);
    td_tsp_request rq;
    td_tsp_result res;
    fill_request(&rq, TD_TSP_DELETE, "op_500");
    int64_t t0 = now_ms();
    td_tsp_call(t, &rq, &res);
    int64_t took = now_ms() - t0;
    assert_int_equal(res.status, TD_TSP_FAILED);
    assert_int_equal(res.http_status, 503);
    assert_int_equal(atomic_load(&r->attempts), 3); /* retries + 1 */
    assert_true(took >= 290);                       /* 100 ms + 200 ms of back-off */
    assert_non_null(strstr(res.detail, "503"));
    assert_null(strstr(res.detail, BEARER));
    uint64_t s[TD_TSP_N_STATUS];
    td_tsp_stats(t, s);
    assert_int_equal(s[TD_TSP_FAILED], 1); /* one call, however many attempts */
    assert_int_equal(stat_total(t), 1);
    td_tsp_free(t);
    receiver_stop(r);

    /* retries 0: exactly one attempt */
    r = receiver_start(500, 0, 0, NULL);
    t = http_to(r, 2000, 0, NULL);
    td_tsp_call(t, &rq, &res);
    assert_int_equal(res.status, TD_TSP_FAILED);
    assert_int_equal(res.http_status, 500);
    assert_int_equal(atomic_load(&r->attempts), 1);
    td_tsp_free(t);
    receiver_stop(r);
}

static void test_http_400_refused_once(void **state)
{
    (void)state;
    receiver *r = receiver_start(400, 0, 0, "Bearer " BEARER);
    td_tsp *t = http_to(r, 2000, 3, BEARER);
    td_tsp_request rq;
    td_tsp_result res;
    fill_request(&rq, TD_TSP_RESUME, "op_400");
    td_tsp_call(t, &rq, &res);
    assert_int_equal(res.status, TD_TSP_REFUSED);
    assert_int_equal(res.http_status, 400);
    assert_int_equal(atomic_load(&r->attempts), 1);
    uint64_t s[TD_TSP_N_STATUS];
    td_tsp_stats(t, s);
    assert_int_equal(s[TD_TSP_REFUSED], 1);
    td_tsp_free(t);
    receiver_stop(r);
}

static void test_http_timeout(void **state)
{
    (void)state;
    receiver *r = receiver_start(200, 0, 1500, "Bearer " BEARER);
    td_tsp *t = http_to(r, 150, 1, BEARER);
    td_tsp_request rq;
    td_tsp_result res;
    fill_request(&rq, TD_TSP_SUSPEND, "op_slow");
    int64_t t0 = now_ms();
    td_tsp_call(t, &rq, &res);
    int64_t took = now_ms() - t0;
    assert_int_equal(res.status, TD_TSP_TIMEOUT);
    assert_int_equal(res.http_status, 0);
    /* two attempts of 150 ms and a 100 ms back-off; far less than the receiver's sleep */
    assert_true(took >= 380 && took < 1400);
    uint64_t s[TD_TSP_N_STATUS];
    td_tsp_stats(t, s);
    assert_int_equal(s[TD_TSP_TIMEOUT], 1);
    td_tsp_free(t);
    receiver_stop(r);
}

static void test_http_connection_refused(void **state)
{
    (void)state;
    int port;
    int fd = listen_ephemeral(&port);
    close(fd); /* nothing listens there now */
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/tsp", port);
    td_tsp *t = td_tsp_new_http(url, 1000, 1, BEARER);
    assert_non_null(t);
    td_tsp_request rq;
    td_tsp_result res;
    fill_request(&rq, TD_TSP_SUSPEND, "op_closed");
    td_tsp_call(t, &rq, &res);
    assert_int_equal(res.status, TD_TSP_FAILED);
    assert_int_equal(res.http_status, 0);
    assert_null(strstr(res.detail, BEARER));
    assert_null(strstr(res.detail, url)); /* a URL may carry credentials: never echoed */
    uint64_t s[TD_TSP_N_STATUS];
    td_tsp_stats(t, s);
    assert_int_equal(s[TD_TSP_FAILED], 1);
    td_tsp_free(t);
}

static void test_http_unencodable_request(void **state)
{
    (void)state;
    receiver *r = receiver_start(200, 0, 0, NULL);
    td_tsp *t = http_to(r, 2000, 2, NULL);
    td_tsp_request rq;
    td_tsp_result res;
    fill_request(&rq, TD_TSP_SUSPEND, "op_utf8");
    td_strlcpy(rq.reason, "bad \xff byte", sizeof rq.reason);
    td_tsp_call(t, &rq, &res);
    assert_int_equal(res.status, TD_TSP_FAILED);
    fill_request(&rq, (td_tsp_op)42, "op_badop");
    td_tsp_call(t, &rq, &res);
    assert_int_equal(res.status, TD_TSP_FAILED);
    fill_request(&rq, TD_TSP_SUSPEND, "op_\r\nX-Evil: 1");
    td_tsp_call(t, &rq, &res);
    assert_int_equal(res.status, TD_TSP_FAILED);
    assert_int_equal(atomic_load(&r->attempts), 0); /* nothing was sent */
    td_tsp_free(t);
    receiver_stop(r);
}

static void test_http_concurrency(void **state)
{
    (void)state;
    receiver *r = receiver_start(200, 0, 0, "Bearer " BEARER);
    td_tsp *t = http_to(r, 5000, 2, BEARER);
    int totals[TD_TSP_N_STATUS];
    run_workers(t, 4, 50, totals);
    assert_int_equal(totals[TD_TSP_OK], 200);
    assert_int_equal(atomic_load(&r->attempts), 200);
    assert_int_equal(atomic_load(&r->bad), 0); /* each request's header matched its own body */
    uint64_t s[TD_TSP_N_STATUS];
    td_tsp_stats(t, s);
    assert_int_equal(s[TD_TSP_OK], 200);
    assert_int_equal(stat_total(t), 200);
    td_tsp_free(t);
    receiver_stop(r);
}

/* ================= PAN helpers ================= */

static void test_pan_seal_open(void **state)
{
    (void)state;
    uint8_t master[TD_MASTER_KEY_LEN];
    td_random_bytes(master, sizeof master);
    uint8_t *sealed = NULL;
    size_t n = 0;
    assert_int_equal(td_pan_seal(master, PAN1, "ISSUER0001/card-1", &sealed, &n), 0);
    assert_int_equal(n, 24 + strlen(PAN1) + 16); /* nonce + ciphertext + tag */
    assert_null(memmem(sealed, n, PAN1, strlen(PAN1)));

    char pan[32];
    assert_int_equal(td_pan_open(master, sealed, n, "ISSUER0001/card-1", pan, sizeof pan), 0);
    assert_string_equal(pan, PAN1);

    /* a random nonce: sealing twice differs */
    uint8_t *again = NULL;
    size_t n2 = 0;
    assert_int_equal(td_pan_seal(master, PAN1, "ISSUER0001/card-1", &again, &n2), 0);
    assert_int_equal(n2, n);
    assert_memory_not_equal(again, sealed, n);
    free(again);

    /* moved to another card or issuer: does not open */
    memset(pan, 'x', sizeof pan);
    assert_int_equal(td_pan_open(master, sealed, n, "ISSUER0001/card-2", pan, sizeof pan), -1);
    assert_int_equal(pan[0], 0);
    assert_int_equal(td_pan_open(master, sealed, n, "ISSUER0002/card-1", pan, sizeof pan), -1);
    assert_int_equal(td_pan_open(master, sealed, n, "", pan, sizeof pan), -1);

    /* another master key */
    uint8_t other[TD_MASTER_KEY_LEN];
    td_random_bytes(other, sizeof other);
    assert_int_equal(td_pan_open(other, sealed, n, "ISSUER0001/card-1", pan, sizeof pan), -1);

    /* any flipped bit: nonce, ciphertext, tag */
    for (size_t i = 0; i < n; i++) {
        sealed[i] ^= 0x01;
        assert_int_equal(td_pan_open(master, sealed, n, "ISSUER0001/card-1", pan, sizeof pan), -1);
        sealed[i] ^= 0x01;
    }
    /* truncated, or too short to hold a nonce and tag */
    assert_int_equal(td_pan_open(master, sealed, n - 1, "ISSUER0001/card-1", pan, sizeof pan), -1);
    assert_int_equal(td_pan_open(master, sealed, 39, "ISSUER0001/card-1", pan, sizeof pan), -1);
    /* no room for the PAN and its NUL */
    assert_int_equal(td_pan_open(master, sealed, n, "ISSUER0001/card-1", pan, strlen(PAN1)), -1);
    assert_int_equal(td_pan_open(master, sealed, n, "ISSUER0001/card-1", pan, strlen(PAN1) + 1), 0);
    assert_string_equal(pan, PAN1);
    td_wipe(pan, sizeof pan);

    /* bad arguments */
    assert_int_equal(td_pan_open(master, NULL, n, "a/b", pan, sizeof pan), -1);
    assert_int_equal(td_pan_open(master, sealed, n, NULL, pan, sizeof pan), -1);
    assert_int_equal(td_pan_open(master, sealed, n, "a/b", NULL, 32), -1);
    static uint8_t dummy;
    uint8_t *none = &dummy;
    size_t nn = 7;
    assert_int_equal(td_pan_seal(master, NULL, "a/b", &none, &nn), -1);
    assert_null(none);
    assert_int_equal(nn, 0);
    assert_int_equal(td_pan_seal(master, PAN1, NULL, &none, &nn), -1);
    free(sealed);
}

/* The keys are the documented derivations, and neither is the master key. */
static void test_pan_key_separation(void **state)
{
    (void)state;
    uint8_t master[TD_MASTER_KEY_LEN], k_fp[32], k_enc[32];
    td_random_bytes(master, sizeof master);
    crypto_kdf_derive_from_key(k_fp, sizeof k_fp, 1, "tdpanfp1", master);
    crypto_kdf_derive_from_key(k_enc, sizeof k_enc, 2, "tdpanenc", master);
    assert_memory_not_equal(k_fp, k_enc, 32);

    char fp[65], hex[65];
    uint8_t d[32];
    td_pan_fingerprint(master, PAN1, fp);
    crypto_generichash(d, 32, (const uint8_t *)PAN1, strlen(PAN1), k_fp, 32);
    sodium_bin2hex(hex, sizeof hex, d, 32);
    assert_string_equal(fp, hex);
    /* not keyed with the master key, nor with the sealing key */
    crypto_generichash(d, 32, (const uint8_t *)PAN1, strlen(PAN1), master, 32);
    sodium_bin2hex(hex, sizeof hex, d, 32);
    assert_string_not_equal(fp, hex);
    crypto_generichash(d, 32, (const uint8_t *)PAN1, strlen(PAN1), k_enc, 32);
    sodium_bin2hex(hex, sizeof hex, d, 32);
    assert_string_not_equal(fp, hex);

    /* the sealed PAN opens with the derived key and the AAD, and with no other key */
    uint8_t *sealed = NULL;
    size_t n = 0;
    const char *aad = "ISSUER0001/card-1";
    assert_int_equal(td_pan_seal(master, PAN1, aad, &sealed, &n), 0);
    uint8_t plain[64];
    unsigned long long m = 0;
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &m, NULL, sealed + 24, n - 24,
                                                                (const uint8_t *)aad, strlen(aad), sealed, k_enc),
                     0);
    assert_int_equal(m, strlen(PAN1));
    assert_memory_equal(plain, PAN1, m);
    assert_int_not_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &m, NULL, sealed + 24, n - 24,
                                                                    (const uint8_t *)aad, strlen(aad), sealed, master),
                         0);
    assert_int_not_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &m, NULL, sealed + 24, n - 24,
                                                                    (const uint8_t *)aad, strlen(aad), sealed, k_fp),
                         0);
    /* td_seal's format under the master key is not a way in either */
    uint8_t *out = NULL;
    size_t out_len = 0;
    assert_int_equal(td_open(master, sealed, n, &out, &out_len), -1);
    free(sealed);
    td_wipe(plain, sizeof plain);
}

static void test_pan_fingerprint(void **state)
{
    (void)state;
    uint8_t m1[TD_MASTER_KEY_LEN], m2[TD_MASTER_KEY_LEN];
    memset(m1, 0x11, sizeof m1);
    memset(m2, 0x22, sizeof m2);
    char a[65], b[65], c[65], d[65];
    td_pan_fingerprint(m1, PAN1, a);
    td_pan_fingerprint(m1, PAN1, b);
    assert_int_equal(strlen(a), 64);
    assert_true(strspn(a, "0123456789abcdef") == 64);
    assert_string_equal(a, b); /* stable */
    td_pan_fingerprint(m2, PAN1, c);
    assert_string_not_equal(a, c); /* per master key */
    td_pan_fingerprint(m1, PAN2, d);
    assert_string_not_equal(a, d); /* per PAN */
    assert_null(strstr(a, PAN1));
    /* not the API key hash of the same characters */
    char api[65];
    td_api_key_hash(PAN1, api);
    assert_string_not_equal(a, api);
}

/* ================= settings ================= */

static const char *const TSP_ENV[] = {"TOKEND_TSP_URL",    "TOKEND_TSP_TIMEOUT_MS",    "TOKEND_TSP_RETRIES",
                                      "TOKEND_TSP_BEARER", "TOKEND_TIMER_INTERVAL_MS", "TOKEND_CONFIG"};

static int load(td_config *c, char *err, size_t cap, int argc, ...)
{
    char *argv[16];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc && i < 16; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    return td_config_load(c, argc, argv, err, cap);
}

static void test_config_tsp(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof TSP_ENV / sizeof TSP_ENV[0]; i++)
        unsetenv(TSP_ENV[i]);
    td_config *c = calloc(1, sizeof *c);
    assert_non_null(c);
    char err[256] = "";
    assert_int_equal(load(c, err, sizeof err, 0), 0);
    assert_string_equal(c->tsp_url, "");
    assert_int_equal(c->tsp_timeout_ms, 5000);
    assert_int_equal(c->tsp_retries, 2);
    assert_string_equal(c->tsp_bearer, "");
    assert_int_equal(c->timer_interval_ms, 1000);

    assert_int_equal(load(c, err, sizeof err, 10, "--tsp-url", "http://127.0.0.1:9/tsp", "--tsp-timeout-ms", "250",
                          "--tsp-retries", "0", "--tsp-bearer", "abc.def", "--timer-interval-ms", "10"),
                     0);
    assert_string_equal(c->tsp_url, "http://127.0.0.1:9/tsp");
    assert_int_equal(c->tsp_timeout_ms, 250);
    assert_int_equal(c->tsp_retries, 0);
    assert_string_equal(c->tsp_bearer, "abc.def");
    assert_int_equal(c->timer_interval_ms, 10);

    /* environment, overridden by a flag */
    setenv("TOKEND_TSP_BEARER", "from-env", 1);
    setenv("TOKEND_TSP_RETRIES", "7", 1);
    setenv("TOKEND_TIMER_INTERVAL_MS", "60000", 1);
    assert_int_equal(load(c, err, sizeof err, 2, "--tsp-retries", "10"), 0);
    assert_string_equal(c->tsp_bearer, "from-env");
    assert_int_equal(c->tsp_retries, 10);
    assert_int_equal(c->timer_interval_ms, 60000);
    for (size_t i = 0; i < sizeof TSP_ENV / sizeof TSP_ENV[0]; i++)
        unsetenv(TSP_ENV[i]);

    /* ranges */
    assert_int_equal(load(c, err, sizeof err, 2, "--tsp-timeout-ms", "0"), -1);
    assert_int_equal(load(c, err, sizeof err, 2, "--tsp-timeout-ms", "120001"), -1);
    assert_int_equal(load(c, err, sizeof err, 2, "--tsp-timeout-ms", "120000"), 0);
    assert_int_equal(load(c, err, sizeof err, 2, "--tsp-retries", "11"), -1);
    assert_int_equal(load(c, err, sizeof err, 2, "--tsp-retries", "-1"), -1);
    assert_int_equal(load(c, err, sizeof err, 2, "--timer-interval-ms", "9"), -1);
    assert_int_equal(load(c, err, sizeof err, 2, "--timer-interval-ms", "60001"), -1);
    assert_int_equal(load(c, err, sizeof err, 2, "--tsp-url", "ftp://x/y"), -1);
    assert_int_equal(load(c, err, sizeof err, 2, "--tsp-url", "http://x/ y"), -1);
    assert_int_equal(load(c, err, sizeof err, 2, "--tsp-url", ""), 0);

    /* a bad bearer is refused without being quoted */
    assert_int_equal(load(c, err, sizeof err, 2, "--tsp-bearer", "secret\r\nX-Evil: 1"), -1);
    assert_null(strstr(err, "secret"));
    char big[400];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(load(c, err, sizeof err, 2, "--tsp-bearer", big), -1);
    assert_null(strstr(err, "kkkk"));
    free(c);
}

int main(void)
{
    if (td_crypto_init() != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_sim_modes),
        cmocka_unit_test(test_sim_default_timeout),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_sim_concurrency),
        cmocka_unit_test(test_http_bad_arguments),
        cmocka_unit_test(test_http_ok_body_and_headers),
        cmocka_unit_test(test_http_no_bearer),
        cmocka_unit_test(test_http_retry_then_ok),
        cmocka_unit_test(test_http_500_always),
        cmocka_unit_test(test_http_400_refused_once),
        cmocka_unit_test(test_http_timeout),
        cmocka_unit_test(test_http_connection_refused),
        cmocka_unit_test(test_http_unencodable_request),
        cmocka_unit_test(test_http_concurrency),
        cmocka_unit_test(test_pan_seal_open),
        cmocka_unit_test(test_pan_key_separation),
        cmocka_unit_test(test_pan_fingerprint),
        cmocka_unit_test(test_config_tsp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
