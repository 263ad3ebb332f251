/* config.c — loading settings. Every setting has one name used three ways:
 * `--name value` on the command line, `name = value` in the config file, and
 * TOKEND_NAME (upper case, dashes as underscores) in the environment. */
#include "util/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "util/log.h"
#include "util/util.h"

typedef int (*setter)(td_config *c, const char *v, char *err, size_t cap);

/* ADDR:PORT, an IPv6 address in brackets as in a URL: 127.0.0.1:8080,
 * [::1]:8080. An IPv6 address without brackets is refused: its last ':' would
 * be taken for the port's. The server checks that ADDR is an address. */
static int set_listen(td_config *c, const char *v, char *err, size_t cap)
{
    const char *host = v, *end = strrchr(v, ':');
    if (v[0] == '[') {
        host = v + 1;
        end = strchr(host, ']');
        if (end && end[1] != ':') end = NULL;
    } else if (end && memchr(v, ':', (size_t)(end - v))) {
        end = NULL;
    }
    int64_t port;
    const char *port_text = end ? end + (*end == ']' ? 2 : 1) : NULL;
    if (!end || end == host || (size_t)(end - host) >= sizeof c->listen_host || td_parse_i64(port_text, &port) ||
        port < 0 || port > 65535) {
        snprintf(err, cap, "listen must be ADDR:PORT, got '%s' (an IPv6 address in brackets: [::1]:8080)", v);
        return -1;
    }
    memcpy(c->listen_host, host, (size_t)(end - host));
    c->listen_host[end - host] = 0;
    c->listen_port = (uint16_t)port;
    return 0;
}

void td_config_listen_text(const td_config *c, char *out, size_t cap)
{
    bool v6 = strchr(c->listen_host, ':') != NULL;
    snprintf(out, cap, "%s%s%s:%u", v6 ? "[" : "", c->listen_host, v6 ? "]" : "", c->listen_port);
}

#define STRING_SETTER(fn, field)                                                                                       \
    static int fn(td_config *c, const char *v, char *err, size_t cap)                                                  \
    {                                                                                                                  \
        if (td_strlcpy(c->field, v, sizeof c->field)) {                                                                \
            snprintf(err, cap, #field " is too long");                                                                 \
            return -1;                                                                                                 \
        }                                                                                                              \
        return 0;                                                                                                      \
    }
STRING_SETTER(set_store, store_url)
STRING_SETTER(set_public_url, public_url)
STRING_SETTER(set_admin_key_file, admin_key_file)
STRING_SETTER(set_master_key_file, master_key_file)
STRING_SETTER(set_admin_key, admin_key)
STRING_SETTER(set_tls_cert, tls_cert_file)
STRING_SETTER(set_tls_key, tls_key_file)
STRING_SETTER(set_tls_client_ca, tls_client_ca_file)

/* The face names --tls-client-faces takes, in td_tls_face order. */
static const struct {
    const char *name;
    td_tls_face bit;
} TLS_FACES[] = {
    {"network", TD_TLS_FACE_NETWORK}, {"issuer", TD_TLS_FACE_ISSUER}, {"classic", TD_TLS_FACE_CLASSIC},
    {"token", TD_TLS_FACE_TOKEN},     {"admin", TD_TLS_FACE_ADMIN},   {"consent", TD_TLS_FACE_CONSENT},
    {"ops", TD_TLS_FACE_OPS},
};
/* The faces used by networks and issuers, whose connections carry client
 * certificates: required there once a client CA is set. */
#define TLS_CLIENT_FACES_DEFAULT (TD_TLS_FACE_NETWORK | TD_TLS_FACE_ISSUER | TD_TLS_FACE_CLASSIC)

/* The td_tls_face named by [s, s+n); 0 if none is. */
static unsigned tls_face_named(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof TLS_FACES / sizeof TLS_FACES[0]; i++)
        if (strlen(TLS_FACES[i].name) == n && !memcmp(TLS_FACES[i].name, s, n)) return TLS_FACES[i].bit;
    return 0;
}

