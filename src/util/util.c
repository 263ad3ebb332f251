/* util.c — time, ids, bounded strings and strict number parsing. */
#include "util/util.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
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
