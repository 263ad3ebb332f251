/* main.c — `tokend serve`: load settings and keys, open the store, make the
 * TSP connector, serve HTTP(S), run the step-up timers and the notification
 * delivery worker until SIGTERM/SIGINT (SIGHUP rereads the admin key and TLS files),
 * then drain requests, stop the timers, let the deliveries in flight finish,
 * and commit before exiting. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/http.h"
#include "crypto/crypto.h"
#include "notify/notify.h"
#include "sched/sched.h"
#include "service/cards.h"
#include "service/service.h"
#include "service/tsp.h"
#include "util/config.h"
#include "util/log.h"

static int usage(void)
{
    fprintf(stderr, "usage: tokend serve [--config FILE] [--NAME VALUE ...]   (tokend serve --help for settings)\n");
    return 2;
}

/* The worker the store's after-commit hook wakes. The hook takes no argument
 * (store.h), so main keeps this one pointer for it; nothing else reads it (the
 * faces get the worker from td_server_set_notify). */
static _Atomic(td_notify *) hooked_worker;

/* The store's hook after a commit that owes notifications: the worker sends
 * them now rather than at its next poll. (No worker yet, or any more: NULL,
 * a no-op; the rows wait in the store either way.) */
static void wake_delivery(void)
{
    td_notify_kick(atomic_load(&hooked_worker));
}

/* SIGHUP: the admin key file is read again; a new key replaces the old one
 * at once (recorded as ADMIN_KEY_ROTATED), an unusable file keeps it. */
static void reload_admin_key(td_svc *svc)
{
    char err[512];
    int rc = td_config_reload_admin_key(svc->cfg, err, sizeof err);
    if (rc < 0) {
        td_log(TD_LOG_WARN, "admin_key_reload", "SIGHUP: %s; the admin key in use stays", err);
    } else if (rc == 0) {
        td_log(TD_LOG_INFO, "admin_key_reload", "SIGHUP: %s holds the admin key in use", svc->cfg->admin_key_file);
    } else {
        td_log(TD_LOG_INFO, "admin_key_reload", "SIGHUP: a new admin key from %s replaces the old one",
               svc->cfg->admin_key_file);
        if (td_svc_record_admin_key_rotation(svc) != TD_ST_OK)
            td_log(TD_LOG_WARN, "admin_key_reload", "the rotation could not be recorded in credential_events");
    }
}

/* Waits for SIGTERM or SIGINT (returned); each SIGHUP meanwhile rereads the
 * admin key file and, under HTTPS, the TLS files (a failed reload keeps what
 * is in use). */
static int wait_for_stop(const sigset_t *signals, td_server *srv, td_svc *svc)
{
    for (;;) {
        int sig = 0;
        sigwait(signals, &sig);
        if (sig != SIGHUP) return sig;
        reload_admin_key(svc);
        if (!td_config_tls(svc->cfg)) continue;
        char err[512];
        if (td_server_reload_tls(srv, err, sizeof err))
            td_log(TD_LOG_WARN, "tls_reload", "SIGHUP: %s; the certificates in use stay", err);
        else
            td_log(TD_LOG_INFO, "tls_reload", "SIGHUP: TLS certificate, key and client CAs reread; new connections use them");
    }
}