/* "network,issuer,..." (no empty items) or "none". */
static int set_tls_client_faces(td_config *c, const char *v, char *err, size_t cap)
{
    unsigned faces = 0;
    if (strcmp(v, "none") != 0) {
        for (const char *s = v;; s++) {
            size_t n = strcspn(s, ",");
            unsigned bit = tls_face_named(s, n);
            if (!bit) goto bad;
            faces |= bit;
            s += n;
            if (!*s) break;
        }
    }
    c->tls_client_faces = faces;
    c->tls_client_faces_set = true;
    return 0;
bad:
    snprintf(err, cap,
             "tls-client-faces must be none or a comma-separated list of network, issuer, classic, token, admin, "
             "consent, ops; got '%.64s'",
             v);
    return -1;
}

/* The TLS settings belong together: checked once all sources are read. */
static int check_tls(td_config *c, char *err, size_t cap)
{
    if (!c->tls_cert_file[0] != !c->tls_key_file[0]) {
        snprintf(err, cap, "tls-cert and tls-key go together: set both for HTTPS, or neither");
        return -1;
    }
    if (c->tls_client_ca_file[0] && !c->tls_cert_file[0]) {
        snprintf(err, cap, "tls-client-ca needs tls-cert and tls-key (client certificates come over HTTPS)");
        return -1;
    }
    if (c->tls_client_faces_set && c->tls_client_faces && !c->tls_client_ca_file[0]) {
        snprintf(err, cap, "tls-client-faces needs tls-client-ca (the CAs client certificates are checked against)");
        return -1;
    }
    if (c->tls_client_ca_file[0] && !c->tls_client_faces_set) c->tls_client_faces = TLS_CLIENT_FACES_DEFAULT;
    return 0;
}

static int parse_int_in(const char *name, const char *v, int64_t lo, int64_t hi, int64_t *out, char *err, size_t cap)
{
    if (td_parse_i64(v, out) || *out < lo || *out > hi) {
        snprintf(err, cap, "%s must be an integer in [%lld, %lld], got '%s'", name, (long long)lo, (long long)hi, v);
        return -1;
    }
    return 0;
}

