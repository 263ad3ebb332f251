/* ratelimit.c — token buckets in a fixed open-addressed table. A full table
 * evicts the bucket idle the longest, which at worst forgives a client. */
#include "api/ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define SLOTS 8192
#define PROBE 16

typedef struct {
    char key[65];
    double tokens;
    int64_t last_us;
} bucket;

struct td_ratelimit {
    double rps, burst;
    pthread_mutex_t mu;
    bucket slots[SLOTS];
};

td_ratelimit *td_ratelimit_new(double rps, double burst)
{
    td_ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl) return NULL;
    rl->rps = rps;
    rl->burst = burst < 1 ? 1 : burst;
    pthread_mutex_init(&rl->mu, NULL);
    return rl;
}

void td_ratelimit_free(td_ratelimit *rl)
{
    if (!rl) return;
    pthread_mutex_destroy(&rl->mu);
    free(rl);
}

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

int td_ratelimit_take(td_ratelimit *rl, const char *key)
{
    if (!rl || rl->rps <= 0) return 0;
    int64_t now = td_mono_us();
    uint32_t h = hash(key);
    pthread_mutex_lock(&rl->mu);
    bucket *b = NULL, *oldest = NULL;
    for (int i = 0; i < PROBE; i++) {
        bucket *s = &rl->slots[(h + (uint32_t)i) % SLOTS];
        if (!strcmp(s->key, key)) {
            b = s;
            break;
        }
        if (!oldest || s->last_us < oldest->last_us) oldest = s;
    }
    if (!b) {
        b = oldest;
        td_strlcpy(b->key, key, sizeof b->key);
        b->tokens = rl->burst;
        b->last_us = now;
    }
    b->tokens += (double)(now - b->last_us) / 1e6 * rl->rps;
    if (b->tokens > rl->burst) b->tokens = rl->burst;
    b->last_us = now;
    int wait = 0;
    if (b->tokens >= 1) {
        b->tokens -= 1;
    } else {
        wait = (int)ceil((1 - b->tokens) / rl->rps);
        if (wait < 1) wait = 1;
    }
    pthread_mutex_unlock(&rl->mu);
    return wait;
}
