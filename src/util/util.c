/* util.c — time, ids, bounded strings and strict number parsing. */
#include "util/util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "crypto/crypto.h"

int64_t td_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t td_epoch_to_ms(int64_t v)
{
    return v < 100000000000LL ? v * 1000 : v;
}

int64_t td_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char B58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/* Base58 of a byte string (big-endian big number), as Token.io ids look. */
static int base58(const uint8_t *in, size_t n, char *out, size_t cap)
{
    uint8_t digits[64] = {0};
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned carry = in[i];
        for (size_t j = 0; j < len; j++) {
            carry += (unsigned)digits[j] << 8;
            digits[j] = (uint8_t)(carry % 58);
            carry /= 58;
        }
        while (carry) {
            if (len >= sizeof digits) return -1;
            digits[len++] = (uint8_t)(carry % 58);
            carry /= 58;
        }
    }
    if (len + 1 > cap) return -1;
    for (size_t i = 0; i < len; i++)
        out[i] = B58[digits[len - 1 - i]];
    out[len] = 0;
    return (int)len;
}

/* Both parts are random: ids are opaque, only their shape follows Token.io. */
int td_new_id(const char *prefix, char *out, size_t cap)
{
    uint8_t raw[20], sfx[5];
    char body[40], suffix[12];
    td_random_bytes(raw, sizeof raw);
    td_random_bytes(sfx, sizeof sfx);
    if (base58(raw, sizeof raw, body, sizeof body) < 0) return -1;
    if (base58(sfx, sizeof sfx, suffix, sizeof suffix) < 0) return -1;
    size_t pl = strlen(prefix), bl = strlen(body), sl = strlen(suffix);
    if (pl + 1 + bl + 1 + sl + 1 > cap) return -1;
    memcpy(out, prefix, pl);
    out[pl] = ':';
    memcpy(out + pl + 1, body, bl);
    out[pl + 1 + bl] = ':';
    memcpy(out + pl + 2 + bl, suffix, sl + 1);
    return 0;
}

int td_new_secret(size_t nbytes, char *out, size_t cap)
{
    uint8_t raw[64];
    if (nbytes > sizeof raw) return -1;
    td_random_bytes(raw, nbytes);
    return td_b64url_encode(raw, nbytes, out, cap) < 0 ? -1 : 0;
}

int td_strlcpy(char *dst, const char *src, size_t cap)
{
    if (cap == 0) return -1;
    size_t n = strlen(src);
    if (n >= cap) {
        memcpy(dst, src, cap - 1);
        dst[cap - 1] = 0;
        return -1;
    }
    memcpy(dst, src, n + 1);
    return 0;
}

int td_parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s) return -1;
    const char *p = s;
    if (*p == '-') p++;
    if (!*p) return -1;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9') return -1;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

bool td_is_id_chars(const char *s, size_t min, size_t max, const char *extra)
{
    size_t n = strlen(s);
    if (n < min || n > max) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  (extra && c && strchr(extra, c));
        if (!ok) return false;
    }
    return true;
}

bool td_has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return true;
    return false;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int td_hex_byte(const char *s)
{
    int hi = hex_digit(s[0]);
    int lo = hi < 0 ? -1 : hex_digit(s[1]);
    return lo < 0 ? -1 : hi * 16 + lo;
}

/* ---- ISO 8601 UTC times with milliseconds (docs/network.md) ---- */

/* Floor division: times before 1970 still land on the right second. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

void td_iso8601_ms(int64_t ms, char *out, size_t cap)
{
    int64_t secs = floor_div(ms, 1000);
    int frac = (int)(ms - secs * 1000);
    time_t t = (time_t)secs;
    struct tm tm;
    if (cap == 0) return;
    if (!gmtime_r(&t, &tm)) {
        out[0] = '\0';
        return;
    }
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, frac);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), so parsing needs neither timegm nor the TZ variable. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int D[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : D[m - 1];
}

/* Exactly n digits at *p; advances *p. -1 if they are not all digits. */
static int digits(const char **p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char ch = (*p)[i];
        if (ch < '0' || ch > '9') return -1;
        v = v * 10 + (ch - '0');
    }
    *p += n;
    return v;
}

static int expect(const char **p, char ch)
{
    if (**p != ch) return -1;
    (*p)++;
    return 0;
}

/* ".fff…": 1–9 digits, milliseconds from the first three (truncated). */
static int parse_fraction(const char **p, int *ms)
{
    *ms = 0;
    if (**p != '.') return 0;
    (*p)++;
    int n = 0, scale = 100;
    while ((*p)[0] >= '0' && (*p)[0] <= '9') {
        if (++n > 9) return -1;
        if (scale) {
            *ms += ((*p)[0] - '0') * scale;
            scale /= 10;
        }
        (*p)++;
    }
    return n ? 0 : -1;
}

/* "Z" or "±hh:mm": the offset in minutes east of UTC. */
static int parse_offset(const char **p, int *minutes)
{
    char sign = **p;
    if (sign == 'Z' || sign == 'z') {
        (*p)++;
        *minutes = 0;
        return 0;
    }
    if (sign != '+' && sign != '-') return -1;
    (*p)++;
    int hh = digits(p, 2);
    if (hh < 0 || expect(p, ':')) return -1;
    int mm = digits(p, 2);
    if (mm < 0 || hh > 23 || mm > 59) return -1;
    *minutes = (sign == '-' ? -1 : 1) * (hh * 60 + mm);
    return 0;
}

int td_parse_iso8601_ms(const char *s, int64_t *out)
{
    if (!s) return -1;
    const char *p = s;
    int y = digits(&p, 4);
    if (y < 0 || expect(&p, '-')) return -1;
    int mo = digits(&p, 2);
    if (mo < 1 || mo > 12 || expect(&p, '-')) return -1;
    int d = digits(&p, 2);
    if (d < 1 || d > days_in_month(y, mo) || (*p != 'T' && *p != 't')) return -1;
    p++;
    int hh = digits(&p, 2);
    if (hh < 0 || hh > 23 || expect(&p, ':')) return -1;
    int mi = digits(&p, 2);
    if (mi < 0 || mi > 59 || expect(&p, ':')) return -1;
    int ss = digits(&p, 2);
    int ms, off;
    if (ss < 0 || ss > 59 || parse_fraction(&p, &ms) || parse_offset(&p, &off) || *p) return -1;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss - (int64_t)off * 60;
    *out = secs * 1000 + ms;
    return 0;
}

void td_make_parent_dirs(const char *path)
{
    char dir[1024];
    if (td_strlcpy(dir, path, sizeof dir)) return;
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        mkdir(dir, 0700);
        *p = '/';
    }
}
