/* config.h — tokend's settings: defaults, then an optional config file, then
 * TOKEND_* environment variables, then command-line flags (later wins). */
#ifndef TD_CONFIG_H
#define TD_CONFIG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/token.h"

/* The faces a client certificate can be required on (--tls-client-faces):
 * each route belongs to one (td_route_tls_face in api/routes.c). */
typedef enum {
    TD_TLS_FACE_NETWORK = 1 << 0, /* Network API, /network/v1 (the TSP's calls) */
    TD_TLS_FACE_ISSUER = 1 << 1,  /* Issuer API, /banking/v1 */
    TD_TLS_FACE_CLASSIC = 1 << 2, /* Classic RPC, /igwapi/v2.0 (issuer keys too) */
    TD_TLS_FACE_TOKEN = 1 << 3,   /* Token API */
    TD_TLS_FACE_ADMIN = 1 << 4,   /* /admin/v1 */
    TD_TLS_FACE_CONSENT = 1 << 5, /* the consent pages (end users' browsers) */
    TD_TLS_FACE_OPS = 1 << 6,     /* /healthz, /readyz, /metrics */
} td_tls_face;

typedef struct td_config {
    char listen_host[64]; /* an IPv4 or IPv6 address, without brackets */
    uint16_t listen_port;
    char store_url[1024];
    char public_url[512];      /* base of consent links; default http://<listen> */
    char admin_key_file[1024]; /* default: beside the SQLite file */
    char master_key_file[1024];
    char admin_key[128]; /* from TOKEND_ADMIN_KEY or the file; read it with td_config_admin_key_is */
    bool admin_key_from_file; /* then SIGHUP rereads it (td_config_reload_admin_key) */
    pthread_mutex_t admin_mu; /* admin_key, which a SIGHUP may replace while requests read it */
    uint8_t master_key[32];
    /* The idempotency request hashing key, when the store keeps one (after a
     * master key rotation: service/master_key.c); else derived from master_key. */
    uint8_t idem_hash_key[32];
    bool idem_hash_key_set;
    int threads; /* HTTP worker threads */
    int max_connections;
    int max_connections_per_ip; /* 0: no cap */
    int connection_timeout_s;   /* idle clients are dropped after this */
    int request_timeout_s;      /* a request's line and headers arrive whole within this (http.c) */
    int64_t body_min_rate;      /* bytes/s a body must average after its grace of request_timeout_s */
    long body_max;            /* bytes */
    int url_max;
    int headers_max;
    double rate_rps; /* per member or issuer and role (http.c owner_key); 0 disables */
    double rate_burst;
    double admin_rps; /* the admin key; 0 disables */
    double admin_burst;
    double consent_rps; /* consent pages, per source address; 0 disables */
    double consent_burst;
    double auth_fail_rps; /* failed authentications per source address; 0 disables */
    double auth_fail_burst;
    int64_t request_ttl_ms;    /* token requests expire after this */
    int64_t consent_ttl_ms;    /* consent links expire after this */
    int64_t access_ttl_ms;     /* default access-token lifetime */
    int64_t commit_timeout_ms; /* a write not started within this answers 504 */
    td_policy policy;          /* key level needed to cancel, per token kind */
    char tsp_url[1024];        /* the TSP connector's URL; "" = the simulated TSP */
    int tsp_timeout_ms;        /* per attempt */
    int tsp_retries;           /* extra attempts on 5xx, connection errors, timeouts */
    char tsp_bearer[256];      /* secret: never logged; "" = no Authorization header */
    int64_t timer_interval_ms; /* how often the timer runner looks for due timers */
    int delivery_concurrency;  /* notification transfers in flight at once */
    int64_t delivery_poll_ms;  /* how often an idle delivery worker looks for due rows */
    int64_t delivery_lease_ms; /* how long a claimed row stays IN_FLIGHT (a crash's rows go again after it) */
    int64_t min_free_bytes;    /* SQLite: /readyz is not ready below this much free space */
    bool new_store;            /* create an empty SQLite store even where the master key says one existed */
    bool fault_injection;      /* enables POST /admin/v1/faults, for tests only */
    bool log_debug;
    /* HTTPS: both files set, or neither (plain HTTP). PEM files, read at
     * start and again on SIGHUP. */
    char tls_cert_file[1024];      /* the server's certificate chain */
    char tls_key_file[1024];       /* its private key */
    char tls_client_ca_file[1024]; /* CAs client certificates must chain to; "" = none requested */
    unsigned tls_client_faces;     /* td_tls_face bits needing a valid client certificate */
    bool tls_client_faces_set;     /* given explicitly (else the default once a client CA is set) */
} td_config;

/* True when tokend serves HTTPS. */
static inline bool td_config_tls(const td_config *c)
{
    return c->tls_cert_file[0] != 0;
}

/* Fills cfg from defaults, file, environment and argv (argv[0] is the
 * subcommand's first flag). Returns 0, or -1 with a message in err. */
int td_config_load(td_config *cfg, int argc, char **argv, char *err, size_t cap);
/* For a SQLite store: -1 with a message if its file is missing while its
 * master key is there (unless new_store). Called before the keys are made. */
int td_config_check_store_presence(const td_config *c, char *err, size_t cap);
/* Resolves and, for the embedded default, creates the master and admin keys. */
int td_config_load_keys(td_config *cfg, char *err, size_t cap);
void td_config_usage(void);
/* Whether key is the admin key (constant time; safe while a reload runs). */
bool td_config_admin_key_is(td_config *cfg, const char *key);
/* SIGHUP: rereads the admin key file. 1 if the key changed, 0 if it is the
 * same, -1 with the reason if the file cannot be used (the key in use stays)
 * or the key does not come from a file. */
int td_config_reload_admin_key(td_config *cfg, char *err, size_t cap);
/* The listen address as it is written in a URL: 127.0.0.1:8080, [::1]:8080. */
void td_config_listen_text(const td_config *c, char *out, size_t cap);

#endif
