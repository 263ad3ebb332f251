/* http.c — the HTTP server on libmicrohttpd: request lifecycle, limits,
 * authentication, rate limiting, answers in each face's error shape, one log
 * line and metrics per request, and graceful shutdown. Writes suspend their
 * connection while the group commit runs and are resumed by its completion. */
#include "api/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "api/conn_guard.h"
#include "api/metrics.h"
#include "api/ratelimit.h"
#include "api/tls.h"
#include "crypto/crypto.h"
#include "service/service.h"
#include "util/log.h"
#include "util/util.h"

struct td_server {
    struct MHD_Daemon *d;
    td_svc *svc;
    td_ratelimit *rl;          /* per credential owner (owner_key) */
    td_ratelimit *rl_admin;    /* the admin key */
    td_ratelimit *rl_consent;  /* consent pages, per source address */
    td_ratelimit *rl_authfail; /* failed authentications, per source address */
    td_conn_guard *guard;      /* request deadlines (conn_guard.h) */
    struct MHD_OptionItem edge_opts[3];
    td_metrics *metrics;
    td_tls *tls; /* NULL: plain HTTP */
    atomic_int inflight;
    _Atomic(const td_notify *) notify; /* the worker /metrics reads; NULL: none */
};

static td_method parse_method(const char *m)
{
    if (!strcmp(m, "GET")) return TD_GET;
    if (!strcmp(m, "POST")) return TD_POST;
    if (!strcmp(m, "PUT")) return TD_PUT;
    if (!strcmp(m, "DELETE")) return TD_DELETE;
    return TD_METHOD_OTHER;
}

/* ---- answers ---- */

static void set_answer(td_req *r, int status, char *body, size_t len, const char *ctype)
{
    free(r->resp);
    r->resp = body;
    r->resp_len = len;
    r->status = status;
    r->content_type = ctype;
    r->ready = true;
}

void td_reply_json_steal(td_req *r, int status, char *body)
{
    set_answer(r, status, body, body ? strlen(body) : 0, "application/json");
}

void td_reply_json_copy(td_req *r, int status, const char *body, size_t len)
{
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, body, len);
        copy[len] = 0;
    }
    set_answer(r, status, copy, copy ? len : 0, "application/json");
}

void td_reply_json(td_req *r, int status, json_t *v)
{
    td_reply_json_steal(r, status, json_dumps(v, JSON_COMPACT));
}

void td_reply_html_steal(td_req *r, int status, char *html)
{
    set_answer(r, status, html, html ? strlen(html) : 0, "text/html; charset=utf-8");
}

void td_reply_redirect(td_req *r, const char *location)
{
    free(r->location);
    r->location = strdup(location);
    if (!r->location) {
        td_reply_err(r, TD_E_INTERNAL, "out of memory");
        return;
    }
    set_answer(r, 303, NULL, 0, "text/plain");
}

/* Escapes text for HTML. */
static void html_escape(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '&': rep = "&amp;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        }
        if (rep) {
            size_t l = strlen(rep);
            memcpy(out + n, rep, l);
            n += l;
        } else {
            out[n++] = *s;
        }
    }
    out[n] = 0;
}

/* The classic face's responseCodes (docs/network.md); anything else in an
 * override is ignored, so a stray value can never reach a caller. */
static bool classic_code_known(int c)
{
    static const int CODES[] = {111, 112, 113, 116, 118, 119, 160, 167, 321, 432, 911, 921};
    for (size_t i = 0; i < sizeof CODES / sizeof CODES[0]; i++)
        if (CODES[i] == c) return true;
    return false;
}

/* D1's errorCode: the registry's name, except that every malformed input is
 * INVALID_ARGUMENT as docs/network.md lists it. */
static const char *d1_code(td_err code, const td_err_info *info)
{
    if (code == TD_E_BAD_JSON || code == TD_E_BAD_PAGINATION || code == TD_E_UNSUPPORTED_MEDIA)
        return "INVALID_ARGUMENT";
    return info->name;
}

