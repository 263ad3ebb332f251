/* http.h — the HTTP edge: the per-request context every handler works on, the
 * route table's shape, and helpers to answer. The server itself (MHD glue,
 * limits, auth, rate limiting, metrics, logging) is in http.c. */
#ifndef TD_HTTP_H
#define TD_HTTP_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errors.h"
#include "core/token.h"
#include "store/store.h"

struct MHD_Connection;
typedef struct td_server td_server;
typedef struct td_svc td_svc;
typedef struct td_req td_req;
typedef struct td_notify td_notify;
typedef struct td_guarded td_guarded; /* conn_guard.h */

typedef enum { TD_GET, TD_POST, TD_PUT, TD_DELETE, TD_METHOD_OTHER } td_method;

typedef enum {
    TD_AUTH_NONE,    /* health, metrics, consent pages (the code is the capability) */
    TD_AUTH_MEMBER,  /* Token API: Bearer apiKey or Basic memberId:apiKey; an issuer key is 403 */
    TD_AUTH_ADMIN,   /* admin API: Bearer <admin key> */
    TD_AUTH_ISSUER,  /* Issuer API, Classic RPC: Bearer <issuer API key of role "issuer"> */
    TD_AUTH_NETWORK, /* Network API: Bearer <issuer API key of role "network"> (the TSP's) */
    /* GET /tokens, GET /tokens/{id}, PUT /tokens/{id}/cancel: a member as
     * TD_AUTH_MEMBER, or an issuer key of role "issuer" (Bearer only), which
     * sees the issuer's digital cards as CARD tokens (r->auth.kind tells). */
    TD_AUTH_MEMBER_OR_ISSUER,
} td_auth_kind;

/* How errors are rendered on a route. */
typedef enum {
    TD_FACE_TOKENIO, /* {"error": {errorCode, message, tokenTraceId[, paymentId]}} */
    TD_FACE_HTML,    /* an HTML page (consent) */
    TD_FACE_PLAIN,
    TD_FACE_D1,      /* Issuer and Network APIs: {"error", "errorCode", "traceId"} */
    TD_FACE_CLASSIC, /* Classic RPC: 400 {"responseCode", "errorMessage"}; 500 without a body */
} td_face;

typedef void (*td_handler)(td_req *r);

typedef struct {
    td_method method;
    const char *pattern; /* "/tokens/{tokenId}/cancel": {x} matches one path segment */
    td_handler handler;
    td_auth_kind auth;
    td_face face;
    const char *name; /* for metrics and logs: the pattern, or an operation name */
} td_route;

#define TD_MAX_PARAMS 4

typedef struct {
    bool ok;
    td_cred_kind kind;         /* TD_CRED_MEMBER or TD_CRED_ISSUER */
    char member_id[TD_ID_MAX]; /* or issuer id */
    char role[16];             /* issuer credentials: issuer | network */
    td_level level;
    char cred_hash[65]; /* scope of idempotency keys (rate limits: the owner, http.c) */
    bool admin;
} td_auth;

struct td_req {
    struct MHD_Connection *conn;
    td_server *srv;
    td_svc *svc;
    const td_route *route;
    td_method method;
    const char *path;     /* as libmicrohttpd unescaped it (idempotency hash, error face) */
    char *raw_path;       /* as the client sent it, without the query: routing (malloc'd) */
    size_t raw_uri_len;   /* the request target's length, query included */
    const char *params[TD_MAX_PARAMS]; /* path parameters, in pattern order */
    char param_buf[1024];
    int nparams;

    char *body;
    size_t body_len, body_cap;
    bool body_too_large;
    size_t discarded; /* body bytes read and thrown away (over the limit, or after an early answer) */

    char trace_id[40];
    int64_t start_us;
    td_guarded *guard;  /* the connection's request deadline (conn_guard.h); NULL: unguarded */
    int64_t headers_us; /* when the headers were whole: the body's deadline counts from here */
    size_t body_seen;   /* body bytes received, kept or not */
    td_auth auth;

    /* the answer */
    int status;
    char *resp; /* malloc'd; owned by the request */
    size_t resp_len;
    const char *content_type;
    char *location; /* a redirect's Location (malloc'd), built whole: no length cap */
    int retry_after_s;
    bool external_error; /* Token API: an upstream (TSP) failure: `token-external-error: true` */
    const char *errcode; /* for the log line */
    bool caller_fault;
    bool ready; /* an answer is set */
    bool suspended;
    bool dispatched;    /* the handler ran */
    pthread_mutex_t mu; /* orders the answer against suspending */
    void *pending;      /* a write in flight (freed by its completion) */

