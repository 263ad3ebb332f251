/* metrics.h — request counters and latency histograms per route, rendered as
 * Prometheus text with the store's commit statistics and the notification
 * worker's counters. */
#ifndef TD_METRICS_H
#define TD_METRICS_H

#include <stdint.h>

#include "store/store.h"

typedef struct td_metrics td_metrics;
typedef struct td_notify td_notify; /* notify/notify.h */

td_metrics *td_metrics_new(int nroutes);
void td_metrics_free(td_metrics *m);
/* route: index in td_routes, or td_route_count for unmatched requests. */
void td_metrics_observe(td_metrics *m, int route, int status, int64_t dur_us);
/* w: the notification worker (td_notify_stats), or NULL for zeros. */
char *td_metrics_text(td_metrics *m, const td_store_stats *st, int inflight, const td_notify *w);

#endif