void td_reply_error(td_req *r, const td_error *e, const char *id_asked)
{
    const td_err_info *info = td_err_lookup(e->code);
    const char *msg = e->detail[0] ? e->detail : info->message;
    r->errcode = info->name;
    r->caller_fault = info->caller_fault;
    if (e->code == TD_E_RATE_LIMITED && !r->retry_after_s) r->retry_after_s = 1;
    td_face face = r->route ? r->route->face : td_face_of_path(r->path);
    if (face == TD_FACE_HTML) {
        char esc[512], *html = malloc(1024);
        html_escape(msg, esc, sizeof esc);
        if (html)
            snprintf(html, 1024,
                     "<!doctype html><html><head><meta charset=\"utf-8\"><title>tokend</title></head>"
                     "<body><h1>%d</h1><p>%s</p><p><small>trace %s</small></p></body></html>",
                     info->http_status, esc, r->trace_id);
        td_reply_html_steal(r, info->http_status, html);
        return;
    }
    if (face == TD_FACE_D1) {
        json_t *body =
            json_pack("{s:s, s:s, s:s}", "error", msg, "errorCode", d1_code(e->code, info), "traceId", r->trace_id);
        td_reply_json(r, info->http_status, body);
        json_decref(body);
        return;
    }
    if (face == TD_FACE_CLASSIC) {
        /* IGW: every failure is a 400 with a responseCode; a 500 has no body.
         * Two transport-level answers keep their HTTP status: 401 (the
         * credential) and 429 (the credential's rate, with Retry-After), both
         * with the classic body; a 429 says 921, Thales's retryable code. */
        if (e->code == TD_E_INTERNAL || !info->classic) {
            set_answer(r, 500, NULL, 0, "application/json");
            return;
        }
        int status = 400, code = classic_code_known(e->classic) ? e->classic : info->classic;
        if (e->code == TD_E_UNAUTHENTICATED) status = 401;
        if (e->code == TD_E_RATE_LIMITED) {
            status = 429;
            if (!classic_code_known(e->classic)) code = 921;
        }
        json_t *body = json_pack("{s:i, s:s}", "responseCode", code, "errorMessage", msg);
        td_reply_json(r, status, body);
        json_decref(body);
        return;
    }
    /* Token.io shape. The reference requires error.paymentId on these codes;
     * for a token or request not found it carries the id asked for. */
    json_t *err = json_pack("{s:s, s:s, s:s}", "errorCode", info->tokenio, "message", msg, "tokenTraceId", r->trace_id);
    int s = info->http_status;
    if (s == 404 || s == 429 || s == 501 || s == 503 || s == 504)
        json_object_set_new(err, "paymentId", json_string(id_asked ? id_asked : ""));
    json_t *body = json_pack("{s:o}", "error", err);
    td_reply_json(r, s, body);
    json_decref(body);
}

void td_reply_err(td_req *r, td_err code, const char *detail)
{
    td_error e = {0};
    td_fail(&e, code, "%s", detail ? detail : "");
    td_reply_error(r, &e, NULL);
}

/* ---- inputs ---- */

const char *td_header(td_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *td_query(td_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct {
    const char *const *allowed;
    const char *bad;
    int count;
} query_check;

static enum MHD_Result check_query_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    (void)value;
    query_check *q = cls;
    q->count++;
    for (const char *const *a = q->allowed; *a; a++)
        if (!strcmp(*a, key)) return MHD_YES;
    q->bad = key;
    return MHD_NO;
}

int td_query_allowed(td_req *r, const char *const *allowed, td_error *e)
{
    query_check q = {allowed, NULL, 0};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, check_query_arg, &q);
    if (q.bad) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "unknown query parameter '%.64s'", q.bad);
        return -1;
    }
    return 0;
}

json_t *td_body_json(td_req *r, td_error *e)
{
    if (!r->body_len) {
        td_fail(e, TD_E_BAD_JSON, "a JSON object body is required");
        return NULL;
    }
    json_error_t je;
    json_t *v = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!v) {
        /* jansson ends its message with " near '<text>'": the text may be a
         * secret field's value (a PAN, an OTP, credentials), so it is cut. */
        char *near = strstr(je.text, " near ");
        if (near) *near = 0;
        td_fail(e, TD_E_BAD_JSON, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        td_fail(e, TD_E_BAD_JSON, "the body must be a JSON object");
        return NULL;
    }
    return v;
}

const char *td_idempotency_key(td_req *r, td_error *e)
{
    const char *k = td_header(r, "Idempotency-Key");
    if (!k) return NULL;
    size_t n = strlen(k);
    bool ok = n >= 1 && n <= 255;
    for (size_t i = 0; ok && i < n; i++)
        ok = k[i] > 0x20 && k[i] < 0x7f;
    if (!ok) {
        td_fail(e, TD_E_INVALID_ARGUMENT, "Idempotency-Key must be 1-255 visible ASCII characters");
        return NULL;
    }
    return k;
}

/* ---- suspend / resume ---- */

void td_req_complete_begin(td_req *r)
{
    pthread_mutex_lock(&r->mu);
}

void td_req_complete_end(td_req *r)
{
    bool wake = r->suspended;
    r->suspended = false;
    if (wake) MHD_resume_connection(r->conn);
    pthread_mutex_unlock(&r->mu);
}

/* Suspends the connection unless the answer is already there; true if parked. */
static bool park(td_req *r)
{
    pthread_mutex_lock(&r->mu);
    bool parked = !r->ready;
    if (parked) {
        r->suspended = true;
        MHD_suspend_connection(r->conn);
    }
    pthread_mutex_unlock(&r->mu);
    return parked;
}

/* ---- authentication ---- */

static int b64_decode_std(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    if (td_b64_std_decode(in, (uint8_t *)out, cap, &n)) return -1;
    out[n] = 0;
    return memchr(out, 0, n) ? -1 : 0;
}

/* The connection's client certificate, looked at once per request. */
static td_peer request_peer(td_req *r)
{
    if (!r->peer_checked) {
        r->peer = r->srv->tls ? td_tls_peer(r->srv->tls, r->conn, r->peer_sha256) : TD_PEER_NONE;
        r->peer_checked = true;
    }
    return (td_peer)r->peer;
}

