/* conn_guard.c — the connections libmicrohttpd holds, each with its request
 * deadline, and the sweeper that shuts down those past it. shutdown(2) makes
 * the socket readable at end of file, so libmicrohttpd's own loop sees the
 * client gone and closes the connection as usual: no state of libmicrohttpd
 * is touched from this thread. */
#include "api/conn_guard.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "util/log.h"
#include "util/util.h"

struct td_guarded {
    td_guarded *prev, *next;
    int fd;
    _Atomic int64_t deadline_us; /* 0: none */
    bool shut;                   /* under the guard's lock */
};

struct td_conn_guard {
    pthread_mutex_t mu; /* the list; a socket is closed only after td_guard_close */
    pthread_cond_t wake;
    td_guarded *head;
    int64_t sweep_ms;
    bool stop;
    pthread_t sweeper;
    _Atomic uint64_t swept;
};

td_guarded *td_guard_open(td_conn_guard *g, int fd)
{
    td_guarded *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->fd = fd;
    pthread_mutex_lock(&g->mu);
    c->next = g->head;
    if (g->head) g->head->prev = c;
    g->head = c;
    pthread_mutex_unlock(&g->mu);
    return c;
}

void td_guard_close(td_conn_guard *g, td_guarded *c)
{
    if (!c) return;
    pthread_mutex_lock(&g->mu);
    if (c->prev) c->prev->next = c->next;
    else g->head = c->next;
    if (c->next) c->next->prev = c->prev;
    pthread_mutex_unlock(&g->mu);
    free(c);
}

void td_guard_deadline(td_guarded *c, int64_t deadline_us)
{
    if (c) atomic_store(&c->deadline_us, deadline_us);
}

uint64_t td_conn_guard_swept(const td_conn_guard *g)
{
    return atomic_load(&g->swept);
}

/* Shuts down every connection past its deadline; how many. Under g->mu, so no
 * socket is closed (and its number reused) while it is shut down here. */
static int sweep(td_conn_guard *g, int64_t now)
{
    int n = 0;
    for (td_guarded *c = g->head; c; c = c->next) {
        int64_t d = atomic_load(&c->deadline_us);
        if (c->shut || !d || now < d) continue;
        shutdown(c->fd, SHUT_RDWR);
        c->shut = true;
        n++;
    }
    return n;
}

static void *sweeper_main(void *arg)
{
    td_conn_guard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + g->sweep_ms * 1000000;
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&g->wake, &g->mu, &ts);
        if (g->stop) break;
        int n = sweep(g, td_mono_us());
        if (n) {
            atomic_fetch_add(&g->swept, (uint64_t)n);
            td_log(TD_LOG_WARN, "http", "closed %d connections whose request had not arrived whole in time", n);
        }
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

td_conn_guard *td_conn_guard_new(int64_t sweep_ms)
{
    td_conn_guard *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->sweep_ms = sweep_ms;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->wake, NULL);
    if (pthread_create(&g->sweeper, NULL, sweeper_main, g)) {
        pthread_cond_destroy(&g->wake);
        pthread_mutex_destroy(&g->mu);
        free(g);
        return NULL;
    }
    return g;
}

void td_conn_guard_free(td_conn_guard *g)
{
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->sweeper, NULL);
    for (td_guarded *c = g->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->mu);
    free(g);
}
