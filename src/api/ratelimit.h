/* ratelimit.h — token buckets keyed by a string (a credential's owner, a source
 * address), in memory, per node. */
#ifndef TD_RATELIMIT_H
#define TD_RATELIMIT_H

typedef struct td_ratelimit td_ratelimit;

/* Keys longer than this, less one, are cut (and so share a bucket). */
#define TD_RATELIMIT_KEY_MAX 128

/* rps <= 0 disables limiting. */
td_ratelimit *td_ratelimit_new(double rps, double burst);
void td_ratelimit_free(td_ratelimit *rl);
/* Takes one token for key; returns 0 if allowed, else the seconds to wait (>= 1). */
int td_ratelimit_take(td_ratelimit *rl, const char *key);
/* As td_ratelimit_take, without taking the token. */
int td_ratelimit_peek(td_ratelimit *rl, const char *key);

#endif