/* A face listed in --tls-client-faces takes no request without a client
 * certificate valid for the client CAs: 401, before any credential is read. */
static td_err require_client_cert(td_req *r, td_error *e)
{
    if (!(r->svc->cfg->tls_client_faces & td_route_tls_face(r->route))) return TD_OK;
    td_peer p = request_peer(r);
    if (p == TD_PEER_VALID) return TD_OK;
    return td_fail(e, TD_E_UNAUTHENTICATED,
                   p == TD_PEER_NONE ? "this endpoint needs a client certificate (mutual TLS)"
                                     : "the client certificate is not valid for this server's client CAs");
}

/* An API key bound to a certificate is valid only on a connection that
 * presented that certificate, valid for the client CAs. */
static td_err check_binding(td_req *r, const td_cred_rec *cred, td_error *e)
{
    if (!cred->cert_sha256[0]) return TD_OK;
    td_peer p = request_peer(r);
    if (p == TD_PEER_VALID && !strcmp(r->peer_sha256, cred->cert_sha256)) return TD_OK;
    return td_fail(e, TD_E_UNAUTHENTICATED,
                   p == TD_PEER_NONE ? "this API key is bound to a client certificate: present it (mutual TLS)"
                                     : "this API key is bound to another client certificate");
}

/* Looks the key up and fills r->auth. Store trouble is 503; an unknown key 401. */
static td_err authenticate_key(td_req *r, const char *key, td_cred_rec *cred, td_error *e)
{
    while (*key == ' ')
        key++;
    if (!*key || strlen(key) > 200) return td_fail(e, TD_E_UNAUTHENTICATED, "invalid API key");
    td_err rc = td_svc_authenticate(r->svc, key, cred, e);
    if (rc == TD_E_UNAVAILABLE) return rc;
    if (rc != TD_OK) return td_fail(e, TD_E_UNAUTHENTICATED, "invalid API key");
    return check_binding(r, cred, e);
}

static void accept_cred(td_req *r, const td_cred_rec *cred)
{
    r->auth.ok = true;
    r->auth.kind = cred->kind;
    td_strlcpy(r->auth.member_id, cred->owner_id, sizeof r->auth.member_id);
    r->auth.level = cred->level;
    td_strlcpy(r->auth.role, cred->kind == TD_CRED_ISSUER ? cred->role : "", sizeof r->auth.role);
    memcpy(r->auth.cred_hash, cred->hash, sizeof r->auth.cred_hash);
}

/* Bearer <apiKey>, or Basic base64(memberId:apiKey) where the member must own
 * the key. An issuer key (Bearer) is accepted only where allow_issuer is set
 * and only with role "issuer"; anywhere else on the Token API it is a valid
 * credential without permission: 403. */
static td_err authenticate_member(td_req *r, bool allow_issuer, td_error *e)
{
    const char *h = td_header(r, "Authorization");
    char basic[512];
    const char *key = NULL, *claimed = NULL;
    if (!h) return td_fail(e, TD_E_UNAUTHENTICATED, "missing Authorization header (Bearer or Basic)");
    if (!strncasecmp(h, "Bearer ", 7)) {
        key = h + 7;
    } else if (!strncasecmp(h, "Basic ", 6)) {
        if (strlen(h + 6) > 680 || b64_decode_std(h + 6, basic, sizeof basic - 1))
            return td_fail(e, TD_E_UNAUTHENTICATED, "malformed Basic credentials");
        /* Member ids contain ':' themselves; API keys never do. */
        char *colon = strrchr(basic, ':');
        if (!colon) return td_fail(e, TD_E_UNAUTHENTICATED, "Basic credentials must be memberId:apiKey");
        *colon = 0;
        claimed = basic;
        key = colon + 1;
    } else {
        return td_fail(e, TD_E_UNAUTHENTICATED, "unsupported Authorization scheme");
    }
    td_cred_rec cred;
    td_err rc = authenticate_key(r, key, &cred, e);
    if (rc != TD_OK) return rc;
    if (cred.kind == TD_CRED_ISSUER) {
        /* Issuer keys are never presented as Basic memberId:apiKey. */
        if (claimed) return td_fail(e, TD_E_UNAUTHENTICATED, "invalid API key");
        if (!allow_issuer || strcmp(cred.role, "issuer"))
            return td_fail(e, TD_E_PERMISSION_DENIED, "an issuer credential may only read and cancel CARD tokens");
        accept_cred(r, &cred);
        return TD_OK;
    }
    if (cred.kind != TD_CRED_MEMBER || (claimed && strcmp(claimed, cred.owner_id)))
        return td_fail(e, TD_E_UNAUTHENTICATED, "invalid API key");
    accept_cred(r, &cred);
    return TD_OK;
}

/* Bearer <issuer API key> of this role; a member key or another role is 401. */
static td_err authenticate_issuer(td_req *r, const char *role, td_error *e)
{
    const char *h = td_header(r, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7))
        return td_fail(e, TD_E_UNAUTHENTICATED, "missing Authorization: Bearer <issuer API key of role %s>", role);
    td_cred_rec cred;
    td_err rc = authenticate_key(r, h + 7, &cred, e);
    if (rc != TD_OK) return rc;
    if (cred.kind != TD_CRED_ISSUER || strcmp(cred.role, role))
        return td_fail(e, TD_E_UNAUTHENTICATED, "this endpoint needs an issuer API key of role %s", role);
    accept_cred(r, &cred);
    return TD_OK;
}