static int serve(int argc, char **argv)
{
    static td_config cfg;
    char err[512];
    /* Block the stop signals before any thread starts (the store's writers
     * are the first), so that every thread inherits the mask and the main
     * thread alone takes them, in sigwait. A signal that arrives while tokend
     * is still starting waits until then: an orderly stop, never the default
     * action killing it from some other thread. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (td_config_load(&cfg, argc, argv, err, sizeof err)) {
        if (!strcmp(err, "help")) {
            td_config_usage();
            return 0;
        }
        fprintf(stderr, "tokend: %s\n", err);
        return 2;
    }
    if (cfg.log_debug) td_log_set_level(TD_LOG_DEBUG);
    umask(umask(0) | 077); /* the store, its WAL and the keys are readable by tokend's user alone */
    if (td_config_check_store_presence(&cfg, err, sizeof err) || td_config_load_keys(&cfg, err, sizeof err)) {
        td_log(TD_LOG_ERROR, "startup", "%s", err);
        return 1;
    }
    td_store *store = td_store_open(cfg.store_url, err, sizeof err);
    if (!store) {
        td_log(TD_LOG_ERROR, "startup", "%s", err);
        return 1;
    }
    store->job_timeout_us = cfg.commit_timeout_ms * 1000;
    store->min_free_bytes = cfg.min_free_bytes;
    store->on_outbox = wake_delivery;
    td_svc svc = {.store = store, .cfg = &cfg};
    if (td_svc_check_master_key(&svc, err, sizeof err) || td_svc_seal_contacts(&svc, err, sizeof err)) {
        td_log(TD_LOG_ERROR, "startup", "%s", err);
        store->close(store);
        return 1;
    }
    /* The TSP connector: HTTP when --tsp-url is set, else the built-in simulator. */
    svc.tsp = cfg.tsp_url[0] ? td_tsp_new_http(cfg.tsp_url, cfg.tsp_timeout_ms, cfg.tsp_retries, cfg.tsp_bearer)
                             : td_tsp_new_simulated();
    if (!svc.tsp) {
        td_log(TD_LOG_ERROR, "startup", "cannot create the TSP connector");
        store->close(store);
        return 1;
    }

    td_server *srv = td_server_start(&svc, err, sizeof err);
    if (!srv) {
        td_log(TD_LOG_ERROR, "startup", "%s", err);
        store->close(store);
        td_tsp_free(svc.tsp);
        return 1;
    }
    td_sched *timers = td_sched_start(&svc);
    if (!timers) {
        td_log(TD_LOG_ERROR, "startup", "cannot start the step-up timer thread");
        td_server_shutdown(srv, 0);
        store->close(store);
        td_tsp_free(svc.tsp);
        return 1;
    }
    td_notify *delivery = td_notify_start(&svc);
    if (!delivery) {
        td_log(TD_LOG_ERROR, "startup", "cannot start the notification delivery worker");
        td_server_shutdown(srv, 0);
        td_sched_stop(timers);
        store->close(store);
        td_tsp_free(svc.tsp);
        return 1;
    }
    atomic_store(&hooked_worker, delivery);
    td_server_set_notify(srv, delivery); /* /metrics reads the worker's counters through it */
    char store_shown[512];
    td_store_redact_url(cfg.store_url, store_shown, sizeof store_shown);
    char listen[96];
    td_config_listen_text(&cfg, listen, sizeof listen);
    const char *scheme = td_config_tls(&cfg) ? "https" : "http";
    td_log(TD_LOG_INFO, "listening", "tokend listening on %s://%s (store %s); admin key in %s. Try: curl %s://%s/healthz",
           scheme, listen, store_shown, cfg.admin_key_file[0] ? cfg.admin_key_file : "TOKEND_ADMIN_KEY", scheme,
           listen);
    int sig = wait_for_stop(&stop, srv, &svc);
    td_log(TD_LOG_INFO, "shutdown", "signal %d: draining requests and commits", sig);
    /* Longer than a write may wait for the writer, so every parked request ends. */
    if (td_server_shutdown(srv, cfg.commit_timeout_ms + 5000) != 0) {
        td_log(TD_LOG_ERROR, "stopped", "exiting with requests unanswered (the store did not finish in time)");
        _exit(1);
    }
    /* The timers write through the store: stopped before it closes. */
    td_sched_stop(timers);
    /* Then the deliveries: those in flight finish and are recorded (rows still
     * claimed after its drain are sent again after a restart, once their lease ends). */
    atomic_store(&hooked_worker, NULL);
    td_notify_stop(delivery);
    store->close(store);
    td_tsp_free(svc.tsp);
    td_log(TD_LOG_INFO, "stopped", "bye");
    return 0;
}

int main(int argc, char **argv)
{
    if (td_crypto_init()) {
        fprintf(stderr, "tokend: libsodium failed to initialise\n");
        return 1;
    }
    if (argc < 2) return serve(0, NULL);
    if (!strcmp(argv[1], "serve")) return serve(argc - 2, argv + 2);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage();
        td_config_usage();
        return 0;
    }
    return usage();
}
