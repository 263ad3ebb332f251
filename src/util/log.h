/* log.h — JSON-lines logging to stderr: one object per line, with a level,
 * an event name and fields. Never pass secrets (PAN, CVV, OTP, API keys). */
#ifndef TD_LOG_H
#define TD_LOG_H

#include <stdint.h>

typedef enum { TD_LOG_DEBUG, TD_LOG_INFO, TD_LOG_WARN, TD_LOG_ERROR } td_log_level;

void td_log_set_level(td_log_level min);
/* The message is formatted and JSON-escaped. */
void td_log(td_log_level lvl, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* One line per request. errcode and member may be NULL. */
void td_log_request(const char *trace_id, const char *method, const char *route, int status, int64_t dur_us,
                    const char *member, const char *errcode, const char *fault);

#endif