static td_err authenticate_admin(td_req *r, td_error *e)
{
    const char *h = td_header(r, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7))
        return td_fail(e, TD_E_UNAUTHENTICATED, "missing Authorization: Bearer <admin key>");
    if (!td_config_admin_key_is(r->svc->cfg, h + 7)) return td_fail(e, TD_E_UNAUTHENTICATED, "invalid admin key");
    r->auth.ok = true;
    r->auth.admin = true;
    td_strlcpy(r->auth.cred_hash, "admin", sizeof r->auth.cred_hash);
    return TD_OK;
}

/* ---- abuse limits: source addresses, budgets, deadlines ---- */

/* The client's address as a limit's key: IPv4 whole, IPv6 by its /64 (what one
 * subscriber usually holds whole), a v4-mapped address as IPv4. Behind a proxy
 * this is the proxy's address: tokend trusts no forwarding header. */
static void source_key(td_req *r, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    char ip[INET6_ADDRSTRLEN] = "unknown";
    if (sa && sa->sa_family == AF_INET) {
        struct sockaddr_in a4;
        memcpy(&a4, sa, sizeof a4);
        inet_ntop(AF_INET, &a4.sin_addr, ip, sizeof ip);
    } else if (sa && sa->sa_family == AF_INET6) {
        struct sockaddr_in6 a6;
        memcpy(&a6, sa, sizeof a6);
        if (IN6_IS_ADDR_V4MAPPED(&a6.sin6_addr)) {
            inet_ntop(AF_INET, &a6.sin6_addr.s6_addr[12], ip, sizeof ip);
        } else {
            memset(&a6.sin6_addr.s6_addr[8], 0, 8);
            inet_ntop(AF_INET6, &a6.sin6_addr, ip, sizeof ip);
        }
    }
    td_strlcpy(out, ip, cap);
}

/* Whose budget a request spends: all of a member's API keys share one, as do
 * an issuer's keys of one role. */
static void owner_key(const td_auth *a, char *out, size_t cap)
{
    if (a->kind == TD_CRED_ISSUER)
        snprintf(out, cap, "i:%s:%s", a->role, a->member_id);
    else
        snprintf(out, cap, "m:%s", a->member_id);
}

static void refuse_rate(td_req *r, int wait_s, const char *why)
{
    r->retry_after_s = wait_s;
    td_reply_err(r, TD_E_RATE_LIMITED, why);
}

/* The consent pages need no credential (the code in the path is the
 * capability), so they are limited per source address instead. */
static bool is_consent(const td_route *rt)
{
    return rt->auth == TD_AUTH_NONE && rt->face == TD_FACE_HTML;
}

static td_err check_credential(td_req *r, td_error *e)
{
    switch (r->route->auth) {
    case TD_AUTH_NONE: return TD_OK;
    case TD_AUTH_MEMBER: return authenticate_member(r, false, e);
    case TD_AUTH_MEMBER_OR_ISSUER: return authenticate_member(r, true, e);
    case TD_AUTH_ADMIN: return authenticate_admin(r, e);
    case TD_AUTH_ISSUER: return authenticate_issuer(r, "issuer", e);
    case TD_AUTH_NETWORK: return authenticate_issuer(r, "network", e);
    }
    return TD_OK;
}

/* Checks the route's credential; false once the refusal is set. Each 401
 * spends the source address's failed-authentication budget; once it is spent,
 * every request needing a credential is 429 from that address, a valid key's
 * too: were it let through, the answer would tell a guesser it had found one. */
static bool authenticate(td_req *r)
{
    if (r->route->auth == TD_AUTH_NONE) return true;
    char src[TD_RATELIMIT_KEY_MAX];
    source_key(r, src, sizeof src);
    int wait = td_ratelimit_peek(r->srv->rl_authfail, src);
    if (wait) {
        refuse_rate(r, wait, "too many failed authentications from this address");
        return false;
    }
    td_error e = {0};
    td_err rc = check_credential(r, &e);
    if (rc == TD_OK) return true;
    if (rc == TD_E_UNAUTHENTICATED) td_ratelimit_take(r->srv->rl_authfail, src);
    td_reply_error(r, &e, "");
    return false;
}

/* Spends one request of the caller's budget; false (and 429) when it is empty. */
static bool within_rate(td_req *r)
{
    char key[TD_RATELIMIT_KEY_MAX];
    td_ratelimit *rl = r->srv->rl;
    if (r->auth.admin) {
        rl = r->srv->rl_admin;
        td_strlcpy(key, "admin", sizeof key);
    } else if (r->auth.ok) {
        owner_key(&r->auth, key, sizeof key);
    } else if (is_consent(r->route)) {
        rl = r->srv->rl_consent;
        source_key(r, key, sizeof key);
    } else {
        return true; /* health, readiness and metrics */
    }
    int wait = td_ratelimit_take(rl, key);
    if (!wait) return true;
    refuse_rate(r, wait, r->auth.ok ? "rate limit exceeded for this credential" : "rate limit exceeded for this address");
    return false;
}

