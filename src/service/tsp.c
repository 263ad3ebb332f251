/* tsp.c — the TSP connector: the in-process simulator (tests, demos) and the
 * HTTP connector (libcurl easy handle per call, JSON built with jansson). */
#include "service/tsp.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "crypto/crypto.h"
#include "util/log.h"
#include "util/util.h"

#define SIM_TIMEOUT_DEFAULT_MS 200
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 1000

typedef enum { SIM_ACCEPT, SIM_FAIL, SIM_REFUSE, SIM_TIMEOUT } sim_mode;
static const char *const SIM_MODES[] = {"accept", "fail", "refuse", "timeout"};

struct td_tsp {
    bool http;
    pthread_mutex_t mu; /* guards stats and the simulator's state */
    uint64_t stats[TD_TSP_N_STATUS];
    /* simulated */
    sim_mode mode;
    int remaining; /* calls left in mode; 0 = until changed */
    int sim_timeout_ms;
    /* HTTP: read-only after td_tsp_new_http, so calls share them unlocked */
    char *url;
    int timeout_ms;
    int retries;
    struct curl_slist *headers; /* Content-Type, Expect, Authorization */
    char *auth_header;          /* "Authorization: Bearer ...", wiped on free */
};

const char *td_tsp_status_name(td_tsp_status s)
{
    switch (s) {
    case TD_TSP_OK: return "OK";
    case TD_TSP_REFUSED: return "REFUSED";
    case TD_TSP_FAILED: return "FAILED";
    case TD_TSP_TIMEOUT: return "TIMEOUT";
    }
    return "UNKNOWN";
}

const char *td_tsp_op_name(td_tsp_op op)
{
    switch (op) {
    case TD_TSP_SUSPEND: return "SUSPEND";
    case TD_TSP_RESUME: return "RESUME";
    case TD_TSP_DELETE: return "DELETE";
    }
    return NULL;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void set_result(td_tsp_result *out, td_tsp_status st, int http_status, const char *detail)
{
    out->status = st;
    out->http_status = http_status;
    td_strlcpy(out->detail, detail, sizeof out->detail);
}

static void count(td_tsp *t, td_tsp_status st)
{
    pthread_mutex_lock(&t->mu);
    t->stats[st]++;
    pthread_mutex_unlock(&t->mu);
}

static td_tsp *alloc_tsp(bool http)
{
    td_tsp *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    if (pthread_mutex_init(&t->mu, NULL) != 0) {
        free(t);
        return NULL;
    }
    t->http = http;
    t->sim_timeout_ms = SIM_TIMEOUT_DEFAULT_MS;
    return t;
}

/* ================= simulated ================= */

td_tsp *td_tsp_new_simulated(void)
{
    return alloc_tsp(false);
}

int td_tsp_sim_set(td_tsp *t, const char *mode, int n)
{
    if (!t || t->http || !mode || n < 0) return -1;
    for (int m = 0; m < 4; m++) {
        if (strcmp(mode, SIM_MODES[m]) != 0) continue;
        pthread_mutex_lock(&t->mu);
        t->mode = (sim_mode)m;
        t->remaining = n;
        pthread_mutex_unlock(&t->mu);
        return 0;
    }
    return -1;
}

int td_tsp_sim_set_timeout_ms(td_tsp *t, int ms)
{
    if (!t || t->http || ms < 0 || ms > 60000) return -1;
    pthread_mutex_lock(&t->mu);
    t->sim_timeout_ms = ms;
    pthread_mutex_unlock(&t->mu);
    return 0;
}

static void sim_call(td_tsp *t, td_tsp_result *out)
{
    pthread_mutex_lock(&t->mu);
    sim_mode m = t->mode;
    int sleep_for = t->sim_timeout_ms;
    /* A counted mode ends with the call that uses it up, so "fail 1" fails
     * exactly the next call, however many threads race for it. */
    if (t->remaining > 0 && --t->remaining == 0) t->mode = SIM_ACCEPT;
    pthread_mutex_unlock(&t->mu);
    switch (m) {
    case SIM_ACCEPT: set_result(out, TD_TSP_OK, 200, "simulated TSP accepted"); break;
    case SIM_REFUSE: set_result(out, TD_TSP_REFUSED, 400, "simulated TSP refused"); break;
    case SIM_FAIL: set_result(out, TD_TSP_FAILED, 500, "simulated TSP failed"); break;
    case SIM_TIMEOUT:
        /* outside the lock: a slow TSP holds only the calling worker */
        sleep_ms(sleep_for);
        set_result(out, TD_TSP_TIMEOUT, 0, "simulated TSP timed out");
        break;
    }
}

/* ================= HTTP ================= */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

/* curl_global_init is not thread-safe and must run once per process. */
static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static bool has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

td_tsp *td_tsp_new_http(const char *url, int timeout_ms, int retries, const char *bearer)
{
    if (!url || (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) || has_crlf(url) ||
        timeout_ms < 1 || timeout_ms > 120000 || retries < 0 || retries > 10)
        return NULL;
    if (bearer && has_crlf(bearer)) return NULL; /* would inject headers */
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) return NULL;
    td_tsp *t = alloc_tsp(true);
    if (!t) return NULL;
    t->timeout_ms = timeout_ms;
    t->retries = retries;
    t->url = strdup(url);
    if (!t->url) goto fail;
    t->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (!t->headers) goto fail;
    /* An empty Expect: stops curl from waiting for "100 Continue" on larger bodies. */
    struct curl_slist *h = curl_slist_append(t->headers, "Expect:");
    if (!h) goto fail;
    t->headers = h;
    if (bearer && bearer[0]) {
        size_t n = strlen("Authorization: Bearer ") + strlen(bearer) + 1;
        t->auth_header = malloc(n);
        if (!t->auth_header) goto fail;
        snprintf(t->auth_header, n, "Authorization: Bearer %s", bearer);
        h = curl_slist_append(t->headers, t->auth_header);
        if (!h) goto fail;
        t->headers = h;
    }
    return t;
fail:
    td_tsp_free(t);
    return NULL;
}

