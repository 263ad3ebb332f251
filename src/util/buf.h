/* buf.h — tokend's one growing byte buffer, bounded: every body read from a
 * peer, every answer and text assembled piece by piece goes through it. It
 * grows by doubling up to its limit and keeps a terminating NUL after its
 * bytes; once an add fails (past the limit, or out of memory) the buffer is
 * marked and later adds are ignored, so callers check once at the end. */
#ifndef TD_BUF_H
#define TD_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *p;          /* NUL-terminated after len bytes once anything was added; NULL before */
    size_t len, cap;  /* bytes held; bytes allocated */
    size_t max;       /* the most bytes it may hold (0: no limit but memory) */
    bool too_large;   /* an add would have passed max */
    bool oom;         /* an add could not allocate */
} td_buf;

/* A buffer that holds at most max bytes (0: no limit). */
td_buf td_buf_bounded(size_t max);
/* Appends n bytes (s may be NULL when n is 0); false, and the buffer marked,
 * if it cannot. */
bool td_buf_add(td_buf *b, const void *s, size_t n);
bool td_buf_add_str(td_buf *b, const char *s);
bool td_buf_printf(td_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether every add so far succeeded. */
bool td_buf_ok(const td_buf *b);
/* Hands the bytes over (malloc'd, NUL-terminated; an empty string if nothing
 * was added; NULL if that cannot be allocated) and empties the buffer. */
char *td_buf_steal(td_buf *b);
/* Empties the buffer, keeping its memory for what comes next. */
void td_buf_clear(td_buf *b);
/* Frees the bytes and empties the buffer (its limit stays). */
void td_buf_reset(td_buf *b);

#endif