#define INT_SETTER(fn, field, lo, hi, scale)                                                                           \
    static int fn(td_config *c, const char *v, char *err, size_t cap)                                                  \
    {                                                                                                                  \
        int64_t x;                                                                                                     \
        if (parse_int_in(#field, v, lo, hi, &x, err, cap)) return -1;                                                  \
        c->field = (__typeof__(c->field))(x * (scale));                                                                \
        return 0;                                                                                                      \
    }
INT_SETTER(set_threads, threads, 1, 64, 1)
INT_SETTER(set_max_conn, max_connections, 1, 100000, 1)
INT_SETTER(set_conn_timeout, connection_timeout_s, 1, 3600, 1)
INT_SETTER(set_max_conn_per_ip, max_connections_per_ip, 0, 100000, 1)
INT_SETTER(set_request_timeout, request_timeout_s, 1, 3600, 1)
INT_SETTER(set_body_min_rate, body_min_rate, 1, 1LL << 30, 1)
INT_SETTER(set_body_max, body_max, 1024, 16 * 1024 * 1024, 1)
INT_SETTER(set_request_ttl, request_ttl_ms, 1, 365LL * 86400, 1000)
INT_SETTER(set_consent_ttl, consent_ttl_ms, 1, 86400, 1000)
INT_SETTER(set_access_ttl, access_ttl_ms, 1, 3650LL * 86400, 1000)
INT_SETTER(set_commit_timeout, commit_timeout_ms, 1, 600000, 1)
INT_SETTER(set_tsp_timeout, tsp_timeout_ms, 1, 120000, 1)
INT_SETTER(set_tsp_retries, tsp_retries, 0, 10, 1)
INT_SETTER(set_timer_interval, timer_interval_ms, 10, 60000, 1)
INT_SETTER(set_delivery_concurrency, delivery_concurrency, 1, 1024, 1)
INT_SETTER(set_delivery_poll, delivery_poll_ms, 10, 10000, 1)
INT_SETTER(set_delivery_lease, delivery_lease_ms, 1000, 3600000, 1)
INT_SETTER(set_min_free, min_free_bytes, 0, 1LL << 30, 1LL << 20)

/* Checked here so a typo fails at start, not at the first issuer operation. */
static int set_tsp_url(td_config *c, const char *v, char *err, size_t cap)
{
    if (v[0] && strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
        snprintf(err, cap, "tsp-url must be empty or start with http:// or https://");
        return -1;
    }
    if (strpbrk(v, " \t\r\n")) {
        snprintf(err, cap, "tsp-url must not contain whitespace");
        return -1;
    }
    if (td_strlcpy(c->tsp_url, v, sizeof c->tsp_url)) {
        snprintf(err, cap, "tsp_url is too long");
        return -1;
    }
    return 0;
}

/* The bearer is a secret: its errors never quote it. A CR or LF would let it
 * add headers to every request to the TSP. */
static int set_tsp_bearer(td_config *c, const char *v, char *err, size_t cap)
{
    if (strpbrk(v, "\r\n")) {
        snprintf(err, cap, "tsp-bearer must not contain a line break");
        return -1;
    }
    if (td_strlcpy(c->tsp_bearer, v, sizeof c->tsp_bearer)) {
        td_wipe(c->tsp_bearer, sizeof c->tsp_bearer);
        snprintf(err, cap, "tsp_bearer is too long");
        return -1;
    }
    return 0;
}

/* "RPS" or "RPS:BURST" (burst default 2 × RPS); RPS 0 disables the limit. */
static int parse_rate(const char *v, double *rps_out, double *burst_out)
{
    char buf[64];
    int64_t rps, burst;
    if (td_strlcpy(buf, v, sizeof buf)) return -1;
    char *colon = strchr(buf, ':');
    if (colon) *colon = 0;
    if (td_parse_i64(buf, &rps) || rps < 0 || rps > 10000000) return -1;
    burst = rps * 2;
    if (colon && (td_parse_i64(colon + 1, &burst) || burst < 1 || burst > 100000000)) return -1;
    *rps_out = (double)rps;
    *burst_out = (double)(burst ? burst : 1);
    return 0;
}

static int set_rate(td_config *c, const char *v, char *err, size_t cap)
{
    if (!parse_rate(v, &c->rate_rps, &c->rate_burst)) return 0;
    snprintf(err, cap, "rate-limit must be RPS or RPS:BURST, got '%s'", v);
    return -1;
}

static int set_admin_rate(td_config *c, const char *v, char *err, size_t cap)
{
    if (!parse_rate(v, &c->admin_rps, &c->admin_burst)) return 0;
    snprintf(err, cap, "admin-rate-limit must be RPS or RPS:BURST, got '%s'", v);
    return -1;
}

static int set_consent_rate(td_config *c, const char *v, char *err, size_t cap)
{
    if (!parse_rate(v, &c->consent_rps, &c->consent_burst)) return 0;
    snprintf(err, cap, "consent-rate-limit must be RPS or RPS:BURST, got '%s'", v);
    return -1;
}

/* "N:SECONDS": N failed authentications per SECONDS, as a bucket of N that
 * refills over SECONDS; "0" (or N 0) disables the limit. */
static int set_auth_failures(td_config *c, const char *v, char *err, size_t cap)
{
    char buf[64];
    int64_t n, secs;
    char *colon = NULL;
    if (!strcmp(v, "0")) v = "0:1";
    if (!td_strlcpy(buf, v, sizeof buf) && (colon = strchr(buf, ':'))) *colon = 0;
    if (!colon || td_parse_i64(buf, &n) || n < 0 || n > 1000000 || td_parse_i64(colon + 1, &secs) || secs < 1 ||
        secs > 86400) {
        snprintf(err, cap, "auth-failure-limit must be N:SECONDS (N 0 disables), got '%s'", v);
        return -1;
    }
    c->auth_fail_burst = n ? (double)n : 1;
    c->auth_fail_rps = (double)n / (double)secs;
    return 0;
}

/* "ACCESS=LOW,TRANSFER=STANDARD,STANDING_ORDER=PRIVILEGED". */
static int set_cancel_levels(td_config *c, const char *v, char *err, size_t cap)
{
    char buf[256];
    if (td_strlcpy(buf, v, sizeof buf)) goto bad;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        td_kind k;
        td_level l;
        if (!eq) goto bad;
        *eq = 0;
        if (td_kind_parse(tok, &k) || td_level_parse(eq + 1, &l)) goto bad;
        c->policy.required[k] = l;
    }
    return 0;
bad:
    snprintf(err, cap,
             "cancel-levels must be KIND=LEVEL,... (kinds ACCESS, TRANSFER, STANDING_ORDER, CARD; "
             "levels LOW, STANDARD, PRIVILEGED), got '%s'",
             v);
    return -1;
}

static int set_bool(bool *b, const char *name, const char *v, char *err, size_t cap)
{
    if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes"))
        *b = true;
    else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no"))
        *b = false;
    else {
        snprintf(err, cap, "%s must be true or false, got '%s'", name, v);
        return -1;
    }
    return 0;
}
static int set_fault(td_config *c, const char *v, char *e, size_t n)
{
    return set_bool(&c->fault_injection, "fault-injection", v, e, n);
}
static int set_new_store(td_config *c, const char *v, char *e, size_t n)
{
    return set_bool(&c->new_store, "new-store", v, e, n);
}
static int set_debug(td_config *c, const char *v, char *e, size_t n)
{
    return set_bool(&c->log_debug, "debug", v, e, n);
}

typedef struct {
    const char *name;
    setter set;
    const char *help;
} option;

static const option OPTIONS[] = {
    {"listen", set_listen, "ADDR:PORT to listen on, [ADDR]:PORT for IPv6 (default 127.0.0.1:8080)"},
    {"store", set_store, "store URL, sqlite:PATH (default sqlite:./var/tokend.db)"},
    {"public-url", set_public_url, "base URL of consent links (default http://LISTEN, https://LISTEN with tls-cert)"},
    {"admin-key", set_admin_key, "admin API key (prefer TOKEND_ADMIN_KEY or admin-key-file)"},
    {"admin-key-file", set_admin_key_file,
     "file holding the admin API key (default: admin.key beside the SQLite file)"},
    {"master-key-file", set_master_key_file,
     "file holding the 32-byte master key, hex (default: master.key beside the SQLite file)"},
    {"threads", set_threads, "HTTP worker threads (default 2)"},
    {"max-connections", set_max_conn, "concurrent connections (default 4096)"},
    {"max-connections-per-ip", set_max_conn_per_ip,
     "concurrent connections from one source address; more are closed at once (0 = no cap; default 64)"},
    {"connection-timeout", set_conn_timeout, "seconds before an idle connection is closed (default 30)"},
    {"request-timeout", set_request_timeout,
     "seconds a request's line and headers have to arrive whole, counted from the connection's start or the "
     "previous answer's end plus connection-timeout; the body has as long again plus its size at body-min-rate "
     "(default 20)"},
    {"body-min-rate", set_body_min_rate, "bytes per second a request body must arrive at, on average (default 500)"},
    {"body-max", set_body_max, "largest request body in bytes (default 65536)"},
    {"rate-limit", set_rate,
     "requests per second per member (all its API keys together) or per issuer and role, RPS[:BURST]; 0 "
     "disables (default 200:400)"},
    {"admin-rate-limit", set_admin_rate, "requests per second with the admin key, RPS[:BURST]; 0 disables (default 100:200)"},
    {"consent-rate-limit", set_consent_rate,
     "requests per second to the consent pages per source address, RPS[:BURST]; 0 disables (default 5:20)"},
    {"auth-failure-limit", set_auth_failures,
     "failed authentications per source address, N:SECONDS; beyond them every authenticated request from "
     "that address is 429 until the budget refills; 0 disables (default 20:60)"},
    {"request-ttl", set_request_ttl, "seconds a token request stays open (default 3600)"},
    {"consent-ttl", set_consent_ttl, "seconds a consent link stays valid (default 600)"},
    {"access-ttl", set_access_ttl, "default access-token lifetime in seconds (default 7776000 = 90 days)"},
    {"commit-timeout", set_commit_timeout, "milliseconds a write may wait for the writer before 504 (default 10000)"},
    {"cancel-levels", set_cancel_levels,
     "key level needed to cancel, KIND=LEVEL,... (default "
     "ACCESS=LOW,TRANSFER=STANDARD,STANDING_ORDER=STANDARD,CARD=STANDARD)"},
    {"tsp-url", set_tsp_url, "the TSP's URL, http(s)://HOST:PORT/PATH (default: the built-in simulated TSP)"},
    {"tsp-timeout-ms", set_tsp_timeout, "milliseconds per TSP attempt (default 5000)"},
    {"tsp-retries", set_tsp_retries, "extra TSP attempts on 5xx, connection errors and timeouts (default 2)"},
    {"tsp-bearer", set_tsp_bearer, "bearer token sent to the TSP (prefer TOKEND_TSP_BEARER; never logged)"},
    {"timer-interval-ms", set_timer_interval, "milliseconds between runs of the timer runner (default 1000)"},
    {"delivery-concurrency", set_delivery_concurrency,
     "notification deliveries in flight at once (1..1024, default 64)"},
    {"delivery-poll-ms", set_delivery_poll,
     "milliseconds an idle delivery worker waits before looking for due notifications (10..10000, default 200)"},
    {"delivery-lease-ms", set_delivery_lease,
     "milliseconds a claimed notification stays claimed (its attempt must end within it); after a crash it "
     "is sent again once this ran out (1000..3600000, default 60000)"},
    {"min-free-mb", set_min_free,
     "MiB that must stay free on the SQLite store's file system for /readyz to say ready (default 64; 0 = no "
     "check)"},
    {"new-store", set_new_store,
     "true lets tokend create an empty SQLite store although the master key file exists (a store was there "
     "before: it refuses otherwise)"},
    {"fault-injection", set_fault, "true enables POST /admin/v1/faults (tests only)"},
    {"debug", set_debug, "true logs at debug level"},
    {"tls-cert", set_tls_cert,
     "PEM file with the server certificate (and its chain): serve HTTPS, TLS 1.2 and 1.3 only; reread on SIGHUP"},
    {"tls-key", set_tls_key, "PEM file with the private key of tls-cert; reread on SIGHUP"},
    {"tls-client-ca", set_tls_client_ca,
     "PEM file with the CAs client certificates must chain to: clients are asked for one; reread on SIGHUP"},
    {"tls-client-faces", set_tls_client_faces,
     "faces that refuse requests without a valid client certificate, comma-separated of network, issuer, "
     "classic, token, admin, consent, ops; or none (default with tls-client-ca: network,issuer,classic)"},
};
#define N_OPTIONS (sizeof OPTIONS / sizeof OPTIONS[0])

void td_config_usage(void)
{
    fprintf(stderr, "usage: tokend serve [--config FILE] [--NAME VALUE ...]\n\nSettings (flag --NAME, "
                    "environment TOKEND_NAME, config file line 'NAME = VALUE'):\n");
    for (size_t i = 0; i < N_OPTIONS; i++)
        fprintf(stderr, "  --%-20s %s\n", OPTIONS[i].name, OPTIONS[i].help);
}

static const option *find_option(const char *name)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (!strcmp(OPTIONS[i].name, name)) return &OPTIONS[i];
    return NULL;
}