/* The neutral body; NULL if a field is not valid UTF-8 (or out of memory). */
static char *request_json(const td_tsp_request *rq)
{
    const char *op = td_tsp_op_name(rq->op);
    if (!op) return NULL;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "operation", op, "issuerId", rq->issuer_id,
                          "digitalCardId", rq->digital_card_id, "cardId", rq->card_id, "operationId", rq->operation_id,
                          "reason", rq->reason, "reasonCode", rq->reason_code, "requestor", rq->requestor);
    if (!o) return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* The TSP's answer body is not used: it is read and dropped, never copied
 * into the result (it is not ours to log). */
static size_t discard_body(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

typedef enum { ATTEMPT_DONE, ATTEMPT_RETRY } attempt_next;

/* One POST. Fills out with this attempt's outcome and says whether another
 * attempt may help. */
static attempt_next attempt(CURL *h, td_tsp_result *out)
{
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    if (rc != CURLE_OK) {
        /* curl_easy_strerror is generic text: no URL, so no credential in it */
        char d[160];
        snprintf(d, sizeof d, "%s: %s", rc == CURLE_OPERATION_TIMEDOUT ? "timed out" : "connection failed",
                 curl_easy_strerror(rc));
        set_result(out, rc == CURLE_OPERATION_TIMEDOUT ? TD_TSP_TIMEOUT : TD_TSP_FAILED, 0, d);
        return ATTEMPT_RETRY;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    char d[160];
    snprintf(d, sizeof d, "the TSP answered HTTP %ld", code);
    int hs = code > 0 && code < 1000 ? (int)code : 0;
    if (code >= 200 && code < 300) {
        set_result(out, TD_TSP_OK, hs, d);
        return ATTEMPT_DONE;
    }
    if (code >= 400 && code < 500) {
        set_result(out, TD_TSP_REFUSED, hs, d);
        return ATTEMPT_DONE;
    }
    set_result(out, TD_TSP_FAILED, hs, d);
    /* Only a 5xx may be a passing trouble; a 1xx/3xx (redirects are not
     * followed) means a misconfigured URL and will not get better. */
    return code >= 500 ? ATTEMPT_RETRY : ATTEMPT_DONE;
}

static void http_call(td_tsp *t, const td_tsp_request *rq, td_tsp_result *out)
{
    char *body = request_json(rq);
    if (!body) {
        set_result(out, TD_TSP_FAILED, 0, "the request could not be encoded (invalid operation or UTF-8)");
        return;
    }
    CURL *h = curl_easy_init();
    if (!h) {
        free(body);
        set_result(out, TD_TSP_FAILED, 0, "could not create an HTTP handle");
        return;
    }
    /* The per-call correlation header is a node on the stack chained in front
     * of the shared list: curl only reads header lists, so the shared one
     * needs no lock and the bearer is never copied again. */
    char corr[100];
    snprintf(corr, sizeof corr, "x-correlation-id: %s", rq->operation_id);
    struct curl_slist corr_node = {.data = corr, .next = t->headers};
    bool ok = !has_crlf(rq->operation_id);
    ok = ok && curl_easy_setopt(h, CURLOPT_URL, t->url) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
    /* Worker threads must not get SIGALRM from the resolver's timeouts. */
    ok = ok && curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)t->timeout_ms) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_HTTPHEADER, &corr_node) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_POSTFIELDS, body) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body)) == CURLE_OK;
    ok = ok && curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_body) == CURLE_OK;
    if (!ok) {
        set_result(out, TD_TSP_FAILED, 0, "could not set up the HTTP request");
    } else {
        int attempts = 0;
        for (;;) {
            attempts++;
            if (attempt(h, out) == ATTEMPT_DONE || attempts > t->retries) break;
            /* Retrying is safe even after a timeout: the TSP may have acted,
             * but it dedupes on operationId, which every attempt repeats. */
            int wait = BACKOFF_FIRST_MS << (attempts - 1 < 4 ? attempts - 1 : 4);
            if (wait > BACKOFF_MAX_MS) wait = BACKOFF_MAX_MS;
            td_log(TD_LOG_WARN, "tsp_retry", "operation %s: attempt %d of %d: %s; retrying in %d ms", rq->operation_id,
                   attempts, t->retries + 1, out->detail, wait);
            sleep_ms(wait);
        }
        if (attempts > 1) {
            size_t n = strlen(out->detail);
            snprintf(out->detail + n, sizeof out->detail - n, " (%d attempts)", attempts);
        }
    }
    curl_easy_cleanup(h);
    free(body);
}

/* ================= both ================= */

void td_tsp_call(td_tsp *t, const td_tsp_request *rq, td_tsp_result *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!t || !rq) {
        set_result(out, TD_TSP_FAILED, 0, "no TSP connector or no request");
        return;
    }
    if (t->http)
        http_call(t, rq, out);
    else
        sim_call(t, out);
    count(t, out->status);
}

void td_tsp_stats(td_tsp *t, uint64_t out[TD_TSP_N_STATUS])
{
    if (!t) {
        memset(out, 0, sizeof(uint64_t) * TD_TSP_N_STATUS);
        return;
    }
    pthread_mutex_lock(&t->mu);
    memcpy(out, t->stats, sizeof t->stats);
    pthread_mutex_unlock(&t->mu);
}

void td_tsp_free(td_tsp *t)
{
    if (!t) return;
    /* curl_slist_append copied the bearer header: wipe that copy too */
    for (struct curl_slist *h = t->headers; h; h = h->next)
        if (h->data) td_wipe(h->data, strlen(h->data));
    curl_slist_free_all(t->headers);
    if (t->auth_header) {
        td_wipe(t->auth_header, strlen(t->auth_header));
        free(t->auth_header);
    }
    free(t->url);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
