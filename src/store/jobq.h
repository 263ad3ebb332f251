/* jobq.h — the queue of write jobs that every store engine shares: requests'
 * threads submit jobs, the engine's writer threads take them in batches (group
 * commit), a reaper fails the jobs that waited too long. The engine supplies
 * only what a batch's transaction is. */
#ifndef TD_STORE_JOBQ_H
#define TD_STORE_JOBQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "store/store.h"

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    td_job *head, *tail;
    int queued;     /* jobs in the queue */
    int last_batch; /* jobs in the previous batch taken */
    bool closing;
    volatile int fault; /* td_store.inject_fault: 1 verbs fail, 2 writers stall */
    int64_t last_reap_us; /* when the reaper last failed a job that waited too long; 0 = never */
    td_store_stats stats;
    pthread_t reaper;
    bool reaper_started;
} td_jobq;

/* The start of every engine's store object: the public face, then its queue. */
typedef struct {
    td_store pub;
    td_jobq q;
} td_store_base;

/* Sets up the queue and the public submit, run_sync, stats and inject_fault. */
void td_jobq_setup(td_store_base *b);
int td_jobq_start_reaper(td_store_base *b, char *err, size_t cap);
/* Waits for jobs and takes up to max of them (a batch, linked by next); NULL
 * once the queue is closing and empty. Called by each writer thread. */
td_job *td_jobq_take(td_jobq *q, int max, int *n);
/* False, with the reason, while the writers are not keeping up: the oldest
 * queued job has waited half the commit timeout, or one timed out lately.
 * The engines' td_store.writable starts with it. */
bool td_jobq_writable(td_store_base *b, char *why, size_t cap);
/* Records a committed batch of n jobs in the statistics. */
void td_jobq_count(td_jobq *q, int n, bool lax);
/* Refuses new jobs and wakes the writers, which drain the queue and return. */
void td_jobq_close(td_jobq *q);
/* After the writers returned: stops the reaper, frees the queue's locks. */
void td_jobq_destroy(td_store_base *b);

#endif
