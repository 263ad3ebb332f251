/* conn_guard.h — request deadlines for slow clients: each connection has the
 * time by which its current request must have arrived whole, and a sweeper
 * thread shuts down the socket of any connection past it. libmicrohttpd
 * 0.9.75's own timeout counts idle time only, so a client trickling one header
 * byte every few seconds would otherwise hold its connection for ever. */
#ifndef TD_CONN_GUARD_H
#define TD_CONN_GUARD_H

#include <stdint.h>

typedef struct td_conn_guard td_conn_guard;
typedef struct td_guarded td_guarded; /* one HTTP connection (not a store connection) */

/* Starts the sweeper, which looks every sweep_ms. NULL if it cannot. */
td_conn_guard *td_conn_guard_new(int64_t sweep_ms);
/* Stops the sweeper and frees what is left. */
void td_conn_guard_free(td_conn_guard *g);

/* A connection on socket fd, with no deadline yet; NULL when out of memory
 * (the connection is then not guarded). */
td_guarded *td_guard_open(td_conn_guard *g, int fd);
/* The connection is being closed: forgets it, before its socket is. */
void td_guard_close(td_conn_guard *g, td_guarded *c);

/* The request must have arrived whole by deadline_us (td_mono_us's clock);
 * 0: no deadline (the request is whole and being answered). NULL c is a no-op. */
void td_guard_deadline(td_guarded *c, int64_t deadline_us);

/* How many connections the sweeper has shut down, since the start. */
uint64_t td_conn_guard_swept(const td_conn_guard *g);

#endif