/* Transfer codings other than chunked (gzip, identity, a list, a typo) are
 * refused: libmicrohttpd 0.9.75 would read such a body until the client
 * closes, and the client, waiting for an answer, never does (RFC 9112 6.1
 * lets a server answer 501). */
static bool coding_unsupported(const char *transfer_encoding)
{
    return transfer_encoding && strcasecmp(transfer_encoding, "chunked");
}

static int64_t request_timeout_us(const td_req *r)
{
    return (int64_t)r->svc->cfg->request_timeout_s * 1000000;
}

/* The request line and headers must arrive whole by this time, from the
 * connection's start or, on a kept-alive connection, from the previous
 * answer's end plus the idle allowance (connection-timeout). */
static void await_request(td_guarded *c, const td_config *cfg, int64_t idle_s)
{
    td_guard_deadline(c, td_mono_us() + (idle_s + cfg->request_timeout_s) * (int64_t)1000000);
}

/* The body must keep up body-min-rate on average, after a grace of
 * request-timeout from the end of the headers. */
static void await_body(td_req *r, size_t received)
{
    td_guard_deadline(r->guard, r->headers_us + request_timeout_us(r) +
                                   (int64_t)((double)received * 1e6 / (double)r->svc->cfg->body_min_rate));
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode what)
{
    td_server *srv = cls;
    if (what == MHD_CONNECTION_NOTIFY_CLOSED) {
        td_guard_close(srv->guard, *socket_context);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    td_guarded *c = ci ? td_guard_open(srv->guard, ci->connect_fd) : NULL;
    await_request(c, srv->svc->cfg, 0);
    *socket_context = c;
}

/* The daemon options of the abuse limits, for MHD_OPTION_ARRAY. */
static struct MHD_OptionItem *edge_options(td_server *s)
{
    s->edge_opts[0] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, s};
    s->edge_opts[1] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                              (intptr_t)s->svc->cfg->max_connections_per_ip, NULL};
    s->edge_opts[2] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    return s->edge_opts;
}

/* ---- the request lifecycle ---- */

typedef struct {
    size_t total;
    const char *content_length; /* the first one seen */
    bool conflicting_length;    /* several Content-Length values that differ */
    const char *transfer_encoding; /* the first one seen */
} header_scan;

/* Sizes the headers and finds framing ambiguities: two different
 * Content-Length values, or Content-Length with Transfer-Encoding, are how
 * requests are smuggled past a proxy (RFC 9112 6.3): refused with 400. */
static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    header_scan *s = cls;
    s->total += strlen(key) + (value ? strlen(value) : 0) + 4;
    if (!strcasecmp(key, "Content-Length")) {
        if (s->content_length && strcmp(s->content_length, value ? value : "")) s->conflicting_length = true;
        if (!s->content_length) s->content_length = value ? value : "";
    } else if (!strcasecmp(key, "Transfer-Encoding")) {
        if (!s->transfer_encoding) s->transfer_encoding = value ? value : "";
    }
    return MHD_YES;
}

/* A query parameter whose length, as libmicrohttpd decoded it, is not its
 * length as a C string holds a NUL ("%00"): every later reader would see it
 * cut short, so the request is refused instead. */
static enum MHD_Result find_nul(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                const char *value, size_t value_size)
{
    (void)kind;
    bool *found = cls;
    if (strlen(key) != key_size || (value && strlen(value) != value_size)) {
        *found = true;
        return MHD_NO;
    }
    return MHD_YES;
}

static bool query_has_nul(td_req *r)
{
    bool found = false;
    MHD_get_connection_values_n(r->conn, MHD_GET_ARGUMENT_KIND, find_nul, &found);
    return found;
}

/* RFC 9112 3.2: an HTTP/1.1 request without Host is a 400. libmicrohttpd
 * 0.9.75 only checks it in its strict mode, whose other refusals are not in
 * any face's shape; tokend checks it here. */
static bool lacks_host(td_req *r, const char *version)
{
    return !strcmp(version, MHD_HTTP_VERSION_1_1) && !td_header(r, MHD_HTTP_HEADER_HOST);
}

