/* buf.c — the bounded growing buffer (buf.h). */
#include "util/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

td_buf td_buf_bounded(size_t max)
{
    return (td_buf){.max = max};
}

/* Room for need more bytes and the NUL; false (and marked) if not. */
static bool reserve(td_buf *b, size_t need)
{
    if (b->too_large || b->oom) return false;
    if (b->max && (need > b->max || b->len > b->max - need)) {
        b->too_large = true;
        return false;
    }
    if (need > SIZE_MAX - 1 - b->len) { /* no limit, and no such size either */
        b->oom = true;
        return false;
    }
    if (b->len + need + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + need + 1)
        cap = cap > SIZE_MAX / 2 ? b->len + need + 1 : cap * 2;
    if (b->max && cap > b->max + 1) cap = b->max + 1;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

bool td_buf_add(td_buf *b, const void *s, size_t n)
{
    if (!reserve(b, n)) return false;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return true;
}

bool td_buf_add_str(td_buf *b, const char *s)
{
    return td_buf_add(b, s, strlen(s));
}

bool td_buf_printf(td_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(b, (size_t)n)) {
        if (n < 0) b->oom = true;
        return false;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return true;
}

bool td_buf_ok(const td_buf *b)
{
    return !b->too_large && !b->oom;
}

char *td_buf_steal(td_buf *b)
{
    char *p = b->p ? b->p : calloc(1, 1);
    *b = td_buf_bounded(b->max);
    return p;
}

void td_buf_clear(td_buf *b)
{
    b->len = 0;
    if (b->p) b->p[0] = 0;
}

void td_buf_reset(td_buf *b)
{
    free(b->p);
    *b = td_buf_bounded(b->max);
}