static void env_name(const char *opt, char *out, size_t cap)
{
    size_t i = 0;
    const char *pre = "TOKEND_";
    for (; *pre && i + 1 < cap; pre++)
        out[i++] = *pre;
    for (; *opt && i + 1 < cap; opt++)
        out[i++] = *opt == '-' ? '_' : (char)(*opt >= 'a' && *opt <= 'z' ? *opt - 32 : *opt);
    out[i] = 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = 0;
    return s;
}

static int load_file(td_config *c, const char *path, char *err, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, cap, "cannot read config file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[2048];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, cap, "%s:%d: expected 'name = value'", path, lineno);
            rc = -1;
            break;
        }
        *eq = 0;
        char *name = trim(s), *val = trim(eq + 1);
        const option *o = find_option(name);
        if (!o) {
            snprintf(err, cap, "%s:%d: unknown setting '%s'", path, lineno, name);
            rc = -1;
        } else {
            rc = o->set(c, val, err, cap);
        }
    }
    fclose(f);
    return rc;
}

static void defaults(td_config *c)
{
    memset(c, 0, sizeof *c);
    td_strlcpy(c->listen_host, "127.0.0.1", sizeof c->listen_host);
    c->listen_port = 8080;
    td_strlcpy(c->store_url, "sqlite:./var/tokend.db", sizeof c->store_url);
    c->threads = 2;
    c->max_connections = 4096;
    c->connection_timeout_s = 30;
    c->max_connections_per_ip = 64;
    c->request_timeout_s = 20;
    c->body_min_rate = 500;
    c->admin_rps = 100;
    c->admin_burst = 200;
    c->consent_rps = 5;
    c->consent_burst = 20;
    c->auth_fail_rps = 20.0 / 60.0;
    c->auth_fail_burst = 20;
    c->body_max = 65536;
    c->url_max = 2048;
    c->headers_max = 16384;
    c->rate_rps = 200;
    c->rate_burst = 400;
    c->request_ttl_ms = 3600 * 1000LL;
    c->consent_ttl_ms = 600 * 1000LL;
    c->access_ttl_ms = 90LL * 86400 * 1000;
    c->commit_timeout_ms = 10000;
    c->tsp_timeout_ms = 5000;
    c->tsp_retries = 2;
    c->timer_interval_ms = 1000;
    c->delivery_concurrency = 64;
    c->delivery_poll_ms = 200;
    c->delivery_lease_ms = 60000;
    c->min_free_bytes = 64LL << 20;
    pthread_mutex_init(&c->admin_mu, NULL);
    td_policy_default(&c->policy);
}