/* Everything decided from the request line and headers, before the body. */
static void start_request(td_req *r, const char *url, const char *method, const char *version)
{
    td_config *cfg = r->svc->cfg;
    td_error e = {0};
    r->method = parse_method(method);
    r->path = url;
    header_scan hs = {0};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, scan_header, &hs);
    if (hs.total > (size_t)cfg->headers_max) {
        td_reply_err(r, TD_E_HEADERS_TOO_LARGE, NULL);
        return;
    }
    if (hs.conflicting_length || (hs.content_length && hs.transfer_encoding)) {
        td_reply_err(r, TD_E_INVALID_ARGUMENT,
                     "ambiguous message framing: conflicting Content-Length or Transfer-Encoding");
        return;
    }
    if (coding_unsupported(hs.transfer_encoding)) {
        td_reply_err(r, TD_E_NOT_IMPLEMENTED, "Transfer-Encoding: only chunked is supported");
        return;
    }
    if (r->raw_uri_len > (size_t)cfg->url_max) {
        td_reply_err(r, TD_E_URI_TOO_LONG, NULL);
        return;
    }
    if (!r->raw_path) {
        td_reply_err(r, TD_E_INTERNAL, "out of memory");
        return;
    }
    td_route_miss miss;
    r->route = td_route_match(r, r->method, r->raw_path, &miss);
    if (!r->route) {
        /* The path is not echoed: it may carry a secret (a consent code, or
         * a PAN typed where an id goes). */
        static const char *const METHODS[] = {"GET", "POST", "PUT", "DELETE", "this method"};
        if (miss == TD_MISS_BAD_PATH)
            td_fail(&e, TD_E_INVALID_ARGUMENT, "the path holds a malformed percent-escape or an encoded NUL (%%00)");
        else if (miss == TD_MISS_METHOD)
            td_fail(&e, TD_E_METHOD_NOT_ALLOWED, "%s is not allowed on this path", METHODS[r->method]);
        else
            td_fail(&e, TD_E_NOT_FOUND, "no such endpoint");
        e.classic = 112; /* classic: an unknown operation, not an unknown card (116) */
        td_reply_error(r, &e, "");
        return;
    }
    if (lacks_host(r, version)) {
        td_reply_err(r, TD_E_INVALID_ARGUMENT, "an HTTP/1.1 request needs a Host header");
        return;
    }
    if (query_has_nul(r)) {
        td_reply_err(r, TD_E_INVALID_ARGUMENT, "a query parameter holds an encoded NUL (%00)");
        return;
    }
    const char *cl = td_header(r, "Content-Length");
    int64_t len;
    if (cl && (td_parse_i64(cl, &len) || len > cfg->body_max)) {
        td_reply_err(r, TD_E_BODY_TOO_LARGE, NULL);
        return;
    }
    td_err rc = r->srv->tls ? require_client_cert(r, &e) : TD_OK;
    if (rc != TD_OK) {
        td_reply_error(r, &e, "");
        return;
    }
    if (!authenticate(r)) return;
    within_rate(r);
}

/* How far past body-max tokend keeps reading a body it will not use, so that
 * its answer (a 413, or an error decided from the headers) reaches a client
 * that sends the whole body before reading: libmicrohttpd 0.9.75 can queue an
 * answer only before the body or after all of it, and closing a socket with
 * unread data makes the kernel reset the connection, which loses the answer. */
#define TD_BODY_DRAIN_MAX ((size_t)8 << 20)

/* True if the answer set from the headers must go out before the body: the
 * client waits for "100 Continue" (it never sends the body), or the declared
 * body is beyond what tokend drains. libmicrohttpd then closes the connection. */
static bool answer_before_body(td_req *r)
{
    const char *expect = td_header(r, MHD_HTTP_HEADER_EXPECT);
    if (expect && !strcasecmp(expect, "100-continue")) return true;
    if (coding_unsupported(td_header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING))) return true;
    const char *cl = td_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    int64_t len;
    return cl && (td_parse_i64(cl, &len) || (uint64_t)len > (uint64_t)r->svc->cfg->body_max + TD_BODY_DRAIN_MAX);
}

/* Keeps body bytes, or counts and drops them once the answer is decided or
 * the body is over the limit. -1 when the drain bound is passed. */
static int append_body(td_req *r, const char *data, size_t n)
{
    if (!r->ready && !r->body_too_large && r->body_len + n > (size_t)r->svc->cfg->body_max) {
        r->body_too_large = true;
        free(r->body);
        r->body = NULL;
        r->body_len = r->body_cap = 0;
    }
    if (r->ready || r->body_too_large) {
        r->discarded += n;
        return r->discarded > (size_t)r->svc->cfg->body_max + TD_BODY_DRAIN_MAX ? -1 : 0;
    }
    if (r->body_len + n + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 1024;
        while (cap < r->body_len + n + 1)
            cap *= 2;
        char *nb = realloc(r->body, cap);
        if (!nb) {
            r->body_too_large = true;
            return 0;
        }
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = 0;
    return 0;
}

static enum MHD_Result queue_answer(td_req *r)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        r->resp_len, r->resp ? r->resp : (void *)"", r->resp ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    r->resp = NULL; /* MHD owns it now */
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", r->content_type ? r->content_type : "application/json");
    MHD_add_response_header(resp, "Token-Trace-Id", r->trace_id);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (r->location) MHD_add_response_header(resp, "Location", r->location);
    if (r->external_error) MHD_add_response_header(resp, "token-external-error", "true");
    if (r->retry_after_s > 0) {
        char s[16];
        snprintf(s, sizeof s, "%d", r->retry_after_s);
        MHD_add_response_header(resp, "Retry-After", s);
    }
    enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* Answers go out once the request has been read to its end (the call with no
 * upload data left), so that the connection stays in step: a pipelined
 * request after an error is answered in turn. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)cls;
    td_req *r = *con_cls;
    if (!r) return MHD_NO;
    if (!r->conn) {
        r->conn = conn;
        r->headers_us = td_mono_us();
        await_body(r, 0);
        start_request(r, url, method, version);
        return r->ready && answer_before_body(r) ? queue_answer(r) : MHD_YES;
    }
    if (*upload_size) {
        r->body_seen += *upload_size;
        await_body(r, r->body_seen);
        int rc = append_body(r, upload_data, *upload_size);
        *upload_size = 0;
        if (rc) {
            td_log(TD_LOG_WARN, "http", "trace %s: closed after %zu body bytes past the limit", r->trace_id,
                   r->discarded);
            return MHD_NO;
        }
        return MHD_YES;
    }
    td_guard_deadline(r->guard, 0); /* whole: answering it has no deadline here */
    if (r->dispatched) {
        /* Resumed: the completion set the answer under the lock. */
        pthread_mutex_lock(&r->mu);
        bool ready = r->ready;
        pthread_mutex_unlock(&r->mu);
        return ready ? queue_answer(r) : MHD_YES;
    }
    if (r->ready) return queue_answer(r);
    if (r->body_too_large) {
        td_reply_err(r, TD_E_BODY_TOO_LARGE, NULL);
        return queue_answer(r);
    }
    r->dispatched = true;
    r->route->handler(r);
    return park(r) ? MHD_YES : queue_answer(r);
}

