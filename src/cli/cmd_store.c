/* cmd_store.c — moving tokend's data from the embedded SQLite store to
 * PostgreSQL, with no server involved (docs/postgres.md):
 *
 *   tokenctl store copy sqlite:PATH postgres://...
 *   tokenctl store verify sqlite:PATH postgres://...
 *
 * copy migrates the target through td_store_open (its own schema_migrations),
 * then, in one PostgreSQL transaction: locks the tables, refuses if any holds a
 * row, streams every table with COPY FROM STDIN in foreign-key order, moves the
 * identity sequences past the copied ids, reads every table back and compares
 * row counts and a SHA-256 content digest with the source's, and commits only
 * if all are equal. The source is read in one SQLite read transaction (one
 * snapshot). verify recomputes both sides' digests without writing anything.
 *
 * Sealed secrets and PANs are bytes here: copied byte for byte, never opened,
 * so no master key is needed. The target URL's password is never printed:
 * messages show the URL without it, and any text that repeats it is scrubbed. */
#include <errno.h>
#include <libpq-fe.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "store/store.h"
#include "util/log.h"
#include "util/util.h"

extern const int td_sqlite_migration_count;

#define STORE_EXIT_HELP                                                                                                \
    "  Exit status: 0 done (verify: equal), 1 refused or failed (a non-empty target, a\n"                              \
    "  difference, a schema this tokenctl does not know, a database error: nothing was\n"                              \
    "  committed), 2 usage (bad arguments, a source that is not a readable tokend SQLite\n"                            \
    "  store), 3 PostgreSQL cannot be reached (connection, password).\n"

#define STORE_URL_HELP                                                                                                 \
    "  SRC is sqlite:PATH, the file of a stopped tokend. DST is a libpq URL,\n"                                        \
    "  postgres://USER@HOST:PORT/DB[?...]; its password comes from PGPASSFILE or a\n"                                  \
    "  passfile=FILE parameter (or the URL, which other users may see). Messages show\n"                               \
    "  DST without its password.\n"

static const char COPY_USAGE[] =
    "usage: tokenctl store copy sqlite:PATH postgres://...\n"
    "  Copies every table of a tokend SQLite store into an empty PostgreSQL database\n"
    "  (tokens with their signatures and events, token requests, members, their sealed\n"
    "  keys and credentials, issuers and delivery settings, cards with PANs still\n"
    "  sealed, digital cards and their events, operations, the outbox with its dead\n"
    "  letters, timers, idempotency records), in one transaction. The target gets\n"
    "  tokend's schema first; a target table that already holds a row is refused.\n"
    "  Before committing, every table is read back and its row count and SHA-256\n"
    "  content digest compared with the source's; any difference rolls back.\n"
    "  Prints a table of rows and digests (nothing with -q). Stop tokend first.\n" STORE_URL_HELP STORE_EXIT_HELP;

static const char VERIFY_USAGE[] =
    "usage: tokenctl store verify sqlite:PATH postgres://...\n"
    "  Compares a SQLite store with a PostgreSQL database without changing either:\n"
    "  per table, the row counts and the SHA-256 content digests (the same ones\n"
    "  `store copy` checks), and that PostgreSQL's id sequences are past the copied\n"
    "  ids. Run it after a copy, before any tokend writes to either side. Prints the\n"
    "  table (nothing with -q); names the tables that differ.\n" STORE_URL_HELP STORE_EXIT_HELP;

/* ---- what is copied ---- */

/* Every table tokend keeps, parents first (member_keys refers to members,
 * issuer_delivery to issuers), each with its primary key: the order the
 * digests read rows in. schema_migrations is each engine's own. */
typedef struct {
    const char *name;
    const char *pk[3];
} table_def;

static const table_def TABLES[] = {
    {"members", {"id"}},
    {"member_keys", {"member_id", "key_id"}},
    {"credentials", {"hash"}},
    {"issuers", {"id"}},
    {"issuer_delivery", {"issuer_id"}},
    {"token_requests", {"id"}},
    {"tokens", {"id"}},
    {"token_events", {"token_id", "seq"}},
    {"idempotency", {"scope", "key"}},
    {"cards", {"issuer_id", "card_id"}},
    {"digital_cards", {"id"}},
    {"dcard_events", {"digital_card_id", "seq"}},
    {"operations", {"id"}},
    {"outbox", {"id"}},
    {"timers", {"id"}},
};
#define N_TABLES (sizeof TABLES / sizeof TABLES[0])

/* SQLite columns PostgreSQL does without: outbox.head is kept by SQLite's
 * triggers for its claim query; PostgreSQL's claim finds heads itself. */
static bool sqlite_only(const char *table, const char *col)
{
    return !strcmp(table, "outbox") && !strcmp(col, "head");
}

/* PostgreSQL columns filled from SQLite's rowid: digital_cards.seq_no, the
 * insertion order that breaks ties in "oldest first" lists. */
static bool from_rowid(const char *table, const char *col)
{
    return !strcmp(table, "digital_cards") && !strcmp(col, "seq_no");
}

typedef enum { V_INT, V_TEXT, V_BLOB } vkind;

#define NAME_MAX_LEN 64
#define MAX_COLS 64