    /* HTTPS: the client certificate, looked at once when a face or a bound
     * credential needs it (td_tls_peer's answer; its SHA-256 in hex). */
    bool peer_checked;
    int peer;
    char peer_sha256[65];
};

/* Answers. Each sets r->ready. */
void td_reply_json_steal(td_req *r, int status, char *body); /* takes ownership of body */
void td_reply_json_copy(td_req *r, int status, const char *body, size_t len);
void td_reply_json(td_req *r, int status, json_t *v); /* serializes; does not steal v */
void td_reply_html_steal(td_req *r, int status, char *html);
void td_reply_redirect(td_req *r, const char *location);
/* The error in the route's face shape (by path prefix when no route matched:
 * td_face_of_path). `id_asked` fills error.paymentId where the Token.io
 * reference requires one (404, 429, 501, 503, 504). The classic face answers
 * e->classic when set, else the registry's code for e->code. */
void td_reply_error(td_req *r, const td_error *e, const char *id_asked);
void td_reply_err(td_req *r, td_err code, const char *detail);

/* A handler that submits a write returns without an answer; the server then
 * suspends the connection. The write's completion (on any thread, possibly
 * before the handler returned) sets the answer between these two calls, which
 * resume the connection if it was suspended. */
void td_req_complete_begin(td_req *r);
void td_req_complete_end(td_req *r);

/* Request inputs. */
const char *td_header(td_req *r, const char *name);
const char *td_query(td_req *r, const char *name);
/* 0 if every query parameter is in allowed (NULL-terminated); else sets e. */
int td_query_allowed(td_req *r, const char *const *allowed, td_error *e);
/* Parses the body as one strict JSON object (UTF-8, no duplicate keys, no
 * trailing data). NULL and sets e on failure; the message names the line and
 * column, never the text there (it may be a secret). */
json_t *td_body_json(td_req *r, td_error *e);

/* The Idempotency-Key header, validated: NULL if absent; sets e if malformed. */
const char *td_idempotency_key(td_req *r, td_error *e);

/* The route table (routes.c). */
extern const td_route td_routes[];
extern const int td_route_count;

/* The td_tls_face (util/config.h) a route belongs to, for --tls-client-faces. */
unsigned td_route_tls_face(const td_route *rt);

/* The face whose shape errors take on a path no route matched: /banking/ and
 * /network/ → D1, /igwapi/v2.0/ → classic, anything else → Token.io. */
td_face td_face_of_path(const char *path);

/* Why td_route_match found no route. */
typedef enum {
    TD_MISS_NOT_FOUND, /* no route has this path: 404 */
    TD_MISS_METHOD,    /* a route has this path with another method: 405 */
    TD_MISS_BAD_PATH,  /* a malformed percent-escape or an encoded NUL (%00): 400 */
} td_route_miss;

/* Matches method + the path as the client sent it (not unescaped): split on
 * '/', then each segment percent-decoded, so "%2F" never splits a segment;
 * returns the route or NULL with *miss saying why. The decoded parameters are
 * written into r. */
const td_route *td_route_match(td_req *r, td_method m, const char *raw_path, td_route_miss *miss);

/* The server: starts listening; returns NULL with a message on failure. */
td_server *td_server_start(td_svc *svc, char *err, size_t cap);
/* Stops accepting connections, waits up to drain_ms for requests in flight
 * (including writes waiting for their commit), then stops. Returns -1 if
 * requests were still in flight: the server is then left as it is. */
int td_server_shutdown(td_server *s, int64_t drain_ms);
/* Rereads the TLS certificate, key and client CAs (SIGHUP): new connections
 * use them, open ones keep theirs. 0, or -1 with a message (nothing changed;
 * also when the server is not serving HTTPS). */
int td_server_reload_tls(td_server *s, char *err, size_t cap);
/* The notification worker whose counters /metrics shows (notify/notify.h);
 * until it is set, or with NULL, they read zero. Thread-safe. */
void td_server_set_notify(td_server *s, const td_notify *w);
/* Prometheus text for /metrics (malloc'd). */
char *td_metrics_render(td_server *s);

#endif