/* Called with the raw URI before anything else (libmicrohttpd unescapes its
 * own copy afterwards): the request is born here, and keeps the raw path for
 * routing. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    td_server *srv = cls;
    td_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->srv = srv;
    r->svc = srv->svc;
    r->start_us = td_mono_us();
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    r->guard = ci ? ci->socket_context : NULL;
    pthread_mutex_init(&r->mu, NULL);
    r->raw_uri_len = strlen(uri); /* checked against url_max in start_request */
    r->raw_path = strndup(uri, strcspn(uri, "?"));
    uint8_t raw[16];
    td_random_bytes(raw, sizeof raw);
    static const char HEX[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        r->trace_id[2 * i] = HEX[raw[i] >> 4];
        r->trace_id[2 * i + 1] = HEX[raw[i] & 15];
    }
    r->trace_id[32] = 0;
    atomic_fetch_add(&srv->inflight, 1);
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    td_server *srv = cls;
    td_req *r = *con_cls;
    if (!r) return;
    int64_t dur = td_mono_us() - r->start_us;
    int status = r->ready ? r->status : 0;
    const char *route = r->route ? r->route->name : "unmatched";
    const char *fault = status >= 500 || (status == 0 && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
                            ? (status ? "server" : "client_gone")
                            : (status >= 400 ? "caller" : NULL);
    static const char *const METHODS[] = {"GET", "POST", "PUT", "DELETE", "OTHER"};
    td_log_request(r->trace_id, METHODS[r->method], route, status, dur,
                   r->auth.ok && !r->auth.admin ? r->auth.member_id : NULL, r->errcode, fault);
    td_metrics_observe(srv->metrics, r->route ? (int)(r->route - td_routes) : td_route_count, status, dur);
    await_request(r->guard, srv->svc->cfg, srv->svc->cfg->connection_timeout_s);
    free(r->resp);
    free(r->body);
    free(r->raw_path);
    free(r->location);
    pthread_mutex_destroy(&r->mu);
    free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&srv->inflight, 1);
}

/* The format attribute tells clang that fmt is MHD's printf format (-Wformat-nonliteral). */
__attribute__((format(printf, 2, 0))) static void on_mhd_error(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = 0;
    td_log(TD_LOG_WARN, "http", "%s", msg);
}

/* The per-connection pool holds the request line, headers and buffers. */
static size_t mhd_pool_size(const td_config *cfg)
{
    size_t need = (size_t)(cfg->headers_max + cfg->url_max) * 2 + 8192;
    return need < 32768 ? 32768 : need;
}

static void free_limits(td_server *s)
{
    td_ratelimit_free(s->rl);
    td_ratelimit_free(s->rl_admin);
    td_ratelimit_free(s->rl_consent);
    td_ratelimit_free(s->rl_authfail);
    td_conn_guard_free(s->guard);
}

/* HTTPS: the certificates loaded, and libmicrohttpd's options for them
 * (opts: 4 items); plain HTTP leaves opts empty. */
static int setup_tls(td_server *s, unsigned *flags, struct MHD_OptionItem *opts, char *err, size_t cap)
{
    opts[0] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    if (!td_config_tls(s->svc->cfg)) return 0;
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES ||
        MHD_is_feature_supported(MHD_FEATURE_HTTPS_CERT_CALLBACK) != MHD_YES) {
        snprintf(err, cap, "this libmicrohttpd was built without HTTPS (GnuTLS) support");
        return -1;
    }
    s->tls = td_tls_new(s->svc->cfg, err, cap);
    if (!s->tls) return -1;
    td_tls_mhd_options(s->tls, opts);
    *flags |= MHD_USE_TLS;
    return 0;
}