typedef struct {
    char name[NAME_MAX_LEN]; /* the PostgreSQL column */
    vkind kind;
    bool rowid;    /* read from SQLite's rowid */
    bool identity; /* its sequence must end up past the copied values */
} column;

typedef struct {
    const table_def *def;
    column cols[MAX_COLS];
    int ncols;
    int64_t sqlite_seq; /* sqlite_sequence's value for the table (AUTOINCREMENT), 0 if none */
    int64_t src_rows, dst_rows;
    uint8_t src_sum[crypto_hash_sha256_BYTES], dst_sum[crypto_hash_sha256_BYTES];
    bool seq_behind; /* verify: an identity sequence is not past the copied ids */
} table;

typedef struct {
    const char *cmd; /* "copy" or "verify", for messages */
    const char *src_path, *dst_url;
    char safe_dst[1024];  /* dst_url without its password */
    char secrets[4][256]; /* the password as written and percent-decoded: scrubbed from messages */
    sqlite3 *db;
    PGconn *pg;
    bool in_tx, copying;
    table t[N_TABLES];
} job;

/* ---- messages (never the password) ---- */

static void scrub(const job *j, char *msg, size_t cap)
{
    char out[2048];
    for (size_t s = 0; s < sizeof j->secrets / sizeof j->secrets[0]; s++) {
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

static int fail(const job *j, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(const job *j, int rc, const char *fmt, ...)
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

/* A failed result's message: the primary text and where (COPY's table and
 * line), not the DETAIL or the value COPY's context quotes. */
static const char *pg_msg(const job *j, const PGresult *r, char *out, size_t cap)
{
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *context = r ? PQresultErrorField(r, PG_DIAG_CONTEXT) : NULL;
    if (!primary) primary = PQerrorMessage(j->pg);
    char where[256] = "";
    if (context) {
        td_strlcpy(where, context, sizeof where);
        where[strcspn(where, "\n")] = 0;
        char *quoted = strstr(where, ": \""); /* "COPY t, line 3, column c: \"value\"" */
        if (quoted) *quoted = 0;
    }
    snprintf(out, cap, "%s%s%s%s", primary ? primary : "unknown error", where[0] ? " (" : "", where,
             where[0] ? ")" : "");
    return out;
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

static void keep_secret(job *j, const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof j->secrets / sizeof j->secrets[0]; i++) {
        if (j->secrets[i][0]) continue;
        if (n >= sizeof j->secrets[i]) n = sizeof j->secrets[i] - 1;
        memcpy(j->secrets[i], s, n);
        j->secrets[i][n] = 0;
        if (i + 1 < sizeof j->secrets / sizeof j->secrets[0])
            percent_decode(s, n, j->secrets[i + 1], sizeof j->secrets[i + 1]);
        return;
    }
}

/* The URL for messages: "user:secret@" loses ":secret", a password=...
 * parameter its value; the passwords are kept to scrub libpq's messages. */
static void redact(job *j, const char *url)
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
    for (char *p = strstr(buf, "password="); p; p = strstr(p + 1, "password=")) {
        if (p != buf && p[-1] != '?' && p[-1] != '&') continue;
        size_t n = strcspn(p + 9, "&");
        keep_secret(j, p + 9, n);
        memmove(p + 9, p + 9 + n, strlen(p + 9 + n) + 1);
    }
    td_strlcpy(j->safe_dst, buf, sizeof j->safe_dst);
}

/* ---- the digest ----
 * SHA-256 over a header naming the table and its columns, then every row in
 * primary-key order (text keys in byte order on both engines), each value
 * rendered the same way whichever engine it was read from:
 *   NULL  N       integer  I<decimal>;
 *   text  T<byte length>:<bytes>      blob  B<byte length>:<lowercase hex>
 * and each row opened by R. NULL, "" and an empty blob all differ. */

static void digest_start(crypto_hash_sha256_state *h, const table *t)
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

static void h_int(crypto_hash_sha256_state *h, int64_t v)
{
    char s[32];
    snprintf(s, sizeof s, "I%lld;", (long long)v);
    h_str(h, s);
}

static void h_text(crypto_hash_sha256_state *h, const void *p, size_t n)
{
    char s[32];
    snprintf(s, sizeof s, "T%zu:", n);
    h_str(h, s);
    if (n) crypto_hash_sha256_update(h, p, n);
}

static void h_blob(crypto_hash_sha256_state *h, const uint8_t *p, size_t n)
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

/* A bytea as PostgreSQL shows it with bytea_output = hex: \x and lowercase hex. */
static int h_bytea_hex(crypto_hash_sha256_state *h, const char *v, size_t n)
{
    if (n < 2 || v[0] != '\\' || v[1] != 'x' || (n - 2) % 2) return -1;
    char s[32];
    snprintf(s, sizeof s, "B%zu:", (n - 2) / 2);
    h_str(h, s);
    crypto_hash_sha256_update(h, (const unsigned char *)v + 2, n - 2);
    return 0;
}

/* ---- a growing buffer for COPY data ---- */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} buf;

static void buf_add(buf *b, const void *s, size_t n)
{
    if (b->oom || n == 0) return; /* n == 0: s may be NULL (an empty blob) */
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 20;
        while (cap < b->len + n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* A text value in COPY's text format: backslash, newline, CR and tab escaped. */
static void buf_copy_text(buf *b, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *esc = s[i] == '\\'   ? "\\\\"
                          : s[i] == '\n' ? "\\n"
                          : s[i] == '\r' ? "\\r"
                          : s[i] == '\t' ? "\\t"
                                         : NULL;
        if (!esc) continue;
        buf_add(b, s + run, i - run);
        buf_add(b, esc, 2);
        run = i + 1;
    }
    buf_add(b, s + run, n - run);
}

/* A bytea in COPY's text format: \x and hex, its backslash escaped. */
static void buf_copy_blob(buf *b, const uint8_t *p, size_t n)
{
    char hex[2 * 512 + 1];
    buf_add(b, "\\\\x", 3);
    for (size_t off = 0; off < n; off += 512) {
        size_t k = n - off < 512 ? n - off : 512;
        sodium_bin2hex(hex, sizeof hex, p + off, k);
        buf_add(b, hex, 2 * k);
    }
}

/* ---- the source: SQLite, read-only, one read transaction ---- */

static int sq_fail(const job *j, int rc, const char *what)
{
    return fail(j, rc, "%s: %s (source %s)", what, sqlite3_errmsg(j->db), j->src_path);
}

/* One integer from a query, or -1 after a message (def if it has no row). */
static int sq_int(const job *j, const char *sql, const char *bind, int64_t def, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    if (bind) sqlite3_bind_text(st, 1, bind, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL ? sqlite3_column_int64(st, 0) : def;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static bool known_table(const char *name)
{
    for (size_t i = 0; i < N_TABLES; i++)
        if (!strcmp(TABLES[i].name, name)) return true;
    return false;
}

static int open_source(job *j)
{
    struct stat sb;
    if (stat(j->src_path, &sb) != 0)
        return fail(j, CLI_USAGE, "cannot read the source %s: %s", j->src_path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return fail(j, CLI_USAGE, "the source %s is not a file", j->src_path);
    /* tokend checkpoints its write-ahead log when it stops: a non-empty one
     * means it still runs (or did not stop cleanly). The copy is a consistent
     * snapshot either way, but rows written after it would be left behind. */
    char wal[4200];
    snprintf(wal, sizeof wal, "%s-wal", j->src_path);
    if (stat(wal, &sb) == 0 && sb.st_size > 0)
        fail(j, 0,
             "warning: %s is not empty: is a tokend still running on the source? Stop it first; rows written after "
             "this snapshot are not copied",
             wal);
    if (sqlite3_open_v2(j->src_path, &j->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        return sq_fail(j, CLI_USAGE, "cannot open the source");
    sqlite3_busy_timeout(j->db, 10000);
    /* The read transaction starts at the first read: every table comes from that one snapshot. */
    if (sqlite3_exec(j->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) return sq_fail(j, CLI_USAGE, "cannot read");
    int64_t version;
    if (sq_int(j, "SELECT coalesce(max(version), 0) FROM schema_migrations", NULL, 0, &version) != 0)
        return fail(j, CLI_USAGE, "%s is not a tokend SQLite store: %s", j->src_path, sqlite3_errmsg(j->db));
    if (version != td_sqlite_migration_count)
        return fail(j, CLI_HTTP_ERROR,
                    "the source %s is at SQLite migration %lld, this tokenctl copies stores at migration %d: %s",
                    j->src_path, (long long)version, td_sqlite_migration_count,
                    version < td_sqlite_migration_count
                        ? "start this version's tokend on it once (it migrates the store), stop it, then copy"
                        : "use the tokenctl built with the tokend that last ran on it");

    /* A table this tokenctl does not know would be left behind: refuse. */
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db,
                           "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
                           "ESCAPE '\\' AND name <> 'schema_migrations' ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK)
        return sq_fail(j, CLI_USAGE, "cannot list the source's tables");
    int rc = CLI_OK, found = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (known_table(name)) {
            found++;
        } else if (rc == CLI_OK) {
            rc = fail(j, CLI_HTTP_ERROR,
                      "the source has a table %.64s that this tokenctl does not know how to copy: use the tokenctl "
                      "built with the tokend that wrote it",
                      name);
        }
    }
    sqlite3_finalize(st);
    if (rc == CLI_OK && found != (int)N_TABLES)
        rc = fail(j, CLI_USAGE, "%s is not a complete tokend SQLite store (%d of its %zu tables)", j->src_path, found,
                  N_TABLES);
    return rc;
}

static bool sqlite_has_column(const job *j, const char *table_name, const char *col)
{
    sqlite3_stmt *st;
    bool has = false;
    if (sqlite3_prepare_v2(j->db, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2", -1, &st, NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_text(st, 1, table_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, col, -1, SQLITE_STATIC);
    has = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return has;
}

static const column *find_col(const table *t, const char *name)
{
    for (int i = 0; i < t->ncols; i++)
        if (!strcmp(t->cols[i].name, name)) return &t->cols[i];
    return NULL;
}

/* "ORDER BY" of a table: its primary key; text in byte order (PostgreSQL's
 * "C" collation is SQLite's BINARY). */
static void order_by(const table *t, bool pg, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, " ORDER BY ");
    for (int k = 0; k < 3 && t->def->pk[k] && n < cap; k++) {
        const column *c = find_col(t, t->def->pk[k]);
        n += (size_t)snprintf(out + n, cap - n, "%s\"%s\"%s", k ? ", " : "", t->def->pk[k],
                              pg && c && c->kind == V_TEXT ? " COLLATE \"C\"" : "");
    }
}

/* "SELECT cols FROM table ORDER BY pk" for either engine. */
static void select_sql(const table *t, bool pg, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "SELECT ");
    for (int i = 0; i < t->ncols && n < cap; i++) {
        const column *c = &t->cols[i];
        if (c->rowid && !pg)
            n += (size_t)snprintf(out + n, cap - n, "%srowid", i ? ", " : "");
        else
            n += (size_t)snprintf(out + n, cap - n, "%s\"%s\"", i ? ", " : "", c->name);
    }
    if (n < cap) n += (size_t)snprintf(out + n, cap - n, " FROM \"%s\"", t->def->name);
    if (n < cap) order_by(t, pg, out + n, cap - n);
}

static int flush_copy(job *j, buf *b)
{
    if (b->oom) return fail(j, CLI_HTTP_ERROR, "out of memory");
    if (b->len && PQputCopyData(j->pg, b->p, (int)b->len) != 1) {
        char m[512];
        return fail(j, CLI_HTTP_ERROR, "sending rows failed: %s", pg_msg(j, NULL, m, sizeof m));
    }
    b->len = 0;
    return CLI_OK;
}

/* Reads the table from the source in key order: its row count and digest,
 * and with copy, every row sent to the COPY in progress on j->pg. */
static int scan_source(job *j, table *t, bool copy)
{
    char sql[4096];
    select_sql(t, false, sql, sizeof sql);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK) return sq_fail(j, CLI_HTTP_ERROR, t->def->name);
    crypto_hash_sha256_state h;
    digest_start(&h, t);
    buf b = {0};
    int rc = CLI_OK, step;
    char num[32];
    t->src_rows = 0;
    while (rc == CLI_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        h_str(&h, "R");
        for (int i = 0; i < t->ncols && rc == CLI_OK; i++) {
            const column *c = &t->cols[i];
            int type = sqlite3_column_type(st, i);
            if (copy && i) buf_add(&b, "\t", 1);
            if (type == SQLITE_NULL) {
                h_str(&h, "N");
                if (copy) buf_add(&b, "\\N", 2);
                continue;
            }
            if (c->kind == V_INT) {
                if (type != SQLITE_INTEGER) {
                    rc = fail(j, CLI_HTTP_ERROR, "the source's %s.%s holds a value that is not an integer",
                              t->def->name, c->name);
                    break;
                }
                int64_t v = sqlite3_column_int64(st, i);
                h_int(&h, v);
                if (copy) buf_add(&b, num, (size_t)snprintf(num, sizeof num, "%lld", (long long)v));
            } else if (c->kind == V_TEXT) {
                const char *p =
                    type == SQLITE_BLOB ? sqlite3_column_blob(st, i) : (const char *)sqlite3_column_text(st, i);
                size_t n = (size_t)sqlite3_column_bytes(st, i);
                if (n && memchr(p, 0, n)) {
                    rc = fail(j, CLI_HTTP_ERROR, "the source's %s.%s holds a NUL byte, which PostgreSQL text cannot",
                              t->def->name, c->name);
                    break;
                }
                h_text(&h, p, n);
                if (copy) buf_copy_text(&b, p, n);
            } else {
                const uint8_t *p = sqlite3_column_blob(st, i);
                size_t n = (size_t)sqlite3_column_bytes(st, i);
                h_blob(&h, p, n);
                if (copy) buf_copy_blob(&b, p, n);
            }
        }
        if (copy) buf_add(&b, "\n", 1);
        t->src_rows++;
        if (copy && rc == CLI_OK && b.len >= (1u << 20)) rc = flush_copy(j, &b);
    }
    if (rc == CLI_OK && step != SQLITE_DONE) rc = sq_fail(j, CLI_HTTP_ERROR, t->def->name);
    if (copy && rc == CLI_OK) rc = flush_copy(j, &b);
    sqlite3_finalize(st);
    free(b.p);
    crypto_hash_sha256_final(&h, t->src_sum);
    return rc;
}

/* ---- the target: PostgreSQL ---- */

static PGresult *pg_exec(job *j, const char *sql, int nparams, const char *const *params, ExecStatusType want,
                         const char *what, int *rc)
{
    PGresult *r = nparams ? PQexecParams(j->pg, sql, nparams, NULL, params, NULL, NULL, 0) : PQexec(j->pg, sql);
    if (PQresultStatus(r) == want) return r;
    char m[768];
    *rc = fail(j, CLI_HTTP_ERROR, "%s: %s (target %s)", what, pg_msg(j, r, m, sizeof m), j->safe_dst);
    PQclear(r);
    return NULL;
}

static int pg_cmd(job *j, const char *sql, const char *what)
{
    int rc = CLI_OK;
    PGresult *r = pg_exec(j, sql, 0, NULL, PGRES_COMMAND_OK, what, &rc);
    PQclear(r);
    return rc;
}

/* The server's warnings, as one line each through fail()'s scrubbing. */
static void on_notice(void *arg, const char *message)
{
    fail(arg, 0, "PostgreSQL: %s", message);
}

static int connect_target(job *j)
{
    j->pg = PQconnectdb(j->dst_url);
    if (!j->pg || PQstatus(j->pg) != CONNECTION_OK)
        return fail(j, CLI_TRANSPORT, "cannot connect to %s: %s", j->safe_dst,
                    j->pg ? PQerrorMessage(j->pg) : "out of memory");
    PQsetNoticeProcessor(j->pg, on_notice, j);
    /* The source's text is UTF-8, whatever PGCLIENTENCODING says. */
    int rc = pg_cmd(j,
                    "SET client_encoding = 'UTF8'; SET client_min_messages = warning; SET bytea_output = 'hex'; "
                    "SET synchronous_commit = on; SET application_name = 'tokenctl store'",
                    "cannot set up the session");
    const char *enc = PQparameterStatus(j->pg, "server_encoding");
    if (rc == CLI_OK && (!enc || strcmp(enc, "UTF8")))
        rc = fail(j, CLI_HTTP_ERROR,
                  "the target %s has the encoding %.32s: tokend's text is UTF-8; create the database with "
                  "ENCODING 'UTF8'",
                  j->safe_dst, enc ? enc : "(unknown)");
    return rc;
}

static bool plain_name(const char *s)
{
    if (!*s || strlen(s) >= NAME_MAX_LEN) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')) return false;
    return true;
}

/* The columns both engines have, in PostgreSQL's order, with their kinds;
 * refuses a column one side has and the other cannot do without. */
static int plan_table(job *j, table *t)
{
    static const char SQL[] =
        "SELECT column_name, data_type, is_identity, "
        "(column_default IS NOT NULL OR is_nullable = 'YES' OR is_identity = 'YES' OR is_generated = 'ALWAYS') "
        "FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 "
        "ORDER BY ordinal_position";
    int rc = CLI_OK;
    const char *params[1] = {t->def->name};
    PGresult *r = pg_exec(j, SQL, 1, params, PGRES_TUPLES_OK, "cannot read the target's columns", &rc);
    if (!r) return rc;
    t->ncols = 0;
    if (PQntuples(r) == 0)
        rc = fail(j, CLI_HTTP_ERROR, "the target has no table %s (is it a tokend database?)", t->def->name);
    for (int i = 0; i < PQntuples(r) && rc == CLI_OK; i++) {
        const char *name = PQgetvalue(r, i, 0), *type = PQgetvalue(r, i, 1);
        bool identity = !strcmp(PQgetvalue(r, i, 2), "YES"), optional = PQgetvalue(r, i, 3)[0] == 't';
        bool rowid = from_rowid(t->def->name, name);
        if (!plain_name(name)) {
            rc = fail(j, CLI_HTTP_ERROR, "the target's table %s has a column named unexpectedly", t->def->name);
            break;
        }
        if (!rowid && !sqlite_has_column(j, t->def->name, name)) {
            if (optional) continue; /* the target's own column: its default */
            rc = fail(j, CLI_HTTP_ERROR,
                      "the target's %s.%s has no counterpart in the source: use the tokenctl built with this tokend",
                      t->def->name, name);
            break;
        }
        vkind kind;
        if (!strcmp(type, "bigint") || !strcmp(type, "integer") || !strcmp(type, "smallint"))
            kind = V_INT;
        else if (!strcmp(type, "text") || !strcmp(type, "character varying"))
            kind = V_TEXT;
        else if (!strcmp(type, "bytea"))
            kind = V_BLOB;
        else {
            rc = fail(j, CLI_HTTP_ERROR, "the target's %s.%s has a type this tokenctl does not copy (%.40s)",
                      t->def->name, name, type);
            break;
        }
        if (t->ncols == MAX_COLS) {
            rc = fail(j, CLI_HTTP_ERROR, "the target's table %s has too many columns", t->def->name);
            break;
        }
        column *c = &t->cols[t->ncols++];
        td_strlcpy(c->name, name, sizeof c->name);
        c->kind = rowid ? V_INT : kind;
        c->rowid = rowid;
        c->identity = identity;
    }
    PQclear(r);
    if (rc != CLI_OK) return rc;

    /* Every source column must land somewhere. */
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, "SELECT name FROM pragma_table_info(?1)", -1, &st, NULL) != SQLITE_OK)
        return sq_fail(j, CLI_HTTP_ERROR, t->def->name);
    sqlite3_bind_text(st, 1, t->def->name, -1, SQLITE_STATIC);
    while (rc == CLI_OK && sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (!find_col(t, name) && !sqlite_only(t->def->name, name))
            rc = fail(j, CLI_HTTP_ERROR,
                      "the source's %s.%.64s has no counterpart in the target: use the tokend and tokenctl of the "
                      "same version",
                      t->def->name, name);
    }
    sqlite3_finalize(st);
    for (int k = 0; rc == CLI_OK && k < 3 && t->def->pk[k]; k++)
        if (!find_col(t, t->def->pk[k]))
            rc = fail(j, CLI_HTTP_ERROR, "the key column %s.%s is missing", t->def->name, t->def->pk[k]);
    if (rc == CLI_OK &&
        sq_int(j, "SELECT seq FROM sqlite_sequence WHERE name = ?1", t->def->name, 0, &t->sqlite_seq) != 0)
        t->sqlite_seq = 0; /* no AUTOINCREMENT table ever written: no sqlite_sequence */
    return rc;
}

/* Reads the table back from the target in key order: row count and digest. */
static int scan_target(job *j, table *t)
{
    char sql[4200] = "DECLARE td_scan NO SCROLL CURSOR FOR ";
    size_t n = strlen(sql);
    select_sql(t, true, sql + n, sizeof sql - n);
    int rc = pg_cmd(j, sql, "cannot read the target back");
    if (rc != CLI_OK) return rc;
    crypto_hash_sha256_state h;
    digest_start(&h, t);
    t->dst_rows = 0;
    for (;;) {
        PGresult *r = pg_exec(j, "FETCH 2000 FROM td_scan", 0, NULL, PGRES_TUPLES_OK, t->def->name, &rc);
        if (!r) break;
        int rows = PQntuples(r);
        for (int row = 0; row < rows && rc == CLI_OK; row++) {
            h_str(&h, "R");
            for (int i = 0; i < t->ncols; i++) {
                if (PQgetisnull(r, row, i)) {
                    h_str(&h, "N");
                    continue;
                }
                const char *v = PQgetvalue(r, row, i);
                size_t len = (size_t)PQgetlength(r, row, i);
                int64_t iv;
                if (t->cols[i].kind == V_INT && td_parse_i64(v, &iv) == 0) {
                    h_int(&h, iv);
                } else if (t->cols[i].kind == V_TEXT) {
                    h_text(&h, v, len);
                } else if (t->cols[i].kind != V_BLOB || h_bytea_hex(&h, v, len) != 0) {
                    rc = fail(j, CLI_HTTP_ERROR, "the target's %s.%s answered a value of an unexpected form",
                              t->def->name, t->cols[i].name);
                    break;
                }
            }
            t->dst_rows++;
        }
        PQclear(r);
        if (rc != CLI_OK || rows == 0) break;
    }
    crypto_hash_sha256_final(&h, t->dst_sum);
    if (rc == CLI_OK) rc = pg_cmd(j, "CLOSE td_scan", "cannot read the target back");
    return rc;
}

/* For an identity column: the value its sequence must have reached (the
 * largest copied id, or SQLite's AUTOINCREMENT high-water mark when rows at
 * the end were deleted: ids are never handed out twice). */
static int identity_floor(job *j, const table *t, const column *c, int64_t *floor)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT coalesce(max(\"%s\"), 0) FROM \"%s\"", c->name, t->def->name);
    int rc = CLI_OK;
    PGresult *r = pg_exec(j, sql, 0, NULL, PGRES_TUPLES_OK, "cannot read the largest id", &rc);
    if (!r) return rc;
    if (td_parse_i64(PQgetvalue(r, 0, 0), floor) != 0) *floor = 0;
    PQclear(r);
    if (!c->rowid && t->sqlite_seq > *floor) *floor = t->sqlite_seq;
    return CLI_OK;
}

/* Moves an identity column's sequence past the copied ids (copy), or checks
 * that it is (verify: *behind set when it is not). */
static int fix_sequence(job *j, table *t, const column *c, bool set, bool *behind)
{
    int64_t floor;
    int rc = identity_floor(j, t, c, &floor);
    if (rc != CLI_OK || floor <= 0) return rc;
    char v[32];
    snprintf(v, sizeof v, "%lld", (long long)floor);
    const char *params[3] = {t->def->name, c->name, v};
    const char *sql = set ? "SELECT setval(pg_get_serial_sequence($1, $2), $3::bigint, true)"
                          : "SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence($1, $2)::regclass), 0) "
                            ">= $3::bigint";
    PGresult *r = pg_exec(j, sql, 3, params, PGRES_TUPLES_OK, "cannot move an id sequence", &rc);
    if (!r) return rc;
    if (!set && PQgetvalue(r, 0, 0)[0] != 't') *behind = true;
    PQclear(r);
    return CLI_OK;
}

/* ---- output ---- */

static void hex32(const uint8_t *sum, char out[65])
{
    sodium_bin2hex(out, 65, sum, crypto_hash_sha256_BYTES);
}

static bool table_equal(const table *t)
{
    return t->src_rows == t->dst_rows && !memcmp(t->src_sum, t->dst_sum, sizeof t->src_sum) && !t->seq_behind;
}

static void print_tables(const job *j)
{
    char a[65], b[65];
    printf("%-16s %10s  %s\n", "TABLE", "ROWS", "SHA-256");
    for (size_t i = 0; i < N_TABLES; i++) {
        const table *t = &j->t[i];
        hex32(t->src_sum, a);
        if (table_equal(t)) {
            printf("%-16s %10lld  %s\n", t->def->name, (long long)t->src_rows, a);
            continue;
        }
        hex32(t->dst_sum, b);
        printf("%-16s %10lld  %s  source\n", t->def->name, (long long)t->src_rows, a);
        printf("%-16s %10lld  %s  target%s\n", "", (long long)t->dst_rows, b,
               t->seq_behind ? ", id sequence behind" : "");
    }
}

/* "outbox (content), timers (rows 3 vs 2)": the tables that differ. */
static void differences(const job *j, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = 0;
    for (size_t i = 0; i < N_TABLES && n < cap; i++) {
        const table *t = &j->t[i];
        if (table_equal(t)) continue;
        char why[96];
        if (t->src_rows != t->dst_rows)
            snprintf(why, sizeof why, "rows: source %lld, target %lld", (long long)t->src_rows, (long long)t->dst_rows);
        else if (memcmp(t->src_sum, t->dst_sum, sizeof t->src_sum))
            snprintf(why, sizeof why, "content digest");
        else
            snprintf(why, sizeof why, "id sequence behind its rows");
        n += (size_t)snprintf(out + n, cap - n, "%s%s (%s)", n ? ", " : "", t->def->name, why);
    }
}

/* ---- the commands ---- */

static int parse(cli_ctx *ctx, const char *usage, int argc, char **argv, job *j)
{
    const char *pos[2];
    cli_spec spec = {usage, NULL, 2, 2, pos};
    int rc = cli_parse(ctx, &spec, argc, argv);
    if (rc != CLI_OK) return rc;
    if (strncmp(pos[0], "sqlite:", 7) || !pos[0][7]) return cli_usage_error(usage, "the source must be sqlite:PATH");
    /* Not echoed: it may hold a password. */
    if (strncmp(pos[1], "postgres://", 11) && strncmp(pos[1], "postgresql://", 13))
        return cli_usage_error(usage, "the target must be a postgres:// URL");
    j->src_path = pos[0] + 7;
    j->dst_url = pos[1];
    redact(j, j->dst_url);
    for (size_t i = 0; i < N_TABLES; i++)
        j->t[i].def = &TABLES[i];
    if (sodium_init() < 0) return fail(j, CLI_HTTP_ERROR, "libsodium failed to initialise");
    return CLI_OK;
}

static void finish(job *j)
{
    if (j->pg && j->in_tx) PQclear(PQexec(j->pg, "ROLLBACK"));
    if (j->pg) PQfinish(j->pg);
    if (j->db) {
        sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(j->db);
    }
    sodium_memzero(j->secrets, sizeof j->secrets);
}

/* Locks the target's tables against writers for the copy and refuses rows. */
static int lock_and_check_empty(job *j)
{
    char sql[1024] = "LOCK TABLE ";
    size_t n = strlen(sql);
    for (size_t i = 0; i < N_TABLES; i++)
        n += (size_t)snprintf(sql + n, sizeof sql - n, "%s\"%s\"", i ? ", " : "", TABLES[i].name);
    snprintf(sql + n, sizeof sql - n, " IN EXCLUSIVE MODE");
    int rc = pg_cmd(j, "SET LOCAL lock_timeout = '10s'", "cannot set a lock timeout");
    if (rc == CLI_OK) rc = pg_cmd(j, sql, "cannot lock the target's tables (is a tokend node running on it?)");
    char full[512] = "";
    size_t fn = 0;
    int nfull = 0;
    for (size_t i = 0; i < N_TABLES && rc == CLI_OK; i++) {
        char q[128];
        snprintf(q, sizeof q, "SELECT 1 FROM \"%s\" LIMIT 1", TABLES[i].name);
        PGresult *r = pg_exec(j, q, 0, NULL, PGRES_TUPLES_OK, "cannot read the target", &rc);
        if (r && PQntuples(r) > 0) {
            nfull++;
            if (fn < sizeof full)
                fn += (size_t)snprintf(full + fn, sizeof full - fn, "%s%s", fn ? ", " : "", TABLES[i].name);
        }
        PQclear(r);
    }
    if (rc == CLI_OK && nfull)
        rc = fail(j, CLI_HTTP_ERROR,
                  "refusing to copy into %s: it already holds rows in %d table%s (%s); copy into a new, empty "
                  "database (CREATE DATABASE ...); nothing was changed",
                  j->safe_dst, nfull, nfull > 1 ? "s" : "", full);
    return rc;
}

static int copy_table(job *j, table *t)
{
    char sql[4096];
    size_t n = (size_t)snprintf(sql, sizeof sql, "COPY \"%s\" (", t->def->name);
    for (int i = 0; i < t->ncols && n < sizeof sql; i++)
        n += (size_t)snprintf(sql + n, sizeof sql - n, "%s\"%s\"", i ? ", " : "", t->cols[i].name);
    if (n < sizeof sql) snprintf(sql + n, sizeof sql - n, ") FROM STDIN");
    int rc = CLI_OK;
    PGresult *r = pg_exec(j, sql, 0, NULL, PGRES_COPY_IN, t->def->name, &rc);
    if (!r) return rc;
    PQclear(r);
    rc = scan_source(j, t, true);
    /* A failed source read aborts the COPY: the server discards its rows. */
    if (PQputCopyEnd(j->pg, rc == CLI_OK ? NULL : "the source could not be read") != 1 && rc == CLI_OK) {
        char m[512];
        rc = fail(j, CLI_HTTP_ERROR, "copying %s failed: %s", t->def->name, pg_msg(j, NULL, m, sizeof m));
    }
    while ((r = PQgetResult(j->pg))) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == CLI_OK) {
            char m[768];
            rc = fail(j, CLI_HTTP_ERROR, "copying %s failed: %s", t->def->name, pg_msg(j, r, m, sizeof m));
        }
        PQclear(r);
    }
    return rc;
}

int cmd_store_copy(cli_ctx *ctx, int argc, char **argv)
{
    job *j = calloc(1, sizeof *j);
    if (!j) return CLI_HTTP_ERROR;
    j->cmd = "copy";
    int rc = parse(ctx, COPY_USAGE, argc, argv, j);
    if (rc == CLI_OK) rc = open_source(j);
    if (rc == CLI_OK) rc = connect_target(j);
    if (rc == CLI_OK) {
        /* tokend's own migrations give the target its schema (and its own schema_migrations). */
        char err[1024];
        td_log_set_level(TD_LOG_WARN);
        td_store *s = td_store_open(j->dst_url, err, sizeof err);
        if (s)
            s->close(s);
        else
            rc = fail(j, CLI_HTTP_ERROR, "cannot prepare the target: %s", err);
    }
    for (size_t i = 0; i < N_TABLES && rc == CLI_OK; i++)
        rc = plan_table(j, &j->t[i]);
    int64_t t0 = td_mono_us(), t_copied = 0, t_verified = 0;
    if (rc == CLI_OK) rc = pg_cmd(j, "BEGIN", "cannot begin");
    j->in_tx = rc == CLI_OK;
    if (rc == CLI_OK) rc = lock_and_check_empty(j);
    int64_t total = 0;
    j->copying = rc == CLI_OK;
    for (size_t i = 0; i < N_TABLES && rc == CLI_OK; i++) {
        rc = copy_table(j, &j->t[i]);
        total += j->t[i].src_rows;
    }
    for (size_t i = 0; i < N_TABLES && rc == CLI_OK; i++)
        for (int c = 0; c < j->t[i].ncols && rc == CLI_OK; c++)
            if (j->t[i].cols[c].identity) rc = fix_sequence(j, &j->t[i], &j->t[i].cols[c], true, NULL);
    t_copied = td_mono_us();
    /* Read back inside the same transaction: what COMMIT would make durable. */
    for (size_t i = 0; i < N_TABLES && rc == CLI_OK; i++)
        rc = scan_target(j, &j->t[i]);
    t_verified = td_mono_us();
    if (rc == CLI_OK) {
        char diff[1024];
        differences(j, diff, sizeof diff);
        if (diff[0]) {
            if (!ctx->quiet) print_tables(j);
            rc = fail(j, CLI_HTTP_ERROR, "the copy differs from the source in %s; rolled back, nothing was committed",
                      diff);
        }
    }
    if (rc == CLI_OK) {
        rc = pg_cmd(j, "COMMIT", "commit failed");
        j->in_tx = false;
    } else if (j->copying) {
        fprintf(stderr, "tokenctl: store copy: rolled back: the target's tables are as they were\n");
    }
    if (rc == CLI_OK) {
        /* Fresh statistics for the first queries' plans (autovacuum would get there later). */
        char analyze[1024] = "ANALYZE ";
        size_t n = strlen(analyze);
        for (size_t i = 0; i < N_TABLES; i++)
            n += (size_t)snprintf(analyze + n, sizeof analyze - n, "%s\"%s\"", i ? ", " : "", TABLES[i].name);
        pg_cmd(j, analyze, "ANALYZE failed (harmless: autovacuum will do it)");
        if (!ctx->quiet) {
            print_tables(j);
            printf("copied %lld rows in %zu tables from sqlite:%s to %s in %.2f s (copy %.2f s, read back and "
                   "compare %.2f s): row counts and digests equal, committed\n",
                   (long long)total, N_TABLES, j->src_path, j->safe_dst, (double)(td_mono_us() - t0) / 1e6,
                   (double)(t_copied - t0) / 1e6, (double)(t_verified - t_copied) / 1e6);
        }
    }
    finish(j);
    free(j);
    return rc;
}

int cmd_store_verify(cli_ctx *ctx, int argc, char **argv)
{
    job *j = calloc(1, sizeof *j);
    if (!j) return CLI_HTTP_ERROR;
    j->cmd = "verify";
    int rc = parse(ctx, VERIFY_USAGE, argc, argv, j);
    if (rc == CLI_OK) rc = open_source(j);
    if (rc == CLI_OK) rc = connect_target(j);
    /* One snapshot of the target too; nothing is written. */
    if (rc == CLI_OK) rc = pg_cmd(j, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "cannot begin");
    j->in_tx = rc == CLI_OK;
    for (size_t i = 0; i < N_TABLES && rc == CLI_OK; i++)
        rc = plan_table(j, &j->t[i]);
    for (size_t i = 0; i < N_TABLES && rc == CLI_OK; i++) {
        table *t = &j->t[i];
        rc = scan_source(j, t, false);
        if (rc == CLI_OK) rc = scan_target(j, t);
        for (int c = 0; c < t->ncols && rc == CLI_OK; c++)
            if (t->cols[c].identity) rc = fix_sequence(j, t, &t->cols[c], false, &t->seq_behind);
    }
    if (rc == CLI_OK) {
        char diff[1024];
        differences(j, diff, sizeof diff);
        if (!ctx->quiet) print_tables(j);
        if (diff[0])
            rc = fail(j, CLI_HTTP_ERROR, "the target %s differs from the source in %s", j->safe_dst, diff);
        else if (!ctx->quiet)
            printf("sqlite:%s and %s hold the same rows: row counts and digests equal\n", j->src_path, j->safe_dst);
    }
    finish(j);
    free(j);
    return rc;
}
