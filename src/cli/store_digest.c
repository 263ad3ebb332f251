/* store_digest.c — the two renderings of a row in `tokenctl store copy`: the
 * content digest both engines' rows are compared by, and COPY's text format.
 *
 * The digest is SHA-256 over a header naming the table and its columns, then
 * every row in primary-key order (text keys in byte order on both engines),
 * each value rendered the same way whichever engine it was read from:
 *   NULL  N       integer  I<decimal>;
 *   text  T<byte length>:<bytes>      blob  B<byte length>:<lowercase hex>
 * and each row opened by R. NULL, "" and an empty blob all differ. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/store_copy.h"

void sc_digest_start(crypto_hash_sha256_state *h, const table *t)
{
    crypto_hash_sha256_init(h);
    static const char TAG[] = "tokend-store-digest-v1\n";
    crypto_hash_sha256_update(h, (const unsigned char *)TAG, sizeof TAG - 1);
    crypto_hash_sha256_update(h, (const unsigned char *)t->def->name, strlen(t->def->name));
    for (int i = 0; i < t->ncols; i++) {
        crypto_hash_sha256_update(h, (const unsigned char *)(i ? "," : "\n"), 1);
        crypto_hash_sha256_update(h, (const unsigned char *)t->cols[i].name, strlen(t->cols[i].name));
    }
    crypto_hash_sha256_update(h, (const unsigned char *)"\n", 1);
}

static void h_str(crypto_hash_sha256_state *h, const char *s)
{
    crypto_hash_sha256_update(h, (const unsigned char *)s, strlen(s));
}

void sc_digest_row(crypto_hash_sha256_state *h)
{
    h_str(h, "R");
}

void sc_digest_null(crypto_hash_sha256_state *h)
{
    h_str(h, "N");
}

void sc_digest_int(crypto_hash_sha256_state *h, int64_t v)
{
    char s[32];
    snprintf(s, sizeof s, "I%lld;", (long long)v);
    h_str(h, s);
}

void sc_digest_text(crypto_hash_sha256_state *h, const void *p, size_t n)
{
    char s[32];
    snprintf(s, sizeof s, "T%zu:", n);
    h_str(h, s);
    if (n) crypto_hash_sha256_update(h, p, n);
}

void sc_digest_blob(crypto_hash_sha256_state *h, const uint8_t *p, size_t n)
{
    char s[32], hex[2 * 512 + 1];
    snprintf(s, sizeof s, "B%zu:", n);
    h_str(h, s);
    for (size_t off = 0; off < n; off += 512) {
        size_t k = n - off < 512 ? n - off : 512;
        sodium_bin2hex(hex, sizeof hex, p + off, k);
        crypto_hash_sha256_update(h, (const unsigned char *)hex, 2 * k);
    }
}

/* PostgreSQL's hex (bytea_output = hex) is already the digest's lowercase
 * hex: hashed as it comes, not decoded. */
int sc_digest_bytea_hex(crypto_hash_sha256_state *h, const char *v, size_t n)
{
    if (n < 2 || v[0] != '\\' || v[1] != 'x' || (n - 2) % 2) return -1;
    char s[32];
    snprintf(s, sizeof s, "B%zu:", (n - 2) / 2);
    h_str(h, s);
    crypto_hash_sha256_update(h, (const unsigned char *)v + 2, n - 2);
    return 0;
}

/* ---- COPY data ---- */

/* A text value in COPY's text format: backslash, newline, CR and tab escaped. */
void sc_buf_copy_text(td_buf *b, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *esc = s[i] == '\\'   ? "\\\\"
                          : s[i] == '\n' ? "\\n"
                          : s[i] == '\r' ? "\\r"
                          : s[i] == '\t' ? "\\t"
                                         : NULL;
        if (!esc) continue;
        td_buf_add(b, s + run, i - run);
        td_buf_add(b, esc, 2);
        run = i + 1;
    }
    td_buf_add(b, s + run, n - run);
}

/* A bytea in COPY's text format: \x and hex, its backslash escaped. */
void sc_buf_copy_blob(td_buf *b, const uint8_t *p, size_t n)
{
    char hex[2 * 512 + 1];
    td_buf_add(b, "\\\\x", 3);
    for (size_t off = 0; off < n; off += 512) {
        size_t k = n - off < 512 ? n - off : 512;
        sodium_bin2hex(hex, sizeof hex, p + off, k);
        td_buf_add(b, hex, 2 * k);
    }
}
