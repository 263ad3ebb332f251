/* sched.h — the timer runner: a thread that fires the due step-up timers
 * (reminders and session expiries) every cfg->timer_interval_ms. What a timer
 * does is the service's (td_svc_fire_timer, service/cards.h): reminders owe a
 * USER REMINDER row; a session expiry deletes the pending card through the
 * TSP and applies STEPUP_EXPIRE (DIGITIZE FAILED). Each timer fires once (it
 * is marked FIRED in the transaction of its effect); a TSP failure reschedules. */
#ifndef TD_SCHED_H
#define TD_SCHED_H

#include <stdint.h>

#include "service/service.h"

typedef struct td_sched td_sched;

/* Starts the runner thread; NULL if it cannot start. */
td_sched *td_sched_start(td_svc *svc);
/* Stops the thread (once the batch it is firing is done) and frees t. NULL ok. */
void td_sched_stop(td_sched *t);
/* Fires everything due now on the calling thread; returns how many fired (tests). */
int td_sched_run_once(td_svc *svc);
/* td_sched_run_once at a given time (tests pass a fake clock). */
int td_sched_run_at(td_svc *svc, int64_t now_ms);

#endif
