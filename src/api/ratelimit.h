/* ratelimit.h — per-credential token buckets, in memory. */
#ifndef TD_RATELIMIT_H
#define TD_RATELIMIT_H

typedef struct td_ratelimit td_ratelimit;

/* rps <= 0 disables limiting. */
td_ratelimit *td_ratelimit_new(double rps, double burst);
void td_ratelimit_free(td_ratelimit *rl);
/* Takes one token for key; returns 0 if allowed, else the seconds to wait (>= 1). */
int td_ratelimit_take(td_ratelimit *rl, const char *key);

#endif
