/* errors.h — the one error registry. Each code has a name, an HTTP status, a
 * Token.io errorCode and a default message; each face renders it in its own
 * shape. `caller_fault` separates the client's mistakes from ours in logs. */
#ifndef TD_ERRORS_H
#define TD_ERRORS_H

#include <stdbool.h>

typedef enum {
    TD_OK = 0,
    TD_E_BAD_JSON,         /* malformed JSON, invalid UTF-8, duplicate keys */
    TD_E_INVALID_ARGUMENT, /* wrong type, unknown field, id outside its pattern */
    TD_E_BAD_PAGINATION,
    TD_E_UNSUPPORTED_MEDIA,    /* a body that is not application/json */
    TD_E_BODY_TOO_LARGE,       /* 413 */
    TD_E_URI_TOO_LONG,         /* 414 */
    TD_E_HEADERS_TOO_LARGE,    /* 431 */
    TD_E_UNAUTHENTICATED,      /* 401 */
    TD_E_PERMISSION_DENIED,    /* 403 */
    TD_E_NOT_FOUND,            /* 404 */
    TD_E_METHOD_NOT_ALLOWED,   /* 405 */
    TD_E_IDEMPOTENCY_REUSED,   /* 409: same Idempotency-Key, other body */
    TD_E_CONFLICT,             /* 409: already exists */
    TD_E_GONE,                 /* 410: a consent code already used or expired */
    TD_E_RATE_LIMITED,         /* 429 */
    TD_E_INTERNAL,             /* 500 */
    TD_E_NOT_IMPLEMENTED,      /* 501 */
    TD_E_UNAVAILABLE,          /* 503: the store cannot be reached */
    TD_E_TIMEOUT,              /* 504: the commit did not finish in time */
    TD_E_NOT_ALLOWED_IN_STATE, /* 409: the lifecycle operation is not allowed in the current state */
    TD_E_TSP_FAILED,           /* 502: the TSP refused or failed the operation; nothing changed */
    TD_E_TSP_TIMEOUT,          /* 504: the TSP did not answer in time; nothing changed */
    TD_E__COUNT
} td_err;

typedef struct {
    const char *name; /* stable, for logs and metrics */
    int http_status;
    const char *tokenio; /* Token.io errorCode */
    const char *message; /* default message */
    bool caller_fault;
    int classic; /* Thales IGW responseCode (classic face); 0 = no body (500) */
} td_err_info;

const td_err_info *td_err_lookup(td_err code);

/* An error with a detail message for the caller; never holds secrets. */
typedef struct {
    td_err code;
    char detail[200];
    int classic; /* the classic face's responseCode for this context (116 vs 119, ...); 0 = the registry's */
} td_error;

/* Sets e (if not NULL) and returns code, so `return td_fail(e, ...)` reads well. */
td_err td_fail(td_error *e, td_err code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
