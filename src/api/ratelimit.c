/* ratelimit.c — token buckets in a fixed open-addressed table. A full table
 * evicts the bucket idle the longest, which at worst forgives a client. The
 * same table counts requests per credential, per source address, and failed
 * authentications per source address (one table each, http.c). */
#include "api/ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define SLOTS 8192
#define PROBE 16

typedef struct {
    char key[TD_RATELIMIT_KEY_MAX];
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

/* The bucket of key, created full if absent, refilled up to now. Under rl->mu. */
static bucket *refilled(td_ratelimit *rl, const char *key, int64_t now)
{
    uint32_t h = hash(key);
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
    return b;
}

/* Seconds until b holds a whole token; 0 if it holds one. */
static int wait_s(const td_ratelimit *rl, const bucket *b)
{
    if (b->tokens >= 1) return 0;
    int wait = (int)ceil((1 - b->tokens) / rl->rps);
    return wait < 1 ? 1 : wait;
}

static int take_or_peek(td_ratelimit *rl, const char *key, bool take)
{
    if (!rl || rl->rps <= 0) return 0;
    int64_t now = td_mono_us();
    pthread_mutex_lock(&rl->mu);
    bucket *b = refilled(rl, key, now);
    int wait = wait_s(rl, b);
    if (!wait && take) b->tokens -= 1;
    pthread_mutex_unlock(&rl->mu);
    return wait;
}

int td_ratelimit_take(td_ratelimit *rl, const char *key)
{
    return take_or_peek(rl, key, true);
}

int td_ratelimit_peek(td_ratelimit *rl, const char *key)
{
    return take_or_peek(rl, key, false);
}
