/* card_util.c — ids and times for the network tokenization use cases:
 * digital card and operation ids ("dc_"/"op_" + 22 base62 characters) and
 * ISO 8601 UTC times with milliseconds, as docs/network.md shows them. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "crypto/crypto.h"
#include "service/cards.h"

#define ID_BODY_LEN 22 /* 22 base62 characters carry 130 random bits */

static const char B62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* prefix + 22 base62 characters. Bytes ≥ 248 are drawn again: 248 = 4 × 62,
 * so the remaining bytes map onto the alphabet without bias. */
static void new_base62_id(const char *prefix, char out[65])
{
    size_t pl = strlen(prefix), n = 0;
    memcpy(out, prefix, pl);
    while (n < ID_BODY_LEN) {
        uint8_t buf[32];
        td_random_bytes(buf, sizeof buf);
        for (size_t i = 0; i < sizeof buf && n < ID_BODY_LEN; i++)
            if (buf[i] < 248) out[pl + n++] = B62[buf[i] % 62];
    }
    out[pl + n] = '\0';
}

void td_new_dcard_id(char out[65])
{
    new_base62_id("dc_", out);
}

void td_new_operation_id(char out[65])
{
    new_base62_id("op_", out);
}

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
