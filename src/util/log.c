/* log.c — JSON-lines logging. Lines are assembled in a stack buffer and
 * written with one write(2) so lines from different threads never interleave. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

static td_log_level g_min = TD_LOG_INFO;
static const char *const LEVELS[] = {"debug", "info", "warn", "error"};

void td_log_set_level(td_log_level min)
{
    g_min = min;
}

typedef struct {
    char buf[2048];
    size_t len;
} line_t;

static void put_raw(line_t *l, const char *s, size_t n)
{
    if (l->len + n >= sizeof l->buf - 2) n = sizeof l->buf - 2 - l->len;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put_str(line_t *l, const char *s)
{
    put_raw(l, "\"", 1);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put_raw(l, e, 2);
        } else if (c < 0x20) {
            char e[8];
            int n = snprintf(e, sizeof e, "\\u%04x", c);
            put_raw(l, e, (size_t)n);
        } else {
            put_raw(l, (const char *)&c, 1);
        }
    }
    put_raw(l, "\"", 1);
}

static void put_field(line_t *l, const char *key, const char *val)
{
    if (!val) return;
    put_raw(l, ",", 1);
    put_str(l, key);
    put_raw(l, ":", 1);
    put_str(l, val);
}

static void put_int(line_t *l, const char *key, int64_t v)
{
    char num[32];
    int n = snprintf(num, sizeof num, "%lld", (long long)v);
    put_raw(l, ",", 1);
    put_str(l, key);
    put_raw(l, ":", 1);
    put_raw(l, num, (size_t)n);
}

static void begin(line_t *l, td_log_level lvl, const char *event)
{
    char ts[32];
    snprintf(ts, sizeof ts, "%lld", (long long)td_now_ms());
    l->len = 0;
    put_raw(l, "{\"tsMs\":", 8);
    put_raw(l, ts, strlen(ts));
    put_field(l, "level", LEVELS[lvl]);
    put_field(l, "event", event);
}

static void finish(line_t *l)
{
    l->buf[l->len++] = '}';
    l->buf[l->len++] = '\n';
    ssize_t r = write(STDERR_FILENO, l->buf, l->len);
    (void)r;
}

void td_log(td_log_level lvl, const char *event, const char *fmt, ...)
{
    if (lvl < g_min) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    line_t l;
    begin(&l, lvl, event);
    put_field(&l, "msg", msg);
    finish(&l);
}

void td_log_request(const char *trace_id, const char *method, const char *route, int status, int64_t dur_us,
                    const char *member, const char *errcode, const char *fault)
{
    td_log_level lvl = status >= 500 ? TD_LOG_ERROR : TD_LOG_INFO;
    if (lvl < g_min) return;
    line_t l;
    begin(&l, lvl, "request");
    put_field(&l, "tokenTraceId", trace_id);
    put_field(&l, "method", method);
    put_field(&l, "route", route);
    put_int(&l, "status", status);
    put_int(&l, "durationUs", dur_us);
    put_field(&l, "memberId", member);
    put_field(&l, "errorCode", errcode);
    /* "caller" = the client's fault, "server" = ours: kept apart for alerting. */
    put_field(&l, "fault", fault);
    finish(&l);
}