int td_config_load(td_config *c, int argc, char **argv, char *err, size_t cap)
{
    defaults(c);
    /* The config file comes first so that environment and flags override it. */
    const char *file = getenv("TOKEND_CONFIG");
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--config")) file = argv[i + 1];
    if (file && load_file(c, file, err, cap)) return -1;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        char name[64];
        env_name(OPTIONS[i].name, name, sizeof name);
        const char *v = getenv(name);
        if (v && OPTIONS[i].set(c, v, err, cap)) return -1;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, cap, "unexpected argument '%s'", a);
            return -1;
        }
        if (!strcmp(a, "--help")) {
            snprintf(err, cap, "help");
            return -1;
        }
        if (i + 1 >= argc) {
            snprintf(err, cap, "%s needs a value", a);
            return -1;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--config")) continue;
        const option *o = find_option(a + 2);
        if (!o) {
            snprintf(err, cap, "unknown flag '%s' (see tokend serve --help)", a);
            return -1;
        }
        if (o->set(c, v, err, cap)) return -1;
    }
    if (check_tls(c, err, cap)) return -1;
    if (!c->public_url[0]) {
        char listen[96];
        td_config_listen_text(c, listen, sizeof listen);
        snprintf(c->public_url, sizeof c->public_url, "%s://%s", td_config_tls(c) ? "https" : "http", listen);
    }
    size_t n = strlen(c->public_url);
    while (n && c->public_url[n - 1] == '/')
        c->public_url[--n] = 0;
    return 0;
}

