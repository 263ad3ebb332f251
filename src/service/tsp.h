/* tsp.h — the connector through which tokend carries a lifecycle operation
 * (an issuer's, or its own timers') out at the network Token Service Provider
 * before committing it: a simulated TSP in-process, or HTTP via libcurl. */
#ifndef TD_TSP_H
#define TD_TSP_H

#include <stdint.h>

typedef enum { TD_TSP_SUSPEND, TD_TSP_RESUME, TD_TSP_DELETE } td_tsp_op;

/* The request owns its strings (fixed arrays sized like the store's columns),
 * so a caller fills it with td_strlcpy from records it then frees. "" means
 * absent. Nothing secret goes in here: ids and the issuer's reason only. */
typedef struct {
    td_tsp_op op;
    char issuer_id[16]; /* 10 chars */
    char digital_card_id[65];
    char card_id[49];
    char operation_id[65]; /* tokend's operation id: the TSP may dedupe on it */
    char reason[65];
    char reason_code[40];
    char requestor[16]; /* ISSUER | D1 (tokend's own timers) */
} td_tsp_request;

typedef enum {
    TD_TSP_OK,
    TD_TSP_REFUSED, /* 4xx: the TSP said no */
    TD_TSP_FAILED,  /* 5xx after retries, connection error, bad request */
    TD_TSP_TIMEOUT  /* the last attempt timed out */
} td_tsp_status;
#define TD_TSP_N_STATUS 4

typedef struct {
    td_tsp_status status;
    int http_status; /* the last HTTP status received; 0 if none */
    char detail[160];
} td_tsp_result;

typedef struct td_tsp td_tsp;

/* Both return NULL on bad arguments or out of memory. */
td_tsp *td_tsp_new_simulated(void);
/* url "http://host:port/path" (or https); timeout_ms per attempt (1..120000);
 * retries (0..10): extra attempts on 5xx, connection errors and timeouts, with
 * a back-off of 100 ms, 200 ms, 400 ms, ... (at most 1 s). bearer may be NULL
 * or ""; it is refused if it holds a CR or LF. */
td_tsp *td_tsp_new_http(const char *url, int timeout_ms, int retries, const char *bearer);

/* Blocking; thread-safe (many HTTP worker threads call it at once). */
void td_tsp_call(td_tsp *t, const td_tsp_request *rq, td_tsp_result *out);

const char *td_tsp_status_name(td_tsp_status s);
const char *td_tsp_op_name(td_tsp_op op);

/* Simulated TSP control (tests, demos): mode "accept" | "fail" | "refuse" |
 * "timeout" for the next `count` calls (0 = until changed); after count calls
 * it returns to accept. Returns 0, or -1 for an unknown mode, a negative
 * count, or the HTTP connector. */
int td_tsp_sim_set(td_tsp *t, const char *mode, int count);
/* How long a simulated timeout sleeps before answering TIMEOUT (default
 * 200 ms; 0..60000). Returns 0, or -1 out of range or on the HTTP connector. */
int td_tsp_sim_set_timeout_ms(td_tsp *t, int ms);

/* Calls made, by result (index = td_tsp_status), for tests and /metrics. */
void td_tsp_stats(td_tsp *t, uint64_t out[TD_TSP_N_STATUS]);

void td_tsp_free(td_tsp *t);

#endif