td_server *td_server_start(td_svc *svc, char *err, size_t cap)
{
    td_config *cfg = svc->cfg;
    td_server *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->svc = svc;
    struct MHD_OptionItem tls_opts[4];
    s->rl = td_ratelimit_new(cfg->rate_rps, cfg->rate_burst);
    s->rl_admin = td_ratelimit_new(cfg->admin_rps, cfg->admin_burst);
    s->rl_consent = td_ratelimit_new(cfg->consent_rps, cfg->consent_burst);
    s->rl_authfail = td_ratelimit_new(cfg->auth_fail_rps, cfg->auth_fail_burst);
    s->guard = td_conn_guard_new(cfg->request_timeout_s < 4 ? 250 : 1000);
    if (!s->rl || !s->rl_admin || !s->rl_consent || !s->rl_authfail || !s->guard) {
        snprintf(err, cap, "out of memory");
        goto fail;
    }
    s->metrics = td_metrics_new(td_route_count + 1);
    char listen[96];
    td_config_listen_text(cfg, listen, sizeof listen);
    struct sockaddr_in sa4 = {.sin_family = AF_INET, .sin_port = htons(cfg->listen_port)};
    struct sockaddr_in6 sa6 = {.sin6_family = AF_INET6, .sin6_port = htons(cfg->listen_port)};
    struct sockaddr *sa = (struct sockaddr *)&sa4;
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (inet_pton(AF_INET6, cfg->listen_host, &sa6.sin6_addr) == 1) {
        sa = (struct sockaddr *)&sa6;
        flags |= MHD_USE_IPv6; /* the listen socket's family follows this flag */
    } else if (inet_pton(AF_INET, cfg->listen_host, &sa4.sin_addr) != 1) {
        snprintf(err, cap, "listen address must be an IPv4 or IPv6 address, got '%s'", cfg->listen_host);
        goto fail;
    }
    if (setup_tls(s, &flags, tls_opts, err, cap)) goto fail;
    s->d = MHD_start_daemon(
        flags, cfg->listen_port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, NULL,
        MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)cfg->connection_timeout_s,
        /* Headers beyond our own limit still fit, so we answer 414/431 ourselves;
         * no bigger, since MHD zeroes the pool for every request. */
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, mhd_pool_size(cfg), MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_ARRAY,
        edge_options(s), MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
    if (!s->d) {
        snprintf(err, cap, "cannot listen on %s (in use?)", listen);
        goto fail;
    }
    return s;
fail:
    free_limits(s);
    td_tls_free(s->tls);
    td_metrics_free(s->metrics);
    free(s);
    return NULL;
}

int td_server_reload_tls(td_server *s, char *err, size_t cap)
{
    if (!s->tls) {
        snprintf(err, cap, "not serving HTTPS (no tls-cert): nothing to reload");
        return -1;
    }
    return td_tls_reload(s->tls, err, cap);
}

/* Stop accepting: new clients get a refused connection, not a hang.
 *
 * Not MHD_quiesce_daemon: on an epoll daemon with a worker pool it races with
 * the workers' own removal of the listen socket from their epoll sets, and
 * libmicrohttpd 0.9.75 aborts the process when it loses (MHD_PANIC "Failed to
 * remove listen FD from epoll set"; seen at SIGTERM). Instead the listen
 * socket's descriptor is atomically replaced by an eventfd that never becomes
 * readable: the listening socket is closed (the kernel refuses new connections
 * and drops it from every epoll set), the workers keep a descriptor that never
 * wakes them, and MHD_stop_daemon closes the eventfd as if it were the socket. */
static void stop_accepting(td_server *s)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_LISTEN_FD);
    if (!info || info->listen_fd == MHD_INVALID_SOCKET) return;
    int quiet = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (quiet < 0) {
        td_log(TD_LOG_WARN, "shutdown", "cannot stop accepting during the drain: eventfd failed");
        return;
    }
    if (dup2(quiet, info->listen_fd) < 0)
        td_log(TD_LOG_WARN, "shutdown", "cannot stop accepting during the drain: dup2 failed");
    close(quiet);
}

int td_server_shutdown(td_server *s, int64_t drain_ms)
{
    stop_accepting(s);
    int64_t until = td_mono_us() + drain_ms * 1000;
    while (atomic_load(&s->inflight) > 0 && td_mono_us() < until) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    int left = atomic_load(&s->inflight);
    if (left) {
        /* Parked requests cannot be abandoned cleanly (libmicrohttpd aborts on
         * suspended connections); the caller exits without further cleanup.
         * Nothing acknowledged is at risk: only unanswered writes remain. */
        td_log(TD_LOG_ERROR, "shutdown", "%d requests still in flight after the drain period", left);
        return -1;
    }
    MHD_stop_daemon(s->d); /* closes every connection: td_guard_close on each */
    free_limits(s);
    td_tls_free(s->tls);
    td_metrics_free(s->metrics);
    free(s);
    return 0;
}

void td_server_set_notify(td_server *s, const td_notify *w)
{
    atomic_store(&s->notify, w);
}

char *td_metrics_render(td_server *s)
{
    td_store_stats st;
    s->svc->store->stats(s->svc->store, &st);
    return td_metrics_text(s->metrics, &st, atomic_load(&s->inflight), atomic_load(&s->notify));
}