/* The directory holding the SQLite file, where generated keys go by default. */
static void store_dir(const td_config *c, char *out, size_t cap)
{
    const char *path = strncmp(c->store_url, "sqlite:", 7) == 0 ? c->store_url + 7 : "./var/x";
    const char *slash = strrchr(path, '/');
    if (!slash) {
        td_strlcpy(out, ".", cap);
        return;
    }
    size_t n = (size_t)(slash - path);
    if (n >= cap) n = cap - 1;
    memcpy(out, path, n);
    out[n] = 0;
}

#define ADMIN_KEY_MIN 16

static int read_small_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0) return -1;
    buf[n] = 0;
    /* trim() drops leading blanks by returning a later start: move the key back. */
    char *t = trim(buf);
    memmove(buf, t, strlen(t) + 1);
    return 0;
}

static int write_secret_file(const char *path, const char *content)
{
    td_make_parent_dirs(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    size_t n = strlen(content);
    int ok = write(fd, content, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    close(fd);
    return ok ? 0 : -1;
}

/* A key file others can read (made under a loose umask by an older tokend,
 * or by hand) is narrowed to its owner; if that is not allowed (a read-only
 * mount of a secrets manager), the operator is told. */
static void keep_private(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !(st.st_mode & 077)) return;
    if (chmod(path, 0600) != 0)
        td_log(TD_LOG_WARN, "key_file_mode", "%s can be read by other users (mode %03o) and cannot be made 0600: %s",
               path, (unsigned)(st.st_mode & 0777), strerror(errno));
}

/* Reads a key file, or creates it with fresh random content if it does not
 * exist; returns 1 if it created it. */
static int read_or_create(const char *path, char *buf, size_t cap, int nbytes, char *err, size_t ecap)
{
    if (read_small_file(path, buf, cap) == 0) {
        keep_private(path);
        return 0;
    }
    if (errno != ENOENT) {
        snprintf(err, ecap, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    uint8_t raw[32];
    td_random_bytes(raw, (size_t)nbytes);
    static const char HEX[] = "0123456789abcdef";
    for (int i = 0; i < nbytes; i++) {
        buf[2 * i] = HEX[raw[i] >> 4];
        buf[2 * i + 1] = HEX[raw[i] & 15];
    }
    buf[2 * nbytes] = 0;
    if (write_secret_file(path, buf)) {
        snprintf(err, ecap, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    return 1;
}

static int hex_decode(const char *hex, uint8_t *out, size_t n)
{
    if (strlen(hex) != 2 * n) return -1;
    for (size_t i = 0; i < n; i++) {
        int v = td_hex_byte(hex + 2 * i);
        if (v < 0) return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

/* The SQLite file missing while the master key is there means a store
 * existed (the key is made with it, and nothing reads it without one): it was
 * deleted, moved or not mounted. Creating an empty one in its place would
 * serve empty answers as if nothing had ever been written. */
int td_config_check_store_presence(const td_config *c, char *err, size_t cap)
{
    if (strncmp(c->store_url, "sqlite:", 7) != 0 || c->new_store) return 0;
    const char *path = c->store_url + 7;
    struct stat st;
    if (stat(path, &st) == 0 || errno != ENOENT) return 0; /* opening it reports other errors */
    char dir[900], key[1024];
    store_dir(c, dir, sizeof dir);
    if (c->master_key_file[0])
        td_strlcpy(key, c->master_key_file, sizeof key);
    else
        snprintf(key, sizeof key, "%s/master.key", dir);
    if (stat(key, &st) != 0) return 0; /* a first start: store and key are made together */
    snprintf(err, cap,
             "the store %s does not exist but its master key %s does: the store was deleted, moved or is not "
             "mounted. Restore it (tokenctl store restore), or pass --new-store true to start an empty store "
             "with this key",
             path, key);
    return -1;
}

int td_config_load_keys(td_config *c, char *err, size_t cap)
{
    char dir[900], buf[256];
    store_dir(c, dir, sizeof dir);
    if (!c->master_key_file[0]) snprintf(c->master_key_file, sizeof c->master_key_file, "%s/master.key", dir);
    int made = read_or_create(c->master_key_file, buf, sizeof buf, 32, err, cap);
    if (made < 0) return -1;
    if (made)
        td_log(TD_LOG_WARN, "master_key_generated",
               "generated a new master key in %s: back it up; without it sealed secrets cannot be read",
               c->master_key_file);
    if (hex_decode(buf, c->master_key, sizeof c->master_key)) {
        snprintf(err, cap, "%s must hold 64 hex characters", c->master_key_file);
        return -1;
    }
    if (c->admin_key[0]) return 0;
    if (!c->admin_key_file[0]) snprintf(c->admin_key_file, sizeof c->admin_key_file, "%s/admin.key", dir);
    made = read_or_create(c->admin_key_file, c->admin_key, sizeof c->admin_key, 24, err, cap);
    if (made < 0) return -1;
    if (made) td_log(TD_LOG_WARN, "admin_key_generated", "generated an admin key in %s", c->admin_key_file);
    if (strlen(c->admin_key) < ADMIN_KEY_MIN) {
        snprintf(err, cap, "the admin key must be at least %d characters", ADMIN_KEY_MIN);
        return -1;
    }
    c->admin_key_from_file = true;
    return 0;
}

bool td_config_admin_key_is(td_config *c, const char *key)
{
    pthread_mutex_lock(&c->admin_mu);
    bool same = td_ct_equal(key, c->admin_key) == 0;
    pthread_mutex_unlock(&c->admin_mu);
    return same;
}

/* The new key is read whole before anything changes: a file being rewritten
 * (or emptied, or too short) leaves the key in use as it is. */
int td_config_reload_admin_key(td_config *c, char *err, size_t cap)
{
    if (!c->admin_key_from_file) {
        snprintf(err, cap, "the admin key comes from TOKEND_ADMIN_KEY or --admin-key, not a file: restart to change it");
        return -1;
    }
    char key[sizeof c->admin_key];
    if (read_small_file(c->admin_key_file, key, sizeof key) != 0) {
        snprintf(err, cap, "cannot read %s: %s", c->admin_key_file, strerror(errno));
        return -1;
    }
    if (strlen(key) < ADMIN_KEY_MIN || td_has_ctl(key)) {
        td_wipe(key, sizeof key);
        snprintf(err, cap, "%s must hold a key of at least %d printable characters", c->admin_key_file,
                 ADMIN_KEY_MIN);
        return -1;
    }
    keep_private(c->admin_key_file);
    pthread_mutex_lock(&c->admin_mu);
    bool changed = strcmp(key, c->admin_key) != 0;
    if (changed) memcpy(c->admin_key, key, sizeof key);
    pthread_mutex_unlock(&c->admin_mu);
    td_wipe(key, sizeof key);
    return changed ? 1 : 0;
}
