/* util.h — small support pieces shared by every layer: time, ids, bounded
 * string helpers and strict number parsing. */
#ifndef TD_UTIL_H
#define TD_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wall-clock milliseconds since the epoch. The engine takes "now" as an
 * argument, so its tests never need to move the clock. */
int64_t td_now_ms(void);
/* An epoch time given in seconds or milliseconds (Token.io examples use
 * seconds), as milliseconds: values below 10^11 are taken as seconds. */
int64_t td_epoch_to_ms(int64_t v);

/* Monotonic microseconds, for latency measurements. */
int64_t td_mono_us(void);

/* Writes "<prefix>:<base58 of 20 random bytes>:<suffix>" into out, the shape
 * Token.io ids take (opaque to clients). Returns 0, or -1 if out is too small. */
int td_new_id(const char *prefix, char *out, size_t cap);
/* A random url-safe secret of n random bytes (api keys, consent codes). */
int td_new_secret(size_t nbytes, char *out, size_t cap);

/* Copies src into dst (capacity cap), always NUL-terminating; returns -1 if
 * it had to truncate. */
int td_strlcpy(char *dst, const char *src, size_t cap);

/* Strict decimal parse of a whole string into int64; -1 on any junk,
 * sign where not allowed, or overflow. */
int td_parse_i64(const char *s, int64_t *out);

/* The value of two hex digits at s (either case), or -1 if they are not. */
int td_hex_byte(const char *s);

/* True if s (length n) matches ^[A-Za-z0-9_-]{min,max}$ style classes. */
bool td_is_id_chars(const char *s, size_t min, size_t max, const char *extra);

/* True if s holds a control character (below 0x20, or DEL). */
bool td_has_ctl(const char *s);

/* ISO 8601 UTC with milliseconds: 2026-11-22T07:42:27.123Z (out >= 32). */
void td_iso8601_ms(int64_t ms, char *out, size_t cap);
/* Parses ISO 8601 (Z or ±hh:mm offset, optional fraction) to epoch ms; 0 or -1. */
int td_parse_iso8601_ms(const char *s, int64_t *out);

/* Creates the directories leading to path, like `mkdir -p` of its parent,
 * each new one 0700 (they hold a store or keys). */
void td_make_parent_dirs(const char *path);

#endif
