/* store_msg.c — the messages of `tokenctl store copy` and `store verify`: one
 * line each, and never the target URL's password, shown or repeated by libpq. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/store_copy.h"
#include "util/util.h"

static void scrub(const job *j, char *msg, size_t cap)
{
    char out[2048];
    for (size_t s = 0; s < N_SECRETS; s++) {
        const char *secret = j->secrets[s];
        size_t n = strlen(secret), o = 0;
        if (n == 0 || !strstr(msg, secret)) continue;
        for (const char *p = msg; *p && o + 4 < sizeof out;) {
            if (!strncmp(p, secret, n)) {
                memcpy(out + o, "***", 3);
                o += 3;
                p += n;
            } else {
                out[o++] = *p++;
            }
        }
        out[o] = 0;
        td_strlcpy(msg, out, cap);
    }
}

int sc_fail(const job *j, int rc, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* libpq's messages may span lines (DETAIL, HINT): one line each here. */
    for (char *p = msg; *p; p++)
        if (*p == '\n' && p[1]) *p = ' ';
    msg[strcspn(msg, "\n")] = 0;
    scrub(j, msg, sizeof msg);
    fprintf(stderr, "tokenctl: store %s: %s\n", j->cmd, msg);
    return rc;
}

static int percent_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k + 1 >= cap) return -1;
        int v = s[i] == '%' && i + 2 < n ? td_hex_byte(s + i + 1) : -1;
        if (v > 0) {
            out[k++] = (char)v;
            i += 2;
        } else {
            out[k++] = s[i];
        }
    }
    out[k] = 0;
    return 0;
}

/* libpq may repeat the password as written or as it decoded it: both are kept. */
static void keep_secret(job *j, const char *s, size_t n)
{
    for (size_t i = 0; i < N_SECRETS; i++) {
        if (j->secrets[i][0]) continue;
        if (n >= sizeof j->secrets[i]) n = sizeof j->secrets[i] - 1;
        memcpy(j->secrets[i], s, n);
        j->secrets[i][n] = 0;
        if (i + 1 < N_SECRETS) percent_decode(s, n, j->secrets[i + 1], sizeof j->secrets[i + 1]);
        return;
    }
}

/* The URL for messages: "user:secret@" loses ":secret", a password=...
 * parameter its value; the passwords are kept to scrub libpq's messages.
 *
 * Not td_store_redact_url (store.c, tokend's log line), though both show the
 * same URL: that one returns only the shown URL, and scrubbing needs each
 * password it cut, as written and percent-decoded. Calling it and then
 * finding the passwords here would be two parsers that may disagree about
 * what the password is. */
void sc_redact(job *j, const char *url)
{
    char buf[sizeof j->safe_dst];
    td_strlcpy(buf, url, sizeof buf);
    char *auth = strstr(buf, "://");
    if (auth) {
        auth += 3;
        size_t end = strcspn(auth, "@/?");
        if (auth[end] == '@') {
            char *colon = memchr(auth, ':', end);
            if (colon) {
                keep_secret(j, colon + 1, (size_t)(auth + end - colon - 1));
                memmove(colon, auth + end, strlen(auth + end) + 1);
            }
        }
    }
    /* password= and sslpassword= (the client key's passphrase) alike. */
    for (char *p = strstr(buf, "password="); p; p = strstr(p + 1, "password=")) {
        bool named = p != buf && (p[-1] == '?' || p[-1] == '&');
        bool ssl = p - buf >= 4 && !strncmp(p - 3, "ssl", 3) && (p - buf == 3 || p[-4] == '?' || p[-4] == '&');
        if (!named && !ssl) continue;
        size_t n = strcspn(p + 9, "&");
        keep_secret(j, p + 9, n);
        memmove(p + 9, p + 9 + n, strlen(p + 9 + n) + 1);
    }
    td_strlcpy(j->safe_dst, buf, sizeof j->safe_dst);
}
